"""DurableWriter: tickets, sealing by interval and by size, backpressure on a refusing disk."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from edge_agent.buffer import durable
from edge_agent.buffer.disklog import DiskBuffer
from edge_agent.buffer.durable import DurableWriter
from edge_agent.destination import Destination
from edge_agent.errors import BufferError_

A = Destination("a")
B = Destination("b", precision="ms")


@pytest.fixture
def buf(tmp_path: Path) -> Iterator[DiskBuffer]:
    b = DiskBuffer(tmp_path / "buf")
    yield b
    b.close()


def all_lines(buf: DiskBuffer) -> List[str]:
    out: List[str] = []
    while True:
        window = buf.head(10**9, 1 << 40)
        if not window:
            return out
        for _, seg in window:
            out.extend(line.decode() for line in seg.lines())
        buf.remove([i for i, _ in window])


def segments(buf: DiskBuffer):
    return [seg for _, seg in buf.head(10**9, 1 << 40)]


def test_ticket_durable_after_commit_interval(buf: DiskBuffer):
    then = time.time() - 10.0
    w = DurableWriter(buf, commit_interval=0.05, clock=lambda: then)
    t1 = w.add(["m v=1", "m v=2"], A)
    t2 = w.add(["m v=3"], A)
    assert t2 > t1
    assert buf.stats().points == 0  # nothing on disk yet: add() is in memory
    start = time.monotonic()
    assert w.wait_durable(t2, timeout=5)
    assert time.monotonic() - start < 1.0
    assert w.wait_durable(t1, timeout=0)
    segs = segments(buf)
    assert len(segs) == 1
    assert segs[0].data == b"m v=1\nm v=2\nm v=3"
    assert segs[0].count == 3 and segs[0].dest == A and segs[0].first_time == then
    assert buf.counters.get("accepted") == 3
    w.close()


def test_batch_size_seals_before_the_interval(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=30, batch_size=100)
    t = 0
    for i in range(100):
        t = w.add([f"m v={i}"], A)
    assert w.wait_durable(t, timeout=5)
    assert [s.count for s in segments(buf)] == [100]
    w.close()


def test_wait_times_out_while_pending(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=30)
    t = w.add(["m v=1"], A)
    assert not w.wait_durable(t, timeout=0.05)
    assert w.pending == 1
    assert w.flush()
    assert w.wait_durable(t, timeout=0)
    assert w.pending == 0
    w.close()


def test_destinations_get_their_own_segments(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=30)
    w.add(["a v=1"], A)
    w.add(["b v=1"], B)
    w.add(["a v=2"], A)
    w.flush()
    segs = segments(buf)  # head() stops at a destination change
    assert [(s.dest, s.data) for s in segs] == [(A, b"a v=1\na v=2")]
    buf.remove([i for i, _ in buf.head(10, 1 << 20)])
    assert [(s.dest, s.data) for s in segments(buf)] == [(B, b"b v=1")]
    w.close()


def test_big_add_cut_into_batch_size_segments(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=30, batch_size=1000)
    w.add([f"m v={i}i" for i in range(2500)], A)
    w.flush()
    assert [s.count for s in segments(buf)] == [1000, 1000, 500]
    assert all_lines(buf) == [f"m v={i}i" for i in range(2500)]
    w.close()


def test_segments_cut_by_bytes(buf: DiskBuffer, monkeypatch):
    monkeypatch.setattr(durable, "SEGMENT_BYTES", 1000)
    w = DurableWriter(buf, commit_interval=30, batch_size=10_000)
    w.add(["x" * 99] * 35, A)  # 100 bytes a line with its newline
    w.flush()
    assert [s.count for s in segments(buf)] == [10, 10, 10, 5]
    w.close()


def test_empty_lines_skipped(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=30)
    w.add(["", "m v=1", ""], A)
    t = w.add([], A)
    w.flush()
    assert w.wait_durable(t, timeout=0)
    assert all_lines(buf) == ["m v=1"]
    assert buf.counters.get("accepted") == 1
    w.close()


def test_close_seals_everything_and_refuses_more(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=30)
    t = w.add(["m v=1"], A)
    assert w.close()
    assert w.wait_durable(t, timeout=0)
    assert buf.stats().points == 1
    with pytest.raises(BufferError_):
        w.add(["m v=2"], A)
    assert w.close()  # twice is fine


def test_many_producers_every_line_once(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=0.01, batch_size=500)
    tickets: List[int] = []
    lock = threading.Lock()

    def produce(k: int) -> None:
        for i in range(2000):
            t = w.add([f"m,p={k} v={i}i"], A if i % 3 else B)
            if i % 500 == 499:
                assert w.wait_durable(t, timeout=10)
                with lock:
                    tickets.append(t)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert w.close()
    got = all_lines(buf)
    expected = {f"m,p={k} v={i}i" for k in range(4) for i in range(2000)}
    assert len(got) == len(expected) == 8000 and set(got) == expected
    # Each producer's lines stay in order within a destination.
    for k in range(4):
        mine = [int(x.split("v=")[1][:-1]) for x in got if x.startswith(f"m,p={k} ")]
        a = [i for i in mine if i % 3]
        assert a == sorted(a)
    assert buf.counters.get("accepted") == 8000


class Refusing:
    """Makes the buffer's append fail like a full disk until told otherwise."""

    def __init__(self, buf: DiskBuffer) -> None:
        self.on = True
        self.calls = 0
        self._append = buf.append_many
        buf.append_many = self.append_many  # type: ignore[method-assign]

    def append_many(self, segs, counts=None):
        self.calls += 1
        if self.on:
            raise BufferError_("disk buffer append failed: database or disk is full")
        return self._append(segs, counts)


