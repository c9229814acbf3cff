"""When to poll: deadlines on a fixed grid, so polls never drift.

The next deadline is computed from the grid (``k * interval``, aligned to the
clock when ``round_interval`` is on, else to the source's start), never as
``sleep(interval)`` after a read. A read that overruns its interval skips the
ticks it missed (counted) instead of piling up. A failing device waits on its
own backoff without moving the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Tuple

__all__ = ["Grid", "DeviceBackoff"]


@dataclass(frozen=True)
class Grid:
    """The poll grid of one source: ``anchor + k * interval``."""

    interval: float
    anchor: float = 0.0  # 0 = aligned to the wall clock (:00, :10, ...)

    @classmethod
    def for_source(cls, interval: float, round_interval: bool, start: float) -> Grid:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        return cls(interval, 0.0 if round_interval else start)

    def next_after(self, now: float) -> float:
        """The first grid point strictly after ``now``."""
        k = math.floor((now - self.anchor) / self.interval) + 1
        return self.anchor + k * self.interval

    def advance(self, deadline: float, now: float) -> Tuple[float, int]:
        """The deadline after ``deadline``, and how many ticks were skipped because
        ``now`` is already past them (an overrun)."""
        following = deadline + self.interval
        if following > now:
            return following, 0
        upcoming = self.next_after(now)
        skipped = int(round((upcoming - following) / self.interval))
        return upcoming, skipped


@dataclass(frozen=True)
class DeviceBackoff:
    """A failing device's own backoff: 1, 2, 4 ... intervals, capped."""

    base: float
    cap: float = 300.0
    failures: int = 0
    retry_at: float = 0.0

    def failed(self, now: float) -> DeviceBackoff:
        failures = self.failures + 1
        delay = min(self.base * (2 ** min(failures - 1, 20)), self.cap)
        return replace(self, failures=failures, retry_at=now + delay)

    def succeeded(self) -> DeviceBackoff:
        return replace(self, failures=0, retry_at=0.0)

    def ready(self, now: float) -> bool:
        return now >= self.retry_at
