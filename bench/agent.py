"""The agent's own costs: import time, ``--once --dry-run`` wall time, idle CPU and RSS.

    .venv/bin/python bench/agent.py [--repeat 7] [--idle-seconds 60] [--sensors 10]

(1) ``import edge_agent`` in a fresh interpreter, against ``python -c pass``
    measured in the same run (the difference is ours); plus the top entries of
    ``python -X importtime -c "import edge_agent"``. Target < 100 ms.
(2) ``edge-agent --once --dry-run -c config/demo.yaml`` wall time, against
    ``edge-agent --version`` (interpreter + console script) and against the
    demo config without its serial sources (their frames come at the devices'
    real cadence). Target < 1 s.
(3) The running agent with ``--sensors`` emulated I2C sensors at a 1 s
    interval, writing to a local InfluxDB stand-in (the tests' fault server,
    always 204, in this process): CPU from /proc/<pid>/stat utime+stime over
    ``--idle-seconds``, and VmRSS. Target < 2% of one core.

Each timing runs ``--repeat`` times; the median is reported with min..max (a
shared machine: other jobs disturb single runs). Subprocesses use bytecode
caches in a temporary ``PYTHONPYCACHEPREFIX`` (warmed by one untimed run), as
an installed package has its .pyc files; (1) and (2) are also shown without
bytecode (``PYTHONDONTWRITEBYTECODE=1``, every module compiled from source),
which is what a checkout run with that variable set pays.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.fault_server import FaultServer  # noqa: E402

PYTHON = sys.executable
EDGE_AGENT = str(Path(PYTHON).with_name("edge-agent"))
DEMO = ROOT / "config" / "demo.yaml"
TARGETS = {"import_ms": 100.0, "once_s": 1.0, "idle_cpu_pct": 2.0}
CHIPS = [("bme280", 0x76), ("sht3x", 0x44), ("ads1115", 0x48), ("bh1750", 0x23)]


ENV: Dict[str, str] = {}  # set in main(): the bytecode-cached environment


def no_pyc_env() -> Dict[str, str]:
    env = {k: v for k, v in ENV.items() if k != "PYTHONPYCACHEPREFIX"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def timed(cmd: List[str], repeat: int, cwd: Path,
          env: Optional[Dict[str, str]] = None) -> List[float]:
    env = env or ENV
    subprocess.run(cmd, cwd=cwd, capture_output=True, env=env)  # warm caches, untimed
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{cmd} failed ({result.returncode}): {result.stderr[-500:]}")
    return times


def summary(times: List[float], scale: float = 1000.0, unit: str = "ms") -> str:
    return (f"{statistics.median(times) * scale:.0f} {unit} "
            f"({min(times) * scale:.0f}..{max(times) * scale:.0f})")


def import_offenders(n: int = 12) -> List[Tuple[int, int, str]]:
    """(self us, cumulative us, module) of the slowest imports under ``import edge_agent``."""
    result = subprocess.run([PYTHON, "-X", "importtime", "-c", "import edge_agent"],
                            capture_output=True, text=True, env=ENV)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line[len("import time:"):].split("|")
        rows.append((int(self_us), int(cumulative), name.rstrip()))
    return sorted(rows, key=lambda r: -r[1])[:n]


def bench_import(repeat: int, tmp: Path) -> Dict[str, float]:
    base = timed([PYTHON, "-c", "pass"], repeat, tmp)
    ours = timed([PYTHON, "-c", "import edge_agent"], repeat, tmp)
    cold = timed([PYTHON, "-c", "import edge_agent"], repeat, tmp, no_pyc_env())
    cost = statistics.median(ours) - statistics.median(base)
    print("(1) import edge_agent, fresh interpreter")
    print(f"    python -c pass           {summary(base)}")
    print(f"    python -c 'import ...'   {summary(ours)}")
    print(f"    same, no .pyc            {summary(cold)}")
    print(f"    import cost              {cost * 1000:.0f} ms  "
          f"(ratio to interpreter start {statistics.median(ours) / statistics.median(base):.2f}x"
          f"; target < {TARGETS['import_ms']:.0f} ms)")
    print("    -X importtime, by cumulative time (us: self, cumulative):")
    for self_us, cumulative, name in import_offenders():
        print(f"      {self_us:>7} {cumulative:>8}  {name}")
    return {"import_ms": cost * 1000}


def i2c_only_demo(tmp: Path) -> Path:
    text = DEMO.read_text()
    cut = text.index("  - name: air")
    path = tmp / "demo-i2c.yaml"
    path.write_text(text[:cut])
    return path


def bench_once(repeat: int, tmp: Path) -> Dict[str, float]:
    env_cmd = [EDGE_AGENT, "--once", "--dry-run", "-c"]
    version = timed([EDGE_AGENT, "--version"], repeat, tmp)
    full = timed(env_cmd + [str(DEMO)], repeat, tmp)
    i2c = timed(env_cmd + [str(i2c_only_demo(tmp))], repeat, tmp)
    cold = timed(env_cmd + [str(DEMO)], repeat, tmp, no_pyc_env())
    assert not (tmp / "state").exists(), "--dry-run created the state dir"
    print("(2) edge-agent --once --dry-run -c config/demo.yaml")
    print(f"    edge-agent --version     {summary(version)}")
    print(f"    demo (4 I2C + 2 serial)  {summary(full)}  "
          f"(target < {TARGETS['once_s'] * 1000:.0f} ms)")
    print(f"    demo, no .pyc            {summary(cold)}")
    print(f"    demo, I2C sources only   {summary(i2c)}")
    print(f"    serial sources add       "
          f"{(statistics.median(full) - statistics.median(i2c)) * 1000:.0f} ms; "
          f"the whole run is {statistics.median(full) / statistics.median(version):.1f}x "
          "--version")
    return {"once_s": statistics.median(full)}


def idle_config(tmp: Path, url: str, sensors: int) -> Path:
    lines = [f"agent: {{name: bench, state_dir: {tmp / 'state'}, interval: 1s}}",
             f"influx: {{url: '{url}', api: v2, org: o, bucket: b, token: bench-token}}",
             "sources:"]
    for i in range(sensors):
        driver, address = CHIPS[i % len(CHIPS)]
        lines.append(f"  - {{name: s{i}, type: i2c, driver: {driver}, bus: emulated, "
                     f"address: {address}, measurement: s{i}}}")
    path = tmp / "idle.yaml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_idle(seconds: float, sensors: int, tmp: Path) -> Dict[str, float]:
    with FaultServer() as server:
        config = idle_config(tmp, server.url, sensors)
        with open(tmp / "idle.log", "wb") as log:
            proc = subprocess.Popen([EDGE_AGENT, "-c", str(config)], stdout=log,
                                    stderr=subprocess.STDOUT, cwd=tmp, env=ENV)
            try:
                time.sleep(5.0)  # start-up (imports, first polls) is not idle
                cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(seconds)
                cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
                rss = rss_mib(proc.pid)
            finally:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(60)
        points = sum(len(r.lines) for r in server.write_requests())
    pct = (cpu1 - cpu0) / (wall1 - wall0) * 100
    errors = [ln for ln in (tmp / "idle.log").read_text().splitlines() if "ERROR" in ln]
    print(f"(3) running agent, {sensors} emulated I2C sensors at 1 s, over {wall1 - wall0:.0f} s")
    print(f"    CPU                      {pct:.2f}% of one core "
          f"({cpu1 - cpu0:.2f} s CPU; target < {TARGETS['idle_cpu_pct']:.0f}%)")
    print(f"    RSS                      {rss:.1f} MiB")
    print(f"    points written           {points} (exit code {code}, "
          f"{len(errors)} error log lines)")
    for line in errors[:5]:
        print(f"      {line}")
    return {"idle_cpu_pct": pct, "rss_mib": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--sensors", type=int, default=10)
    args = parser.parse_args()
    print(f"edge-agent bench: {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
          f"nproc={os.cpu_count()}, {platform.machine()}")
    results: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ea-bench-") as name:
        tmp = Path(name)
        ENV.update({k: v for k, v in os.environ.items()
                    if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("INFLUX")})
        ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        results.update(bench_import(args.repeat, tmp))
        results.update(bench_once(args.repeat, tmp))
        results.update(bench_idle(args.idle_seconds, args.sensors, tmp))
    print("targets: " + ", ".join(
        f"{key} {results[key]:.2f} {'ok' if results[key] < target else 'MISSED'} (< {target:g})"
        for key, target in TARGETS.items()))


if __name__ == "__main__":
    main()
