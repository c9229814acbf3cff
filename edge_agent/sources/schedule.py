"""When to poll: deadlines on a fixed grid, so polls never drift.

The next deadline is computed from the grid (``anchor + k * interval``, the
anchor being 0 -- the epoch, so :00, :10, ... -- when ``round_interval`` is on,
else the source's start), never as ``sleep(interval)`` after a read, and never
by adding ``interval`` again and again (float error would pile up). A read
that overruns its interval skips the ticks it missed (counted) instead of
piling up. A failing device waits on its own backoff without moving the grid.
Everything here is pure: the clock and the random source are passed in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Tuple

from ..retry import RetrySchedule

__all__ = ["Grid", "DeviceBackoff", "MAX_JITTER_FRACTION"]

#: collection jitter is capped at this fraction of the interval, so a jittered
#: poll can never reach the next tick (which would count as an overrun)
MAX_JITTER_FRACTION = 0.5


@dataclass(frozen=True)
class Grid:
    """The poll grid of one source: tick ``k`` is at ``anchor + k * interval``."""

    interval: float
    anchor: float = 0.0  # 0 = aligned to the wall clock (:00, :10, ...)

    def __post_init__(self) -> None:
        if not (self.interval > 0 and math.isfinite(self.interval)):
            raise ValueError(f"interval must be a positive number of seconds, got {self.interval}")

    @classmethod
    def for_source(cls, interval: float, round_interval: bool, start: float) -> Grid:
        return cls(interval, 0.0 if round_interval else start)

    def at(self, tick: int) -> float:
        """The time of tick ``tick``."""
        return self.anchor + tick * self.interval

    def tick_of(self, deadline: float) -> int:
        """The tick number of a grid time (rounded: float error must not shift it)."""
        return round((deadline - self.anchor) / self.interval)

    def next_after(self, now: float) -> float:
        """The first grid time strictly after ``now``."""
        k = math.floor((now - self.anchor) / self.interval) + 1
        if self.at(k - 1) > now:  # float rounding put us one tick too far
            k -= 1
        elif self.at(k) <= now:
            k += 1
        return self.at(k)

    def advance(self, deadline: float, now: float) -> Tuple[float, int]:
        """The deadline after ``deadline``, and how many ticks were skipped because
        ``now`` is already past them (an overrun). A tick exactly at ``now`` is
        still due, not skipped."""
        following = self.at(self.tick_of(deadline) + 1)
        if following >= now:
            return following, 0
        upcoming = self.next_after(now)
        if self.at(self.tick_of(upcoming) - 1) == now:  # a tick exactly at now is due
            upcoming = now
        skipped = self.tick_of(upcoming) - self.tick_of(following)
        return upcoming, skipped

    def deviation(self, t: float) -> float:
        """Distance of ``t`` from the nearest grid time (for tests and the bench)."""
        return abs(t - self.at(self.tick_of(t)))

    def jittered(self, deadline: float, jitter: float, rng: random.Random) -> float:
        """``deadline`` plus a random delay in ``[0, jitter)``, the jitter capped at
        :data:`MAX_JITTER_FRACTION` of the interval."""
        cap = min(jitter, self.interval * MAX_JITTER_FRACTION)
        if cap <= 0:
            return deadline
        return deadline + rng.random() * cap


@dataclass(frozen=True)
class DeviceBackoff:
    """A failing device's own backoff: 1, 2, 4 ... ``base`` after each failure, capped
    (:meth:`RetrySchedule.nominal`: no randomness, so retries stay on the grid).

    ``failed(now)`` should get the *scheduled* time of the failed poll, so a
    retry lands on a grid tick instead of just missing it.
    """

    base: float
    cap: float = 300.0
    failures: int = 0
    retry_at: float = 0.0

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row."""
        if failures <= 0:
            return 0.0
        return RetrySchedule(retry_interval=self.base, max_retry_delay=self.cap).nominal(failures)

    def failed(self, now: float) -> DeviceBackoff:
        failures = self.failures + 1
        return replace(self, failures=failures, retry_at=now + self.delay(failures))

    def succeeded(self) -> DeviceBackoff:
        return replace(self, failures=0, retry_at=0.0)

    def ready(self, now: float) -> bool:
        # a microsecond of slack: a retry due at a grid tick must not miss it by float error
        return self.failures == 0 or now >= self.retry_at - 1e-6
