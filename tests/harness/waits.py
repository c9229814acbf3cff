"""Waiting on a condition with a deadline: the one way the tests wait; and a fake clock.

Never a fixed sleep before a check: on a loaded 2-core machine a sleep is
either too short (a flaky failure) or too long (a slow suite). The timeouts
are many times what a step needs; they are not speed asserts.
"""

from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["FakeClock", "wait_for"]


def wait_for(condition: Callable[[], Any], timeout: float = 20.0,
             what: str = "the condition", interval: float = 0.02) -> Any:
    """Poll until ``condition()`` is truthy and return its value; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class FakeClock:
    """A clock the test moves: ``clock()`` is ``t``, ``advance(s)`` adds to it."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
