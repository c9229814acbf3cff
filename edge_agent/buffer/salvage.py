"""Reading every segment still readable in a damaged buffer file.

The damaged file (already moved aside) is opened read-only and read row by
row in rowid order. Where SQLite refuses a page, the reader probes the rowids
after it one at a time, so one bad page costs the rows on it, not the rest
of the file. A file whose first page (the header and the schema) is garbage
is read through a repaired copy: the first page of a fresh buffer file of the
same page size, which has the same schema and root pages, in front of the
damaged file's other pages (a header too damaged to give the page size: each
page size this code makes is tried, the one that reads most is kept). Only
rows that decode as segments this code wrote are kept; a segment whose point
count disagrees with its lines is counted by its lines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sqlite3
import struct
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from ..destination import Destination
from .logcache import DB_NAME, NEW_PAGE_SIZE, create_file, page_size_of
from .recovery import META_KEY, open_cache, sqlite_uri
from .segment import PAGE_SIZE, Segment, decode_segment

__all__ = ["Salvage", "salvage"]

logger = logging.getLogger("edge_agent.buffer")

# With no max(rowid) to go by, rowids are probed this far past the last good row.
PROBE_LIMIT = 100_000
_ROW = "SELECT rowid, key, raw, value FROM Cache WHERE rowid {} ? ORDER BY rowid"


@dataclass
class Salvage:
    """What could be read: segments by id, the bookkeeping row, and how much could not."""

    segments: Dict[int, Segment] = field(default_factory=dict)
    meta: Optional[Dict[str, Any]] = None
    unreadable_rows: int = 0  # rowids SQLite refused to read
    repaired: str = ""  # how the file had to be read, for the log line

    @property
    def points(self) -> int:
        return sum(seg.count for seg in self.segments.values())


def salvage(directory: str, dest_of: Callable[[str], Destination]) -> Salvage:
    """Read what is readable of the buffer file in ``directory`` (never raises for damage)."""
    path = os.path.join(directory, DB_NAME)
    out = Salvage()
    if not os.path.exists(path) or os.path.getsize(path) < min(NEW_PAGE_SIZE, PAGE_SIZE):
        out.repaired = "no readable file"
        return out
    try:
        _read(path, dest_of, out)
        return out
    except sqlite3.DatabaseError as exc:
        logger.warning("disk buffer salvage: %s cannot be opened as is (%s); "
                       "reading it with a fresh first page", path, exc)
    stated = page_size_of(path)
    sizes = [stated] if stated in (NEW_PAGE_SIZE, PAGE_SIZE) else [NEW_PAGE_SIZE, PAGE_SIZE]
    best: Optional[Salvage] = None
    for size in sizes:
        found = _read_repaired(directory, size, dest_of)
        if best is None or found.points > best.points or (
                found.points == best.points and found.meta and not best.meta):
            best = found
    return best or out


def _read_repaired(directory: str, page_size: int,
                   dest_of: Callable[[str], Destination]) -> Salvage:
    out = Salvage()
    try:
        repaired = _repaired_copy(directory, page_size)
    except (OSError, sqlite3.Error) as exc:
        out.repaired = f"could not repair the first page: {exc}"
        return out
    try:
        _read(repaired, dest_of, out)
        out.repaired = "read with a fresh first page"
    except sqlite3.DatabaseError as exc:
        out.repaired = f"unreadable even with a fresh first page: {exc}"
    return out


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(sqlite_uri(path, "mode=ro"), uri=True, timeout=1.0)
    conn.execute("PRAGMA query_only=1")
    return conn


def _read(path: str, dest_of: Callable[[str], Destination], out: Salvage) -> None:
    conn = _connect(path)
    try:
        conn.execute("SELECT 1 FROM Cache LIMIT 1").fetchall()  # the schema is readable
        for key, raw, value in _rows(conn, out):
            _keep(key, raw, value, dest_of, out)
    finally:
        conn.close()


def _rows(conn: sqlite3.Connection, out: Salvage) -> Iterator[Tuple[Any, Any, Any]]:
    try:
        top: Optional[int] = conn.execute("SELECT max(rowid) FROM Cache").fetchone()[0] or 0
    except sqlite3.DatabaseError:
        top = None
    last = 0
    while True:
        try:
            for rowid, key, raw, value in conn.execute(_ROW.format(">"), (last,)):
                last = rowid
                yield key, raw, value
            return
        except sqlite3.DatabaseError:
            pass
        # A page SQLite refuses: probe the next rowids one by one.
        limit = max(top or 0, last + PROBE_LIMIT) if top is None else top
        found = None
        for rowid in range(last + 1, limit + 1):
            try:
                row = conn.execute(_ROW.format("="), (rowid,)).fetchone()
            except sqlite3.DatabaseError:
                out.unreadable_rows += 1
                continue
            if row is not None:
                found = row
                break
        if found is None:
            return
        last = found[0]
        yield found[1], found[2], found[3]


def _keep(key: Any, raw: Any, value: Any, dest_of: Callable[[str], Destination],
          out: Salvage) -> None:
    if key == META_KEY and isinstance(value, str):
        with contextlib.suppress(ValueError):
            meta = json.loads(value)
            if isinstance(meta, dict):
                out.meta = meta
        return
    if type(key) is not int or not raw or not isinstance(value, bytes):
        return
    try:
        seg = decode_segment(value, dest_of, recount=True)
    except (ValueError, struct.error, UnicodeDecodeError):
        out.unreadable_rows += 1
        return
    if not seg.data:
        out.unreadable_rows += 1
        return
    if not math.isfinite(seg.first_time):
        seg = Segment(seg.dest, seg.count, seg.data, time.time())
    out.segments[key] = seg


def _repaired_copy(directory: str, page_size: int) -> str:
    """A copy of the damaged file with the first page of a fresh buffer file."""
    with tempfile.TemporaryDirectory(prefix="edge-agent-template-") as tmp:
        create_file(tmp, page_size)
        open_cache(tmp, 1 << 20, "normal").close()
        with open(os.path.join(tmp, DB_NAME), "rb") as handle:
            first = bytearray(handle.read(page_size))
    src = os.path.join(directory, DB_NAME)
    dst = os.path.join(directory, DB_NAME + ".repaired")
    pages = os.path.getsize(src) // page_size
    # The header's page count is trusted only when "version-valid-for" matches
    # the change counter: set both so SQLite sees every page of the damaged file.
    struct.pack_into(">I", first, 28, pages)
    first[92:96] = first[24:28]
    with open(src, "rb") as source, open(dst, "wb") as target:
        source.seek(page_size)
        target.write(first)
        shutil.copyfileobj(source, target, 1 << 20)
    wal = src + "-wal"
    if os.path.exists(wal):
        shutil.copyfile(wal, dst + "-wal")
    return dst
