"""Segments in the buffer's SQLite file: reading them, storing them, evicting the oldest.

``SegmentLog`` is the storage half of ``DiskBuffer``: every method here runs
with the buffer's lock held and, for writes, inside one transaction. Segment
ids are the integer keys of a diskcache ``Cache`` (SQLite sorts them before
the text key of the bookkeeping record), so iterating keys gives the head
first. Eviction keeps three budgets, oldest segments first: ``max_size``
(``data_budget``), the filesystem's room now (:mod:`.space`) and ``max_age``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..destination import Destination
from .bookkeeping import Bookkeeping
from .counters import Value
from .recovery import Corrupt, reserved_bytes
from .segment import Segment, decode_segment, encode_segment, stored_pages
from .space import Space

__all__ = ["SegmentLog"]


class SegmentLog(Bookkeeping):
    """Reading, storing and evicting segments (the caller holds the lock)."""

    space: Space
    data_budget: int
    total_budget: int
    _dests: Dict[str, Destination]
    _known: Dict[int, Tuple[int, int]]
    _head_time: Optional[float]
    _head_known: bool
    _in_flight: Dict[int, int]
    _evicted_in_flight: Dict[int, int]  # evicted from that window, not yet removed

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

    def _read(self, key: int, verify: bool = True) -> Optional[Segment]:
        value = self._cache.get(key)
        if value is None:
            return None
        try:
            seg = decode_segment(value, self._dest, verify=verify)
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



    def _head(self, max_points: int, max_bytes: int) -> List[Tuple[int, Segment]]:
        out: List[Tuple[int, Segment]] = []
        points = size = 0
        for key in self._segment_ids():
            seg = self._read(key, verify=False)  # the one that ends the window: next time
            if seg is None:
                continue
            if out and (
                seg.dest != out[0][1].dest
                or points + seg.count > max_points
                or size + len(seg.data) > max_bytes
            ):
                break
            if not seg.count_matches():
                raise Corrupt(f"segment {key}: point count {seg.count} does not match its lines")
            out.append((key, seg))
            points += seg.count
            size += len(seg.data)
        return out



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



    def _store(self, items: Sequence[Tuple[int, Segment]],
               counts: Optional[Dict[str, int]]) -> None:
        """One transaction: store segments under their ids, evict over budget, count."""
        meta = dict(self._meta)
        if not meta["segments"]:
            self._head_known = False  # the first new segment becomes the head
        extra: Optional[Dict[str, Value]] = dict(counts) if counts else None
        with self._transaction():
            for key, seg in items:
                meta["next_id"] = max(meta["next_id"], key + 1)
                value = encode_segment(seg)
                self._cache.set(key, value)
                meta["points"] += seg.count
                meta["segments"] += 1
                meta["bytes"] += stored_pages(len(value))
            evicted = self._evict(meta, self._clock())
            self._write_changes(meta, evicted, extra)
        self._adopt(meta, evicted)



    def _budget_now(self) -> int:
        """The data budget now: smaller than data_budget when the filesystem fills."""
        try:
            room = self.space.room()
        except OSError:
            return self.data_budget
        return min(self.data_budget, room - reserved_bytes(self.total_budget))

    def _evict(self, meta: Dict[str, int], now: float) -> Dict[str, int]:
        """Inside a transaction: evict head segments over budget. -> reason: points."""
        evicted: Dict[str, int] = {}
        budget = None
        while meta["segments"] > 0:
            if meta["bytes"] > self.data_budget and meta["segments"] > 1:
                reason = "size"
            else:
                if budget is None:
                    budget = self._budget_now()
                if meta["bytes"] > budget and meta["segments"] > 1:
                    reason = "disk"
                else:
                    head_time = self._head_time_now()
                    if head_time is None or head_time >= now - self.max_age:
                        break
                    reason = "age"
            self._evict_head(meta, reason, evicted)
        return evicted

    def _evict_head(self, meta: Dict[str, int], reason: str, evicted: Dict[str, int]) -> None:
        """Inside a transaction: delete the head segment, counted under ``reason``."""
        key = next(iter(self._segment_ids()))
        seg = self._read(key)
        self._cache.delete(key)
        self._known.pop(key, None)
        self._head_known = False
        if seg is None:
            return
        if key in self._in_flight:
            self._evicted_in_flight[key] = seg.count
        meta["points"] -= seg.count
        meta["segments"] -= 1
        meta["bytes"] -= seg.stored_size
        evicted[reason] = evicted.get(reason, 0) + seg.count



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

