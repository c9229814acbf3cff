"""An in-memory segment queue with the DiskBuffer's shape (the seed's batching mode).

Used by the library's batching writer when no ``buffer_dir`` is given: points
live in memory, and a batch that exhausts its retries is dropped (and handed
to the error callback), exactly as the seed describes.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Sequence, Tuple

from .destination import Destination

__all__ = ["MemoryQueue", "MemoryCounters", "MemorySegment"]


@dataclass(frozen=True)
class MemorySegment:
    dest: Destination
    count: int
    data: bytes
    first_time: float


class MemoryCounters:
    """Counters with the persistent counters' API, kept in memory."""

    def __init__(self) -> None:
        self._values: Dict[str, Any] = {}
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + n

    def set(self, name: str, value: Any) -> None:
        with self._lock:
            self._values[name] = value

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return dict(self._values)


class MemoryQueue:
    """FIFO of segments; ``head`` returns consecutive segments of one destination."""

    def __init__(self) -> None:
        self._items: Deque[Tuple[int, MemorySegment]] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.counters = MemoryCounters()
        self.points = 0

    def append(self, dest: Destination, data: bytes, count: int, first_time: float) -> int:
        with self._lock:
            seg_id = next(self._ids)
            self._items.append((seg_id, MemorySegment(dest, count, data, first_time)))
            self.points += count
            return seg_id

    def head(self, max_points: int, max_bytes: int) -> List[Tuple[int, MemorySegment]]:
        out: List[Tuple[int, MemorySegment]] = []
        points = size = 0
        with self._lock:
            for seg_id, seg in self._items:
                if out and (seg.dest != out[0][1].dest or points + seg.count > max_points
                            or size + len(seg.data) > max_bytes):
                    break
                out.append((seg_id, seg))
                points += seg.count
                size += len(seg.data) + 1
        return out

    def remove(self, ids: Sequence[int]) -> int:
        """Drop these segments; returns the points removed (missing ids are ignored)."""
        gone = set(ids)
        with self._lock:
            kept = deque(item for item in self._items if item[0] not in gone)
            removed = sum(seg.count for seg_id, seg in self._items if seg_id in gone)
            self.points -= removed
            self._items = kept
        return removed

    def __len__(self) -> int:
        return len(self._items)
