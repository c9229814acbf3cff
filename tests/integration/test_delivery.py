"""The delivery rules of DESIGN.md, asserted from the fault server's recorded requests."""

from __future__ import annotations

import random

import pytest

from edge_agent.buffer.memqueue import MemoryQueue
from edge_agent.delivery.flusher import Callbacks, Flusher
from edge_agent.delivery.transport import InfluxSettings, Transport
from edge_agent.destination import Destination
from edge_agent.options import WriteOptions
from tests.harness.fault_server import Answer, error_answer

DEST = Destination("b", "o", "ns")


class DeadLetterList:
    def __init__(self) -> None:
        self.entries: list = []

    def add(self, dest, lines, status, message):
        self.entries.append((dest, list(lines), status, message))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(server, durable=True, callbacks=None, **opts):
    options = WriteOptions(**{"batch_size": 100, "retry_interval": 1000, "max_retry_delay": 8000,
                              **opts})
    queue = MemoryQueue()
    transport = Transport(InfluxSettings(url=server.url, api="v2", token="secret-token",
                                         org="o", timeout=2.0))
    dead = DeadLetterList()
    clock = FakeClock()
    flusher = Flusher(queue, transport, options, dead, durable=durable, callbacks=callbacks,
                      clock=clock, rng=random.Random(7))
    return queue, flusher, dead, clock


def lines(n, start=0):
    return [f"m,k=v n={i}i {i}" for i in range(start, start + n)]


def put(queue, batch):
    queue.append(DEST, "\n".join(batch).encode(), len(batch), 0.0)


def test_written_batch_leaves_the_queue(fault_server):
    queue, flusher, _, _ = make(fault_server)
    put(queue, lines(10))
    put(queue, lines(5, 10))
    step = flusher.step()
    assert (step.kind, step.sent) == ("written", 15)
    assert len(queue) == 0 and flusher.step().kind == "empty"
    (req,) = fault_server.write_requests()
    assert req.lines == lines(15)
    assert req.query == {"org": "o", "bucket": "b", "precision": "ns"}
    assert queue.counters.snapshot()["written"] == 15


def test_v2_whole_batch_400_isolates_the_bad_line(fault_server):
    fault_server.reject_lines(lambda line: "n=13i" in line, mode="v2")
    queue, flusher, dead, _ = make(fault_server)
    put(queue, lines(40))
    step = flusher.step()
    assert step.kind == "written" and step.sent == 39 and step.rejected == 1
    assert sorted(fault_server.points) == sorted(ln for ln in lines(40) if "n=13i" not in ln)
    (entry,) = dead.entries
    assert entry[1] == ["m,k=v n=13i 13"] and entry[2] == 400
    assert "failed to parse" in entry[3]
    assert len(queue) == 0
    counts = queue.counters.snapshot()
    assert counts["rejected"] == 1 and counts["written"] == 39


def test_v1_partial_write_bisection_still_delivers_everything_once_stored(fault_server):
    fault_server.reject_lines(lambda line: line.endswith(" 3") or line.endswith(" 7"), mode="v1")
    queue, flusher, dead, _ = make(fault_server)
    put(queue, lines(10))
    step = flusher.step()
    assert step.rejected == 2 and step.sent == 8
    assert set(fault_server.points) == {ln for ln in lines(10)} - {lines(10)[3], lines(10)[7]}
    assert sorted(line for e in dead.entries for line in e[1]) == [lines(10)[3], lines(10)[7]]


def test_413_splits_in_halves(fault_server):
    fault_server.script(error_answer(413, "request too large", "request too large"))
    queue, flusher, dead, _ = make(fault_server)
    put(queue, lines(8))
    step = flusher.step()
    assert step.sent == 8 and not dead.entries
    sizes = [len(r.lines) for r in fault_server.write_requests()]
    assert sizes == [8, 4, 4]


def test_429_retry_after_wins_when_longer_even_past_max_retry_delay(fault_server):
    fault_server.script(error_answer(429, "slow down", retry_after=5),
                        error_answer(503, "busy", retry_after=60))
    queue, flusher, _, clock = make(fault_server)
    put(queue, lines(3))
    first = flusher.step()
    # the server asked for 5 s: waited, spread by up to 25 % (or the slowed pace)
    assert first.kind == "retry" and 5.0 <= first.wait < 7.5
    second = flusher.step()
    # 60 s requested: honoured (up to 6 h), not cut to max_retry_delay (8 s)
    assert 60.0 <= second.wait < 90.0
    third = flusher.step()
    assert third.kind == "written" and len(queue) == 0
    assert queue.counters.snapshot()["retries"] == 2


