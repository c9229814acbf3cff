"""bench/fleet.py (b): a few hundred real flushers draining against one server.

    .venv/bin/python bench/fleet.py drain [--agents 300] [--points 2000] [--capacity 20000]

The fault server (tests/harness/fault_server.py) runs in this process with a
fixed capacity in points/s (a token bucket, one second of burst): a write
above it is answered 429 with Retry-After (whole seconds, at least 1). A
child process runs ``--agents`` real :class:`Flusher` threads (durable mode,
the agent's defaults but ``batch_size``), each with a backlog of ``--points``
distinct points in the memory queue (segments of 100, as the durable writer
seals them), all started at once: the moment a site's server comes back and
every agent's first retry succeeds. Two processes, so the server and the
flushers each get one of the 2 cores.

Measured: time from the first request to the last point accepted, against
the ideal (total points / capacity; target <= 1.3x); every point accepted
exactly once (none lost, none twice); the peak request rate the server saw
in one second, accepted and refused; 429s in all. ``--no-pacing`` replaces
the drain pace with one that never slows down (Retry-After still honoured),
to show what the AIMD pace buys.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

__all__ = ["run_drain"]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.buffer.memqueue import MemoryQueue  # noqa: E402
from edge_agent.delivery.flusher import Flusher  # noqa: E402
from edge_agent.delivery.pacing import DrainPace  # noqa: E402
from edge_agent.delivery.transport import InfluxSettings, Transport  # noqa: E402
from edge_agent.destination import Destination  # noqa: E402
from edge_agent.options import WriteOptions  # noqa: E402
from tests.harness.fault_server import FaultServer  # noqa: E402

T0 = 1_764_000_000_000_000_000
SEGMENT = 100
DEST = Destination("fleet", "site", "ns")


class _NoPace(DrainPace):
    """The drain without AIMD: never slows down."""

    def written(self, latency: float) -> DrainPace:
        return self

    def throttled(self, latency: float, retry_after: Any = None) -> DrainPace:
        return self


def agent_lines(agent: int, start: int, n: int) -> bytes:
    return "\n".join(f"env,agent=a{agent:04d},room=r{j % 4} temp={18 + j % 97 / 10},count={j}i "
                     f"{T0 + j * 1_000_000_000}" for j in range(start, start + n)).encode()


def child(url: str, agents: int, points: int, batch_size: int, pacing: bool) -> None:
    import logging
    import random

    logging.getLogger("edge_agent").setLevel(logging.ERROR)  # 429s are the normal flow here
    options = WriteOptions(batch_size=batch_size)
    flushers: List[Flusher] = []
    for a in range(agents):
        queue = MemoryQueue()
        for start in range(0, points, SEGMENT):
            n = min(SEGMENT, points - start)
            queue.append(DEST, agent_lines(a, start, n), n, 0.0)
        transport = Transport(InfluxSettings(url=url, api="v2", token="fleet-token",
                                             org="site", timeout=10.0))
        flusher = Flusher(queue, transport, options, durable=True, rng=random.Random(a))
        if not pacing:
            flusher._pace = _NoPace()
        flushers.append(flusher)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()  # go
    for f in flushers:
        f.start()
    while any(len(f.queue) for f in flushers):
        time.sleep(0.05)
    for f in flushers:
        f.stop(5.0)
    totals: Counter = Counter()
    for f in flushers:
        snap = f.queue.counters.snapshot()
        for key in ("written", "retries", "write_errors", "dropped"):
            totals[key] += int(snap.get(key, 0) or 0)
    sys.stdout.write(json.dumps(dict(totals)) + "\n")
    sys.stdout.flush()


def run_drain(agents: int, points: int, capacity: float, batch_size: int,
              pacing: bool = True, queue: bool = False) -> Dict[str, Any]:
    total = agents * points
    server = FaultServer(token="fleet-token", record=False)
    server.limit(capacity, queue=queue)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", server.url, str(agents), str(points),
         str(batch_size), "1" if pacing else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    assert proc.stdin is not None and proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("the flusher process did not start")
    server.limit(capacity, queue=queue)  # a full bucket at the start, not one from set-up
    proc.stdin.write("go\n")
    proc.stdin.flush()
    ideal = total / capacity
    deadline = time.monotonic() + ideal * 10 + 60
    while len(server.points) < total and time.monotonic() < deadline:
        time.sleep(0.1)
    line = proc.stdout.readline()
    proc.wait(30)
    counts = json.loads(line) if line.strip() else {}
    answers = list(server.answers)
    server.close()
    first = answers[0][0]
    accepted = [t + held for t, status, _, held in answers if 200 <= status < 300]
    elapsed = max(accepted) - first
    per_second = Counter(int(t - first) for t, _, _, _ in answers)
    per_second_ok = Counter(int(t - first) for t in accepted)
    throttled = sum(1 for _, status, _, _ in answers if status == 429)
    held = sorted(h for _, status, _, h in answers if 200 <= status < 300)
    unique = len(set(server.points))
    result = {
        "agents": agents, "points": total, "capacity": capacity, "batch_size": batch_size,
        "pacing": pacing, "queue": queue, "elapsed": elapsed, "ideal": ideal,
        "ratio": elapsed / ideal,
        "accepted_points": len(server.points), "unique_points": unique,
        "lost": total - unique, "duplicates": len(server.points) - unique,
        "requests": len(answers), "throttled": throttled,
        "peak_requests_per_s": max(per_second.values()),
        "mean_requests_per_s": len(answers) / max(elapsed, 1e-9),
        "peak_accepted_per_s": max(per_second_ok.values()),
        "queued_p50": held[len(held) // 2], "queued_p99": held[int(len(held) * 0.99)],
        "queued_max": held[-1],
        "flushers": counts,
        "accepted_per_5s": [sum(n for t, status, n, h in answers if 200 <= status < 300
                                and k <= (t + h - first) / 5 < k + 1)
                            for k in range(int(elapsed // 5) + 1)],
    }
    print(f"| {agents} | {total} | {capacity:g} | {batch_size} | "
          f"{'AIMD' if pacing else 'none'} | {'queue' if queue else '429'} | "
          f"{elapsed:.1f} s | {ideal:.1f} s | "
          f"{elapsed / ideal:.2f}x | {total - unique} lost, {len(server.points) - unique} twice | "
          f"{result['peak_requests_per_s']} ({math.ceil(result['mean_requests_per_s'])} mean) | "
          f"{throttled} | {result['queued_p50']:.2f} / {result['queued_max']:.2f} s |")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, n_agents, n_points, batch, pace = sys.argv[2:7]
        child(url, int(n_agents), int(n_points), int(batch), pace == "1")
    else:
        from bench.fleet import main
        main()

