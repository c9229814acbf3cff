"""A virtual clock for tests: ``sleep`` advances time instantly.

Hand the same clock to a driver (``sleep=clock.sleep``) and to the emulators
(``clock=clock.now``): the driver's waits then count against the emulated
conversion times exactly, and a test runs in microseconds.
"""

from __future__ import annotations

import threading


class VirtualClock:
    """Monotonic time that moves only when told to (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept = 0.0

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        self.slept += max(0.0, seconds)
