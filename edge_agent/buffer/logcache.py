"""The buffer's SQLite file as few written pages per commit as it can be (an SD card counts them).

Two settings, each measured with bench/wear.py (a 60 s commit of 10 sensors:
about 52 KB written before, 20 KB after, for 30 KB of line protocol):

* **1 KiB pages for a new file** (``NEW_PAGE_SIZE``). A commit writes every
  page it touches whole to the WAL: the segment's row, two index pages, the
  Settings counters, the bookkeeping row. With 4 KiB pages that is 7 frames
  (29 KB) for a row of 3-4 KB; with 1 KiB pages about 11 frames (12 KB), and
  frames that share a page-cache page are written once. A file that exists
  keeps the page size it was made with (SQLite cannot change it in WAL mode).
* **One connection in exclusive locking mode** (``LogCache``). SQLite then keeps
  the WAL index in memory instead of the shared ``-shm`` file beside the
  database, whose header and hash pages (2-7 of them, 4 KiB each) every commit
  dirtied. Exclusive mode lets no second connection in, not even from another
  thread, so every thread shares this one; the buffer's lock serialises them,
  and the state directory's flock (:mod:`.lock`) already keeps other writers
  out. Readers of a stopped or crashed buffer (``peek_meta``, salvage) read
  the file as immutable or a copy of it, never through the lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Optional

import diskcache

__all__ = ["DB_NAME", "NEW_PAGE_SIZE", "ONE_CONNECTION", "LogCache", "create_file",
           "page_size_of"]

DB_NAME = "cache.db"  # diskcache's file name
NEW_PAGE_SIZE = 1024
_HEADER_MAGIC = b"SQLite format 3\x00"
# LogCache replaces diskcache's private ``_con`` property and ``close``: checked
# here, and where this diskcache has no such property the stock Cache is used
# (per-thread connections, the -shm file) instead.
ONE_CONNECTION = isinstance(getattr(diskcache.Cache, "_con", None), property)


def page_size_of(path: str) -> Optional[int]:
    """The page size in an SQLite file's header, ``None`` when there is no readable header."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(18)
    except OSError:
        return None
    if len(header) < 18 or header[:16] != _HEADER_MAGIC:
        return None
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def create_file(directory: str, page_size: int = NEW_PAGE_SIZE) -> None:
    """Make an empty WAL-mode database with ``page_size`` pages, unless one is there.

    diskcache would make it with SQLite's default page size, fixed by the
    first write (its journal_mode pragma), so the file is made here first.
    """
    path = os.path.join(directory, DB_NAME)
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    os.makedirs(directory, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute(f"PRAGMA page_size = {int(page_size)}")
        con.execute("PRAGMA journal_mode = wal").fetchall()
    finally:
        con.close()


class LogCache(diskcache.Cache):
    """A diskcache ``Cache`` on one SQLite connection in exclusive locking mode.

    diskcache opens a connection per thread; here ``_con`` (the property its
    every query goes through) returns the one connection, made with
    ``check_same_thread=False`` and ``locking_mode=EXCLUSIVE`` before its first
    read (later would be too late: the WAL index would already be in -shm).
    The caller serialises the threads (DiskBuffer holds its lock around every
    call).
    """

    _one: Optional[sqlite3.Connection] = None
    _one_lock = threading.Lock()

    @property
    def _con(self) -> sqlite3.Connection:
        con = self._one
        if con is not None:
            return con
        with self._one_lock:
            if self._one is not None:
                return self._one
            con = sqlite3.connect(os.path.join(self.directory, DB_NAME),
                                  timeout=self._timeout, isolation_level=None,
                                  check_same_thread=False)
            con.execute("PRAGMA locking_mode = EXCLUSIVE").fetchall()
            self._one = con
        # Per-connection pragmas, as diskcache applies them to each new connection.
        try:
            settings = con.execute("SELECT key, value FROM Settings").fetchall()
        except sqlite3.OperationalError:
            return con
        for key, value in settings:
            if key.startswith("sqlite_"):
                self.reset(key, value, update=False)
        return con

    def close(self) -> None:
        con, self._one = self._one, None
        if con is not None:
            con.close()