def test_refusing_disk_keeps_lines_and_blocks_acks(buf: DiskBuffer, monkeypatch, caplog):
    monkeypatch.setattr(durable, "RETRY_DELAY", 0.05)
    caplog.set_level(logging.INFO, logger="edge_agent.buffer")
    refusing = Refusing(buf)
    w = DurableWriter(buf, commit_interval=0.01)
    t1 = w.add(["m v=1"], A)
    assert not w.wait_durable(t1, timeout=0.3)  # backpressure: no ack
    t2 = w.add(["m v=2"], A)
    assert not w.flush()
    assert refusing.calls >= 3  # retried in the background
    assert w.pending == 2
    assert buf.counters.get("buffer_errors") >= 3
    assert "full" in str(buf.counters.get("last_error"))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "refused" in errors[0].getMessage()
    refusing.on = False
    assert w.wait_durable(t2, timeout=5)
    assert all_lines(buf) == ["m v=1", "m v=2"]
    assert any("accepts writes again" in r.getMessage() for r in caplog.records)
    assert w.close()


def test_max_pending_refuses_new_lines(buf: DiskBuffer):
    Refusing(buf)
    w = DurableWriter(buf, commit_interval=30, max_pending=10)
    w.add(["m v=1"] * 10, A)
    w.flush()
    with pytest.raises(BufferError_, match="wait in memory"):
        w.add(["m v=2"], A)
    assert not w.close()  # lost: logged, reported
    assert buf.counters.get("dropped_disk_full") == 10
    assert buf.counters.get("accepted") == 10  # accepted = ... + dropped: exact


def test_refused_points_at_close_are_counted_and_never_acked(buf: DiskBuffer):
    """SIGTERM on a full disk: what waits in memory is counted by name, not acked."""
    refusing = Refusing(buf)
    w = DurableWriter(buf, commit_interval=30)
    ticket = w.add(["m v=1", "m v=2", "m v=3"], A)
    assert not w.flush()
    assert not w.close()
    assert not w.wait_durable(ticket, timeout=0)  # the MQTT source acks only on True
    refusing.on = False
    buf.close()
    reopened = DiskBuffer(buf.directory)
    counters = reopened.counters.snapshot()
    assert counters["dropped_disk_full"] == 3 and counters["accepted"] == 3
    assert reopened.stats().points == 0
    reopened.close()


def test_producer_faster_than_disk_waits_instead_of_failing(buf: DiskBuffer):
    w = DurableWriter(buf, commit_interval=30, batch_size=10, max_pending=50)
    for i in range(1000):
        w.add([f"m v={i}i"], A)
        assert w.pending <= 50
    assert w.close()
    assert all_lines(buf) == [f"m v={i}i" for i in range(1000)]


def test_close_wakes_waiters_with_false(buf: DiskBuffer):
    Refusing(buf)
    w = DurableWriter(buf, commit_interval=30)
    t = w.add(["m v=1"], A)
    result: List[bool] = []
    th = threading.Thread(target=lambda: result.append(w.wait_durable(t)))
    th.start()
    time.sleep(0.05)
    assert not w.close()
    th.join(5)
    assert result == [False]


