"""The buffer file's layout for SD cards (1 KiB pages, no -shm) and files of the earlier layout.

A buffer written by the code before :mod:`edge_agent.buffer.logcache` (4 KiB pages,
diskcache's connection per thread, the WAL index in ``cache.db-shm``) must open,
drain and count exactly as before, whether it was closed cleanly or killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from edge_agent.buffer.disklog import DiskBuffer
from edge_agent.buffer.logcache import NEW_PAGE_SIZE, page_size_of
from edge_agent.buffer.recovery import peek_meta
from edge_agent.buffer.segment import Segment
from edge_agent.destination import Destination

A = Destination("telemetry")
SEGMENTS = 40

# The earlier layout, made by the earlier code path: diskcache's own Cache
# (per-thread connections, -shm) on a file SQLite makes with its default pages.
LEGACY = textwrap.dedent("""
    import os, sys
    from edge_agent.buffer import recovery
    import diskcache
    recovery.create_file = lambda directory, page_size=0: None
    recovery.LogCache = diskcache.Cache
    from edge_agent.buffer.disklog import DiskBuffer
    from edge_agent.buffer.segment import Segment
    from edge_agent.destination import Destination
    buf = DiskBuffer(sys.argv[1], clock=lambda: 1000.0)
    for i in range(SEGMENTS):
        n = 5 + i % 30
        data = b"\\n".join(b"bme280,host=pi t=21.%d %d" % (j, i * 100 + j) for j in range(n))
        buf.append_many([Segment(Destination("telemetry"), n, data, 1000.0)], {"accepted": n})
    buf.remove([1, 2], count_as="written")
    if sys.argv[2] == "kill":
        os._exit(0)  # no close: the WAL and the -shm stay, as after kill -9
    buf.close()
""").replace("SEGMENTS", str(SEGMENTS))

ACCEPTED = sum(5 + i % 30 for i in range(SEGMENTS))
WRITTEN = 5 + 6  # segments 1 and 2


def legacy_buffer(path: Path, how: str) -> None:
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", LEGACY, str(path), how], check=True, cwd=root,
                   env=dict(os.environ, PYTHONPATH=str(root)), timeout=120)


@pytest.mark.parametrize("how", ["close", "kill"])
def test_a_buffer_of_the_earlier_layout_opens_drains_and_counts(tmp_path: Path, how: str):
    path = tmp_path / "buffer"
    legacy_buffer(path, how)
    db = path / "cache.db"
    assert page_size_of(str(db)) == 4096
    if how == "kill":
        assert (path / "cache.db-shm").exists() and (path / "cache.db-wal").stat().st_size > 0
    meta = peek_meta(str(path))  # `edge-agent status` of the stopped agent
    assert meta is not None and meta["points"] == ACCEPTED - WRITTEN

    buf = DiskBuffer(path, clock=lambda: 1000.0)
    try:
        assert buf._cache._sql("PRAGMA page_size").fetchone()[0] == 4096  # kept
        assert buf._cache._sql("PRAGMA locking_mode").fetchone()[0] == "exclusive"
        assert buf.stats().points == ACCEPTED - WRITTEN and len(buf) == SEGMENTS - 2
        assert buf.counters.get("accepted") == ACCEPTED
        assert buf.counters.get("written") == WRITTEN
        (new,) = buf.append_many([Segment(A, 2, b"m v=1i 1\nm v=2i 2", 1000.0)], {"accepted": 2})
        assert new == SEGMENTS + 1
        delivered = []
        while True:
            head = buf.head(100, 1 << 20)
            if not head:
                break
            delivered += [(key, seg.count) for key, seg in head]
            buf.remove([key for key, _ in head], count_as="written")
        assert [k for k, _ in delivered] == list(range(3, SEGMENTS + 2))
        assert sum(n for _, n in delivered) == ACCEPTED - WRITTEN + 2
        assert buf.counters.get("written") == buf.counters.get("accepted") == ACCEPTED + 2
    finally:
        buf.close()
    again = DiskBuffer(path, clock=lambda: 1000.0)
    assert again.counters.get("written") == ACCEPTED + 2 and again.stats().points == 0
    assert again.append(A, b"m v=3i 3", 1, 1000.0) == SEGMENTS + 2
    again.close()
    assert page_size_of(str(db)) == 4096


def test_a_new_buffer_has_small_pages_and_no_shm(tmp_path: Path):
    path = tmp_path / "buffer"
    buf = DiskBuffer(path)
    try:
        buf.append(A, b"m v=1i 1", 1, 1.0)
        assert page_size_of(str(path / "cache.db")) == NEW_PAGE_SIZE
        assert not (path / "cache.db-shm").exists()
        # A second connection cannot get in: one writer, by SQLite as by the flock.
        import sqlite3
        other = sqlite3.connect(str(path / "cache.db"), timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("SELECT count(*) FROM Cache").fetchall()
        other.close()
    finally:
        buf.close()


def test_threads_share_the_one_connection(tmp_path: Path):
    """The durable writer and the flusher call from their own threads."""
    buf = DiskBuffer(tmp_path / "buffer", clock=lambda: 1000.0)
    errors: list = []

    def append(n: int) -> None:
        try:
            for i in range(50):
                buf.append(A, b"m v=%di %d" % (i, n * 100 + i), 1, 1000.0)
        except Exception as exc:  # reported below
            errors.append(exc)

    def drain() -> None:
        try:
            for _ in range(50):
                head = buf.head(10, 1 << 20)
                buf.remove([k for k, _ in head], count_as="written")
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=drain))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert buf.counters.get("written") + buf.stats().points == 150
    finally:
        buf.close()
