"""DurableWriter with ``hold`` (the agent): points go to InfluxDB from memory.

What the SD-card work (issue 10 item 5) promises, on a real DiskBuffer:
a point delivered from memory is never written to the buffer; what is not
delivered is committed at its deadline (``hold`` for polled readings,
the ack window for points someone waits for, fsync'd); a kill -9 loses only
points younger than the window; MQTT acks still wait for the disk or the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from edge_agent.buffer import durable
from edge_agent.buffer.disklog import DiskBuffer
from edge_agent.buffer.durable import DurableWriter
from edge_agent.destination import Destination
from edge_agent.errors import BufferError_
from tests.unit.test_durable import Refusing

A = Destination("a")
LINE = "climate,sensor=bme280 temperature=21.53,humidity=45.2,pressure=1013.2 {}"


@pytest.fixture
def buf(tmp_path: Path) -> Iterator[DiskBuffer]:
    b = DiskBuffer(tmp_path / "buf")
    yield b
    b.close()


def counting_appends(buf: DiskBuffer, refuse: bool = False) -> Refusing:
    """Counts the buffer's appends; with ``refuse`` they fail like a full disk."""
    counting = Refusing(buf)
    counting.on = refuse
    return counting


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def deliver(w: DurableWriter) -> int:
    """What the flusher does with a 2xx: take the head, remove it."""
    window = w.head(1000, 1 << 20)
    return w.remove([i for i, _ in window], count_as="written")


def test_delivered_from_memory_never_touches_the_buffer(buf: DiskBuffer):
    appends = counting_appends(buf)
    w = DurableWriter(buf, commit_interval=0.05, hold=30.0)
    tickets = [w.add([LINE.format(i)], A) for i in range(5)]
    window = w.head(1000, 1 << 20)
    assert [seg.count for _, seg in window] == [5] and all(i < 0 for i, _ in window)
    assert not w.wait_durable(tickets[-1], timeout=0, hurry=False)  # not yet anywhere
    assert w.remove([i for i, _ in window], count_as="written") == 5
    assert w.wait_durable(tickets[-1], timeout=0, hurry=False)  # delivered = durable
    assert w.pending == 0 and len(w) == 0
    assert w.close()
    assert appends.calls == 0 and buf.stats().points == 0
    assert buf.counters.get("accepted") == 5 and buf.counters.get("written") == 5


def test_undelivered_polled_readings_are_committed_at_the_hold_deadline(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=0.05, hold=0.3)
    start = time.monotonic()
    t = w.add([LINE.format(1), LINE.format(2)], A)
    wait_for(lambda: w.wait_durable(t, timeout=0, hurry=False))
    assert time.monotonic() - start >= 0.3  # not before the window: a polled reading
    assert buf.stats().points == 2 and buf.counters.get("accepted") == 2
    assert w.head(1000, 1 << 20)[0][0] > 0  # the flusher now reads it from disk
    w.close()


def test_a_segment_committed_while_in_flight_is_removed_from_disk(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=0.05, hold=30.0)
    w.add([LINE.format(i) for i in range(3)], A)
    window = w.head(1000, 1 << 20)  # the flusher sends these ...
    assert w.flush()  # ... while their deadline commits them
    assert buf.stats().points == 3
    assert w.remove([i for i, _ in window]) == 3  # the 2xx removes the stored copy
    assert buf.stats().points == 0 and buf.counters.get("accepted") == 3
    w.close()


def test_mqtt_acks_wait_for_a_fsynced_commit(buf: DiskBuffer, monkeypatch):
    synced: List[str] = []
    monkeypatch.setattr(durable, "fsync_wal", lambda b: synced.append(b.directory))
    w = DurableWriter(buf, commit_interval=0.05, hold=30.0)
    sink = w.for_acks(within=0.3)
    start = time.monotonic()
    t = sink.add(["shelly,device=shellyht-0000A1 temperature=21.5 1"], A)
    sink.flush()  # the source has unacked messages and the stream paused
    assert not sink.wait_durable(t, timeout=0)  # no ack: neither on disk nor delivered
    assert not synced and buf.stats().points == 0
    wait_for(lambda: sink.wait_durable(t, timeout=0))
    assert time.monotonic() - start >= 0.3
    assert buf.stats().points == 1 and synced == [buf.directory]
    w.close()


def test_sync_full_leaves_the_fsync_to_sqlite(tmp_path, monkeypatch):
    synced: List[str] = []
    monkeypatch.setattr(durable, "fsync_wal", lambda b: synced.append(b.directory))
    buf = DiskBuffer(tmp_path / "full", sync="full")  # synchronous=FULL: every commit
    w = DurableWriter(buf, commit_interval=0.05, hold=30.0)
    t = w.add(["m v=1i 1"], A)
    assert w.wait_durable(t, timeout=5)  # a waiter: within commit_interval
    assert buf.stats().points == 1 and not synced
    w.close()
    buf.close()


