"""Delivering points straight from memory: the durable writer as the flusher's queue.

:class:`Lender` gives :class:`~.durable.DurableWriter` the queue the flusher
needs (``head``, ``remove``, ``len``, ``counters``): the disk buffer's head
segments while there are any (they are the oldest), else segments cut from
what is still in memory ("hot"), with negative ids. A hot segment the flusher
delivered is simply forgotten: its points never touch the disk, and
"accepted" is counted with "written" when it leaves. A hot segment committed
while the flusher holds it (its deadline came during the request) is mapped
to its disk id, so the flusher's ``remove`` removes the stored copy; one
delivered during the commit itself is removed from disk right after it.
:class:`AckSink` is the MQTT source's view of the writer.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ..destination import Destination
from .counters import removal_counts
from .disklog import DiskBuffer, Segment

if TYPE_CHECKING:
    from .durable import DurableWriter

__all__ = ["AckSink", "Hot", "Lender", "fsync_wal"]

_MOVED_MAX = 10_000  # mem id -> disk id entries kept for in-flight segments


class Hot:
    """A segment cut from memory: not on disk, maybe in the flusher's hands."""

    __slots__ = ("first_ticket", "id", "seg", "since")

    def __init__(self, seg_id: int, seg: Segment, first_ticket: int, since: float) -> None:
        self.id = seg_id
        self.seg = seg
        self.first_ticket = first_ticket
        self.since = since


