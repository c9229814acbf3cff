"""An in-memory segment queue with the DiskBuffer's shape (the seed's batching mode).

Used by the library's batching writer when no ``buffer_dir`` is given: points
live in memory, and a batch that exhausts its retries is dropped (and handed
to the error callback), exactly as the seed describes.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Deque, List, Optional, Sequence, Tuple

from ..destination import Destination
from .counters import Counters, removal_counts
from .segment import Segment

__all__ = ["MemoryQueue"]


class MemoryQueue:
    """FIFO of segments; ``head`` returns the oldest segment's destination's segments."""

    def __init__(self) -> None:
        self._items: Deque[Tuple[int, Segment]] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.counters = Counters()
        self.points = 0

    def append(self, dest: Destination, data: bytes, count: int, first_time: float) -> int:
        with self._lock:
            seg_id = next(self._ids)
            self._items.append((seg_id, Segment(dest, count, data, first_time)))
            self.points += count
            return seg_id

    def head(self, max_points: int, max_bytes: int) -> List[Tuple[int, Segment]]:
        """The oldest segment and the next ones for its destination, in order, up to
        ``max_points`` / ``max_bytes``: batches are grouped by (bucket, org,
        precision) as the seed groups them, and other destinations' segments in
        between are skipped, not waited for."""
        out: List[Tuple[int, Segment]] = []
        points = size = 0
        with self._lock:
            for seg_id, seg in self._items:
                if out and seg.dest != out[0][1].dest:
                    continue
                if out and (points + seg.count > max_points
                            or size + len(seg.data) > max_bytes):
                    break
                out.append((seg_id, seg))
                points += seg.count
                size += len(seg.data) + 1
        return out

    def remove(self, ids: Sequence[int], count_as: Optional[str] = None,
               rejected: int = 0) -> int:
        """Drop these segments; returns the points removed (missing ids are ignored).

        With ``count_as`` the points are counted as DiskBuffer.remove counts them.
        """
        gone = set(ids)
        with self._lock:
            kept = deque(item for item in self._items if item[0] not in gone)
            removed = sum(seg.count for seg_id, seg in self._items if seg_id in gone)
            self.points -= removed
            self._items = kept
        self.counters.apply(removal_counts(count_as, removed, rejected, time.time()))
        return removed

    def __len__(self) -> int:
        return len(self._items)
