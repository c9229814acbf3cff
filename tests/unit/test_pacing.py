"""DrainPace: the AIMD limit on a backlog drain, with exact values."""

from __future__ import annotations

import math
import random

import pytest

from edge_agent.delivery.pacing import DrainPace


def test_starts_unlimited_and_draws_nothing() -> None:
    pace = DrainPace()
    rng = random.Random(1)
    assert pace.pause(rng) == 0.0
    assert rng.random() == random.Random(1).random()  # no number was drawn
    assert math.isinf(pace.written(0.01).rate)  # fast successes keep it unlimited


def test_throttle_halves_the_back_to_back_rate_once_per_run_of_refusals() -> None:
    pace = DrainPace().throttled(0.004)  # 250 batches/s back to back -> 125
    assert pace.rate == pytest.approx(125.0)
    assert pace.throttled(0.004).rate == pytest.approx(125.0)  # same congestion: once
    assert pace.written(0.004).throttled(0.004).rate == pytest.approx((125 + 0.2 / 125) / 2)


def test_retry_after_caps_the_rate_at_one_batch_per_retry_after() -> None:
    assert DrainPace().throttled(0.004, retry_after=2.0).rate == pytest.approx(0.5)
    assert DrainPace(rate=0.2).throttled(0.004, retry_after=2.0).rate == pytest.approx(0.1)


def test_rate_never_falls_below_the_floor() -> None:
    pace = DrainPace(rate=0.01, min_rate=0.008)
    assert pace.throttled(0.01).rate == 0.008


def test_pause_is_spread_around_one_over_rate() -> None:
    pace = DrainPace(rate=2.0)
    rng, reference = random.Random(5), random.Random(5)
    pauses = [pace.pause(rng) for _ in range(4)]
    assert pauses == pytest.approx([(0.5 + reference.random()) / 2.0 for _ in range(4)])
    assert all(0.25 <= p < 0.75 for p in pauses)


def test_rising_latency_cuts_the_rate() -> None:
    pace = DrainPace()
    for _ in range(5):
        pace = pace.written(0.010)
    assert pace.base_latency == pytest.approx(0.010) and math.isinf(pace.rate)
    slow = pace.written(0.200)  # > 3 x 10 ms + 50 ms
    assert slow.rate == pytest.approx(0.8 / 0.200)
    assert slow.base_latency == pytest.approx(0.010, rel=0.02)
    # a little slower is load noise, not congestion
    assert math.isinf(pace.written(0.070).rate)


def test_additive_increase_then_the_limit_is_lifted() -> None:
    pace = DrainPace(rate=1.0, base_latency=0.1)
    pace = pace.written(0.1)
    assert pace.rate == pytest.approx(1.2)  # + 0.2 batches/s per second of sending
    rates = []
    for _ in range(300):
        pace = pace.written(0.1)
        rates.append(pace.rate)
    assert math.isinf(rates[-1])  # above 1 / base latency: no limit needed
    finite = [r for r in rates if not math.isinf(r)]
    assert finite == sorted(finite) and finite[-1] < 10.0


def test_base_latency_is_slowly_forgotten() -> None:
    pace = DrainPace().written(0.010)
    for _ in range(100):
        pace = pace.written(0.030)
    assert 0.010 < pace.base_latency < 0.030


def test_pause_counts_the_time_the_request_took() -> None:
    # rate 0.5/s: batches start every ~2 s; a request that took 1.5 s leaves ~0.5 s
    pace = DrainPace(rate=0.5)
    rng, reference = random.Random(2), random.Random(2)
    assert pace.pause(rng, spent=1.5) == pytest.approx(
        max(0.0, (0.5 + reference.random()) / 0.5 - 1.5))
    assert pace.pause(random.Random(2), spent=10.0) == 0.0


def test_a_latency_that_stays_high_holds_the_rate() -> None:
    pace = DrainPace().written(0.010)
    slow = pace.written(0.500)  # high and rising: cut
    held = slow.written(0.500)  # high, not rising: held (no spiral down)
    assert held.rate == slow.rate
    assert held.written(0.900).rate == pytest.approx(slow.rate * 0.8)  # rising again: cut
