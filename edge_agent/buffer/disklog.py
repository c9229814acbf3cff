"""The durable disk buffer: segments of line protocol in one SQLite file.

A *segment* is a few hundred to a few thousand lines (joined by ``\\n``) for one
destination, written in one transaction with its point count and the
wall-clock time of its oldest point. Segment ids grow monotonically (stored,
so they survive a restart and are never reused), so the head is the oldest
data. The flusher reads a window of head segments (``head``) and removes them
only once their outcome is final (``remove``); memory never depends on the
size of the backlog.

Storage is a diskcache ``Cache`` configured as a log (:mod:`.recovery` opens,
checks and moves aside the file). The buffer enforces its own budget: ``max_size``
bytes on disk (the WAL, shared-memory file and SQLite's own pages reserved
first, each segment counted by the pages it fills) and ``max_age`` seconds,
oldest segments first, every evicted point counted. A buffer that SQLite
reports corrupt is moved aside and replaced by an empty one, loudly, rather
than crashing the agent on every start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import diskcache

from ..destination import Destination
from ..errors import BufferError_
from .counters import Counters, Value
from .recovery import (
    META_KEY,
    SYNC_LEVELS,
    Corrupt,
    check_pages,
    is_corruption,
    meta_record,
    move_aside,
    open_cache,
    read_meta,
    reserved_bytes,
)
from .segment import BufferStats, Segment, decode_segment, encode_segment

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_SIZE",
    "BufferStats",
    "DiskBuffer",
    "Segment",
    "reserved_bytes",
]

logger = logging.getLogger("edge_agent.buffer")

DEFAULT_MAX_SIZE = 256 * 1024 * 1024
DEFAULT_MAX_AGE = 7 * 24 * 3600.0

# Evictions closer together than this are one burst, logged once.
EVICTION_BURST_GAP = 60.0

class DiskBuffer:
    """Segments of line protocol on disk, oldest first, within a byte and age budget.

    Thread-safe: one lock serialises appends, reads and removals, so the
    durable writer and the flusher can share one buffer.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_size: int = DEFAULT_MAX_SIZE,
        max_age: float = DEFAULT_MAX_AGE,
        sync: str = "normal",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sync not in SYNC_LEVELS:
            raise ValueError(f"sync must be 'normal' or 'full', not {sync!r}")
        if max_size <= 0 or max_age <= 0:
            raise ValueError("max_size and max_age must be positive")
        self.directory = os.fspath(directory)
        self.max_size = int(max_size)
        # max_size is what the directory may hold on disk: the WAL, the shared
        # memory file and SQLite's own pages are reserved first, and segments
        # count the pages they fill (Segment.stored_size).
        self.data_budget = max(self.max_size - reserved_bytes(self.max_size), 0)
        self.max_age = float(max_age)
        self.sync = sync
        self._clock = clock
        self._lock = threading.RLock()
        self._dests: Dict[str, Destination] = {}
        # id -> (count, stored_size) of segments read recently, so remove()
        # after head() need not read them again.
        self._known: Dict[int, Tuple[int, int]] = {}
        self._head_time: Optional[float] = None
        self._head_known = False
        self._last_eviction: Optional[float] = None
        self._last_persist = 0.0
        self.counters = Counters()
        self._cache: diskcache.Cache
        self._meta: Dict[str, int] = {}
        with self._lock:
            try:
                self._open()
            except Exception as exc:  # sorted below
                if not is_corruption(exc):
                    raise self._unusable(exc) from exc
                self._quarantine(exc)

    # -- opening, checking, moving aside -------------------------------------

    def _open(self) -> None:
        self._cache = open_cache(self.directory, self.max_size, self.sync)
        try:
            self._load_meta()
        except BaseException:
            self._cache.close()
            raise

    def _load_meta(self) -> None:
        meta = read_meta(self._cache)
        rows = len(self._cache)
        if meta is None:
            if rows:
                logger.warning("disk buffer %s: bookkeeping missing, recounting segments",
                               self.directory)
            self._meta = self._recount()
            counters: object = {}
        else:
            if not meta.get("clean"):
                check_pages(self._cache)
            self._meta = {k: int(meta[k]) for k in ("next_id", "points", "segments", "bytes")}
            counters = meta.get("counters") or {}
            if self._meta["segments"] + 1 != rows:
                logger.warning("disk buffer %s: bookkeeping out of step, recounting segments",
                               self.directory)
                self._meta = self._recount()
        if isinstance(counters, dict):
            self.counters.update(counters)
        self._head_known = False
        self._head_time_now()  # reads the head segment: fails early on damage
        self._write_meta(clean=False)

    def _recount(self) -> Dict[str, int]:
        meta = {"next_id": 1, "points": 0, "segments": 0, "bytes": 0}
        for key in list(self._segment_ids()):
            seg = self._read(key)
            if seg is None:
                continue
            meta["next_id"] = max(meta["next_id"], key + 1)
            meta["points"] += seg.count
            meta["segments"] += 1
            meta["bytes"] += seg.stored_size
        return meta

    def _unusable(self, exc: BaseException) -> BufferError_:
        return BufferError_(
            f"cannot open the disk buffer at {self.directory}: {exc}. "
            "Check that the directory is writable and not used by another agent."
        )

    def _quarantine(self, exc: BaseException) -> None:
        """Move a damaged buffer aside and start an empty one."""
        lost = self._meta.get("points")
        with contextlib.suppress(Exception):  # the old handle is being dropped anyway
            self._cache.close()
        try:
            target = move_aside(self.directory)
        except OSError as err:
            raise BufferError_(
                f"the disk buffer at {self.directory} is corrupt ({exc}) and could not be "
                f"moved aside ({err}); move or delete it by hand"
            ) from exc
        logger.critical(
            "DISK BUFFER CORRUPT: %s could not be read (%s). Moved it aside to %s and started "
            "an empty buffer; %s points in it were not delivered (inspect or delete it).",
            self.directory, exc, target, "its" if lost is None else lost,
        )
        self.counters.set("last_error", f"disk buffer corrupt, moved aside to {target}: {exc}")
        self._meta = {}
        self._known.clear()
        self._open()

    def _guard(self, op: Callable[[], object]) -> object:
        """Run ``op``; on corruption move the buffer aside and run it once more."""
        try:
            return op()
        except Exception as exc:  # sorted below
            if not is_corruption(exc):
                raise
            self._quarantine(exc)
            return op()

    # -- reading ---------------------------------------------------------------

    def _segment_ids(self) -> Iterable[int]:
        # SQLite sorts integers before text, so segment ids come first.
        for key in self._cache.iterkeys():
            if type(key) is not int:
                return
            yield key

    def _dest(self, key: str) -> Destination:
        dest = self._dests.get(key)
        if dest is None:
            if len(self._dests) > 1000:
                self._dests.clear()
            dest = self._dests[key] = Destination.from_key(key)
        return dest

    def _read(self, key: int) -> Optional[Segment]:
        value = self._cache.get(key)
        if value is None:
            return None
        try:
            seg = decode_segment(value, self._dest)
        except ValueError as exc:
            raise Corrupt(f"segment {key}: {exc}") from exc
        if len(self._known) > 4096:
            self._known.clear()
        self._known[key] = (seg.count, seg.stored_size)
        return seg

    def _head_time_now(self) -> Optional[float]:
        if not self._head_known:
            self._head_time = None
            for key in self._segment_ids():
                seg = self._read(key)
                if seg is not None:
                    self._head_time = seg.first_time
                    break
            self._head_known = True
        return self._head_time

    def head(self, max_points: int, max_bytes: int) -> List[Tuple[int, Segment]]:
        """Consecutive head segments with the first one's destination.

        Stops before the segment that would pass ``max_points`` points or
        ``max_bytes`` bytes of data, but always returns at least one segment
        when the buffer is not empty. The segments stay in the buffer until
        ``remove``.
        """
        with self._lock:
            return self._guard(lambda: self._head(max_points, max_bytes))  # type: ignore[return-value]

    def _head(self, max_points: int, max_bytes: int) -> List[Tuple[int, Segment]]:
        out: List[Tuple[int, Segment]] = []
        points = size = 0
        for key in self._segment_ids():
            seg = self._read(key)
            if seg is None:
                continue
            if out and (
                seg.dest != out[0][1].dest
                or points + seg.count > max_points
                or size + len(seg.data) > max_bytes
            ):
                break
            out.append((key, seg))
            points += seg.count
            size += len(seg.data)
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
        same transaction. Over budget, the oldest segments are evicted in the same transaction.
        Raises ``BufferError_`` when the disk refuses the write (disk full,
        I/O error); nothing is stored then.
        """
        for seg in segments:
            if seg.count < 1 or not seg.data:
                raise ValueError("a segment holds at least one line")
        with self._lock:
            try:
                return self._guard(  # type: ignore[return-value]
                    lambda: self._append_many(segments, counts))
            except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
                raise BufferError_(f"disk buffer append failed: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with self._cache.transact():
                yield
        except BaseException:
            # What was read inside the transaction may have been rolled back.
            self._head_known = False
            self._known.clear()
            self.counters.mark_dirty()
            with contextlib.suppress(sqlite3.Error):
                self._cache._sql("ROLLBACK")  # a failed COMMIT can leave it open
            raise

    def _append_many(self, segments: Sequence[Segment],
                     counts: Optional[Dict[str, int]] = None) -> List[int]:
        meta = dict(self._meta)
        ids: List[int] = []
        if not meta["segments"]:
            self._head_known = False  # the first new segment becomes the head
        with self._transaction():
            for seg in segments:
                key = meta["next_id"]
                meta["next_id"] = key + 1
                self._cache.set(key, encode_segment(seg))
                ids.append(key)
                meta["points"] += seg.count
                meta["segments"] += 1
                meta["bytes"] += seg.stored_size
            evicted = self._evict(meta, self._clock())
            self._write_changes(meta, evicted, dict(counts) if counts else None)
        self._adopt(meta, evicted, dict(counts) if counts else None)
        return ids

    def remove(self, ids: Iterable[int], count_as: Optional[str] = None) -> int:
        """Delete segments (missing ids are ignored); returns the points removed.

        With ``count_as`` (e.g. ``"written"``) the removed points are added to
        that counter in the same transaction; for "written" ``last_success``
        is set too.
        """
        with self._lock:
            try:
                return self._guard(lambda: self._remove(list(ids), count_as))  # type: ignore[return-value]
            except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
                raise BufferError_(f"disk buffer remove failed: {exc}") from exc

    def _remove(self, ids: List[int], count_as: Optional[str]) -> int:
        meta = dict(self._meta)
        removed = 0
        extra: Dict[str, Value] = {}
        with self._transaction():
            for key in ids:
                known = self._known.get(key)
                if known is None:
                    if self._read(key) is None:
                        continue
                    known = self._known[key]
                if not self._cache.delete(key):
                    continue
                meta["points"] -= known[0]
                meta["segments"] -= 1
                meta["bytes"] -= known[1]
                removed += known[0]
            if count_as and removed:
                extra[count_as] = removed
                if count_as == "written":
                    extra["last_success"] = self._clock()
            self._write_changes(meta, {}, extra)
        for key in ids:
            self._known.pop(key, None)
        self._head_known = False
        self._adopt(meta, {}, extra)
        return removed

    def evict_expired(self) -> int:
        """Evict head segments older than ``max_age``; returns points evicted."""
        with self._lock:
            try:
                return self._guard(self._evict_expired)  # type: ignore[return-value]
            except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
                raise BufferError_(f"disk buffer eviction failed: {exc}") from exc

    def _evict_expired(self) -> int:
        meta = dict(self._meta)
        with self._transaction():
            evicted = self._evict(meta, self._clock())
            if not evicted:
                return 0
            self._write_changes(meta, evicted)
        self._adopt(meta, evicted)
        return sum(evicted.values())

    def _evict(self, meta: Dict[str, int], now: float) -> Dict[str, int]:
        """Inside a transaction: evict head segments over budget. -> reason: points."""
        evicted: Dict[str, int] = {}
        while meta["segments"] > 0:
            if meta["bytes"] > self.data_budget and meta["segments"] > 1:
                reason = "size"
            else:
                head_time = self._head_time_now()
                if head_time is None or head_time >= now - self.max_age:
                    break
                reason = "age"
            key = next(iter(self._segment_ids()))
            seg = self._read(key)
            self._cache.delete(key)
            self._known.pop(key, None)
            self._head_known = False
            if seg is None:
                continue
            meta["points"] -= seg.count
            meta["segments"] -= 1
            meta["bytes"] -= seg.stored_size
            evicted[reason] = evicted.get(reason, 0) + seg.count
        return evicted

    # -- bookkeeping -----------------------------------------------------------

    def _write_meta(
        self,
        clean: bool,
        meta: Optional[Dict[str, int]] = None,
        counters: Optional[Dict[str, Value]] = None,
    ) -> None:
        self._cache.set(META_KEY, meta_record(
            meta if meta is not None else self._meta, clean,
            counters if counters is not None else self.counters.snapshot()))

    def _write_changes(
        self,
        meta: Dict[str, int],
        evicted: Dict[str, int],
        extra: Optional[Dict[str, Value]] = None,
    ) -> None:
        """Inside a transaction: write the new bookkeeping and counters."""
        snap = self.counters.take_dirty() or self.counters.snapshot()
        points = sum(evicted.values())
        if points:
            snap["evicted"] = int(snap.get("evicted") or 0) + points
        for name, value in (extra or {}).items():
            if name == "last_success":
                snap[name] = value
            else:
                snap[name] = int(snap.get(name) or 0) + int(value or 0)
        self._write_meta(False, meta, snap)

    def _adopt(
        self,
        meta: Dict[str, int],
        evicted: Dict[str, int],
        extra: Optional[Dict[str, Value]] = None,
    ) -> None:
        """After a commit: make the committed bookkeeping the in-memory one."""
        self._meta = meta
        self._last_persist = self._clock()
        points = sum(evicted.values())
        if points:
            self.counters.add("evicted", points)
            self._log_eviction(evicted)
        for name, value in (extra or {}).items():
            if name == "last_success":
                self.counters.set(name, value)
            else:
                self.counters.add(name, int(value or 0))

    def _log_eviction(self, evicted: Dict[str, int]) -> None:
        now = self._clock()
        new_burst = self._last_eviction is None or now - self._last_eviction > EVICTION_BURST_GAP
        self._last_eviction = now
        if new_burst:
            why = " and ".join(
                f"{n} points over max_size={self.max_size} bytes" if r == "size"
                else f"{n} points older than max_age={self.max_age:g} s"
                for r, n in sorted(evicted.items())
            )
            logger.warning(
                "disk buffer %s over budget: evicted the oldest data (%s); further evictions "
                "in this burst are counted in 'evicted' without another log line",
                self.directory, why,
            )

    def persist_counters(self, max_delay: float = 1.0) -> None:
        """Write changed counters if the last write is older than ``max_delay`` s."""
        if not self.counters.dirty or self._clock() - self._last_persist < max_delay:
            return
        with self._lock:
            snap = self.counters.take_dirty()
            if snap is None:
                return
            try:
                self._write_meta(False, None, snap)
            except Exception:
                self.counters.mark_dirty()
                raise
            self._last_persist = self._clock()

    def close(self) -> None:
        """Write the counters, mark the shutdown clean and close the file."""
        with self._lock:
            try:
                self._write_meta(clean=True)
            finally:
                self._cache.close()

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
