"""Many real flushers draining at once against a server of fixed capacity.

The fault server accepts at most 2000 points/s and answers 429 with
Retry-After above it (InfluxDB Cloud's rate limit). Twenty flushers in
durable mode, each with a backlog, start together: every point must arrive
exactly once, every 429 is counted as a retry, and no agent comes back
sooner than the Retry-After it was given. (Speed is measured in
bench/fleet.py, not here.)
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

from edge_agent.buffer.memqueue import MemoryQueue
from edge_agent.delivery.flusher import Flusher
from edge_agent.delivery.transport import InfluxSettings, Transport
from edge_agent.destination import Destination
from edge_agent.options import WriteOptions
from tests.harness.fault_server import FaultServer

DEST = Destination("fleet", "site", "ns")
AGENTS, POINTS, SEGMENT = 20, 200, 50


def agent_lines(agent: int, start: int, n: int) -> bytes:
    return "\n".join(f"env,agent=a{agent:02d} temp=21.5,count={j}i {1_764_000_000 + j}"
                     for j in range(start, start + n)).encode()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_fleet_drains_through_429s_without_loss_and_honours_retry_after():
    server = FaultServer(token="t")
    server.limit(2000)
    flushers = []
    try:
        for a in range(AGENTS):
            queue = MemoryQueue()
            for start in range(0, POINTS, SEGMENT):
                queue.append(DEST, agent_lines(a, start, SEGMENT), SEGMENT, 0.0)
            transport = Transport(InfluxSettings(url=server.url, api="v2", token="t", org="site"))
            flushers.append(Flusher(queue, transport, WriteOptions(batch_size=100), durable=True,
                                    rng=random.Random(a)))
        for f in flushers:
            f.start()
        wait_for(lambda: all(len(f.queue) == 0 for f in flushers), 120, "the drain")
    finally:
        for f in flushers:
            f.stop(5.0)
        server.close()

    expected = {ln.decode() for a in range(AGENTS) for start in range(0, POINTS, SEGMENT)
                for ln in agent_lines(a, start, SEGMENT).split(b"\n")}
    assert len(server.points) == len(expected) == AGENTS * POINTS
    assert set(server.points) == expected  # all of them, none twice
    requests = server.write_requests()
    refused = [r for r in requests if r.status == 429]
    assert refused, "the capacity was never reached: the test proves nothing"
    counters = [f.queue.counters.snapshot() for f in flushers]
    assert sum(c["written"] for c in counters) == AGENTS * POINTS
    assert sum(c["retries"] for c in counters) == len(refused)
    by_agent = defaultdict(list)
    for r in requests:
        by_agent[r.lines[0].split(",")[1]].append(r)
    for seq in by_agent.values():
        seq.sort(key=lambda r: r.received)
        for before, after in zip(seq, seq[1:]):
            if before.status == 429:
                # Retry-After is whole seconds (>= 1); 50 ms of slack for the clocks
                assert after.received - before.received >= 1.0 - 0.05


def test_a_queueing_server_answers_late_instead_of_429():
    server = FaultServer()
    server.limit(1000, burst=100, queue=True)
    try:
        transport = Transport(InfluxSettings(url=server.url, api="v2", token="t", org="site"))
        results = [transport.write(DEST, agent_lines(0, 100 * k, 100)) for k in range(3)]
    finally:
        server.close()
    assert [r.status for r in results] == [204, 204, 204]
    assert len(server.points) == 300
    held = [delay for _, _, _, delay in server.answers]
    assert held[0] == 0.0 and held[1] > 0.0 and held[2] > 0.0  # in debt: held back