def test_429_with_retry_after_does_not_escalate_the_schedule(fault_server):
    # A throttling server schedules us: wait what it asks (1 s here), slowed by
    # the drain pace, never the exponential backoff (1-2 s, 2-4 s ...) nor the wait
    # between attempts after max_retries (5.6-8 s).
    fault_server.script(*[error_answer(429, "slow down", retry_after=1) for _ in range(4)])
    queue, flusher, _, _ = make(fault_server, max_retries=2)
    put(queue, lines(3))
    steps = [flusher.step() for _ in range(4)]
    assert [s.kind for s in steps] == ["retry"] * 4
    waits = [s.wait for s in steps]
    assert all(1.0 <= w < 1.5 for w in waits), waits
    assert flusher.step().kind == "written" and len(queue) == 0
    assert queue.counters.snapshot()["retries"] == 4


def test_memory_mode_429_still_counts_towards_max_retries(fault_server):
    fault_server.script(*[error_answer(429, "slow down", retry_after=0.1) for _ in range(2)])
    queue, flusher, _, _ = make(fault_server, durable=False, max_retries=1)
    put(queue, lines(3))
    first = flusher.step()
    assert first.kind == "retry" and 1.0 <= first.wait < 2.0  # max(RA, backoff), as the seed
    assert flusher.step().kind == "dropped"


def test_a_backlog_drains_back_to_back_until_the_latency_rises(fault_server):
    fast = [Answer(204, store=True) for _ in range(5)]
    fault_server.script(*fast, Answer(204, delay=0.5, store=True))
    queue, flusher, _, _ = make(fault_server, batch_size=2)
    for i in range(10):
        put(queue, lines(2, 2 * i))
    waits = [flusher.step().wait for _ in range(6)]
    assert waits[:5] == [0.0] * 5  # back to back: no pause
    assert waits[5] > 0.0  # 0.5 s against ~ms before: the drain slows down
    rest = [flusher.step() for _ in range(4)]
    assert all(s.kind == "written" for s in rest) and len(queue) == 0
    assert len(fault_server.points) == 20


def test_a_throttled_drain_paces_the_batches_after_it(fault_server):
    fault_server.script(error_answer(429, "slow down", retry_after=1))
    queue, flusher, _, _ = make(fault_server, batch_size=2)
    for i in range(4):
        put(queue, lines(2, 2 * i))
    assert flusher.step().kind == "retry"
    after = flusher.step()
    # about one batch per Retry-After (rate 1/s, +0.2 after the success): paused
    assert after.kind == "written" and 0.4 <= after.wait < 1.3


def test_a_retry_after_below_one_second_is_no_schedule_the_backoff_applies(fault_server):
    # "Retry-After: 0" on every answer must not become a loop of instant retries.
    fault_server.script(*[error_answer(429, "slow down", retry_after=0) for _ in range(2)])
    queue, flusher, _, _ = make(fault_server)
    put(queue, lines(1))
    waits = [flusher.step().wait for _ in range(2)]
    assert 1.0 <= waits[0] < 2.0 and 2.0 <= waits[1] < 4.0  # the schedule, escalating
    assert flusher.step().kind == "written"


def test_backoff_sequence_is_exact_with_a_seeded_rng(fault_server):
    fault_server.script(*[error_answer(500, "boom") for _ in range(4)])
    queue, flusher, _, _ = make(fault_server)
    put(queue, lines(1))
    waits = [flusher.step().wait for _ in range(4)]
    rng = random.Random(7)
    expected = []
    for k in range(1, 5):
        low, high = 1.0 * 2 ** (k - 1), min(2.0 ** k, 8.0)
        if low >= 8.0:  # at the cap: the band [0.7 * cap, cap)
            low, high = 5.6, 8.0
        expected.append(low + (high - low) * rng.random())
    assert waits == pytest.approx(expected)
    assert flusher.step().kind == "written"


