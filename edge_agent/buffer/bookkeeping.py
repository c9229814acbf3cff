"""The disk buffer's bookkeeping: totals, counters, the ledger, and eviction notices.

``DiskBuffer`` keeps its totals (``next_id``, points, segments, bytes) and a
snapshot of the counters in one record of its SQLite file, written in the
same transaction as every append and removal (so "written" and the removal of
the written segments commit together), and about once a second otherwise. A
copy goes to the ledger beside the file (:mod:`.ledger`) when the buffer
opens and closes and at most every ``LEDGER_INTERVAL`` seconds, so a damaged
file loses neither the counters' history nor the segment-id high-water mark.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

import diskcache

from .counters import Counters, Value, merge
from .ledger import LEDGER_INTERVAL, read_ledger, write_ledger
from .recovery import META_KEY, meta_record

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
        merge(snap, extra or {})
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
        self.counters.apply(extra or {})

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
