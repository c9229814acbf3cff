"""The buffer's budget during an outage: oldest data evicted, counted exactly, newest kept.

Numbered points (field ``n``, timestamp T0 + n) go through DurableWriter into
a DiskBuffer with a tiny budget while the private influxd is down; a Flusher
keeps retrying. After influxd comes back and the buffer drains, the database
holds exactly the newest points and the counters add up:
accepted == written + evicted (+ what is still buffered: nothing).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from edge_agent.buffer.deadletter import DeadLetters
from edge_agent.buffer.disklog import DiskBuffer
from edge_agent.buffer.durable import DurableWriter
from edge_agent.delivery.flusher import Flusher
from edge_agent.delivery.transport import InfluxSettings, Transport
from edge_agent.destination import Destination
from edge_agent.options import WriteOptions
from tests.harness.servers import InfluxServer

T0 = 1_700_000_000_000_000_000
DB = "bounds"
DEST = Destination(DB)
SEGMENT = 100  # points per sealed segment (DurableWriter batch_size)
LOOPS = 300  # segments written: well past the budget


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def numbered(start: int, count: int) -> List[str]:
    # A reading with all its digits: segments are stored compressed, and lines that
    # differ only in a counter would take almost no room.
    rng = random.Random(start)
    return [f"bounds,src=w n={i}i,v={rng.random()!r} {T0 + i}"
            for i in range(start, start + count)]


def counts(buf: DiskBuffer) -> Dict[str, int]:
    """The buffer's point counters (the numeric ones), missing ones as 0."""
    snap = buf.counters.snapshot()
    return {name: int(snap.get(name) or 0)
            for name in ("accepted", "written", "evicted", "rejected")}


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


@pytest.fixture
def down_influx(influx_factory: Callable[[], InfluxServer]) -> Iterator[InfluxServer]:
    server = influx_factory()
    server.create_database(DB)
    server.stop()
    yield server


def flusher_for(buf: DiskBuffer, server: InfluxServer, tmp_path: Path) -> Flusher:
    transport = Transport(InfluxSettings(url=server.url, api="v1", timeout=5.0,
                                         connect_timeout=0.5))
    options = WriteOptions(batch_size=1000, flush_interval=50, retry_interval=50,
                           max_retry_delay=200)
    return Flusher(buf, transport, options, DeadLetters(tmp_path / "dead-letters.lp"))


def recover(server: InfluxServer, buf: DiskBuffer, flusher: Flusher) -> List[int]:
    """influxd back, the backlog drained; the numbers stored, in order."""
    flusher.stop()
    server.start()
    assert flusher.drain(timeout=30.0), "backlog did not drain"
    rows = server.rows(DB, 'SELECT "n" FROM "bounds"')
    return [int(r["n"]) for r in rows]


def test_max_size_evicts_oldest_counts_exactly_keeps_newest(
        down_influx: InfluxServer, tmp_path: Path) -> None:
    budget = 256 * 1024
    directory = tmp_path / "buffer"
    buf = DiskBuffer(directory, max_size=budget)
    writer = DurableWriter(buf, commit_interval=0.01, batch_size=SEGMENT)
    flusher = flusher_for(buf, down_influx, tmp_path)
    flusher.start()  # retries against the stopped influxd the whole time
    total = 0
    segment = 0  # stored size of the biggest segment
    peak_counted = peak_disk = 0
    main_file: List[int] = []  # size of the SQLite file after each commit
    try:
        for _ in range(LOOPS):
            lines = numbered(total, SEGMENT)
            writer.add(lines, DEST)
            assert writer.flush()
            total += len(lines)
            segment = max(segment, len("\n".join(lines)) + 200)
            peak_counted = max(peak_counted, buf.stats().bytes)
            peak_disk = max(peak_disk, disk_bytes(directory))
            main_file.append((directory / "cache.db").stat().st_size)
        writer.close()
        in_buffer = buf.stats().points
        counters = counts(buf)
        evicted = counters["evicted"]

        assert evicted > total // 2, "the budget was never reached: the test proves nothing"
        assert counters["accepted"] == total
        assert counters["written"] == 0  # influxd was down throughout
        assert total == evicted + in_buffer
        # Segments count the pages they fill, within the budget left after the
        # WAL, -shm and SQLite's own pages are reserved.
        assert peak_counted <= buf.data_budget + segment
        # On disk, everything in the directory: within the budget (+1 segment),
        # and flat once the budget is reached.
        flat = LOOPS * 3 // 4  # the budget is reached about halfway
        assert max(main_file[flat:]) <= main_file[flat] + 2 * 4096, main_file
        assert peak_disk <= budget + segment, peak_disk

        stored = recover(down_influx, buf, flusher)
        counters = counts(buf)
    finally:
        flusher.stop()
        buf.close()

    assert buf.stats().points == 0
    assert counters["written"] == len(stored) == in_buffer
    assert counters["accepted"] == counters["written"] + counters["evicted"]
    assert counters["evicted"] == evicted  # nothing evicted after the outage
    # The newest points survived: exactly the last ``in_buffer`` numbers, each once.
    assert stored == list(range(total - in_buffer, total))


def test_max_age_evicts_points_older_than_the_budget(
        down_influx: InfluxServer, tmp_path: Path) -> None:
    max_age = 3600.0
    clock = Clock(1_700_000_000.0)
    buf = DiskBuffer(tmp_path / "buffer", max_age=max_age, clock=clock)
    writer = DurableWriter(buf, commit_interval=0.01, batch_size=SEGMENT, clock=clock)
    flusher = flusher_for(buf, down_influx, tmp_path)
    added: List[Tuple[float, int]] = []  # (sample time, number)
    total = 0
    try:
        for _minute in range(180):  # three hours of readings, one batch a minute
            clock.now += 60.0
            writer.add(numbered(total, 20), DEST)
            assert writer.flush()
            added.extend((clock.now, n) for n in range(total, total + 20))
            total += 20
            assert buf.stats().oldest is not None
            assert buf.stats().oldest >= clock.now - max_age  # type: ignore[operator]
        # No new data for a while: the periodic expiry still runs.
        clock.now += 30 * 60.0
        expired = buf.evict_expired()
        assert expired > 0
        writer.close()
        counters = counts(buf)
        in_buffer = buf.stats().points
        assert counters["accepted"] == total == counters["evicted"] + in_buffer
        stored = recover(down_influx, buf, flusher)
        after = counts(buf)
    finally:
        flusher.stop()
        buf.close()

    young = [n for t, n in added if t >= clock.now - max_age]
    assert stored == young and len(stored) == in_buffer
    assert after["written"] == in_buffer
    assert after["accepted"] == after["written"] + after["evicted"]
