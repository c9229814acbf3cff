"""RetrySchedule: exact seeded sequences, the cap, Retry-After, exhaustion; classify.

Expected delays are written from the rule in DESIGN.md as literal ranges and
drawn from a second ``random.Random`` with the same seed, never by calling
the schedule's own arithmetic.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from edge_agent.delivery.outcome import Outcome, classify
from edge_agent.options import WriteOptions
from edge_agent.retry import MAX_RETRY_AFTER, RetrySchedule

# The seed's documented ranges for the defaults (5 s, base 2, cap 125 s), in
# seconds; past the cap the delay is random in the band [0.7 * cap, cap)
# (cap_jitter 0.3; the seed waited the cap itself).
DEFAULT_RANGES = [(5, 10), (10, 20), (20, 40), (40, 80), (80, 125), (87.5, 125), (87.5, 125)]
SEED_RANGES = DEFAULT_RANGES[:5] + [(125, 125), (125, 125)]


def run(schedule: RetrySchedule, rng: random.Random, n: int, now: float = 1000.0):
    delays = []
    for _ in range(n):
        delay, schedule = schedule.next(now, rng)
        delays.append(delay)
        now += delay
    return delays, schedule


def test_from_options_converts_milliseconds_to_seconds():
    s = RetrySchedule.from_options(WriteOptions(jitter_interval=250))
    assert (s.retry_interval, s.exponential_base, s.max_retry_delay) == (5.0, 2.0, 125.0)
    assert (s.max_retries, s.max_retry_time, s.jitter_interval) == (5, 180.0, 0.25)
    assert (s.attempt, s.started) == (0, None)


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_default_sequence_is_exact_for_a_seeded_rng(seed):
    delays, _ = run(RetrySchedule.from_options(WriteOptions()), random.Random(seed), 7)
    reference = random.Random(seed)
    expected = []
    for low, high in DEFAULT_RANGES:
        u = reference.random()  # one draw per retry, even at the cap
        expected.append(low + (high - low) * u)
    assert delays == pytest.approx(expected, rel=1e-12, abs=1e-12)
    for delay, (low, high) in zip(delays, DEFAULT_RANGES):
        assert low <= delay <= high
        if low < high:
            assert delay < high


def test_cap_jitter_zero_is_the_seed_exact_cap():
    schedule = dataclasses.replace(RetrySchedule.from_options(WriteOptions()), cap_jitter=0.0)
    delays, _ = run(schedule, random.Random(11), 7)
    reference = random.Random(11)
    assert delays == pytest.approx(
        [lo + (hi - lo) * reference.random() for lo, hi in SEED_RANGES], rel=1e-12)
    assert delays[5:] == [125.0, 125.0]


def test_delays_at_the_cap_stay_random_so_a_fleet_spreads_out():
    # 1000 agents far past the cap: the seed gave every one exactly 125 s.
    at_cap = dataclasses.replace(RetrySchedule(), attempt=40)
    rng = random.Random(3)
    delays = [at_cap.next(0.0, rng)[0] for _ in range(1000)]
    assert all(87.5 <= d < 125.0 for d in delays)
    assert len({round(d, 6) for d in delays}) == 1000
    # spread over the whole band: each tenth of it holds some agents
    tenths = {int((d - 87.5) / 3.75) for d in delays}
    assert tenths == set(range(10))


def test_cap_delay_between_attempts_is_in_the_band():
    rng = random.Random(8)
    reference = random.Random(8)
    s = RetrySchedule()
    values = [s.cap_delay(rng) for _ in range(5)]
    assert values == pytest.approx([87.5 + 37.5 * reference.random() for _ in range(5)],
                                   rel=1e-12)
    assert dataclasses.replace(s, cap_jitter=0.0).cap_delay(rng) == 125.0


def test_nominal_is_the_deterministic_lower_end_capped():
    s = RetrySchedule(retry_interval=1.0, max_retry_delay=10.0)
    assert [s.nominal(k) for k in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert s.nominal(10**6) == 10.0
    with pytest.raises(ValueError):
        s.nominal(0)


def test_literal_values_for_seed_42():
    # Random(42).random() gives 0.6394267984578837, 0.025010755222666936, ...
    delays, _ = run(RetrySchedule.from_options(WriteOptions()), random.Random(42), 3)
    assert delays == pytest.approx([5 + 5 * 0.6394267984578837,
                                    10 + 10 * 0.025010755222666936,
                                    20 + 20 * 0.27502931836911926], rel=1e-12)


def test_cap_cuts_the_upper_end_then_becomes_the_delay():
    # 1 s, base 3, cap 10 s: [1,3) [3,9) [9,10) then the band [7,10)
    options = WriteOptions(retry_interval=1000, exponential_base=3, max_retry_delay=10_000)
    delays, _ = run(RetrySchedule.from_options(options), random.Random(7), 5)
    reference = random.Random(7)
    ranges = [(1, 3), (3, 9), (9, 10), (7, 10), (7, 10)]
    assert delays == pytest.approx(
        [lo + (hi - lo) * reference.random() for lo, hi in ranges], rel=1e-12)
    assert all(d < 10.0 for d in delays[3:])


def test_delay_range_matches_the_documented_table():
    s = RetrySchedule()
    assert [s.delay_range(k) for k in range(1, 8)] == [
        (5, 10), (10, 20), (20, 40), (40, 80), (80, 125), (87.5, 125), (87.5, 125)]
    assert s.delay_range(100_000) == (87.5, 125)  # no overflow after a long outage
    with pytest.raises(ValueError):
        s.delay_range(0)


def test_many_retries_do_not_overflow():
    s = dataclasses.replace(RetrySchedule(), attempt=10_000)
    delay, after = s.next(0.0, random.Random(1))
    assert 87.5 <= delay < 125.0 and after.attempt == 10_001


def test_constant_backoff_with_base_one():
    s = RetrySchedule(retry_interval=2.0, exponential_base=1.0)
    delays, _ = run(s, random.Random(3), 4)
    assert delays == [2.0, 2.0, 2.0, 2.0]


def test_retry_after_wins_when_longer_up_to_its_own_cap():
    s = RetrySchedule()
    u = random.Random(5).random()
    backoff = 5 + 5 * u
    assert s.next(0.0, random.Random(5), retry_after=30.0)[0] == 30.0
    assert s.next(0.0, random.Random(5), retry_after=1.0)[0] == pytest.approx(backoff)
    assert s.next(0.0, random.Random(5), retry_after=None)[0] == pytest.approx(backoff)
    # longer than max_retry_delay (125 s): honoured, not cut to it
    assert s.next(0.0, random.Random(5), retry_after=999.0)[0] == 999.0
    assert s.next(0.0, random.Random(5), retry_after=3 * 3600.0)[0] == 3 * 3600.0
    # capped at MAX_RETRY_AFTER, 6 h as urllib3
    assert MAX_RETRY_AFTER == 21600.0
    assert s.next(0.0, random.Random(5), retry_after=10**9)[0] == 21600.0
    # the schedule advances the same way whichever delay won
    assert s.next(0.0, random.Random(5), retry_after=30.0)[1].attempt == 1


def test_exhausted_after_max_retries():
    s = RetrySchedule.from_options(WriteOptions(max_retries=3))
    rng = random.Random(0)
    seen = []
    for _ in range(4):
        seen.append(s.exhausted(0.0))
        _, s = s.next(0.0, rng)
    assert seen == [False, False, False, True]
    assert s.exhausted(0.0)


def test_exhausted_when_max_retry_time_elapsed_since_first_failure():
    s = RetrySchedule.from_options(WriteOptions(max_retry_time=10_000, max_retries=100))
    assert not s.exhausted(10**9)  # no failure yet: the clock alone exhausts nothing
    _, s = s.next(100.0, random.Random(0))
    assert s.started == 100.0
    _, s = s.next(105.0, random.Random(0))
    assert s.started == 100.0  # the first failure's time is kept
    assert not s.exhausted(109.999)
    assert s.exhausted(110.0)
    assert s.elapsed(107.5) == 7.5


def test_zero_retries_or_zero_time_disable_retry_as_in_the_seed():
    assert RetrySchedule.from_options(WriteOptions(max_retries=0)).exhausted(0.0)
    assert RetrySchedule.from_options(WriteOptions(max_retry_time=0)).exhausted(0.0)


def test_next_keeps_working_past_exhaustion_for_the_durable_agent():
    s = RetrySchedule(max_retries=1)
    _, s = s.next(0.0, random.Random(0))
    assert s.exhausted(0.0)
    delay, s = s.next(0.0, random.Random(0))
    assert 10 <= delay < 20 and s.attempt == 2


def test_schedule_is_immutable_and_a_value():
    s = RetrySchedule()
    delay, after = s.next(50.0, random.Random(1))
    assert (s.attempt, s.started) == (0, None)
    assert (after.attempt, after.started) == (1, 50.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.attempt = 3  # type: ignore[misc]
    assert s == RetrySchedule() and hash(s) == hash(RetrySchedule())
    assert after.reset() == s


def test_jitter_is_in_range_and_exact():
    s = RetrySchedule.from_options(WriteOptions(jitter_interval=2000))
    reference = random.Random(9)
    rng = random.Random(9)
    values = [s.jitter(rng) for _ in range(5)]
    assert values == pytest.approx([2.0 * reference.random() for _ in range(5)], rel=1e-12)
    assert all(0 <= v < 2.0 for v in values)
    assert RetrySchedule().jitter(random.Random(1)) == 0.0


def test_invalid_schedule_values_are_refused():
    with pytest.raises(ValueError, match="retry_interval"):
        RetrySchedule(retry_interval=0)
    with pytest.raises(ValueError, match="exponential_base"):
        RetrySchedule(exponential_base=0.5)
    with pytest.raises(ValueError, match="max_retry_delay"):
        RetrySchedule(max_retry_delay=0)
    with pytest.raises(ValueError, match="cap_jitter"):
        RetrySchedule(cap_jitter=1.5)


# -- what each HTTP answer means (DESIGN.md, "Delivery rules") -------------------

@pytest.mark.parametrize("status, outcome", [
    (200, Outcome.OK), (204, Outcome.OK),
    (400, Outcome.INVALID), (422, Outcome.INVALID),
    (401, Outcome.AUTH), (403, Outcome.AUTH),
    (404, Outcome.NOT_FOUND),
    (413, Outcome.TOO_LARGE),
    (429, Outcome.THROTTLED), (503, Outcome.THROTTLED),
    (500, Outcome.TRANSIENT), (502, Outcome.TRANSIENT), (504, Outcome.TRANSIENT),
    (0, Outcome.TRANSIENT),  # no answer at all
    (301, Outcome.TRANSIENT), (408, Outcome.TRANSIENT), (405, Outcome.TRANSIENT),
])
def test_classify(status, outcome):
    assert classify(status) is outcome