def test_a_refusing_disk_does_not_stop_delivery_from_memory(buf: DiskBuffer, monkeypatch):
    monkeypatch.setattr(durable, "RETRY_DELAY", 0.05)
    appends = counting_appends(buf, refuse=True)
    w = DurableWriter(buf, commit_interval=0.02, hold=0.05)
    t = w.add([LINE.format(i) for i in range(4)], A)
    wait_for(lambda: appends.calls >= 2)  # deadline passed, commits refused
    assert not w.wait_durable(t, timeout=0)
    # InfluxDB takes them straight from memory (while a commit is being tried the
    # writer holds them; the next window has them again)
    delivered = [0]

    def all_delivered() -> bool:
        delivered[0] += deliver(w)
        return delivered[0] == 4
    wait_for(all_delivered)
    assert w.wait_durable(t, timeout=0) and w.pending == 0
    assert buf.stats().points == 0 and buf.counters.get("accepted") == 4
    assert w.close()


def test_batch_size_undelivered_points_commit_at_once(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=0.05, batch_size=100, hold=30.0)
    t = 0
    for i in range(100):
        t = w.add([LINE.format(i)], A)
    wait_for(lambda: w.wait_durable(t, timeout=0, hurry=False))
    assert buf.stats().points == 100
    w.close()


CHILD = textwrap.dedent("""
    import sys, time
    from edge_agent.buffer.disklog import DiskBuffer
    from edge_agent.buffer.durable import DurableWriter
    from edge_agent.destination import Destination
    buf = DiskBuffer(sys.argv[1])
    w = DurableWriter(buf, commit_interval=0.05, hold=float(sys.argv[2]))
    n = 0
    while True:
        n += 1
        w.add([f"m n={n}i {n}"], Destination("b"))
        print(n, time.monotonic(), flush=True)
        time.sleep(0.02)
""")


def test_kill_9_loses_only_readings_younger_than_the_hold_window(tmp_path):
    hold = 0.5
    path = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(hold)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    added = []
    for line in child.stdout:
        n, at = line.split()
        added.append((int(n), float(at)))
        if len(added) >= 100:  # ~2 s: several hold windows have committed
            break
    os.kill(child.pid, signal.SIGKILL)
    killed = time.monotonic()
    child.wait()
    buf = DiskBuffer(path)
    try:
        stored = {int(seg_line.split(b" ")[1][2:-1]) for _, seg in buf.head(10**6, 1 << 30)
                  for seg_line in seg.lines()}
        accepted = buf.counters.get("accepted")
        points = buf.stats().points
    finally:
        buf.close()
    # The commit thread can lag its deadline by a scheduling hiccup: 0.5 s slack.
    old = [n for n, at in added if at < killed - hold - 0.5]
    assert old, "the child ran too briefly to test anything"
    assert set(old) <= stored
    assert accepted == points == len(stored)  # the counters match what survived, exactly


def test_segments_are_stored_compressed_and_read_back(buf: DiskBuffer):
    from edge_agent.buffer.segment import Segment, decode_segment, encode_segment

    lines = [LINE.format(1764600000000000000 + i) for i in range(100)]
    big = Segment(A, 100, "\n".join(lines).encode(), time.time())
    small = Segment(A, 1, b"m v=1i 1", time.time())
    raw_big, raw_small = encode_segment(big), encode_segment(small)
    assert raw_big[:4] == b"EAS2" and len(raw_big) * 4 < len(big.data)
    assert raw_small[:4] == b"EAS1"  # a page holds it anyway
    assert decode_segment(raw_big, Destination.from_key) == big
    assert decode_segment(raw_small, Destination.from_key) == small
    with pytest.raises(ValueError, match="damaged compressed"):
        decode_segment(raw_big[:-20] + b"x" * 20, Destination.from_key)
    buf.append_many([big, small])
    assert [seg for _, seg in buf.head(1000, 1 << 20)] == [big, small]


@pytest.mark.parametrize("refused", [False, True])
def test_delivered_while_its_commit_runs_counts_once(buf: DiskBuffer, refused: bool):
    """The flusher's 2xx arrives while the deadline's commit of the same points runs."""
    w = DurableWriter(buf, commit_interval=0.05, hold=30.0)
    t = w.add([LINE.format(i) for i in range(3)], A)
    window = w.head(1000, 1 << 20)
    real = buf.append_many
    removed: List[int] = []

    def commit_meanwhile(segs, counts=None):
        removed.append(w.remove([i for i, _ in window]))  # the 2xx, mid-commit
        if refused:
            raise BufferError_("disk buffer append failed: database or disk is full")
        return real(segs, counts)

    buf.append_many = commit_meanwhile  # type: ignore[method-assign]
    w.flush()
    buf.append_many = real  # type: ignore[method-assign]
    assert removed == [3]  # the flusher counts them as written
    assert w.wait_durable(t, timeout=0, hurry=False) and w.pending == 0
    assert buf.stats().points == 0  # the stored copy (if any) is gone again
    assert buf.counters.get("accepted") == 3  # once: by the commit, or by the delivery
    assert w.head(1000, 1 << 20) == []  # nothing left to send twice
    assert w.close()
