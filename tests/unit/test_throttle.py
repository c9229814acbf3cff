"""Repeated log lines are rate-limited per key, with a count of what was held back."""

from __future__ import annotations

import logging
from typing import List

import pytest

from edge_agent.throttle import LogThrottle


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def messages(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records]


def test_first_line_at_once_then_one_per_interval_with_the_held_count(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttle = LogThrottle(logging.getLogger("t.throttle"), 60.0, clock)
    with caplog.at_level(logging.WARNING, "t.throttle"):
        for _ in range(5 * 60):  # 5 a second for a minute
            throttle.warning("overrun", "climate: a read took %.1fs", 0.3)
            clock.t += 0.2
        clock.t = 160.0  # a minute after the first
        throttle.warning("overrun", "climate: a read took %.1fs", 0.3)
    assert messages(caplog) == ["climate: a read took 0.3s",
                                "climate: a read took 0.3s (299 more in the last 60 s)"]


def test_keys_are_independent(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttle = LogThrottle(logging.getLogger("t.throttle"), 60.0, clock)
    with caplog.at_level(logging.WARNING, "t.throttle"):
        assert throttle.warning("a", "one")
        assert throttle.warning("b", "two")
        assert not throttle.warning("a", "one")
    assert messages(caplog) == ["one", "two"]
    assert throttle.held("a") == 1 and throttle.held("b") == 0
