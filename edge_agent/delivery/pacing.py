"""How fast a backlog drains: an AIMD limit on batches per second.

After an outage every agent of a fleet has a backlog, and each would send it
back to back as fast as the server answers. :class:`DrainPace` slows one
agent down when the server shows strain, so ten thousand agents draining
together share the server instead of knocking it over again:

* a 429/503 (:meth:`throttled`) halves the rate (multiplicative decrease),
  once per run of refusals: an agent already waiting is not slowed again for
  the refusals of the same congestion (as TCP cuts once per window);
* a write that succeeds but took much longer than the fastest one seen, and
  longer than the one before (:meth:`written` with a rising latency), cuts the
  rate by a smaller factor; a latency that stays high but stops rising holds it
  (cutting on every slow answer spirals the rate down: measured, the drain
  then took 1.41x the ideal against a server that queues);
* any other success adds ``increase`` batches/s per second of sending
  (additive increase), and once the rate is above what back-to-back sends
  reach, the limit is lifted: a lone agent drains at full speed.

The rate starts unlimited. Like :class:`~edge_agent.retry.RetrySchedule` it
is an immutable value with no clock or global random source: the caller
passes the latency and a ``random.Random``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Optional

__all__ = ["DrainPace"]


@dataclass(frozen=True)
class DrainPace:
    """The drain rate limit of one agent; ``rate`` is batches/s (inf = no limit)."""

    rate: float = math.inf
    min_rate: float = 1 / 125.0  # never slower than one batch per max_retry_delay
    increase: float = 0.2  # batches/s added per second of sending
    decrease: float = 0.5  # on 429/503
    latency_decrease: float = 0.8  # on a rising latency
    latency_factor: float = 3.0  # "rising": above latency_factor x the base latency ...
    latency_slack: float = 0.05  # ... plus this many seconds (noise on a loaded machine)
    base_latency: Optional[float] = None  # the fastest answer seen, slowly forgotten
    last_latency: Optional[float] = None  # the previous success's
    cut: bool = False  # the rate was cut since the last success

    def pause(self, rng: random.Random, spent: float = 0.0) -> float:
        """Seconds to wait before the next batch of a backlog, so batches *start*
        at most ``rate`` times a second: ``1 / rate`` spread uniformly over
        ``[0.5, 1.5)`` of it (agents do not send in step), less the ``spent``
        seconds the last request took. One draw from ``rng`` when limited."""
        if math.isinf(self.rate):
            return 0.0
        return max(0.0, (0.5 + rng.random()) / self.rate - spent)

    def written(self, latency: float) -> DrainPace:
        """After a success that took ``latency`` seconds."""
        latency = max(latency, 1e-4)
        base = latency if self.base_latency is None else min(latency, self.base_latency * 1.01)
        high = latency > base * self.latency_factor + self.latency_slack
        rising = self.last_latency is None or latency > self.last_latency * 1.1
        if high and rising:
            return replace(self, base_latency=base, last_latency=latency, cut=False,
                           rate=self._cut(latency, self.latency_decrease))
        if high:  # still high, no longer rising: hold the rate
            return replace(self, base_latency=base, last_latency=latency, cut=False)
        if math.isinf(self.rate):
            return replace(self, base_latency=base, last_latency=latency, cut=False)
        rate = self.rate + self.increase / self.rate  # one batch took ~1/rate seconds
        if rate * base >= 1.0:  # faster than back-to-back sends: no limit needed
            rate = math.inf
        return replace(self, base_latency=base, last_latency=latency, rate=rate, cut=False)

    def throttled(self, latency: float, retry_after: Optional[float] = None) -> DrainPace:
        """After a 429/503 (the server is over its capacity). A Retry-After of
        ``s`` seconds also caps the rate at one batch per ``s``."""
        rate = self.rate if self.cut else self._cut(latency, self.decrease)
        if retry_after is not None and retry_after > 0:
            rate = max(self.min_rate, min(rate, 1.0 / retry_after))
        return replace(self, rate=rate, cut=True)

    def _cut(self, latency: float, factor: float) -> float:
        # from no limit: start from the back-to-back rate that got us here
        current = self.rate if not math.isinf(self.rate) else 1.0 / max(latency, 1e-3)
        return max(self.min_rate, current * factor)
