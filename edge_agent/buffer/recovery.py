"""Opening the buffer's SQLite file, checking it, and moving a damaged one aside.

The settings make a diskcache ``Cache`` a log, not a cache: ``eviction_policy='none'``
(its default policy silently evicts), WAL journal, ``synchronous`` NORMAL (survives
kill -9) or FULL (survives power loss), segments kept inline in their SQLite row
(``disk_min_file_size`` far above any segment) so the row's commit covers the bytes,
and no mmap with a small page cache so memory stays small. 1 KiB pages for a new
file and one exclusive connection (no -shm file) write fewer bytes per commit
(:mod:`.logcache`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import struct
import tempfile
import time
import urllib.parse
from typing import Any, Dict, Mapping, Optional

import diskcache

from ..destination import Destination
from .logcache import DB_NAME, ONE_CONNECTION, LogCache, create_file, page_size_of
from .segment import PAGE_SIZE, decode_segment

__all__ = ["META_KEY", "SYNC_LEVELS", "Corrupt", "check_pages", "is_corruption", "meta_record",
           "move_aside", "open_cache", "peek_meta", "read_meta", "reserved_bytes",
           "sqlite_uri"]

SYNC_LEVELS = {"normal": 1, "full": 2}
META_KEY = "edge_agent.buffer.meta"
META_VERSION = 1
# Values below this stay inline in the SQLite row (diskcache writes larger
# ones to side files without fsync). The durable writer cuts segments near
# 1 MiB, so only a single absurd line could come close.
_INLINE_LIMIT = 1 << 30
_PAGE_CACHE_KIB = 2048
_LOCK_TIMEOUT = 30.0


def _wal_pages(max_size: int) -> int:
    """WAL checkpoint size in 4 KiB pages: a WAL that could outgrow a tiny budget is
    checkpointed sooner."""
    return max(16, min(1000, max_size // PAGE_SIZE // 8))


def reserved_bytes(max_size: int) -> int:
    """Disk the buffer uses besides its segments: WAL, -shm, schema and bookkeeping pages."""
    return _wal_pages(max_size) * PAGE_SIZE + 32 * 1024 + 16 * PAGE_SIZE


def open_cache(directory: str, max_size: int, sync: str) -> diskcache.Cache:
    """The diskcache ``Cache`` of a buffer directory, configured as a log.

    A new file gets small pages and every file one exclusive connection
    (:mod:`.logcache`); the WAL is checkpointed at the same size in bytes
    whatever the file's page size.
    """
    create_file(directory)
    wal_pages = _wal_pages(max_size)
    page = page_size_of(os.path.join(directory, DB_NAME)) or PAGE_SIZE
    cache_class = LogCache if ONE_CONNECTION else diskcache.Cache
    return cache_class(
        directory,
        timeout=_LOCK_TIMEOUT,
        eviction_policy="none",
        cull_limit=0,
        size_limit=1 << 62,
        statistics=0,
        tag_index=0,
        sqlite_auto_vacuum=0,  # freed pages are reused; no page shuffling
        sqlite_journal_mode="wal",
        sqlite_synchronous=SYNC_LEVELS[sync],
        sqlite_mmap_size=0,
        sqlite_cache_size=-_PAGE_CACHE_KIB,
        sqlite_wal_autocheckpoint=wal_pages * PAGE_SIZE // page,
        sqlite_journal_size_limit=wal_pages * PAGE_SIZE,
        disk_min_file_size=_INLINE_LIMIT,
    )


def read_meta(cache: diskcache.Cache) -> Optional[Dict[str, Any]]:
    """The buffer's bookkeeping record, or ``None`` when missing or of another version."""
    raw = cache.get(META_KEY)
    if not isinstance(raw, str):
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.get("version") != META_VERSION:
        return None
    return meta


def meta_record(meta: Mapping[str, int], clean: bool, counters: Mapping[str, Any],
                tally: Optional[Mapping[str, Any]] = None) -> str:
    """The stored form of the bookkeeping: segment ids, totals, counters, clean shutdown,
    and the commit's number for the counters' journal (:mod:`.tally`)."""
    record: Dict[str, object] = dict(meta)
    record["version"] = META_VERSION
    record["clean"] = clean
    record["counters"] = dict(counters)
    if tally is not None:
        record["tally"] = dict(tally)
    return json.dumps(record)


