"""The agent's own bookkeeping: how many points went where, kept on disk.

``Counters`` is an in-memory table of numbers and two text/time values. The
disk buffer writes a snapshot into the same SQLite transaction as each
segment it appends or removes (so "written" and the removal of the written
segments commit together), and now and then otherwise
(``DiskBuffer.persist_counters``). With a journal attached (:mod:`.tally`,
in RAM) every change is also noted there as it happens, with ``held``: the
points the durable writer holds in memory, neither committed nor delivered.
Names follow Telegraf's internal metrics.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Union

if TYPE_CHECKING:
    from .tally import Tally

__all__ = ["COUNTS", "VALUES", "Counters", "merge", "removal_counts"]

# Point counts, all starting at 0.
COUNTS = (
    "accepted",  # points handed to the durable writer
    "written",  # points InfluxDB answered 2xx for
    "rejected",  # points InfluxDB rejected alone, now in the dead-letter file
    "evicted",  # points the buffer's size/age budget evicted, oldest first
    "dropped_invalid",  # points dropped before the buffer (NaN/Inf only, no fields)
    "write_errors",  # failed delivery attempts (any non-2xx answer or no answer)
    "retries",  # delivery retries scheduled
    "buffer_errors",  # failed appends to the disk buffer (disk full, I/O errors)
    "dropped_disk_full",  # points the disk refused and that could not wait in memory
    "lost_corrupt",  # points in a damaged buffer file that could not be read back
    "lost_unsaved",  # points held in memory when the process died before storing them
    "lost_in_flight",  # of those, the ones in a request to InfluxDB then (maybe written)
)
# Last-value entries, None until first set.
VALUES = (
    "last_success",  # wall-clock time (s) of the last 2xx
    "last_error",  # text of the last error
)

Value = Union[int, float, str, None]


def merge(into: Dict[str, Value], values: Mapping[str, Value]) -> None:
    """Add the counts in ``values`` to ``into``; set its last-values (``last_*``)."""
    for name, value in values.items():
        if name.startswith("last_"):
            into[name] = value
        else:
            into[name] = int(into.get(name) or 0) + int(value or 0)


def removal_counts(count_as: Optional[str], removed: int, rejected: int,
                   now: float) -> Dict[str, Value]:
    """What removing ``removed`` delivered points adds to the counters.

    ``rejected`` of them were dead-lettered and count as "rejected", the rest as
    ``count_as``; "written" also sets ``last_success``.
    """
    if not count_as or not removed:
        return {}
    bad = min(max(rejected, 0), removed)
    out: Dict[str, Value] = {count_as: removed - bad}
    if bad:
        out["rejected"] = bad
    if count_as == "written":
        out["last_success"] = now
    return out


class Counters:
    """Thread-safe counters; ``add`` and ``set`` are cheap, in-memory calls."""

    def __init__(self, initial: Optional[Mapping[str, Value]] = None) -> None:
        self._lock = threading.Lock()
        self._values: Dict[str, Value] = {name: 0 for name in COUNTS}
        self._values.update({name: None for name in VALUES})
        self._dirty = False
        self._held = 0
        self._flight = 0
        self._journal: Optional[Tally] = None
        self._epoch = 0
        self._gen = 0
        if initial:
            # Unknown names from a newer version are kept, not dropped.
            self._values.update(initial)

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a count (unknown names start at 0)."""
        if not n:
            return
        with self._lock:
            old = self._values.get(name) or 0
            self._values[name] = value = int(old) + n
            self._dirty = True
            if self._journal is not None:
                self._journal.put(name, value)

    def add_held(self, n: int) -> None:
        """``n`` more (or fewer) points held in memory by the durable writer."""
        with self._lock:
            self._held += n
            if self._journal is not None:
                self._journal.put_held(self._held)

    def set_flight(self, points: int) -> None:
        """Points of the held ones in the request to InfluxDB now (0: none)."""
        with self._lock:
            self._flight = points
            if self._journal is not None:
                self._journal.put_flight(points)

    def set(self, name: str, value: Value) -> None:
        """Set a last-value entry such as ``last_error`` or ``last_success``."""
        with self._lock:
            self._values[name] = value
            self._dirty = True
            if self._journal is not None:
                self._journal.put_last(name, value)

    def update(self, values: Mapping[str, Value]) -> None:
        """Take stored values (on open) without changing the object callers hold."""
        with self._lock:
            self._values.update(values)
            self._dirty = True
            self._note()

    def apply(self, values: Mapping[str, Value], held: int = 0,
              flight: Optional[int] = None) -> None:
        """Add counts and set last-values (``last_*``) from one mapping, as one change."""
        with self._lock:
            merge(self._values, values)
            self._held += held
            if flight is not None:
                self._flight = flight
            self._dirty = self._dirty or bool(values)
            self._note()

    def committed(self, gen: int, values: Mapping[str, Value], held: int = 0) -> None:
        """Buffer commit ``gen`` (which stored ``values`` with the counters) has landed."""
        with self._lock:
            merge(self._values, values)
            self._held += held
            self._gen = gen
            self._note()

    # -- the journal ---------------------------------------------------------------

    def attach(self, journal: Tally, epoch: int, gen: int) -> None:
        """Note every change in ``journal`` from now on (it is rewritten whole first)."""
        with self._lock:
            self._journal, self._epoch, self._gen = journal, epoch, gen
            self._note()

    def detach(self) -> Optional[Tally]:
        with self._lock:
            journal, self._journal = self._journal, None
            return journal

    def _note(self) -> None:
        """Under the lock: every number into the journal, as one change."""
        if self._journal is not None:
            self._journal.rewrite(self._epoch, self._gen, self._held, self._flight,
                                  self._values)

    def get(self, name: str) -> Value:
        with self._lock:
            return self._values.get(name)

    def snapshot(self) -> Dict[str, Value]:
        """A copy of every counter and value."""
        with self._lock:
            return dict(self._values)

    @property
    def dirty(self) -> bool:
        """True when something changed since the last ``take_dirty``."""
        return self._dirty

    def take_dirty(self) -> Optional[Dict[str, Value]]:
        """A snapshot to persist and mark clean, or None when nothing changed.

        If persisting the snapshot fails, call ``mark_dirty`` so the next
        transaction tries again.
        """
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            return dict(self._values)

    def mark_dirty(self) -> None:
        with self._lock:
            self._dirty = True

    def __repr__(self) -> str:
        return f"Counters({self.snapshot()!r})"
