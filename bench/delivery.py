"""Delivery benchmarks against a real influxd started here (tests/harness InfluxServer).

    .venv/bin/python bench/delivery.py            # full run (1M, 2M backlog, 5M in buffer)
    .venv/bin/python bench/delivery.py --quick    # a smoke run, smaller numbers

(a) 1M points (2 tags, 3 fields) written through the durable path
    (DurableWriter -> DiskBuffer -> Flusher -> Transport) into influxd, against
    the baseline measured in the same run: the same pre-serialized lines
    posted with bare ``requests`` in 5000-line batches (target >= 60%).
(b) enqueue into the disk buffer, until durable (target >= 300k points/s).
(c) drain of a 2M-point backlog after an outage: filled with influxd down,
    timed from its restart until 2M points are written (target >= 100k/s).
(d) RSS of an agent-path process (writer + flusher retrying against the
    stopped influxd) as the backlog grows to 5M points, and while it drains
    (target < 60 MB, flat).

Prints markdown for bench/RESULTS.md.
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
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.buffer.deadletter import DeadLetters  # noqa: E402
from edge_agent.buffer.disklog import DiskBuffer  # noqa: E402
from edge_agent.buffer.durable import DurableWriter  # noqa: E402
from edge_agent.delivery.flusher import Flusher  # noqa: E402
from edge_agent.delivery.transport import InfluxSettings, Transport  # noqa: E402
from edge_agent.destination import Destination  # noqa: E402
from edge_agent.options import WriteOptions  # noqa: E402
from tests.harness.servers import InfluxServer  # noqa: E402

T0 = 1_715_949_296_000_000_000
BARE_BATCH = 5000
ADD_CHUNK = 1000  # lines per DurableWriter.add in the producer (a source's burst)


def make_lines(n: int, offset: int = 0) -> List[str]:
    """Greenhouse readings: 2 tags, 3 fields, ns timestamps, ~85 bytes a line."""
    return [
        f"env,host=pi{i % 50:02d},room=room{i % 4} temp={18 + (i % 97) / 10},"
        f"hum={40 + (i % 311) / 7:.6f},count={i}i {T0 + i * 1000}"
        for i in range(offset, offset + n)
    ]


def rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith(field + ":"):
                return int(row.split()[1])
    return 0


def count(server: InfluxServer, db: str) -> int:
    rows = server.rows(db, 'SELECT count("count") FROM "env"')
    return int(rows[0]["count"]) if rows else 0


# -- (a) bare requests vs the durable path --------------------------------------------


def bare(server: InfluxServer, db: str, lines: List[str]) -> float:
    bodies = ["\n".join(lines[i:i + BARE_BATCH]).encode() for i in range(0, len(lines), BARE_BATCH)]
    session = requests.Session()
    url = f"{server.url}/write"
    start = time.perf_counter()
    for body in bodies:
        r = session.post(url, params={"db": db, "precision": "ns"}, data=body, timeout=60)
        assert r.status_code == 204, r.text
    elapsed = time.perf_counter() - start
    session.close()
    return len(lines) / elapsed


def durable(server: InfluxServer, db: str, lines: List[str], root: Path, batch_size: int,
            gzip: bool) -> float:
    """Producer adds -> segments on disk -> flusher thread -> influxd, until all written."""
    directory = root / f"durable-{db}"
    buf = DiskBuffer(directory / "buffer", max_size=1 << 33)
    writer = DurableWriter(buf, batch_size=batch_size)
    options = WriteOptions(batch_size=batch_size, flush_interval=100, retry_interval=100,
                           max_retry_delay=1000)
    transport = Transport(InfluxSettings(url=server.url, api="v1", gzip=gzip, timeout=60.0))
    flusher = Flusher(buf, transport, options, DeadLetters(directory / "dead.lp"))
    dest = Destination(db)
    total = len(lines)
    start = time.perf_counter()
    flusher.start()
    for i in range(0, total, ADD_CHUNK):
        writer.add(lines[i:i + ADD_CHUNK], dest)
        if (i // ADD_CHUNK) % (batch_size // ADD_CHUNK or 1) == 0:
            flusher.notify()
    writer.flush()
    flusher.notify()
    while int(buf.counters.snapshot().get("written") or 0) < total:  # type: ignore[call-overload]
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    flusher.stop()
    writer.close()
    transport.close()
    buf.close()
    return total / elapsed


# -- (b) enqueue ----------------------------------------------------------------------


def enqueue(root: Path, lines: List[str], per_add: int) -> float:
    buf = DiskBuffer(root / f"enqueue{per_add}", max_size=1 << 33)
    writer = DurableWriter(buf)
    dest = Destination("bench")
    chunks = [lines[i:i + per_add] for i in range(0, len(lines), per_add)]
    start = time.perf_counter()
    for chunk in chunks:
        writer.add(chunk, dest)
    writer.close()  # everything committed
    elapsed = time.perf_counter() - start
    assert buf.stats().points == len(lines)
    buf.close()
    return len(lines) / elapsed


# -- (c) + (d): the agent path through an outage, in a fresh process -------------------


def backlog_child(url: str, directory: str, backlog: int, drain: int,
                  max_pending: int) -> None:
    """Fill ``backlog`` points with influxd down (RSS marks), then time a drain."""
    buf = DiskBuffer(os.path.join(directory, "buffer"), max_size=1 << 34)
    baseline = rss_kib()
    writer = DurableWriter(buf, batch_size=5000, max_pending=max_pending)
    options = WriteOptions(batch_size=5000, flush_interval=100, retry_interval=200,
                           max_retry_delay=500)
    transport = Transport(InfluxSettings(url=url, api="v1", gzip=False, timeout=60.0,
                                         connect_timeout=0.5))
    flusher = Flusher(buf, transport, options, DeadLetters(os.path.join(directory, "dead.lp")))
    flusher.start()  # retrying against the stopped influxd throughout the fill
    dest = Destination("backlog")
    marks: Dict[str, int] = {}
    peak = {"rss": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], rss_kib())
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    step = backlog // 5
    done = 0
    start = time.perf_counter()
    while done < backlog:
        lines = make_lines(ADD_CHUNK * 10, done)
        for i in range(0, len(lines), ADD_CHUNK):
            writer.add(lines[i:i + ADD_CHUNK], dest)
        done += len(lines)
        if done % step == 0:
            writer.flush()
            marks[f"{done / 1e6:g}M points"] = rss_kib()
    writer.flush()
    fill = done / (time.perf_counter() - start)
    fill_peak = peak["rss"]
    time.sleep(2.0)  # the backlog sits; the flusher keeps retrying
    marks[f"{done / 1e6:g}M points, 2 s later"] = rss_kib()
    print(json.dumps({"filled": done}), flush=True)
    sys.stdin.readline()  # the parent restarted influxd
    peak["rss"] = 0
    flusher.notify()
    start = time.perf_counter()
    while int(buf.counters.snapshot().get("written") or 0) < drain:  # type: ignore[call-overload]
        time.sleep(0.005)
    drained = time.perf_counter() - start
    stop.set()
    flusher.stop()
    writer.close()
    print(json.dumps({
        "baseline": baseline, "marks": marks, "fill": fill, "fill_peak": fill_peak,
        "drain": drain / drained, "drain_peak": peak["rss"], "hwm": rss_kib("VmHWM"),
        "left": buf.stats().points,
    }), flush=True)
    buf.close()


def backlog_run(server: InfluxServer, root: Path, backlog: int, drain: int,
                max_pending: int) -> Dict:
    server.create_database("backlog")
    server.stop()
    child = subprocess.Popen(
        [sys.executable, __file__, "--backlog-child", server.url, str(root / "backlog"),
         str(backlog), str(drain), str(max_pending)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        stderr=subprocess.DEVNULL,  # the flusher's retry log lines during the outage
    )
    assert child.stdout is not None and child.stdin is not None
    json.loads(child.stdout.readline())
    server.start()
    child.stdin.write("go\n")
    child.stdin.flush()
    result: Dict = json.loads(child.stdout.readline())
    assert child.wait() == 0
    return result


# -- main --------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for row in f:
                if row.startswith("model name"):
                    return row.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--max-pending", type=int, default=100_000,
                    help="DurableWriter max_pending in the backlog run (its default: 100k)")
    ap.add_argument("--backlog-child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.backlog_child:
        url, directory, backlog, drain, pending = args.backlog_child
        backlog_child(url, directory, int(backlog), int(drain), int(pending))
        return
    n = 200_000 if args.quick else 1_000_000
    backlog, drain = (1_000_000, 400_000) if args.quick else (5_000_000, 2_000_000)
    root = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    server: Optional[InfluxServer] = None
    try:
        server = InfluxServer(root / "influxd")
        server.start()
        lines = make_lines(n)
        rates: Dict[str, float] = {}
        server.create_database("warmup")  # the first writes into a new influxd are slower
        bare(server, "warmup", lines[: n // 5])
        # Bare, then durable (gzip off, on), then bare again: influxd slows as it
        # fills, so the baseline is the mean of one run before and one after.
        for name in ("bare1", "durable", "durable_gzip", "bare2"):
            server.create_database(name)
            if name.startswith("bare"):
                rates[name] = bare(server, name, lines)
            else:
                rates[name] = durable(server, name, lines, root, args.batch_size,
                                      gzip=name.endswith("gzip"))
            assert count(server, name) == n, name
        enq1 = enqueue(root, lines, 1)
        enq100 = enqueue(root, lines, 100)
        enq1000 = enqueue(root, lines, 1000)
        mem = backlog_run(server, root, backlog, drain, args.max_pending)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)

    base = (rates["bare1"] + rates["bare2"]) / 2

    def k(x: float) -> str:
        return f"{x / 1000:,.0f}k"

    print(f"## delivery\n\n`.venv/bin/python bench/delivery.py` ({time.strftime('%Y-%m-%d')}), "
          f"machine: {platform.machine()}, {os.cpu_count()} CPUs \"{cpu_name()}\" (shared), "
          f"Linux {platform.release()}, Python {platform.python_version()}, "
          f"influxd 1.6.7 (Debian) on loopback started by the bench. Points: 2 tags, "
          f"3 fields, ns timestamps (~{sum(map(len, lines[:1000])) // 1000} B/line). "
          f"Durable path: DurableWriter (adds of {ADD_CHUNK} lines) -> DiskBuffer "
          f"(sync=normal) -> Flusher (batch_size {args.batch_size}) -> Transport v1.\n")
    print("| measure | points/s | ratio | target |\n|---|---|---|---|")
    print(f"| baseline: bare `requests`, {BARE_BATCH}-line bodies, no gzip "
          f"(before / after) | {k(rates['bare1'])} / {k(rates['bare2'])} | 1.00 | |")
    print(f"| (a) durable write of {n / 1e6:g}M, gzip off | {k(rates['durable'])} | "
          f"{rates['durable'] / base:.2f} | >= 0.60 |")
    print(f"| (a) durable write of {n / 1e6:g}M, gzip level 1 | {k(rates['durable_gzip'])} | "
          f"{rates['durable_gzip'] / base:.2f} | |")
    print(f"| (b) enqueue until durable, 1 line per add | {k(enq1)} | {enq1 / base:.2f} | "
          f">= 300k |")
    print(f"| (b) enqueue until durable, 100 lines per add | {k(enq100)} | {enq100 / base:.2f} | "
          f">= 300k |")
    print(f"| (b) enqueue until durable, 1000 lines per add | {k(enq1000)} | "
          f"{enq1000 / base:.2f} | |")
    print(f"| fill of the {backlog / 1e6:g}M backlog, influxd down, flusher retrying | "
          f"{k(mem['fill'])} | {mem['fill'] / base:.2f} | |")
    print(f"| (c) drain {drain / 1e6:g}M of that backlog after influxd restarts | "
          f"{k(mem['drain'])} | {mem['drain'] / base:.2f} | >= 100k |")
    print(f"\n| (d) memory (RSS) of the agent-path process, DurableWriter max_pending "
          f"{args.max_pending:,} | MiB |\n|---|---|")
    print(f"| baseline: empty buffer open | {mem['baseline'] / 1024:.1f} |")
    for mark, kib in mem["marks"].items():
        print(f"| backlog of {mark} | {kib / 1024:.1f} |")
    print("| peak while filling as fast as possible (sampled every 50 ms) | "
          f"{mem['fill_peak'] / 1024:.1f} |")
    print(f"| peak while draining {drain / 1e6:g}M | {mem['drain_peak'] / 1024:.1f} |")
    print(f"| VmHWM whole process, target < 60 MB | {mem['hwm'] / 1024:.1f} |")


if __name__ == "__main__":
    main()