# After a kill -9, reading the WAL would rebuild the -shm: status reads a copy
# when the files are at most this large, else the last checkpoint only.
PEEK_COPY_LIMIT = 64 * 1024 * 1024


def sqlite_uri(path: str, query: str) -> str:
    """A SQLite ``file:`` URI for ``path`` (quoted: a state_dir may hold ``?``, ``#``, ``%``)."""
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?{query}"


def peek_meta(directory: str) -> Optional[Dict[str, Any]]:
    """The bookkeeping of a buffer no process has open, read without writing a byte there.

    A cleanly closed buffer has no WAL: the file is read as immutable (no lock,
    no -shm). After a kill -9 the file and its WAL are copied to a temporary
    directory and read there (SQLite would otherwise rebuild the -shm); above
    ``PEEK_COPY_LIMIT`` only the last checkpoint is read and ``"stale"`` is set.
    ``None`` when there is no readable record.
    """
    path = os.path.join(directory, "cache.db")
    wal = path + "-wal"
    if not os.path.exists(path):
        return None
    if not os.path.exists(wal) or os.path.getsize(wal) == 0:
        return _peek(sqlite_uri(path, "immutable=1"))
    if os.path.getsize(path) + os.path.getsize(wal) > PEEK_COPY_LIMIT:
        meta = _peek(sqlite_uri(path, "immutable=1"))
        if meta is not None:
            meta["stale"] = True
        return meta
    with tempfile.TemporaryDirectory(prefix="edge-agent-status-") as tmp:
        try:
            shutil.copyfile(path, os.path.join(tmp, "cache.db"))
            shutil.copyfile(wal, os.path.join(tmp, "cache.db-wal"))
        except OSError:
            return _peek(sqlite_uri(path, "immutable=1"))
        return _peek(sqlite_uri(os.path.join(tmp, "cache.db"), "mode=ro"))


def _peek(uri: str) -> Optional[Dict[str, Any]]:
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT value FROM Cache WHERE key = ? AND raw = 1",
                           (META_KEY,)).fetchone()
        head = conn.execute("SELECT value FROM Cache WHERE typeof(key) = 'integer' "
                            "ORDER BY key LIMIT 1").fetchone()
    except sqlite3.Error:
        return None
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    if row is None or not isinstance(row[0], str):
        return None
    with contextlib.suppress(ValueError):
        meta = json.loads(row[0])
        if isinstance(meta, dict) and meta.get("version") == META_VERSION:
            meta["oldest"] = _first_time(head[0] if head else None)
            return meta
    return None


def _first_time(value: object) -> Optional[float]:
    """The head segment's first_time, read from its header (None when unreadable)."""
    with contextlib.suppress(ValueError, struct.error):
        return decode_segment(value, Destination.from_key).first_time
    return None


class Corrupt(Exception):
    """A stored value is not a segment this code wrote."""


def is_corruption(exc: BaseException) -> bool:
    """SQLite errors that mean the file is damaged, not busy/full/unreachable."""
    if isinstance(exc, Corrupt):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "malformed" in text or "not a database" in text or "corrupt" in text
    return True


def check_pages(cache: diskcache.Cache) -> None:
    """After an unclean stop (kill -9, power loss): let SQLite check the pages."""
    ((verdict,),) = cache._sql("PRAGMA quick_check(1)").fetchall()
    if verdict != "ok":
        raise Corrupt(f"SQLite quick_check: {verdict}")


def move_aside(directory: str) -> str:
    """Rename a damaged buffer directory to a new ``.corrupt-<time>`` name; returns it."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    base = f"{directory.rstrip(os.sep)}.corrupt-{stamp}"
    target, n = base, 1
    while os.path.exists(target):
        target = f"{base}-{n}"
        n += 1
    os.rename(directory, target)
    return target
