"""DiskBuffer: segments, head windows, budget eviction, counters, corruption."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
from pathlib import Path
from typing import List

import pytest

from edge_agent.buffer.disklog import BufferStats, DiskBuffer, Segment, reserved_bytes
from edge_agent.buffer.segment import PAGE_SIZE, ROW_OVERHEAD
from edge_agent.destination import Destination
from edge_agent.errors import BufferError_

A = Destination("a")
B = Destination("b", "org", "s")


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lines(start: int, n: int) -> bytes:
    return b"\n".join(b"m,host=pi v=%di %d" % (i, i) for i in range(start, start + n))


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def open_buf(path: Path, **kw) -> DiskBuffer:
    """A buffer whose clock sits at t=1000 s, so small first_times are fresh."""
    kw.setdefault("clock", Clock(1000.0))
    return DiskBuffer(path, **kw)


@pytest.fixture
def buf(tmp_path: Path):
    b = open_buf(tmp_path / "buf")
    yield b
    b.close()


def test_append_head_remove_roundtrip(buf: DiskBuffer):
    i1 = buf.append(A, lines(0, 3), 3, 10.0)
    i2 = buf.append(A, lines(3, 2), 2, 11.0)
    assert i2 > i1
    assert buf.stats() == BufferStats(points=5, segments=2, bytes=buf.stats().bytes, oldest=10.0)
    got = buf.head(1000, 1 << 20)
    assert [i for i, _ in got] == [i1, i2]
    assert got[0][1] == Segment(A, 3, lines(0, 3), 10.0)
    assert got[1][1].lines() == lines(3, 2).split(b"\n")
    assert buf.remove([i1], count_as="written") == 3
    assert [i for i, _ in buf.head(1000, 1 << 20)] == [i2]
    assert buf.stats().oldest == 11.0
    assert buf.remove([i1, i2, 12345]) == 2
    assert buf.head(1000, 1 << 20) == []
    assert buf.stats() == BufferStats(0, 0, 0, None)


def max_size_for(data_budget: int) -> int:
    """The max_size whose segment budget is ``data_budget`` (the reserve grows with it)."""
    size = data_budget
    for _ in range(4):
        size = data_budget + reserved_bytes(size)
    return size


def test_stats_bytes_match_stored_size(buf: DiskBuffer):
    seg = Segment(B, 4, lines(0, 4), 1.0)
    buf.append(seg.dest, seg.data, seg.count, seg.first_time)
    row = len(seg.data) + len(B.key()) + ROW_OVERHEAD + 18
    per_page = (PAGE_SIZE - 100) // row  # small rows share a page
    expected = -(-PAGE_SIZE // per_page)
    assert seg.stored_size == expected
    big = Segment(B, 1, random.Random(1).randbytes(10_000), 1.0)  # large rows fill pages
    assert big.stored_size == 3 * PAGE_SIZE
    assert buf.stats().bytes == expected


def test_head_caps_and_destination_boundary(buf: DiskBuffer):
    ids = [buf.append(A, lines(i * 10, 10), 10, 1.0) for i in range(3)]
    ids.append(buf.append(B, lines(30, 10), 10, 1.0))
    ids.append(buf.append(A, lines(40, 10), 10, 1.0))
    assert [i for i, _ in buf.head(1000, 1 << 20)] == ids[:3]  # stops at B
    assert [i for i, _ in buf.head(25, 1 << 20)] == ids[:2]
    assert [i for i, _ in buf.head(5, 1 << 20)] == ids[:1]  # always one segment
    two = len(lines(0, 10)) + len(lines(10, 10))
    assert [i for i, _ in buf.head(1000, two)] == ids[:2]
    assert [i for i, _ in buf.head(1000, two - 1)] == ids[:1]
    assert [i for i, _ in buf.head(1000, 1)] == ids[:1]
    buf.remove(ids[:3])
    head = buf.head(1000, 1 << 20)
    assert [i for i, _ in head] == ids[3:4] and head[0][1].dest == B


def test_ids_monotonic_across_drain_and_reopen(tmp_path: Path):
    b = open_buf(tmp_path / "buf")
    first = b.append(A, b"x v=1", 1, 1.0)
    b.remove([first])
    second = b.append(A, b"x v=2", 1, 1.0)
    b.remove([second])
    b.close()
    b = open_buf(tmp_path / "buf")
    third = b.append(A, b"x v=3", 1, 1.0)
    assert first < second < third
    b.close()


def test_reopen_keeps_segments_and_counters(tmp_path: Path):
    b = open_buf(tmp_path / "buf")
    ids = [b.append(A, lines(i, 5), 5, float(i)) for i in range(4)]
    b.counters.add("retries", 3)
    b.counters.set("last_error", "HTTP 503: busy")
    b.remove(ids[:1], count_as="written")
    b.close()
    b = open_buf(tmp_path / "buf")
    assert b.stats().points == 15 and b.stats().segments == 3
    snap = b.counters.snapshot()
    assert snap["written"] == 5 and snap["retries"] == 3
    assert snap["last_error"] == "HTTP 503: busy"
    assert isinstance(snap["last_success"], float)
    assert [i for i, _ in b.head(100, 1 << 20)] == ids[1:]
    b.close()


def test_counters_persist_without_close(tmp_path: Path):
    clock = Clock()
    b = open_buf(tmp_path / "buf", clock=clock)
    b.counters.add("write_errors", 2)
    b.persist_counters()  # written within the last second (the open)
    clock.now += 2
    b.persist_counters()
    # Simulate a crash: the next open must not depend on close().
    b._cache.close()
    b2 = open_buf(tmp_path / "buf")
    assert b2.counters.get("write_errors") == 2
    b2.close()


def test_counters_ride_on_segment_commits(tmp_path: Path):
    b = open_buf(tmp_path / "buf")
    b.counters.add("accepted", 7)
    b.append(A, lines(0, 7), 7, 1.0)
    b._cache.close()  # no clean close
    b2 = open_buf(tmp_path / "buf")
    assert b2.counters.get("accepted") == 7
    assert b2.stats().points == 7
    b2.close()


def test_diskcache_configured_as_a_log(buf: DiskBuffer):
    cache = buf._cache
    assert cache.eviction_policy == "none"
    assert cache._sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cache._sql("PRAGMA synchronous").fetchone()[0] == 1
    assert cache._sql("PRAGMA mmap_size").fetchone()[0] == 0
    # Fewer bytes per commit on an SD card: small pages, the WAL index in memory.
    assert cache._sql("PRAGMA page_size").fetchone()[0] == 1024
    assert cache._sql("PRAGMA locking_mode").fetchone()[0] == "exclusive"
    big = lines(0, 5000)  # ~100 KiB, above diskcache's default 32 KiB side-file cutoff
    buf.append(A, big, 5000, 1.0)
    assert sorted(os.listdir(buf.directory)) == ["cache.db", "cache.db-wal"]  # no -shm


def test_sync_full(tmp_path: Path):
    b = open_buf(tmp_path / "buf", sync="full")
    assert b._cache._sql("PRAGMA synchronous").fetchone()[0] == 2
    b.close()
    with pytest.raises(ValueError):
        open_buf(tmp_path / "other", sync="sometimes")


def test_size_budget_evicts_oldest_counts_and_logs_once(tmp_path: Path, caplog):
    seg = lines(0, 100)
    cost = Segment(A, 100, seg, 0.0).stored_size
    max_size = max_size_for(10 * cost + cost // 2)
    b = open_buf(tmp_path / "buf", max_size=max_size)
    assert b.data_budget == 10 * cost + cost // 2
    caplog.set_level(logging.WARNING, logger="edge_agent.buffer")
    ids = []
    sizes = []
    for i in range(200):
        ids.append(b.append(A, seg, 100, float(i)))
        st = b.stats()
        assert st.bytes <= b.data_budget
        sizes.append(dir_bytes(tmp_path / "buf"))
    st = b.stats()
    assert st.segments == 10 and st.points == 1000
    assert b.counters.get("evicted") == 190 * 100
    assert [i for i, _ in b.head(10**6, 1 << 30)] == ids[-10:]  # the newest kept
    warnings = [r for r in caplog.records if r.name == "edge_agent.buffer"]
    assert len(warnings) == 1 and "evicted" in warnings[0].getMessage()
    # Real disk use stays within the budget (+1 segment): SQLite reuses freed
    # pages, the WAL is checkpointed early and reserved for.
    assert max(sizes) <= max_size + cost
    assert max(sizes[100:]) - min(sizes[100:]) < 64 * 1024  # flat, not growing
    b.close()


def test_segment_larger_than_budget_is_kept_alone(tmp_path: Path):
    b = open_buf(tmp_path / "buf", max_size=1000)
    b.append(A, lines(0, 100), 100, 1.0)
    b.append(A, lines(100, 100), 100, 2.0)
    st = b.stats()
    assert st.segments == 1 and st.points == 100 and st.oldest == 2.0
    assert b.counters.get("evicted") == 100
    b.close()


def test_age_budget_on_append_and_explicit(tmp_path: Path, caplog):
    clock = Clock(1000.0)
    b = open_buf(tmp_path / "buf", max_age=100.0, clock=clock)
    caplog.set_level(logging.WARNING, logger="edge_agent.buffer")
    b.append(A, lines(0, 3), 3, 900.0)
    b.append(A, lines(3, 4), 4, 960.0)
    b.append(A, lines(7, 5), 5, 990.0)
    assert b.stats().points == 12
    clock.now = 1055.0  # the first segment is now 155 s old
    assert b.evict_expired() == 3
    assert b.stats().oldest == 960.0
    assert b.evict_expired() == 0
    clock.now = 1089.0
    b.append(A, lines(12, 1), 1, 1089.0)  # append checks age too
    assert b.stats().points == 6 and b.stats().oldest == 990.0
    assert b.counters.get("evicted") == 7
    assert len([r for r in caplog.records if "older than max_age" in r.getMessage()]) == 1
    clock.now += 1000  # a new burst logs again
    assert b.evict_expired() == 6
    assert len(caplog.records) == 2
    assert b.stats() == BufferStats(0, 0, 0, None)
    b.close()


def test_remove_with_stale_ids_after_eviction(tmp_path: Path):
    seg = lines(0, 10)
    cost = Segment(A, 10, seg, 0.0).stored_size
    b = open_buf(tmp_path / "buf", max_size=max_size_for(3 * cost))
    first = b.head(100, 1 << 20)
    assert first == []
    ids = [b.append(A, seg, 10, 1.0) for _ in range(3)]
    window = b.head(20, 1 << 20)
    assert [i for i, _ in window] == ids[:2]
    b.append(A, seg, 10, 1.0)  # evicts ids[0] while the flusher holds it
    assert b.counters.get("evicted") == 10
    # InfluxDB took the whole window: the evicted segment counts as written after all.
    assert b.remove([i for i, _ in window], count_as="written") == 20
    assert b.counters.get("written") == 20 and b.counters.get("evicted") == 0
    assert b.stats().points == 20
    # A window that was not delivered: its evicted segment stays evicted.
    window = b.head(20, 1 << 20)
    b.append(A, seg, 10, 1.0)
    b.append(A, seg, 10, 1.0)  # evicts window[0]
    b.head(20, 1 << 20)  # the next attempt is another window
    assert b.remove([i for i, _ in window], count_as="written") == 10
    assert b.counters.get("evicted") == 10 and b.counters.get("written") == 30
    b.close()


def test_remove_counts_written_and_rejected_in_its_transaction(tmp_path: Path):
    b = open_buf(tmp_path / "buf")
    ids = [b.append(A, lines(i * 10, 10), 10, 1.0) for i in range(3)]
    assert b.remove(ids[:2], count_as="written", rejected=3) == 20
    b._cache.close()  # a kill -9 right after the commit: the counts are in it
    b = open_buf(tmp_path / "buf")
    assert (b.counters.get("written"), b.counters.get("rejected")) == (17, 3)
    assert isinstance(b.counters.get("last_success"), float)
    assert b.remove(ids[2:], count_as="written", rejected=99) == 10  # never more than removed
    assert (b.counters.get("written"), b.counters.get("rejected")) == (17, 13)
    b.close()


def test_disk_full_append_raises_and_keeps_state(buf: DiskBuffer):
    buf.append(A, lines(0, 10), 10, 1.0)
    before = buf.stats()
    pages = buf._cache._sql("PRAGMA page_count").fetchone()[0]
    buf._cache._sql(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(BufferError_, match="full"):
        buf.append(A, lines(10, 5000), 5000, 2.0)
    assert buf.stats() == before
    buf._cache._sql("PRAGMA max_page_count = 1000000")
    buf.append(A, lines(10, 5000), 5000, 2.0)
    assert buf.stats().points == 5010


def test_invalid_segments_refused(buf: DiskBuffer):
    with pytest.raises(ValueError):
        buf.append(A, b"", 0, 1.0)


# -- corruption: moved aside, loudly, never a crash loop ------------------------


def corrupt_siblings(path: Path) -> List[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name + ".corrupt-"))


def test_garbage_over_sqlite_file_is_moved_aside(tmp_path: Path, caplog):
    path = tmp_path / "buf"
    b = open_buf(path)
    b.append(A, lines(0, 10), 10, 1.0)
    b.close()
    (path / "cache.db").write_bytes(os.urandom(64 * 1024))
    caplog.set_level(logging.CRITICAL, logger="edge_agent.buffer")
    b = open_buf(path)
    assert b.stats() == BufferStats(0, 0, 0, None)
    moved = corrupt_siblings(path)
    assert len(moved) == 1 and (moved[0] / "cache.db").exists()
    assert any("CORRUPT" in r.getMessage() and str(moved[0]) in r.getMessage()
               for r in caplog.records)
    b.append(A, lines(0, 2), 2, 1.0)  # and it works
    b.close()
    b = open_buf(path)  # reopens cleanly: no second move
    assert b.stats().points == 2 and len(corrupt_siblings(path)) == 1
    b.close()


def test_corruption_found_at_runtime_is_moved_aside(tmp_path: Path):
    path = tmp_path / "buf"
    b = open_buf(path)
    for i in range(50):
        b.append(A, lines(i * 100, 100), 100, 1.0)
    b._cache._sql("PRAGMA wal_checkpoint(TRUNCATE)")
    b.counters.add("written", 5)
    with open(path / "cache.db", "r+b") as f:
        f.seek(4096 * 3)
        f.write(os.urandom(4096 * 20))
    b._cache.close()  # drop SQLite's page cache; the next read reconnects
    # Reading hits the damage: moved aside, what is still readable salvaged, the rest counted.
    head = b.head(10**6, 1 << 30)
    salvaged = sum(seg.count for _, seg in head)
    assert salvaged < 5000 and salvaged + b.counters.get("lost_corrupt") == 5000
    assert len(corrupt_siblings(path)) == 1
    assert b.counters.get("written") == 5  # counters carried over
    assert "corrupt" in str(b.counters.get("last_error"))
    b.append(A, lines(0, 3), 3, 1.0)
    assert b.stats().points == salvaged + 3
    b.close()


def test_bad_segment_value_is_corruption(tmp_path: Path):
    path = tmp_path / "buf"
    b = open_buf(path)
    key = b.append(A, lines(0, 3), 3, 1.0)
    b._cache.set(key, b"not a segment")
    assert b.head(10, 1 << 20) == []
    assert len(corrupt_siblings(path)) == 1
    b.close()


def test_unusable_directory_is_a_clear_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BufferError_, match="cannot open the disk buffer"):
        open_buf(blocker / "buf")


def test_bookkeeping_rebuilt_when_missing(tmp_path: Path):
    path = tmp_path / "buf"
    b = open_buf(path)
    ids = [b.append(A, lines(i, 4), 4, 1.0) for i in range(3)]
    b._cache.delete("edge_agent.buffer.meta")
    b._cache.close()
    b = open_buf(path)
    assert b.stats().points == 12 and b.stats().segments == 3
    assert b.append(A, b"x v=1", 1, 1.0) > ids[-1]
    b.close()


def test_busy_full_or_unreachable_is_not_corruption():
    from edge_agent.buffer.recovery import is_corruption as _is_corruption

    for text in ("database is locked", "database or disk is full", "unable to open database file",
                 "disk I/O error"):
        assert not _is_corruption(sqlite3.OperationalError(text))
    assert _is_corruption(sqlite3.DatabaseError("file is not a database"))
    assert _is_corruption(sqlite3.DatabaseError("database disk image is malformed"))
    assert not _is_corruption(OSError(28, "No space left on device"))
