"""Grid and DeviceBackoff: exact deadlines, alignment, no drift, overruns, jitter."""

from __future__ import annotations

import calendar
import math
import random

import pytest

from edge_agent.sources.schedule import MAX_JITTER_FRACTION, DeviceBackoff, Grid


def utc(*parts: int) -> float:
    return float(calendar.timegm((*parts, 0, 0, 0)))


# -- deadlines and alignment ---------------------------------------------------


def test_next_after_is_strictly_after() -> None:
    grid = Grid(10.0)
    assert grid.next_after(1003.2) == 1010.0
    assert grid.next_after(1010.0) == 1020.0
    assert grid.next_after(1009.999) == 1010.0


def test_round_interval_aligns_to_the_wall_clock() -> None:
    start = utc(2024, 5, 1, 12, 0, 3) + 0.7  # 12:00:03.7
    grid = Grid.for_source(10.0, round_interval=True, start=start)
    first = grid.next_after(start)
    assert first == utc(2024, 5, 1, 12, 0, 10)
    assert grid.advance(first, first + 0.2) == (utc(2024, 5, 1, 12, 0, 20), 0)
    minute = Grid.for_source(60.0, True, start).next_after(start)
    assert minute == utc(2024, 5, 1, 12, 1, 0)


def test_without_round_interval_the_grid_starts_at_the_source() -> None:
    start = utc(2024, 5, 1, 12, 0, 3) + 0.7
    grid = Grid.for_source(10.0, round_interval=False, start=start)
    assert grid.next_after(start) == start + 10.0
    assert grid.deviation(start + 30.0) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("interval", [0.0, -1.0, math.nan, math.inf])
def test_bad_intervals_are_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        Grid(interval)


def test_no_drift_over_many_ticks_with_a_fake_clock() -> None:
    """Each read takes a while; deadlines stay exactly on anchor + k * interval."""
    interval = 0.1
    start = 1_700_000_000.0
    grid = Grid.for_source(interval, True, start)
    deadline = grid.next_after(start)
    first = grid.tick_of(deadline)
    naive = deadline  # what ``deadline += interval`` would give
    ticks = 200_000  # 5.5 hours of polls at 10 Hz
    for _ in range(ticks):
        now = deadline + 0.37 * interval  # the read finished, well within the interval
        deadline, skipped = grid.advance(deadline, now)
        naive += interval
        assert skipped == 0
    assert grid.tick_of(deadline) == first + ticks
    assert deadline == grid.at(first + ticks)
    assert abs(deadline - (first + ticks) * interval) < 1e-6
    assert grid.deviation(deadline) < 1e-6
    # the accumulated sum has drifted: the computed grid is what keeps the schedule
    assert abs(naive - deadline) > 1e-6


def test_deadlines_are_exact_on_an_integer_grid() -> None:
    grid = Grid(1.0)
    deadline = 100.0
    seen = []
    for _ in range(1, 1001):
        deadline, skipped = grid.advance(deadline, deadline + 0.999)
        seen.append(deadline)
        assert skipped == 0
    assert seen == [100.0 + k for k in range(1, 1001)]


# -- overruns ------------------------------------------------------------------


def test_an_overrun_skips_and_counts_the_missed_ticks() -> None:
    grid = Grid(1.0)
    # the poll at 10 ended at 13.4: ticks 11, 12, 13 are gone, 14 is next
    assert grid.advance(10.0, 13.4) == (14.0, 3)
    assert grid.advance(10.0, 11.5) == (12.0, 1)
    assert grid.advance(10.0, 10.9) == (11.0, 0)


def test_a_tick_exactly_at_now_is_due_not_skipped() -> None:
    grid = Grid(1.0)
    assert grid.advance(10.0, 11.0) == (11.0, 0)
    assert grid.advance(10.0, 12.0) == (12.0, 1)


def test_overrun_on_an_aligned_grid_lands_on_the_grid() -> None:
    grid = Grid.for_source(0.25, True, 0.0)
    deadline, skipped = grid.advance(1000.0, 1001.1)
    assert (deadline, skipped) == (1001.25, 4)
    assert grid.deviation(deadline) == 0.0


# -- jitter --------------------------------------------------------------------


def test_jitter_stays_within_its_bounds() -> None:
    grid = Grid(10.0)
    rng = random.Random(7)
    delays = [grid.jittered(100.0, 2.0, rng) - 100.0 for _ in range(5000)]
    assert min(delays) >= 0.0
    assert max(delays) < 2.0
    assert max(delays) > 1.9 and min(delays) < 0.1  # it does spread over the range


def test_jitter_is_capped_below_the_next_tick() -> None:
    grid = Grid(1.0)
    rng = random.Random(3)
    cap = 1.0 * MAX_JITTER_FRACTION
    delays = [grid.jittered(5.0, 30.0, rng) - 5.0 for _ in range(2000)]
    assert max(delays) < cap
    assert max(delays) > cap * 0.95


def test_no_jitter_is_exact() -> None:
    assert Grid(1.0).jittered(5.0, 0.0, random.Random(1)) == 5.0


# -- device backoff ------------------------------------------------------------


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    backoff = DeviceBackoff(base=1.0, cap=10.0)
    delays = []
    t = 100.0
    for _ in range(6):
        backoff = backoff.failed(t)
        delays.append(backoff.retry_at - t)
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.failures == 6


def test_backoff_ready_and_reset() -> None:
    backoff = DeviceBackoff(base=2.0).failed(50.0)
    assert not backoff.ready(51.9)
    assert backoff.ready(52.0)
    backoff = backoff.failed(52.0)  # 4 s now
    assert not backoff.ready(55.9)
    assert backoff.ready(56.0)
    fresh = backoff.succeeded()
    assert fresh.failures == 0 and fresh.ready(0.0)
    assert fresh.failed(60.0).retry_at == 62.0  # starts again from the base


def test_backoff_retry_lands_on_a_grid_tick_despite_float_error() -> None:
    grid = Grid.for_source(0.1, True, 0.0)
    tick = grid.tick_of(1_700_000_000.3)
    backoff = DeviceBackoff(base=0.1).failed(grid.at(tick))
    assert backoff.ready(grid.at(tick + 1))
    assert not backoff.ready(grid.at(tick + 1) - 0.001)


def test_huge_failure_counts_do_not_overflow() -> None:
    backoff = DeviceBackoff(base=1.0, cap=300.0, failures=10_000)
    assert backoff.failed(0.0).retry_at == 300.0
