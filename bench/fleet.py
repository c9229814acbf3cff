"""Fleets: many agents against one server, after an outage.

    .venv/bin/python bench/fleet.py schedule            # (a), a few seconds
    .venv/bin/python bench/fleet.py drain [--agents 300] # (b), about a minute

(a) The schedule alone. N simulated agents (1k, 10k) fail together (each at
    its next flush, uniform in the first second), then retry with the
    project's own RetrySchedule (defaults: 5 s, base 2, cap 125 s) until the
    server is back after an outage of 30 min (and of 60 s). For each agent
    the first retry at or after the recovery is taken; they are counted per
    1 s bin. Reported: the peak bin against an even spread (N over the span
    from the recovery to the last agent's first retry; for the 30 min outage
    that span is the cap, 80/s for 10k), target <= 1.5x after 30 min. Two
    modes: ``next()`` called again and again (the schedule alone), and the
    durable agent's cycle (max_retries 5 end one attempt, the next starts
    after ``cap_delay()``, with a fresh schedule). The seed's exact cap
    (``cap_jitter=0``) is run beside, and the noise floor: N times drawn
    uniformly over the same span, binned the same way (a perfectly even
    random spread still has a per-second peak above its mean).
(b) See :mod:`bench.fleet_drain`: real flushers against the fault server.

Prints markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.options import WriteOptions  # noqa: E402
from edge_agent.retry import RetrySchedule  # noqa: E402


def first_retries(schedule: RetrySchedule, agents: int, outage: float, rng: random.Random,
                  cycle: bool) -> List[float]:
    """Each agent's first retry at or after ``outage`` (seconds after the cut)."""
    firsts = []
    for _ in range(agents):
        t = rng.random()  # the agent's next flush: within flush_interval (1 s)
        s = schedule
        while t < outage:
            if cycle and s.exhausted(t):  # the durable flusher: one attempt over
                t += s.cap_delay(rng)
                s = s.reset()
                continue
            delay, s = s.next(t, rng)
            t += delay
        firsts.append(t - outage)
    return firsts


def peak_ratio(times: Sequence[float], agents: int, bin_s: float = 1.0) -> Dict[str, float]:
    span = max(max(times), bin_s)
    bins = Counter(int(t // bin_s) for t in times)
    peak = max(bins.values())
    mean = agents / span * bin_s
    return {"peak": peak, "mean": mean, "ratio": peak / mean, "span": span}


def noise_floor(agents: int, span: float, rng: random.Random, bin_s: float = 1.0,
                rounds: int = 5) -> float:
    """Median peak/mean of ``agents`` uniform random times over ``span``."""
    ratios = []
    for _ in range(rounds):
        times = [rng.random() * span for _ in range(agents)]
        ratios.append(peak_ratio(times, agents, bin_s)["ratio"] * span / max(max(times), bin_s))
    return statistics.median(ratios)


def run_schedule(seeds: int) -> None:
    base = RetrySchedule.from_options(WriteOptions())
    rows = []
    for agents in (1000, 10_000):
        for outage in (1800.0, 60.0):
            for label, cap_jitter in (("seed (exact cap)", 0.0), ("this project", base.cap_jitter)):
                schedule = dataclasses.replace(base, cap_jitter=cap_jitter)
                for mode, cycle in (("next() only", False), ("agent cycle", True)):
                    results = []
                    for seed in range(seeds):
                        times = first_retries(schedule, agents, outage, random.Random(seed),
                                              cycle)
                        results.append(peak_ratio(times, agents))
                    ratios = [r["ratio"] for r in results]
                    worst = max(results, key=lambda r: r["ratio"])
                    floor = noise_floor(agents, worst["span"], random.Random(99))
                    row = (f"| {agents} | {outage / 60:g} min | {label} | {mode} | "
                           f"{worst['peak']} | {worst['mean']:.1f}/s | "
                           f"{min(ratios):.2f}-{max(ratios):.2f}x | {floor:.2f}x |")
                    if agents == 1000:
                        coarse = [peak_ratio(first_retries(schedule, agents, outage,
                                                           random.Random(s), cycle),
                                             agents, 10.0)["ratio"] for s in range(seeds)]
                        row += f" {max(coarse):.2f}x |"
                    else:
                        row += " |"
                    rows.append(row)
                    print(row, flush=True)
    print()
    print("| agents | outage | schedule | mode | peak in 1 s (worst seed) | even spread | "
          f"peak / even ({seeds} seeds) | noise floor | 1k: per 10 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPUs (shared), Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="part", required=True)
    sched = sub.add_parser("schedule", help="(a) the schedule alone")
    sched.add_argument("--seeds", type=int, default=5)
    drain = sub.add_parser("drain", help="(b) real flushers against the fault server")
    drain.add_argument("--agents", type=int, default=300)
    drain.add_argument("--points", type=int, default=2000, help="backlog per agent")
    drain.add_argument("--capacity", type=float, default=20_000, help="server points/s")
    drain.add_argument("--batch-size", type=int, default=500)
    drain.add_argument("--no-pacing", action="store_true", help="the drain without AIMD")
    drain.add_argument("--queue", action="store_true",
                       help="over capacity the server queues (latency rises) instead of 429")
    args = ap.parse_args()
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {machine()}")
    if args.part == "schedule":
        run_schedule(args.seeds)
    else:
        from bench.fleet_drain import run_drain
        run_drain(args.agents, args.points, args.capacity, args.batch_size,
                  pacing=not args.no_pacing, queue=args.queue)


if __name__ == "__main__":
    main()
