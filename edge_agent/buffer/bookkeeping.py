"""The disk buffer's bookkeeping: totals, counters, the ledger, and eviction notices.

``DiskBuffer`` keeps its totals (``next_id``, points, segments, bytes) and a
snapshot of the counters in one record of its SQLite file, written in the
same transaction as every append and removal (so "written" and the removal of
the written segments commit together), and about once a second otherwise. A
copy goes to the ledger beside the file (:mod:`.ledger`) when the buffer
opens and closes and at most every ``LEDGER_INTERVAL`` seconds, so a damaged
file loses neither the counters' history nor the segment-id high-water mark.

Each record also carries its commit's number (``gen``), the buffer's
``epoch`` and what the commit added (``delta``): with them ``attach_tally``
joins the counters' journal in RAM (:mod:`.tally`) to the last commit after
a kill, and counts what the dead process held in memory in "lost_unsaved".
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Dict, Optional

import diskcache

from .counters import Counters, Value, merge
from .ledger import LEDGER_INTERVAL, read_ledger, write_ledger
from .recovery import META_KEY, meta_record, read_meta
from .tally import Tally, join_record

__all__ = ["Bookkeeping", "EVICTION_BURST_GAP"]

logger = logging.getLogger("edge_agent.buffer")

# Evictions closer together than this are one burst, logged once.
EVICTION_BURST_GAP = 60.0


class Bookkeeping:
    """The totals and counters half of ``DiskBuffer`` (no segment I/O here)."""

    _cache: diskcache.Cache
    total_budget: int  # max_size, or less when the filesystem cannot hold it

    def __init__(self, directory: str, max_size: int, max_age: float,
                 clock: Callable[[], float]) -> None:
        self.directory = directory
        self.max_size = max_size
        self.max_age = max_age
        self._clock = clock
        self.counters = Counters()
        self._meta: Dict[str, int] = {}
        self._last_eviction: Optional[float] = None
        self._last_persist = 0.0
        self._last_ledger = float("-inf")
        self._gen = 0  # the last commit's number
        self._epoch: Optional[int] = None  # this buffer's, for the journal (read on open)
        self._opened_with: Optional[Dict[str, Any]] = None  # the record found on open
        self._delta: Dict[str, Value] = {}  # what the commit being written adds
        self._held = 0  # ... to the points held in memory (negative)

    def _write_meta(
        self,
        clean: bool,
        meta: Optional[Dict[str, int]] = None,
        counters: Optional[Dict[str, Value]] = None,
        delta: Optional[Dict[str, Value]] = None,
        held: int = 0,
    ) -> None:
        """Write the record; ``delta`` and ``held`` are what this commit adds to the
        counters (already in ``counters``) and to the points held in memory.
        Call ``_landed`` once the write has committed."""
        self._delta, self._held = dict(delta or {}), held
        if self._epoch is None:  # the first write since opening: what was there before
            self._opened_with = read_meta(self._cache)
            tally = (self._opened_with or {}).get("tally") or {}
            self._epoch = int(tally.get("epoch") or random.getrandbits(62) + 1)
            self._gen = int(tally.get("gen") or 0)
        stored = dict(self._delta, held=held) if held else self._delta
        self._cache.set(META_KEY, meta_record(
            meta if meta is not None else self._meta, clean,
            counters if counters is not None else self.counters.snapshot(),
            {"gen": self._gen + 1, "epoch": self._epoch, "delta": stored}))

    def _landed(self) -> None:
        """The last ``_write_meta`` committed: its counts are the in-memory ones now."""
        self._gen += 1
        delta, held, self._delta, self._held = self._delta, self._held, {}, 0
        self.counters.committed(self._gen, delta, held)

    def _write_changes(
        self,
        meta: Dict[str, int],
        evicted: Dict[str, int],
        extra: Optional[Dict[str, Value]] = None,
    ) -> None:
        """Inside a transaction: write the new bookkeeping and counters."""
        snap = self.counters.take_dirty() or self.counters.snapshot()
        delta: Dict[str, Value] = dict(extra or {})
        held = int(delta.pop("held", 0) or 0)
        points = sum(evicted.values())
        if points:
            delta["evicted"] = int(delta.get("evicted") or 0) + points
        merge(snap, delta)
        self._write_meta(False, meta, snap, delta, held)

    def _adopt(self, meta: Dict[str, int], evicted: Dict[str, int]) -> None:
        """After a commit: make the committed bookkeeping the in-memory one (the
        counts it added are those ``_write_changes`` wrote)."""
        self._meta = meta
        self._last_persist = self._clock()
        self._landed()
        if sum(evicted.values()):
            self._log_eviction(evicted)

    # -- the counters' journal ----------------------------------------------------

    def attach_tally(self, tally: Tally) -> int:
        """Note every counter change in ``tally`` from now on; returns the points lost.

        First joins what ``tally`` holds from the last run (if it ended with a
        kill) to the last commit: points that run held in memory and never
        stored or delivered are counted as accepted and "lost_unsaved" (ERROR
        line), and the joined counters are committed.
        """
        record = self._opened_with or {}
        found = join_record(record, tally.read())
        lost = 0
        if found is not None:
            joined, lost, flight = found
            if lost:
                logger.error(
                    "disk buffer %s: the last run ended without a clean stop and held %d "
                    "points in memory, neither stored nor delivered: counted in lost_unsaved "
                    "(%d) and lost_in_flight (%d, in a request to InfluxDB at that moment: "
                    "it may hold them)", self.directory, lost, lost - flight, flight)
            self.counters.update(joined)
        elif record and not record.get("clean"):
            logger.warning(
                "disk buffer %s: the last run ended without a clean stop and its counters "
                "since its last commit are gone with the machine's RAM (power cut or reboot?); "
                "points it held in memory then were not counted", self.directory)
        self.counters.attach(tally, int(self._epoch or 0), self._gen)
        self._opened_with = None
        return lost

    def detach_tally(self) -> None:
        tally = self.counters.detach()
        if tally is not None:
            tally.close()

    def _log_eviction(self, evicted: Dict[str, int]) -> None:
        now = self._clock()
        new_burst = self._last_eviction is None or now - self._last_eviction > EVICTION_BURST_GAP
        self._last_eviction = now
        if new_burst:
            why = " and ".join(
                f"{n} points over the size budget of {self.total_budget} bytes" if r == "size"
                else f"{n} points for want of room on the filesystem" if r == "disk"
                else f"{n} points older than max_age={self.max_age:g} s"
                for r, n in sorted(evicted.items())
            )
            logger.warning(
                "disk buffer %s over budget: evicted the oldest data (%s); further evictions "
                "in this burst are counted in 'evicted' without another log line",
                self.directory, why,
            )

    # -- the ledger beside the file ---------------------------------------------

    def read_ledger(self) -> Optional[Dict[str, Any]]:
        return read_ledger(self.directory)

    def save_ledger(self, force: bool = False) -> None:
        """Copy the totals and counters to the ledger (at most every LEDGER_INTERVAL s)."""
        now = self._clock()
        if not force and now - self._last_ledger < LEDGER_INTERVAL:
            return
        try:
            write_ledger(self.directory, self._meta, self.counters.snapshot())
        except OSError as exc:
            logger.warning("disk buffer %s: cannot write its ledger: %s", self.directory, exc)
            return
        self._last_ledger = now
