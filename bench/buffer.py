"""Disk buffer benchmarks: enqueue, raw append, drain, and memory with a big backlog.

    .venv/bin/python bench/buffer.py            # full run (5M-point backlog)
    .venv/bin/python bench/buffer.py --quick    # smaller numbers, for a smoke test

Prints markdown for bench/RESULTS.md. Lines are realistic 60-byte points.
Baselines measured in the same run: one SQLite row per point (diskcache
``Deque.append``, what segments replace) for rates, and the RSS of a process
that has imported the buffer and opened an empty one for memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.buffer.disklog import DiskBuffer  # noqa: E402
from edge_agent.buffer.durable import DurableWriter  # noqa: E402
from edge_agent.destination import Destination  # noqa: E402

DEST = Destination("bench", "org", "ns")
T0 = 1715949296000000000


def make_lines(n: int, offset: int = 0) -> List[str]:
    # 60 bytes: "env,host=pi01,room=lab temp=21.53,hum=45.12 1715949296000000000"-ish
    out = []
    for i in range(offset, offset + n):
        line = f"env,host=pi01 temp={20 + i % 7}.5{i % 10},hum=4{i % 10}.1 {T0 + i * 1000}"
        out.append(line.ljust(60, "0")[:60] if len(line) < 60 else line)
    return out


def rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith(field + ":"):
                return int(row.split()[1])
    return 0


def bench_enqueue(root: Path, points: int, per_add: int) -> Dict[str, float]:
    buf = DiskBuffer(root / f"enq{per_add}", max_size=1 << 32)
    w = DurableWriter(buf)
    pool = make_lines(10_000)
    chunks = [pool[i : i + per_add] for i in range(0, len(pool), per_add)]
    start = time.perf_counter()
    done = 0
    while done < points:
        for chunk in chunks:
            w.add(chunk, DEST)
        done += len(pool)
    added = time.perf_counter() - start
    w.close()
    durable = time.perf_counter() - start
    assert buf.stats().points == done
    buf.close()
    return {"add": done / added, "durable": done / durable}


def bench_row_per_point_baseline(root: Path, points: int) -> float:
    """What the design rules out: one SQLite row per point (diskcache Deque)."""
    import diskcache

    dq = diskcache.Deque(directory=str(root / "deque"))
    pool = [line.encode() for line in make_lines(1000)]
    start = time.perf_counter()
    for i in range(points):
        dq.append(pool[i % 1000])
    return points / (time.perf_counter() - start)


def bench_append_drain(root: Path, points: int) -> Dict[str, float]:
    buf = DiskBuffer(root / "raw", max_size=1 << 32)
    data = "\n".join(make_lines(1000)).encode()
    now = time.time()
    start = time.perf_counter()
    for _ in range(points // 1000):
        buf.append(DEST, data, 1000, now)
    append = points / (time.perf_counter() - start)
    start = time.perf_counter()
    drained = 0
    while True:
        window = buf.head(5000, 8 << 20)
        if not window:
            break
        drained += buf.remove([i for i, _ in window], count_as="written")
    drain = drained / (time.perf_counter() - start)
    assert drained == points
    buf.close()
    return {"append": append, "drain": drain}


def memory_child(directory: str, points: int) -> None:
    """Run in a fresh process: RSS as the backlog grows, then while draining it."""
    buf = DiskBuffer(directory, max_size=1 << 33)
    baseline = rss_kib()
    w = DurableWriter(buf)
    pool = make_lines(1000)
    marks: Dict[str, int] = {}
    done = 0
    step = points // 5
    start = time.perf_counter()
    while done < points:
        for _ in range(100):
            w.add(pool, DEST)
        done += 100_000
        if done % (step // 2) == 0:
            w.flush()
            marks[f"{done / 1e6:g}M"] = rss_kib()
    fill = done / (time.perf_counter() - start)
    w.close()
    # Replay after the outage: drain 2M points window by window.
    start = time.perf_counter()
    drained = 0
    peak_drain = 0
    while drained < min(points, 2_000_000):
        window = buf.head(5000, 8 << 20)
        drained += buf.remove([i for i, _ in window], count_as="written")
        peak_drain = max(peak_drain, rss_kib())
    drain = drained / (time.perf_counter() - start)
    size = sum(f.stat().st_size for f in Path(directory).iterdir())
    buf._cache.close()  # unclean: the next open runs quick_check
    start = time.perf_counter()
    DiskBuffer(directory, max_size=1 << 33).close()
    reopen = time.perf_counter() - start
    print(json.dumps({
        "baseline": baseline, "marks": marks, "peak_drain": peak_drain,
        "hwm": rss_kib("VmHWM"), "fill": fill, "drain": drain,
        "disk": size, "reopen_unclean": reopen,
    }))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    scale = 1 if args.quick else 5
    root = Path(tempfile.mkdtemp(prefix="bench-buffer-"))
    try:
        join = bench_row_per_point_baseline(root, 20_000)
        one = bench_enqueue(root, 200_000 * scale, 1)
        hundred = bench_enqueue(root, 400_000 * scale, 100)
        raw = bench_append_drain(root, 400_000 * scale)
        big = 1_000_000 * scale
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(root / "mem"), str(big)],
            check=True, capture_output=True, text=True,
        ).stdout
        mem = json.loads(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def k(x: float) -> str:
        return f"{x / 1000:,.0f}k"

    print(f"## buffer\n\n{time.strftime('%Y-%m-%d')}, {platform.machine()} "
          f"{os.cpu_count()} CPUs (shared), Linux {platform.release()}, "
          f"Python {platform.python_version()}, diskcache 5.6, sync=normal.\n")
    print("| measure | points/s | x baseline | target |\n|---|---|---|---|")
    print(f"| baseline: one row per point (diskcache Deque.append) | {k(join)} | 1.00 | |")
    print(f"| DurableWriter.add, 1 line per call | {k(one['add'])} | "
          f"{one['add'] / join:.0f} | >= 300k |")
    print(f"| DurableWriter.add, 1 line per call, until durable | {k(one['durable'])} | "
          f"{one['durable'] / join:.0f} | |")
    print(f"| DurableWriter.add, 100 lines per call | {k(hundred['add'])} | "
          f"{hundred['add'] / join:.0f} | >= 300k |")
    print(f"| DurableWriter.add, 100 lines per call, until durable | {k(hundred['durable'])} | "
          f"{hundred['durable'] / join:.0f} | |")
    print(f"| DiskBuffer.append, 1000-point segments | {k(raw['append'])} | "
          f"{raw['append'] / join:.0f} | |")
    print(f"| head(5000 pts, 8 MiB) + remove drain | {k(raw['drain'])} | "
          f"{raw['drain'] / join:.0f} | |")
    print(f"| fill {big // 1_000_000}M backlog (memory run) | {k(mem['fill'])} | | |")
    print(f"| drain {min(big, 2_000_000) // 1_000_000}M of that backlog | {k(mem['drain'])} | | |")
    print("\n| memory (RSS) | MiB |\n|---|---|")
    print(f"| baseline: process with an empty buffer open | {mem['baseline'] / 1024:.1f} |")
    for mark, kib in mem["marks"].items():
        print(f"| backlog {mark} points | {kib / 1024:.1f} |")
    print(f"| while draining 2M (peak) | {mem['peak_drain'] / 1024:.1f} |")
    peak = max([mem["hwm"], mem["peak_drain"], *mem["marks"].values()])
    print(f"| peak (VmHWM) whole run, target < 60 | {peak / 1024:.1f} |")
    print(f"\nBacklog on disk: {mem['disk'] / 2**20:.0f} MiB for {big // 1_000_000}M points "
          f"(~{mem['disk'] / big:.0f} B/point). Reopen after an unclean stop "
          f"(quick_check of the whole file): {mem['reopen_unclean']:.2f} s.")


if __name__ == "__main__":
    main()
