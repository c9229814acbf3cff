"""The retry schedule: how long to wait before resending a failed batch.

The k-th retry (k = 1, 2, ...) waits a random time in
``[retry_interval * base**(k-1), retry_interval * base**k)`` with the upper
end capped at ``max_retry_delay`` (the seed's rule). Once the lower end
passes the cap, the seed waited exactly the cap; here the delay stays random
in a band below it, ``[cap * (1 - cap_jitter), cap)`` (default 30 %), in the
spirit of "full jitter": with an exact cap, agents that fail together keep
the phases their first few random delays gave them (a bell), and after a long
outage their retries arrive in a peak; random delays at the cap spread the
phases evenly (bench/fleet.py measures it). ``cap_jitter=0`` is the seed.

A server's Retry-After wins when it is longer than the backoff, and is
honoured up to its own cap, :data:`MAX_RETRY_AFTER` (6 h, as urllib3), not
cut to ``max_retry_delay``: a server that asks for ten minutes gets ten.

The schedule is exhausted after ``max_retries`` retries or ``max_retry_time``
after the first failure (in library mode the batch is then dropped; in the
durable agent one delivery attempt ends and the data stays on disk).

Like urllib3's ``Retry``, the schedule is an immutable value: ``next()``
returns the delay and a new schedule. It never reads a clock or a global
random source; the caller passes ``now`` and a ``random.Random``, so tests
assert exact sequences.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional, Tuple

if TYPE_CHECKING:
    from .options import WriteOptions

__all__ = ["MAX_RETRY_AFTER", "RetrySchedule"]

#: the longest Retry-After honoured, in seconds (urllib3's DEFAULT_RETRY_AFTER_MAX)
MAX_RETRY_AFTER = 6 * 3600.0


@dataclass(frozen=True)
class RetrySchedule:
    """Backoff state of one batch. Times are seconds (WriteOptions' are milliseconds).

    ``attempt`` counts the retries scheduled so far (0 = none yet);
    ``started`` is the clock value of the first failure (None before it);
    ``cap_jitter`` is the width of the random band below the cap, as a
    fraction of it (0 = the seed's exact cap). Every ``next()``, ``cap_delay()``
    and ``jitter()`` call draws exactly one number from the ``rng`` it is given.
    """

    retry_interval: float = 5.0
    exponential_base: float = 2.0
    max_retry_delay: float = 125.0
    max_retries: int = 5
    max_retry_time: float = 180.0
    jitter_interval: float = 0.0
    cap_jitter: float = 0.3
    attempt: int = 0
    started: Optional[float] = None

    def __post_init__(self) -> None:
        if not self.retry_interval > 0:
            raise ValueError(f"retry_interval must be greater than 0, got {self.retry_interval!r}")
        if not self.exponential_base >= 1:
            raise ValueError(f"exponential_base must be at least 1, got {self.exponential_base!r}")
        if not self.max_retry_delay > 0:
            raise ValueError(
                f"max_retry_delay must be greater than 0, got {self.max_retry_delay!r}")
        if self.max_retries < 0 or self.attempt < 0:
            raise ValueError("max_retries and attempt must not be negative")
        if not self.max_retry_time >= 0 or not self.jitter_interval >= 0:
            raise ValueError("max_retry_time and jitter_interval must not be negative")
        if not 0 <= self.cap_jitter <= 1:
            raise ValueError(f"cap_jitter must be between 0 and 1, got {self.cap_jitter!r}")

    @classmethod
    def from_options(cls, options: WriteOptions) -> RetrySchedule:
        """A fresh schedule from WriteOptions (milliseconds there, seconds here)."""
        return cls(
            retry_interval=options.retry_interval / 1000.0,
            exponential_base=float(options.exponential_base),
            max_retry_delay=options.max_retry_delay / 1000.0,
            max_retries=options.max_retries,
            max_retry_time=options.max_retry_time / 1000.0,
            jitter_interval=options.jitter_interval / 1000.0,
        )

    def nominal(self, k: int) -> float:
        """The k-th delay without randomness: ``retry_interval * base**(k-1)``, capped.

        For waits that must land on a poll grid (a failing device's backoff)
        and for plain doubling retries; the lower end of :meth:`delay_range`
        below the cap.
        """
        if k < 1:
            raise ValueError(f"retries are counted from 1, got {k}")
        try:
            return min(self.retry_interval * self.exponential_base ** (k - 1),
                       self.max_retry_delay)
        except OverflowError:  # a very long outage: far past the cap anyway
            return self.max_retry_delay

    def delay_range(self, k: int) -> Tuple[float, float]:
        """Bounds ``(low, high)`` of the k-th retry's delay, after the cap.

        Below the cap, the seed's ``[low, low * base)`` with ``high`` capped;
        once ``low`` reaches the cap, the band ``[cap * (1 - cap_jitter), cap)``.
        """
        low = self.nominal(k)
        cap = self.max_retry_delay
        if low >= cap:
            return cap * (1.0 - self.cap_jitter), cap
        return low, min(low * self.exponential_base, cap)

    def cap_delay(self, rng: random.Random) -> float:
        """A delay drawn from the band below the cap (one draw): what the k-th
        retry waits once past the cap, and what a durable writer waits between
        two delivery attempts."""
        cap = self.max_retry_delay
        return cap * (1.0 - self.cap_jitter * (1.0 - rng.random()))

    def next(self, now: float, rng: random.Random,
             retry_after: Optional[float] = None) -> Tuple[float, RetrySchedule]:
        """The delay (seconds) before the next retry, and the schedule after it.

        ``now`` is the caller's clock (the first call records it as ``started``);
        ``retry_after`` is the server's requested wait, used when longer than
        the backoff, up to :data:`MAX_RETRY_AFTER` (not ``max_retry_delay``).
        Works past exhaustion too (the delay stays in the band below the cap),
        so a durable writer can keep using it between delivery attempts.
        """
        attempt = self.attempt + 1
        low, high = self.delay_range(attempt)
        delay = low + (high - low) * rng.random()
        if retry_after is not None and retry_after > delay:
            delay = min(float(retry_after), MAX_RETRY_AFTER)
        started = now if self.started is None else self.started
        return delay, replace(self, attempt=attempt, started=started)

    def exhausted(self, now: float) -> bool:
        """True when no retry is left: ``max_retries`` made, or ``max_retry_time`` used.

        As in the seed, ``max_retries == 0`` or ``max_retry_time == 0`` means
        retry is disabled: exhausted from the start.
        """
        if self.max_retries == 0 or self.max_retry_time == 0:
            return True
        if self.attempt >= self.max_retries:
            return True
        return self.started is not None and now - self.started >= self.max_retry_time

    def elapsed(self, now: float) -> float:
        """Seconds since the first failure (0 before it)."""
        return 0.0 if self.started is None else max(0.0, now - self.started)

    def jitter(self, rng: random.Random) -> float:
        """A random delay in ``[0, jitter_interval)`` seconds, taken before a batch."""
        return self.jitter_interval * rng.random()

    def reset(self) -> RetrySchedule:
        """The same policy with no retries made (after a success)."""
        return replace(self, attempt=0, started=None)
