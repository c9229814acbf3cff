"""The durable disk buffer: segments of line protocol in one SQLite file.

A *segment* is a few hundred to a few thousand lines (joined by ``\\n``) for one
destination, written in one transaction with its point count and the
wall-clock time of its oldest point. Segment ids grow monotonically and are
never reused (the high-water mark is stored in the file and in the ledger
beside it, so neither a restart nor a salvage starts them again), so the head
is the oldest data. The flusher reads a window of head segments (``head``)
and removes them only once their outcome is final (``remove``, which counts
them as written and rejected in the same transaction); memory never depends
on the size of the backlog.

Storage is a diskcache ``Cache`` configured as a log (:mod:`.recovery`). The
budget is ``max_size`` bytes on disk, or less when the filesystem cannot hold
that much (:mod:`.space`), and ``max_age`` seconds, oldest segments first,
every evicted point counted (:mod:`.bookkeeping`). A file SQLite reports
damaged is moved aside, every readable segment is salvaged into a fresh file
(:mod:`.salvage`) and what could not be read is counted in ``lost_corrupt``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import diskcache

from ..destination import Destination
from ..errors import BufferError_
from .counters import removal_counts
from .lock import StateLock
from .recovery import (
    SYNC_LEVELS,
    check_pages,
    is_corruption,
    move_aside,
    open_cache,
    read_meta,
    reserved_bytes,
)
from .salvage import salvage
from .segment import BufferStats, Segment
from .segmentlog import SegmentLog
from .space import fit, is_disk_full

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_SIZE", "BufferStats", "DiskBuffer", "Segment",
           "reserved_bytes"]

logger = logging.getLogger("edge_agent.buffer")

DEFAULT_MAX_SIZE = 256 * 1024 * 1024
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
_SALVAGE_CHUNK = 256  # salvaged segments re-stored per transaction
_DISK_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)
EVICT_FOR_ROOM_MAX = 256  # head segments an append may give up on a disk that is full


class DiskBuffer(SegmentLog):
    """Segments of line protocol on disk, oldest first, within a byte and age budget.

    Thread-safe: one lock serialises appends, reads and removals, so the
    durable writer and the flusher can share one buffer. ``lock`` (the state
    directory's writer lock) is released by ``close``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_size: int = DEFAULT_MAX_SIZE,
        max_age: float = DEFAULT_MAX_AGE,
        sync: str = "normal",
        clock: Callable[[], float] = time.time,
        lock: Optional[StateLock] = None,
    ) -> None:
        if sync not in SYNC_LEVELS:
            raise ValueError(f"sync must be 'normal' or 'full', not {sync!r}")
        if max_size <= 0 or max_age <= 0:
            raise ValueError("max_size and max_age must be positive")
        super().__init__(os.fspath(directory), int(max_size), float(max_age), clock)
        self.sync = sync
        self._state_lock = lock
        self._lock = threading.RLock()
        self._dests: Dict[str, Destination] = {}
        # id -> (count, stored_size) of segments read recently, so remove()
        # after head() need not read them again.
        self._known: Dict[int, Tuple[int, int]] = {}
        self._head_time: Optional[float] = None
        self._head_known = False
        self._loaded = False  # bookkeeping read: counters in memory are current
        self._in_flight: Dict[int, int] = {}  # id -> points of the last head() window
        self._evicted_in_flight: Dict[int, int] = {}
        self._cache: diskcache.Cache
        with self._lock:
            try:
                self._fit_to_filesystem()
                self._with_room(self._open)
            except Exception as exc:  # sorted below
                if not is_corruption(exc):
                    raise self._unusable(exc) from exc
                self._salvage(exc)

    # -- opening, checking, salvaging ----------------------------------------

    def _fit_to_filesystem(self) -> None:
        """The effective budget: max_size, or what the filesystem can give."""
        self.space, self.total_budget = fit(self.directory, self.max_size)
        # The WAL, the shared memory file and SQLite's own pages are reserved
        # first; segments count the pages they fill (Segment.stored_size).
        self.data_budget = max(self.total_budget - reserved_bytes(self.total_budget), 0)

    def _open(self) -> None:
        self._cache = open_cache(self.directory, self.total_budget, self.sync)
        try:
            self._load_meta()
        except BaseException:
            self._cache.close()
            raise

    def _load_meta(self) -> None:
        meta = read_meta(self._cache)
        rows = len(self._cache)
        ledger = self.read_ledger()
        counters: object = {}
        if meta is None:
            if rows:
                logger.warning("disk buffer %s: bookkeeping missing, recounting segments",
                               self.directory)
            self._meta = self._recount()
            counters = (ledger or {}).get("counters") or {}
        else:
            if not meta.get("clean"):
                check_pages(self._cache)
            self._meta = {k: int(meta[k]) for k in ("next_id", "points", "segments", "bytes")}
            counters = meta.get("counters") or {}
            if ledger and int(ledger.get("next_id") or 0) > self._meta["next_id"]:
                counters = ledger["counters"]  # the file is older than the ledger
            if self._meta["segments"] + 1 != rows:
                logger.warning("disk buffer %s: bookkeeping out of step, recounting segments",
                               self.directory)
                self._meta = self._recount()
        # Ids are never reused, even after the file was lost or replaced.
        self._meta["next_id"] = max(self._meta["next_id"], int((ledger or {}).get("next_id") or 1))
        if isinstance(counters, dict):
            self.counters.update(counters)
        self._head_known = False
        self._head_time_now()  # reads the head segment: fails early on damage
        self._write_meta(clean=False)
        self._landed()
        self._loaded = True
        self.save_ledger()

    def _unusable(self, exc: BaseException) -> BufferError_:
        return BufferError_(
            f"cannot open the disk buffer at {self.directory}: {exc}. "
            "Check that the directory is writable and not used by another agent."
        )

    def _salvage(self, exc: BaseException) -> None:
        """Move a damaged file aside, keep every readable segment, count the rest."""
        # The bookkeeping at the time of the damage, best source first: memory
        # (damage found while running), the damaged file's own record, the ledger.
        if self._loaded:
            base, counters = dict(self._meta), self.counters.snapshot()
        else:
            base, counters = {}, {}
        with contextlib.suppress(Exception):  # the old handle is being dropped anyway
            self._cache.close()
        self._loaded = False
        try:
            target = move_aside(self.directory)
        except OSError as err:
            raise BufferError_(
                f"the disk buffer at {self.directory} is corrupt ({exc}) and could not be "
                f"moved aside ({err}); move or delete it by hand") from exc
        found = salvage(target, self._dest)
        ledger = self.read_ledger() or {}
        if not base:
            source = found.meta if found.meta and "points" in found.meta else ledger
            base = {k: int(source.get(k) or 0) for k in ("next_id", "points")}
            counters = dict(source.get("counters") or {})
        self._known.clear()
        self._meta = {}
        self._with_room(self._open)  # an empty file: ledger ids, no counters yet
        next_id = max(self._meta["next_id"], base.get("next_id", 1),
                      max(found.segments, default=0) + 1)
        expected, points = base.get("points", 0), found.points
        lost, surplus = max(expected - points, 0), max(points - expected, 0)
        counters["lost_corrupt"] = int(counters.get("lost_corrupt") or 0) + lost
        counters["accepted"] = int(counters.get("accepted") or 0) + surplus
        counters["last_error"] = f"disk buffer corrupt, moved aside to {target}: {exc}"
        self.counters.update(counters)
        self._meta["next_id"] = next_id
        items = sorted(found.segments.items())
        for start in range(0, max(len(items), 1), _SALVAGE_CHUNK):
            self._store(items[start:start + _SALVAGE_CHUNK], None)
        self._loaded = True
        self.save_ledger(force=True)
        logger.critical(
            "DISK BUFFER CORRUPT: %s could not be read (%s). Moved it aside to %s; salvaged "
            "%d points in %d segments into a fresh buffer for delivery; %d points could not "
            "be read (counted in lost_corrupt)%s.",
            self.directory, exc, target, points, len(items), lost,
            f"; {surplus} points more than the bookkeeping knew were added to accepted"
            if surplus else "")

    def _guard(self, op: Callable[[], object]) -> object:
        """Run ``op``; on corruption salvage the buffer and run it once more."""
        try:
            return op()
        except Exception as exc:  # sorted below
            if not is_corruption(exc):
                raise
            self._salvage(exc)
            return op()

    def _with_room(self, op: Callable[[], object], evict: bool = False) -> object:
        """Run ``op``; when the disk is full, release the reserve and run it once more.

        With ``evict`` (an append) a disk still full gives up the oldest segments,
        one small transaction each (counted as evicted for want of room), until the
        write fits: the budget is an estimate of SQLite's pages, the disk is the truth.
        """
        for attempt in range(EVICT_FOR_ROOM_MAX + 2):
            try:
                return op()
            except Exception as exc:  # sorted below
                if not is_disk_full(exc):
                    raise
                if attempt == 0 and self.space.release_reserve():
                    continue
                if not evict or not self._evict_one_for_room():
                    raise
        return op()

    def _evict_one_for_room(self) -> bool:
        if self._meta["segments"] < 2:
            return False
        meta = dict(self._meta)
        evicted: Dict[str, int] = {}
        with self._transaction():
            self._evict_head(meta, "disk", evicted)
            self._write_changes(meta, evicted)
        self._adopt(meta, evicted)
        return True

    def _run(self, what: str, op: Callable[[], object], evict: bool = False) -> object:
        with self._lock:
            try:
                return self._guard(lambda: self._with_room(op, evict))
            except _DISK_ERRORS as exc:
                raise BufferError_(f"disk buffer {what} failed: {exc}") from exc

    def head(self, max_points: int, max_bytes: int) -> List[Tuple[int, Segment]]:
        """Consecutive head segments with the first one's destination.

        Stops before the segment that would pass ``max_points`` points or
        ``max_bytes`` bytes of data, but always returns at least one segment
        when the buffer is not empty. The segments stay in the buffer until
        ``remove``.
        """
        with self._lock:
            out: List[Tuple[int, Segment]] = self._guard(  # type: ignore[assignment]
                lambda: self._head(max_points, max_bytes))
            # The flusher's batch: evicted while in flight, it still counts as written.
            self._in_flight = {key: seg.count for key, seg in out}
            self._evicted_in_flight = {}
            return out

    def stats(self) -> BufferStats:
        with self._lock:
            oldest = self._guard(self._head_time_now)
            m = self._meta
            return BufferStats(m["points"], m["segments"], m["bytes"], oldest)  # type: ignore[arg-type]

    def __len__(self) -> int:
        """Number of segments."""
        return self._meta["segments"]

    # -- writing -----------------------------------------------------------------

    def append(self, dest: Destination, data: bytes, count: int, first_time: float) -> int:
        """Store one segment in one transaction; returns its id."""
        return self.append_many([Segment(dest, count, data, first_time)])[0]

    def append_many(self, segments: Sequence[Segment],
                    counts: Optional[Dict[str, int]] = None) -> List[int]:
        """Store segments in one transaction, in order; returns their ids.

        ``counts`` (e.g. ``{"accepted": n}``) are added to the counters in the
        same transaction. Over budget (``max_size``, the filesystem's room,
        ``max_age``), the oldest segments are evicted in the same transaction.
        Raises ``BufferError_`` when the disk refuses the write (disk full,
        I/O error); nothing is stored then.
        """
        for seg in segments:
            if seg.count < 1 or not seg.data:
                raise ValueError("a segment holds at least one line")
        return self._run("append", lambda: self._append_many(segments, counts),  # type: ignore[return-value]
                         evict=True)

    def _append_many(self, segments: Sequence[Segment],
                     counts: Optional[Dict[str, int]] = None) -> List[int]:
        first = self._meta["next_id"]
        items = [(first + i, seg) for i, seg in enumerate(segments)]
        self._store(items, counts)
        return [key for key, _ in items]

    def remove(self, ids: Iterable[int], count_as: Optional[str] = None,
               rejected: int = 0) -> int:
        """Delete segments (missing ids are ignored); returns the points removed.

        With ``count_as`` (e.g. ``"written"``) the removed points are added to
        that counter in the same transaction, except ``rejected`` of them
        (dead-lettered lines), which are added to "rejected"; for "written"
        ``last_success`` is set too. Segments already evicted count nowhere here.
        """
        ids = list(ids)
        try:
            return self._run("remove", lambda: self._remove(ids, count_as, rejected))  # type: ignore[return-value]
        except BufferError_ as exc:
            if len(ids) < 2 or not is_disk_full(exc):
                raise
        # A full disk: one segment per transaction needs only a few pages of WAL,
        # and each transaction counts what it removes.
        removed = 0
        for key in ids:
            bad = max(rejected - removed, 0)
            one = functools.partial(self._remove, [key], count_as, bad)
            removed += self._run("remove", one)  # type: ignore[operator]
        return removed

    def _remove(self, ids: List[int], count_as: Optional[str], rejected: int) -> int:
        meta = dict(self._meta)
        removed = late = 0
        with self._transaction():
            for key in ids:
                known = self._known.get(key)
                if known is None and self._read(key) is not None:
                    known = self._known[key]
                if known is None or not self._cache.delete(key):
                    # Evicted while InfluxDB was taking it: delivered after all.
                    late += self._evicted_in_flight.get(key, 0) if count_as else 0
                    continue
                meta["points"] -= known[0]
                meta["segments"] -= 1
                meta["bytes"] -= known[1]
                removed += known[0]
            removed += late
            extra = removal_counts(count_as, removed, rejected, self._clock())
            if late:
                extra["evicted"] = -late
            self._write_changes(meta, {}, extra)
        for key in ids:
            self._known.pop(key, None)
            self._evicted_in_flight.pop(key, None)
        self._head_known = False
        self._adopt(meta, {})
        return removed

    def evict_expired(self) -> int:
        """Evict head segments older than ``max_age``; returns points evicted.

        Also makes the reserve file again if it was used and there is room.
        """
        with contextlib.suppress(OSError):
            self.space.ensure_reserve()
        return self._run("eviction", self._evict_expired)  # type: ignore[return-value]

    def _evict_expired(self) -> int:
        meta = dict(self._meta)
        with self._transaction():
            evicted = self._evict(meta, self._clock())
            if not evicted:
                return 0
            self._write_changes(meta, evicted)
        self._adopt(meta, evicted)
        return sum(evicted.values())

    # -- closing -----------------------------------------------------------------

    def persist_counters(self, max_delay: float = 1.0) -> None:
        """Write changed counters if the last write is older than ``max_delay`` s."""
        if not self.counters.dirty or self._clock() - self._last_persist < max_delay:
            return
        with self._lock:
            snap = self.counters.take_dirty()
            if snap is None:
                return
            try:
                self._with_room(lambda: self._write_meta(False, None, snap))
            except Exception:
                self.counters.mark_dirty()
                raise
            self._landed()
            self._last_persist = self._clock()
            self.save_ledger()

    def close(self) -> None:
        """Write the counters, mark the shutdown clean, close the file, drop the lock."""
        with self._lock:
            try:
                self._with_room(lambda: self._write_meta(clean=True))
                self._landed()
                self.save_ledger(force=True)
            finally:
                self.detach_tally()
                self._cache.close()
                if self._state_lock is not None:
                    self._state_lock.release()

    def __enter__(self) -> DiskBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self._meta
        return (
            f"DiskBuffer({self.directory!r}, points={m.get('points')}, "
            f"segments={m.get('segments')}, bytes={m.get('bytes')})"
        )
