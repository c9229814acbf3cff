"""Delivery through real outages: influxd stopped for 30 s, and a writer killed with -9.

Both tests write numbered points (field ``n`` = number, timestamp = T0 + number,
so a resend after a crash is the same point) through the durable path into a
private influxd, and read them back with ``/query``: every point that must be
there is there, and nothing is there twice or invented.

The kill -9 writer is this file run as a script: it adds points through
DurableWriter, delivers them with a Flusher, and prints the highest number
whose ticket ``wait_durable`` confirmed. The test SIGKILLs it at seeded random
moments while influxd is stopped and started between rounds.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Set

from edge_agent import InfluxDBClient, WriteOptions
from edge_agent.buffer.disklog import DiskBuffer
from tests.harness.fault_server import FaultServer, error_answer
from tests.harness.killed_writer import feed_numbered, run_killed
from tests.harness.servers import InfluxServer

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000_000_000
DB = "chaos"
SEED = 20240518
ROUNDS = 22
OUTAGE = 30.0
GAP = 100_000  # numbers skipped between writers


def stored_numbers(server: InfluxServer, measurement: str) -> List[int]:
    """Every ``n`` stored, in time order (one row per point in InfluxDB)."""
    rows = server.rows(DB, f'SELECT "n" FROM "{measurement}"')
    return [int(r["n"]) for r in rows]


def assert_exactly_once(server: InfluxServer, measurement: str, expected: Set[int],
                        may_exist: Callable[[int], bool] = lambda n: False) -> List[int]:
    numbers = stored_numbers(server, measurement)
    distinct = server.rows(DB, f'SELECT count(distinct("n")) FROM "{measurement}"')
    assert distinct and int(distinct[0]["count"]) == len(numbers), "a number stored twice"
    assert len(numbers) == len(set(numbers)), "a number stored twice"
    missing = expected - set(numbers)
    assert not missing, f"{len(missing)} points lost, e.g. {sorted(missing)[:5]}"
    unknown = {n for n in set(numbers) - expected if not may_exist(n)}
    assert not unknown, f"points nobody wrote: {sorted(unknown)[:5]}"
    return numbers


# -- outage: influxd stopped for 30 s while a writer keeps writing -----------------


def test_outage_of_30s_loses_nothing_and_duplicates_nothing(
        influx_factory: Callable[[], InfluxServer], tmp_path: Path) -> None:
    server = influx_factory()
    server.create_database(DB)
    options = WriteOptions(batch_size=500, flush_interval=200, retry_interval=200,
                           max_retry_delay=1500, commit_interval=50,
                           buffer_dir=str(tmp_path / "agent"), max_close_wait=30_000)
    client = InfluxDBClient(url=server.url, token="", org="", api="v1", timeout=2000)
    api = client.write_api(write_options=options)
    written = 0
    stop = threading.Event()
    errors: List[BaseException] = []

    def produce() -> None:
        nonlocal written
        try:
            while not stop.is_set():
                lines = [f"outage,src=w n={i}i {T0 + i}" for i in range(written, written + 25)]
                api.write(DB, record=lines)
                written += 25
                time.sleep(0.01)
        except BaseException as exc:  # the assertion below reports it
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(2.0)
        before = written
        server.stop()
        down_at = written
        time.sleep(OUTAGE)
        during = written - down_at
        server.start()
        time.sleep(3.0)
    finally:
        stop.set()
        producer.join()
    assert not errors, errors
    api.close()
    client.close()

    assert before > 0 and during > 1000, "the writer did not keep writing through the outage"
    numbers = assert_exactly_once(server, "outage", set(range(written)))
    assert len(numbers) == written
    count = server.rows(DB, 'SELECT count("n") FROM "outage"')
    assert int(count[0]["count"]) == written

    buf = DiskBuffer(tmp_path / "agent" / "buffer")
    try:
        assert buf.stats().points == 0 and len(buf) == 0
        counters = buf.counters.snapshot()
        assert counters["accepted"] == written and counters["written"] == written
        assert int(counters["retries"] or 0) > 0 and not counters.get("rejected")
    finally:
        buf.close()


# -- backoff holds while new data keeps arriving ------------------------------------


def test_new_data_does_not_cut_a_backoff_short(fault_server: FaultServer,
                                              tmp_path: Path) -> None:
    """A writer filling batches during an outage must not turn backoff into a busy loop."""
    fault_server.script(*[error_answer(503, "busy") for _ in range(100)])
    options = WriteOptions(batch_size=10, retry_interval=1000, max_retry_delay=4000,
                           max_close_wait=0, buffer_dir=str(tmp_path / "agent"))
    client = InfluxDBClient(url=fault_server.url, token="t", org="o")
    api = client.write_api(write_options=options)
    try:
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 2.0:  # full batches: each one wakes the flusher
            api.write("b", record=[f"m v={j}i {j}" for j in range(i, i + 10)])
            i += 10
            time.sleep(0.01)
        sent = len(fault_server.write_requests())
    finally:
        api.close()
        client.close()
    # First try, then retries after [1, 2) s and [2, 4) s: at most three in 2 s.
    assert 1 <= sent <= 3, f"{sent} requests in 2 s with a 1 s backoff"


def test_backlog_of_odd_sized_segments_does_not_wait_for_flush_interval(
        fault_server: FaultServer) -> None:
    """After an outage, segments that do not pack into batch_size still go out back to back."""
    from edge_agent.buffer.memqueue import MemoryQueue
    from edge_agent.delivery.flusher import Flusher
    from edge_agent.delivery.transport import InfluxSettings, Transport
    from edge_agent.destination import Destination

    queue = MemoryQueue()
    for i in range(6):  # sealed by commit_interval: 700 points each, 700 + 700 > 1000
        lines = [f"m v={n}i {n}" for n in range(i * 700, i * 700 + 700)]
        queue.append(Destination("b", "o"), "\n".join(lines).encode(), 700, 0.0)
    transport = Transport(InfluxSettings(url=fault_server.url, api="v2", token="t", org="o"))
    flusher = Flusher(queue, transport, WriteOptions(batch_size=1000, flush_interval=60_000),
                      clock=lambda: 5.0)  # the clock never moves: no interval ever passes
    kinds = [flusher.step(wait_for_full=True).kind for _ in range(6)]
    transport.close()
    # Five batches go out at once; only the last one, with nothing behind it,
    # waits for flush_interval as the seed's batching says.
    assert kinds == ["written"] * 5 + ["empty"]
    assert len(queue) == 1 and len(fault_server.points) == 3500


# -- kill -9 of the writer while influxd flaps ---------------------------------------


def writer(url: str, directory: str, start: int, seed: int) -> None:
    """The killed process: numbered points in, 'highest durable number' lines out."""
    from edge_agent.buffer.deadletter import DeadLetters
    from edge_agent.buffer.durable import DurableWriter
    from edge_agent.delivery.flusher import Flusher
    from edge_agent.delivery.transport import InfluxSettings, Transport
    from edge_agent.destination import Destination

    options = WriteOptions(batch_size=400, flush_interval=50, retry_interval=100,
                           max_retry_delay=500)
    buf = DiskBuffer(os.path.join(directory, "buffer"))
    durable = DurableWriter(buf, commit_interval=0.02, batch_size=400)
    transport = Transport(InfluxSettings(url=url, api="v1", timeout=2.0, connect_timeout=0.5))
    flusher = Flusher(buf, transport, options,
                      DeadLetters(os.path.join(directory, "dead-letters.lp")))
    flusher.start()
    feed_numbered(durable, Destination(DB), start, seed, lambda i: f"killed,src=w n={i}i {T0 + i}",
                  max_batch=80, pause=0.001, after_add=flusher.notify)


def test_kill_9_while_influxd_flaps_keeps_every_durable_point(
        influx_factory: Callable[[], InfluxServer], tmp_path: Path) -> None:
    from edge_agent.buffer.deadletter import DeadLetters
    from edge_agent.delivery.flusher import Flusher
    from edge_agent.delivery.transport import InfluxSettings, Transport

    rng = random.Random(SEED)
    server = influx_factory()
    server.create_database(DB)
    directory = tmp_path / "agent"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    must_have: Set[int] = set()
    ranges: List[range] = []  # numbers each writer may have added
    start = 0
    deadline = time.monotonic() + 120
    flaps = 0
    for rnd in range(ROUNDS):
        # influxd flaps between rounds: down for a round or two, sometimes killed.
        if server.running and rng.random() < 0.3:
            server.kill() if rng.random() < 0.5 else server.stop()
            flaps += 1
        elif not server.running and rng.random() < 0.6:
            server.start()
        reported = run_killed(
            [sys.executable, __file__, server.url, str(directory), str(start), str(rnd)],
            env, ROOT, lifetime=rng.uniform(0.05, 1.2), what=f"round {rnd}: writer")
        must_have.update(range(start, reported + 1))
        # The next writer starts above anything this one may have added (a
        # durable-but-unreported tail is allowed to arrive, but never twice).
        buf = DiskBuffer(directory / "buffer")
        try:
            tail = [int(line.rsplit(b" ", 1)[1]) - T0
                    for _, seg in buf.head(10**9, 1 << 40) for line in seg.lines()]
        finally:
            buf.close()
        # A point can be durable, delivered and removed before the writer
        # reported it: leave a gap so that no number is ever reused.
        end = max([reported, *tail]) + 1 + GAP
        ranges.append(range(start, end))
        start = end
        assert time.monotonic() < deadline, "chaos rounds took too long"
    assert flaps >= 3, "influxd should have flapped a few times"

    # Final drain after the last round, with influxd up.
    server.start()
    buf = DiskBuffer(directory / "buffer")
    transport = Transport(InfluxSettings(url=server.url, api="v1", timeout=5.0))
    flusher = Flusher(buf, transport, WriteOptions(batch_size=5000, retry_interval=100,
                                                   max_retry_delay=500),
                      DeadLetters(directory / "dead-letters.lp"))
    try:
        assert flusher.drain(timeout=30.0), "final drain did not finish"
        assert buf.stats().points == 0
        assert not buf.counters.snapshot().get("rejected")
    finally:
        transport.close()
        buf.close()

    numbers = assert_exactly_once(server, "killed", must_have,
                                  may_exist=lambda n: any(n in r for r in ranges))
    assert len(must_have) > ROUNDS * 50
    assert len(numbers) >= len(must_have)
    assert not (directory / "dead-letters.lp").exists()


if __name__ == "__main__":
    writer(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