def test_add_is_fast(buf: DiskBuffer):
    w = DurableWriter(buf)
    line = "m,host=pi01,sensor=bme280 temperature=21.53,humidity=45.2 1"
    start = time.perf_counter()
    for _ in range(20_000):
        w.add([line], A)
    rate = 20_000 / (time.perf_counter() - start)
    assert w.close()
    assert buf.stats().points == 20_000
    assert rate > 50_000  # the bench measures the real number; this catches I/O in add()


def test_accepted_is_committed_with_its_segments(tmp_path, monkeypatch):
    """A kill -9 must never find "accepted" ahead of the data it counts.

    Another transaction (the flusher's, the counters' timer) may commit the
    counters while a seal is in progress; "accepted" must not ride on it.
    """
    from edge_agent.destination import Destination

    monkeypatch.setattr(durable, "RETRY_DELAY", 60.0)
    path = tmp_path / "acc"
    buffer = DiskBuffer(str(path))
    real = buffer.append_many

    def interleaved(segments, counts=None):
        buffer.persist_counters(0)  # someone else's transaction commits the counters now
        raise BufferError_("disk buffer append failed: simulated crash before the commit")

    buffer.append_many = interleaved  # type: ignore[method-assign]
    writer = DurableWriter(buffer, commit_interval=10.0)
    writer.add(["m v=1i 1", "m v=2i 2"], Destination("b"))
    assert writer.flush() is False
    buffer._cache.close()  # the one (exclusive) connection goes, as with kill -9
    crashed = DiskBuffer(str(path))  # what a restart after kill -9 would find
    assert int(crashed.counters.get("accepted") or 0) == 0 and crashed.stats().points == 0
    crashed.close()
    buffer.append_many = real  # type: ignore[method-assign]
    assert writer.flush() is True
    writer.close()
    buffer.close()
    reopened = DiskBuffer(str(path))
    assert reopened.counters.get("accepted") == 2 and reopened.stats().points == 2
    reopened.close()


def test_a_lone_surrogate_does_not_stop_the_writer(tmp_path):
    """JSON may carry "\\ud800"; it cannot be UTF-8, and must not kill the sealing thread."""
    from edge_agent.destination import Destination

    buffer = DiskBuffer(str(tmp_path / "b"))
    writer = DurableWriter(buffer, commit_interval=0.01)
    ticket = writer.add(['m s="\ud800"', "m v=1i 1"], Destination("b"))
    assert writer.wait_durable(ticket, timeout=5)
    later = writer.add(["m v=2i 2"], Destination("b"))
    assert writer.wait_durable(later, timeout=5) and writer.alive
    segments = [seg for _, seg in buffer.head(100, 1 << 20)]
    assert sum(seg.count for seg in segments) == 3
    assert segments[0].data.startswith(b'm s="?"')
    writer.close()
    buffer.close()


def test_a_polled_reading_the_disk_refuses_is_counted_not_lost_silently(
        buf: DiskBuffer) -> None:
    """An I2C reading meets a full disk (max_pending waiting): dropped, by name, and the
    source keeps polling."""
    from edge_agent.config.model import I2CSourceConfig
    from edge_agent.sources.i2c import I2CSource

    Refusing(buf)
    w = DurableWriter(buf, commit_interval=30, max_pending=2)
    config = I2CSourceConfig(name="climate", driver="sht3x", bus="test", address=0x44,
                             interval=1.0, measurement="climate")
    src = I2CSource(config, w, A, {}, driver_factory=lambda: None)
    assert src.emit([{"temperature": 21.5, "humidity": 40.0}], 1) == 1
    assert src.emit([{"temperature": 21.6, "humidity": 40.1}], 2) == 1
    w.flush()  # the disk refuses: both wait in memory, max_pending reached
    assert src.emit([{"temperature": 21.7, "humidity": 40.2}], 3) == 0
    assert src.status.state == "error" and "dropped" in src.status.last_error
    assert buf.counters.get("dropped_disk_full") == 1
    assert not w.close()  # the two waiting in memory are counted at close
    assert buf.counters.get("dropped_disk_full") == 3
    assert buf.counters.get("accepted") == 3