def test_401_keeps_data_and_reports_a_clear_error(fault_server, caplog):
    fault_server.script(error_answer(401, "unauthorized access", "unauthorized"))
    queue, flusher, _, _ = make(fault_server)
    put(queue, lines(2))
    step = flusher.step()
    assert step.kind == "retry" and len(queue) == 1
    assert "credentials" in caplog.text and "secret-token" not in caplog.text
    assert "401" in queue.counters.snapshot()["last_error"]
    assert flusher.step().kind == "written"


def test_timeouts_and_resets_keep_data(fault_server):
    fault_server.script(Answer(delay=3.0), Answer(reset=True))
    queue, flusher, _, _ = make(fault_server)
    put(queue, lines(2))
    assert flusher.step().kind == "retry"
    assert flusher.step().kind == "retry"
    assert len(queue) == 1
    assert flusher.step().kind == "written"
    assert fault_server.points[-2:] == lines(2)


def test_durable_mode_never_drops_after_max_retries(fault_server):
    fault_server.script(*[error_answer(500, "boom") for _ in range(3)])
    queue, flusher, _, clock = make(fault_server, max_retries=2)
    put(queue, lines(2))
    kinds = [flusher.step() for _ in range(3)]
    assert [s.kind for s in kinds] == ["retry", "retry", "retry"]
    # attempt over: the next starts after a delay in the band below max_retry_delay
    rng = random.Random(7)
    rng.random(), rng.random()  # the two retries' draws
    assert kinds[2].wait == pytest.approx(8.0 * (1 - 0.3 * (1 - rng.random())))
    assert 5.6 <= kinds[2].wait < 8.0
    assert len(queue) == 1
    assert flusher.step().kind == "written"


def test_memory_mode_drops_after_max_retries_and_calls_back(fault_server):
    fault_server.script(*[error_answer(500, "boom") for _ in range(3)])
    errors, retries = [], []
    callbacks = Callbacks(error=lambda conf, data, exc: errors.append((conf, data, exc)),
                          retry=lambda conf, data, exc: retries.append(conf))
    queue, flusher, _, _ = make(fault_server, durable=False, callbacks=callbacks, max_retries=2)
    put(queue, lines(2))
    kinds = [flusher.step().kind for _ in range(3)]
    assert kinds == ["retry", "retry", "dropped"]
    assert len(queue) == 0 and len(retries) == 2
    (conf, data, exc), = errors
    assert conf == ("b", "o", "ns") and data == "\n".join(lines(2)) and exc.status == 500
    assert queue.counters.snapshot()["dropped"] == 2


def test_batches_never_mix_destinations(fault_server):
    queue, flusher, _, _ = make(fault_server)
    put(queue, lines(2))
    queue.append(Destination("other", "o", "s"), b"m v=1i 1", 1, 0.0)
    put(queue, lines(2, 2))
    while flusher.step().kind != "empty":
        pass
    buckets = [(r.query["bucket"], r.query["precision"], len(r.lines))
               for r in fault_server.write_requests()]
    # The memory queue groups a destination's segments across others (issue 12).
    assert buckets == [("b", "ns", 4), ("other", "s", 1)]


def test_route_sends_old_segments_to_the_configured_bucket(fault_server):
    from edge_agent.destination import retarget_to

    queue, flusher, _, _ = make(fault_server)
    flusher.route = retarget_to(DEST)
    queue.append(Destination("typo", "o", "s"), b"m v=1i 1", 1, 0.0)
    assert flusher.step().kind == "written"
    (req,) = fault_server.write_requests()
    assert (req.query["bucket"], req.query["precision"]) == ("b", "s")  # precision kept


def test_drain_can_give_up_at_the_first_failure(fault_server):
    fault_server.script(error_answer(500, "boom"), error_answer(429, "wait", retry_after=0.2))
    queue, flusher, _, _ = make(fault_server)
    put(queue, lines(2))
    assert flusher.drain(30.0, give_up_on_failure=True) is False
    assert len(queue) == 1 and len(fault_server.write_requests()) == 1
    # a server that asks for a short pause is waited for
    assert flusher.drain(30.0, give_up_on_failure=True) is True
    assert len(queue) == 0 and len(fault_server.write_requests()) == 3
