"""The agent's main job, end to end, on the built-in emulated hardware.

Starts a throwaway influxd on a free 127.0.0.1 port (its data under the demo
folder), runs the real long-running agent with ``config/demo.yaml``, shows a
live progress line, stops influxd midway for a while (the backlog grows: in
memory first, committed to disk after the SD-card mode's hold), starts it again
(the backlog drains), then stops everything it started
and prints what was read, what InfluxDB holds (queried back), the accounting,
and a chart of one series read back from InfluxDB.

Run by ``scripts/demo.sh``; ``--seconds`` and ``--outage`` shorten it (the test
suite runs it in about 25 s). A summary is written to ``<folder>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.servers import InfluxServer  # noqa: E402  (the tests' own influxd wrapper)

DB = "edge_demo"
CHART_SERIES = ("bme280", "temperature")  # (measurement, field) drawn at the end
COUNTER_NAMES = ("written", "rejected", "evicted", "dropped_invalid", "dropped_disk_full",
                 "lost_corrupt", "lost_unsaved", "lost_in_flight")


def read_status(state: Path) -> Optional[Dict[str, Any]]:
    try:
        data: Dict[str, Any] = json.loads((state / "status.json").read_text())
        return data
    except (OSError, ValueError):
        return None


def progress_line(elapsed: float, status: Optional[Dict[str, Any]], influx_up: bool) -> str:
    if status is None:
        return f"{elapsed:5.1f}s  starting the agent..."
    reads = " ".join(f"{s['name']} {s.get('points', 0)}" for s in status.get("sources", []))
    buf, held = status["buffer"]["points"], status.get("pending", 0)
    written = status["counters"].get("written", 0)
    server = "influxd up" if influx_up else "influxd STOPPED, backlog waiting"
    return (f"{elapsed:5.1f}s  read: {reads} | waiting {held} in memory, {buf} on disk | "
            f"written {written} | {server}")


def waiting(status: Dict[str, Any]) -> int:
    """Points accepted and not delivered yet: on disk, and held in memory."""
    return int(status["buffer"]["points"]) + int(status.get("pending", 0))


def stored_points(influx: InfluxServer) -> Dict[str, int]:
    """Points InfluxDB holds per measurement: one row per (series, time)."""
    out: Dict[str, int] = {}
    for row in influx.rows(DB, "SHOW MEASUREMENTS"):
        name = row["name"]
        out[name] = len(influx.rows(DB, f'SELECT * FROM "{name}"'))
    return out


def chart(influx: InfluxServer, width: int = 68, height: int = 8) -> List[str]:
    """A few lines of terminal chart of one series read back from InfluxDB."""
    measurement, field = CHART_SERIES
    rows = influx.rows(DB, f'SELECT "{field}" FROM "{measurement}"')
    points: List[Tuple[float, float]] = [
        (r["time"] / 1e9, float(r[field])) for r in rows if r.get(field) is not None]
    if len(points) < 2:
        return [f"(too few {measurement}.{field} points for a chart)"]
    # A few lines instead of a chart library: nothing more to install on a Pi.
    return text_chart(points, width, height, f"{measurement}.{field}")


def text_chart(points: List[Tuple[float, float]], width: int, height: int,
               title: str) -> List[str]:
    """``points`` (time, value) as rows of text: one column per time slot, values scaled."""
    values = [v for _, v in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = -(-len(values) // width)
    cols = [sum(values[i:i + step]) / len(values[i:i + step]) for i in range(0, len(values), step)]
    grid = [[" "] * len(cols) for _ in range(height)]
    for x, v in enumerate(cols):
        grid[height - 1 - round((v - low) / span * (height - 1))][x] = "*"
    seconds = points[-1][0] - points[0][0]
    lines = [f"{title} read back from InfluxDB: {len(values)} points over {seconds:.0f} s"]
    for y, row in enumerate(grid):
        lines.append(f"{high - y * span / (height - 1):9.3f} |" + "".join(row))
    lines.append(" " * 10 + "+" + "-" * len(cols))
    return lines


def run(seconds: float, outage: float, folder: Path) -> Dict[str, Any]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    state = folder / "state"
    influx = InfluxServer(folder / "influxd")
    agent: Optional[subprocess.Popen] = None
    summary: Dict[str, Any] = {"outage_backlog_max": 0, "outage_seconds": 0.0}
    tty = sys.stdout.isatty()
    try:
        influx.start()
        influx.create_database(DB)
        env = dict(os.environ, INFLUX_URL=influx.url, INFLUX_API="v1", INFLUX_BUCKET=DB)
        edge_agent = Path(sys.executable).parent / "edge-agent"
        with open(folder / "agent.log", "wb") as log:
            agent = subprocess.Popen([str(edge_agent), "-c", str(ROOT / "config/demo.yaml")],
                                     cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        print(f"influxd on {influx.url}, agent pid {agent.pid}, log {folder / 'agent.log'}")
        start = time.monotonic()
        stop_at, restart_at = seconds * 0.35, seconds * 0.35 + outage
        down_since = 0.0
        backlog_until: Optional[int] = None  # points accepted when influxd came back
        last_print = 0.0
        while True:
            elapsed = time.monotonic() - start
            status = read_status(state)
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited with {agent.returncode}; "
                                   f"see {folder}/agent.log")
            if influx.running and stop_at <= elapsed < restart_at:
                influx.stop()
                down_since = time.monotonic()
            elif not influx.running and elapsed >= restart_at:
                summary["outage_seconds"] = round(time.monotonic() - down_since, 1)
                influx.start()
                backlog_until = (status["counters"].get("accepted", 0)
                                 + status.get("pending", 0)) if status else 0
            if not influx.running and status:
                summary["outage_backlog_max"] = max(summary["outage_backlog_max"],
                                                    waiting(status))
            line = progress_line(elapsed, status, influx.running)
            if tty:
                print("\r" + line[:150].ljust(150), end="", flush=True)
            elif elapsed - last_print >= 5:
                print(line, flush=True)
                last_print = elapsed
            # Done once the backlog of the outage is delivered (or 30 s after the end);
            # the agent's own shutdown then flushes the last readings.
            drained = status is not None and backlog_until is not None and \
                status["counters"].get("written", 0) >= backlog_until
            if elapsed >= seconds and influx.running and (drained or elapsed >= seconds + 30):
                break
            time.sleep(0.5)
        if tty:
            print()
        agent.send_signal(signal.SIGTERM)
        summary["agent_exit"] = agent.wait(60)
        final = read_status(state) or {}
        counters = final.get("counters", {})
        summary["read"] = {s["name"]: s.get("points", 0) for s in final.get("sources", [])}
        summary["accepted"] = counters.get("accepted", 0)
        summary.update({n: counters.get(n, 0) for n in COUNTER_NAMES})
        summary["buffered"] = final.get("buffer", {}).get("points", 0)
        summary["stored"] = stored_points(influx)
        summary["chart"] = chart(influx)
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        influx.stop()
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def report(s: Dict[str, Any]) -> bool:
    stored = sum(s["stored"].values())
    dropped = (s["dropped_invalid"] + s["dropped_disk_full"] + s["lost_corrupt"]
               + s["lost_unsaved"] + s["lost_in_flight"])
    lost = s["accepted"] - s["written"] - s["rejected"] - s["evicted"] - dropped - s["buffered"]
    print("\npoints read per source: " + ", ".join(f"{k} {v}" for k, v in s["read"].items()))
    print("stored in InfluxDB (queried back): " + ", ".join(
        f"{k} {v}" for k, v in sorted(s["stored"].items())) + f"; total {stored}")
    print(f"outage: influxd stopped for {s['outage_seconds']} s; up to "
          f"{s['outage_backlog_max']} points waited (in memory and on disk)")
    print(f"accounting: accepted {s['accepted']} = written {s['written']} + rejected "
          f"{s['rejected']} + evicted {s['evicted']} + dropped {dropped} + "
          f"buffered {s['buffered']}" + ("" if lost == 0 else f"  (MISSING {lost})"))
    ok = lost == 0 and stored == s["accepted"] and s["agent_exit"] == 0
    print("every accepted point is in InfluxDB, nothing lost" if ok else
          f"MISMATCH: accepted {s['accepted']}, stored {stored}, agent exit {s['agent_exit']}")
    print()
    print("\n".join(s["chart"]))
    return ok


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=50.0, help="run time before the drain")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds influxd is stopped")
    parser.add_argument("--folder", type=Path, default=ROOT / ".demo", help="demo state folder")
    args = parser.parse_args(argv)
    # SIGTERM (as Ctrl-C) ends the run through the finally that stops influxd and the agent.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        summary = run(args.seconds, args.outage, args.folder.resolve())
    except (RuntimeError, OSError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo stopped; everything it started is stopped too", file=sys.stderr)
        return 130
    return 0 if report(summary) else 1


if __name__ == "__main__":
    sys.exit(main())
