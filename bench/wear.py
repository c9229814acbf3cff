"""SD-card wear: bytes the running agent writes per byte of line protocol, CPU, wake-ups.

    .venv/bin/python bench/wear.py [--quick] [--seconds 180] [--only NAME ...]

Each scenario runs the real agent (``edge-agent -c config`` as a subprocess,
its state_dir on this machine's disk) and measures, over a window after a
warm-up:

The agent commits polled readings InfluxDB has not taken after a 60 s hold
(``edge_agent.agent.service.HOLD``), so a window shorter than a few holds
measures noise offline: --quick uses 60 s, the default 180 s.

* ``write_bytes`` of ``/proc/<pid>/io``: bytes the agent's threads caused to
  be written to storage (SQLite pages and WAL frames, status.json, the dedup
  index ...). The agent's log goes to a pipe the bench reads (journald's
  cost, not the buffer's), reported apart as log B/s.
* line-protocol bytes produced in the same window: the lines whose timestamp
  falls in the window, with their newline, counted where they ended up (the
  InfluxDB stand-in's received bodies when online, the buffer file read back
  after the agent stopped when offline). ``ratio`` = written / produced.
* CPU: utime+stime of ``/proc/<pid>/stat``, as % of one core.
* wake-ups: voluntary + involuntary context switches summed over
  ``/proc/<pid>/task/*/status``, per second.

Scenarios: ``sensors-1s`` / ``sensors-10s``: 10 emulated I2C sensors (the
demo's chips, ``bus: emulated``) polled every 1 s / 10 s, online (the tests'
InfluxDB stand-in answering 204) and offline (a closed port). ``mqtt-100``:
an MQTT QoS 1 stream of 100 msg/s into a real mosquitto (Shelly Gen1 topics
and payloads: ``shellies/<id>/sensor/temperature`` with a plain number, as
Shelly's MQTT documentation shows), bridged by the agent, online and offline.

Targets (issue 10): sensors-1s online <= 2x, offline <= 1.5x; idle (sensors-1s
online) <= 0.4% of a core and <= 15 wake-ups/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.buffer.disklog import DiskBuffer  # noqa: E402
from tests.harness.fault_server import FaultServer  # noqa: E402
from tests.harness.servers import MosquittoServer, free_port  # noqa: E402

PYTHON = sys.executable
EDGE_AGENT = str(Path(PYTHON).with_name("edge-agent"))
CHIPS = [("bme280", 0x76), ("sht3x", 0x44), ("ads1115", 0x48), ("bh1750", 0x23)]
TARGETS = {"sensors-1s online": 2.0, "sensors-1s offline": 1.5}
IDLE_TARGETS = {"cpu_pct": 0.4, "wakeups": 15.0}


@dataclass
class Sample:
    wall: float
    write_bytes: int
    cpu: float
    switches: int


def sample(pid: int) -> Sample:
    io = dict(line.split(": ", 1) for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
        except OSError:  # a thread that just ended
            pass
    return Sample(time.time(), int(io["write_bytes"]), cpu, switches)


SYNC = {"mode": "normal", "hold": "true"}  # buffer.sync and buffer.hold (--sync, --no-hold)


def sensor_config(tmp: Path, url: str, interval: str, sensors: int = 10) -> str:
    lines = ["sources:"]
    for i in range(sensors):
        driver, address = CHIPS[i % len(CHIPS)]
        lines.append(f"  - {{name: s{i}, type: i2c, driver: {driver}, bus: emulated, "
                     f"address: {address}, measurement: s{i}}}")
    return (f"agent: {{name: wear, state_dir: {tmp / 'state'}, interval: {interval}}}\n"
            f"influx: {{url: '{url}', api: v2, org: o, bucket: b, token: bench-token}}\n"
            f"buffer: {{sync: {SYNC['mode']}, hold: {SYNC['hold']}}}\n"
            + "\n".join(lines) + "\n")


def mqtt_config(tmp: Path, url: str, broker: MosquittoServer) -> str:
    return (f"agent: {{name: wear, state_dir: {tmp / 'state'}}}\n"
            f"influx: {{url: '{url}', api: v2, org: o, bucket: b, token: bench-token}}\n"
            f"buffer: {{sync: {SYNC['mode']}, hold: {SYNC['hold']}}}\n"
            "sources:\n"
            "  - name: shellies\n"
            "    type: mqtt\n"
            f"    url: {broker.url}\n"
            "    client_id: edge-wear\n"
            "    qos: 1\n"
            "    subscriptions:\n"
            "      - {topic: 'shellies/{device}/sensor/{field}', format: value,\n"
            "         measurement: shelly}\n")


class Publisher:
    """``rate`` QoS 1 messages/s, Shelly H&T style, from a thread of this process."""

    def __init__(self, port: int, rate: float) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="wear-pub")
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.rate = rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            i = self.sent
            device = f"shellyht-{i % 10:06X}"
            field = ("temperature", "humidity")[i // 10 % 2]
            value = f"{20 + (i % 37) / 10:.2f}" if field == "temperature" else f"{40 + i % 20}"
            self.client.publish(f"shellies/{device}/sensor/{field}", value, qos=1)
            self.sent += 1
            delay = start + self.sent / self.rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.disconnect()
        self.client.loop_stop()


def line_time(line: str) -> int:
    return int(line.rsplit(" ", 1)[1])


def window_bytes(lines: List[str], t0: float, t1: float) -> Tuple[int, int]:
    """(bytes, points) of lines stamped within [t0, t1) wall-clock seconds."""
    lo, hi = int(t0 * 1e9), int(t1 * 1e9)
    size = points = 0
    for line in lines:
        if lo <= line_time(line) < hi:
            size += len(line.encode("utf-8")) + 1
            points += 1
    return size, points


def buffered_lines(state: Path) -> List[str]:
    buf = DiskBuffer(state / "buffer")
    try:
        out: List[str] = []
        for _, seg in buf.head(1 << 40, 1 << 50):
            out.extend(seg.data.decode("utf-8").split("\n"))
        return out
    finally:
        buf.close()


def run_agent(tmp: Path, config: str, warmup: float, seconds: float,
              ) -> Tuple[Sample, Sample, int, int]:
    path = tmp / "wear.yaml"
    path.write_text(config)
    path.chmod(0o600)
    proc = subprocess.Popen([EDGE_AGENT, "-c", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=tmp)
    log = bytearray()
    window = [0, 0]  # log bytes at the window's start and end

    def read_log() -> None:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            log.extend(chunk)

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        time.sleep(warmup)
        if proc.poll() is not None:
            raise SystemExit(f"agent exited: {log.decode(errors='replace')[-2000:]}")
        s0 = sample(proc.pid)
        window[0] = len(log)
        time.sleep(seconds)
        s1 = sample(proc.pid)
        window[1] = len(log)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        reader.join(5)
    if code != 0:
        raise SystemExit(f"agent exit code {code}: {log.decode(errors='replace')[-2000:]}")
    return s0, s1, window[1] - window[0], len(log)


@dataclass
class Result:
    name: str
    written: float  # bytes/s
    produced: float  # line-protocol bytes/s
    points: float  # points/s
    cpu_pct: float
    wakeups: float
    log_bps: float

    @property
    def ratio(self) -> float:
        return self.written / self.produced if self.produced else float("inf")


def scenario(name: str, warmup: float, seconds: float) -> Result:
    kind, mode = name.split()
    with tempfile.TemporaryDirectory(prefix="ea-wear-", dir=os.environ.get("WEAR_DIR")) as d:
        tmp = Path(d)
        server = FaultServer() if mode == "online" else None
        url = server.url if server else f"http://127.0.0.1:{free_port()}"
        broker = publisher = None
        try:
            if kind == "mqtt-100":
                broker = MosquittoServer(tmp / "mosquitto-dir")
                broker.start()
                config = mqtt_config(tmp, url, broker)
            else:
                config = sensor_config(tmp, url, kind.split("-")[1])
            if broker is not None:
                publisher = Publisher(broker.port, 100.0)
            s0, s1, log_bytes, _ = run_agent(tmp, config, warmup, seconds)
            if publisher is not None:
                publisher.close()
            if server is not None:
                lines = [ln for r in server.write_requests() for ln in r.lines]
                lines += buffered_lines(tmp / "state")
            else:
                lines = buffered_lines(tmp / "state")
        finally:
            if broker is not None:
                broker.stop()
            if server is not None:
                server.close()
    span = s1.wall - s0.wall
    produced, points = window_bytes(lines, s0.wall, s1.wall)
    return Result(name, (s1.write_bytes - s0.write_bytes) / span, produced / span,
                  points / span, (s1.cpu - s0.cpu) / span * 100,
                  (s1.switches - s0.switches) / span, log_bytes / span)


SCENARIOS = ["sensors-1s online", "sensors-1s offline", "sensors-10s online",
             "sensors-10s offline", "mqtt-100 online", "mqtt-100 offline"]
QUICK = ["sensors-1s online", "sensors-1s offline", "mqtt-100 online", "mqtt-100 offline"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 s windows, 4 scenarios")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--sync", choices=("normal", "full"), default="normal",
                        help="the agent's buffer.sync")
    parser.add_argument("--no-hold", action="store_true",
                        help="buffer.hold: false (commit every reading; the default is true)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="scenario names, e.g. 'sensors-1s online'")
    args = parser.parse_args()
    SYNC["mode"] = args.sync
    SYNC["hold"] = "false" if args.no_hold else "true"
    seconds = args.seconds or (60.0 if args.quick else 180.0)
    names = args.only or (QUICK if args.quick else SCENARIOS)
    print(f"edge-agent wear bench: {time.strftime('%Y-%m-%d')}, Python "
          f"{platform.python_version()}, nproc={os.cpu_count()}, {platform.machine()}, "
          f"{seconds:.0f} s windows, sync: {args.sync}, hold: {SYNC['hold']}")
    print(f"{'scenario':<22}{'written B/s':>12}{'LP B/s':>9}{'ratio':>8}{'pts/s':>7}"
          f"{'MB/day':>8}{'CPU %':>7}{'wake/s':>8}{'log B/s':>8}")
    results: Dict[str, Result] = {}
    for name in names:
        r = scenario(name, args.warmup, seconds)
        results[name] = r
        print(f"{name:<22}{r.written:>12.0f}{r.produced:>9.0f}{r.ratio:>8.2f}{r.points:>7.1f}"
              f"{r.written * 86400 / 1e6:>8.1f}{r.cpu_pct:>7.2f}{r.wakeups:>8.1f}"
              f"{r.log_bps:>8.0f}", flush=True)
    verdicts = []
    for name, target in TARGETS.items():
        if name in results:
            ok = results[name].ratio <= target
            verdicts.append(f"{name} {results[name].ratio:.2f}x {'ok' if ok else 'MISSED'} "
                            f"(<= {target:g}x)")
    idle: Optional[Result] = results.get("sensors-1s online")
    if idle is not None:
        verdicts.append(f"idle CPU {idle.cpu_pct:.2f}% "
                        f"{'ok' if idle.cpu_pct <= IDLE_TARGETS['cpu_pct'] else 'MISSED'} "
                        f"(<= {IDLE_TARGETS['cpu_pct']:g}%)")
        verdicts.append(f"wake-ups {idle.wakeups:.1f}/s "
                        f"{'ok' if idle.wakeups <= IDLE_TARGETS['wakeups'] else 'MISSED'} "
                        f"(<= {IDLE_TARGETS['wakeups']:g}/s)")
    print("targets: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