def fsync_wal(buffer: DiskBuffer) -> None:
    """fsync the buffer's SQLite WAL (fsync covers the file, whichever fd asks)."""
    try:
        fd = os.open(os.path.join(buffer.directory, "cache.db-wal"), os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Lender:
    """Mixin for DurableWriter: the flusher's queue over disk and memory."""

    buffer: DiskBuffer
    hold: Optional[float]
    _lock: threading.Lock
    _pending: Dict[Any, Any]
    _ticket: int

    def __init__(self) -> None:
        self._hot: List[Hot] = []
        self._next_id = 0
        self._committing: Dict[int, Hot] = {}  # taken by a commit still running
        self._early: List[int] = []  # of those, delivered before the commit ended
        self._moved: Dict[int, int] = {}  # mem id -> disk id, for segments in flight
        self.counters: Any = self.buffer.counters

    def _cut_pending(self) -> List[Hot]:  # implemented by DurableWriter
        raise NotImplementedError

    def _mark_durable(self, points: int) -> None:  # implemented by DurableWriter
        raise NotImplementedError

    def _new_id(self) -> int:
        self._next_id -= 1
        return self._next_id

    def __len__(self) -> int:
        """Segments waiting: on disk, and (lending) in memory."""
        if self.hold is None:
            return len(self.buffer)
        with self._lock:
            return len(self.buffer) + len(self._hot) + len(self._pending)

    def head(self, max_points: int, max_bytes: int) -> List[Tuple[int, Segment]]:
        """The disk buffer's head; when it is empty (and lending), memory's head."""
        if self.hold is None or len(self.buffer):
            window = list(self.buffer.head(max_points, max_bytes))
            if window or self.hold is None:
                return window
        with self._lock:
            self._hot.extend(self._cut_pending())
            out: List[Tuple[int, Segment]] = []
            points = size = 0
            for hot in self._hot:
                seg = hot.seg
                if out and (seg.dest != out[0][1].dest or points + seg.count > max_points
                            or size + len(seg.data) > max_bytes):
                    break
                out.append((hot.id, seg))
                points += seg.count
                size += len(seg.data)
            self.buffer.counters.set_flight(points)
            return out

    def remove(self, ids: Sequence[int], count_as: Optional[str] = None,
               rejected: int = 0) -> int:
        """Forget delivered segments; returns their points (memory and disk).

        As :meth:`DiskBuffer.remove`: ``rejected`` of the points (dead-lettered lines)
        count as "rejected", the rest as ``count_as``; memory segments take them first.
        """
        mem_rejected = 0
        disk = [i for i in ids if i > 0]
        gone = {i for i in ids if i < 0}
        delivered = early = 0
        if gone:
            with self._lock:
                kept: List[Hot] = []
                for hot in self._hot:
                    if hot.id in gone:
                        delivered += hot.seg.count
                    else:
                        kept.append(hot)
                self._hot = kept
                for i in gone:
                    if i in self._committing and i not in self._early:
                        early += self._committing[i].seg.count  # the commit counts "accepted"
                        self._early.append(i)
                    elif i in self._moved:
                        disk.append(self._moved.pop(i))
                # Final: "accepted" with "written", one change (never apart on disk).
                mem_rejected = min(max(rejected, 0), delivered + early)
                counts = removal_counts(count_as, delivered + early, mem_rejected, time.time())
                counts["accepted"] = delivered
                self.buffer.counters.apply(counts, -delivered, flight=0)
                self._mark_durable(delivered)
        removed = delivered + early
        if disk:
            removed += self.buffer.remove(disk, count_as, max(rejected - mem_rejected, 0))
        return removed

    def _outstanding(self) -> List[int]:
        """Under the lock: first tickets of everything not yet durable."""
        out = [p.first_ticket for p in self._pending.values()]
        out.extend(h.first_ticket for h in self._hot)
        out.extend(h.first_ticket for i, h in self._committing.items() if i not in self._early)
        return out

    def _taken_for_commit(self, hot: List[Hot]) -> None:
        """Under the lock: these hot segments are being committed."""
        self._committing = {h.id: h for h in hot}
        self._early = []

    def _commit_refused(self) -> List[Hot]:
        """Under the lock: the commit failed; what goes back to memory (undelivered)."""
        early = set(self._early)
        back = [h for i, h in self._committing.items() if i not in early]
        delivered = sum(self._committing[i].seg.count for i in early)
        self._committing = {}
        self._early = []
        self.buffer.counters.apply({"accepted": delivered}, -delivered)
        self._hot = back + self._hot
        self._mark_durable(delivered)
        return back

    def _moved_to_disk(self, hot: List[Hot], disk_ids: Sequence[int]) -> List[int]:
        """Under the lock: the commit stored ``hot`` as ``disk_ids``.

        Returns the disk ids of segments already delivered (to remove now).
        """
        early = set(self._early)
        drop: List[int] = []
        for h, disk_id in zip(hot, disk_ids):
            if h.id in early:
                drop.append(disk_id)
            else:
                self._moved[h.id] = disk_id
        while len(self._moved) > _MOVED_MAX:
            del self._moved[next(iter(self._moved))]
        self._committing = {}
        self._early = []
        return drop


class AckSink:
    """A source's view of the writer where ``flush()`` means "someone waits".

    The MQTT source calls ``flush()`` whenever it holds unacked messages and the
    stream pauses. With ``hold`` that makes them durable within ``within``
    seconds (delivered from memory, or committed with an fsync) instead of one
    commit per pause. ``within`` is what the broker's in-flight window allows:
    about a flush interval and a round trip with MQTT 5's ReceiveMaximum of
    1000, ``commit_interval`` for MQTT 3.1.1 (mosquitto keeps only 20 unacked
    messages in flight to such a client).
    """

    def __init__(self, writer: DurableWriter, within: Optional[float] = None) -> None:
        self.writer = writer
        self.within = within

    def add(self, lines: Sequence[str], dest: Destination) -> int:
        return self.writer.add(lines, dest)

    def wait_durable(self, ticket: int, timeout: Optional[float] = None) -> bool:
        return self.writer.wait_durable(ticket, timeout, hurry=self.writer.hold is None)

    def flush(self) -> bool:
        if self.writer.hold is None:
            return self.writer.flush()
        self.writer.hurry(self.within)
        return False
