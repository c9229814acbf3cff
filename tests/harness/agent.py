"""The installed ``edge-agent`` as a subprocess, its configs, and a QoS 1 load.

Shared by the integration and chaos tests (the ``agents`` fixture that makes
:class:`AgentProcess` es is in tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .waits import wait_for

__all__ = ["EDGE_AGENT", "I2C_CHIPS", "AgentProcess", "agent_command",
           "assert_sampled", "buffered_points", "clean_env", "final_counters", "mqtt_connected",
           "mqtt_counts", "wait_mqtt_connected", "wait_mqtt_delivered",
           "series_times", "total_points", "wait_until", "write_config"]

#: the agent tests' name for :func:`~tests.harness.waits.wait_for` (same function)
wait_until = wait_for

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
# Variables that would change what the agent does; the tests set what they need.
_FOREIGN_ENV = ("INFLUX", "EDGE_AGENT", "NOTIFY_SOCKET", "WATCHDOG_", "JOURNAL_STREAM",
                "INVOCATION_ID", "MQTT_")

I2C_CHIPS = {  # source name -> (driver, address) on the emulated demo bus
    "climate": ("bme280", 0x76),
    "humidity": ("sht3x", 0x44),
    "light": ("bh1750", 0x23),
    "soil": ("ads1115", 0x48),
}


def agent_command(*args: str) -> List[str]:
    """The installed console script, else the module (same code either way)."""
    if EDGE_AGENT.exists():
        return [str(EDGE_AGENT), *args]
    return [sys.executable, "-m", "edge_agent.cli", *args]


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
    env.update(extra)
    return env


def write_config(path: Path, *, state_dir: Path, influx_url: str, db: str,
                 i2c: Sequence[str] = ("climate", "humidity", "soil"),
                 interval: str = "200ms", mqtt_url: Optional[str] = None,
                 client_id: str = "", topic: str = "e2e", extra: str = "",
                 write: str = "") -> Path:
    """A config at short intervals; each I2C source writes its own measurement.

    ``write`` adds keys to the write section (e.g. ``batch_size: 20``).
    """
    sources = []
    for name in i2c:
        driver, address = I2C_CHIPS[name]
        sources.append(f"  - {{name: {name}, type: i2c, driver: {driver}, bus: emulated, "
                       f"address: {address}, measurement: {name}}}\n")
    if mqtt_url:
        sources.append(
            f"  - name: bridge\n    type: mqtt\n    url: {mqtt_url}\n"
            f"    client_id: {client_id}\n    qos: 1\n"
            f"    subscriptions:\n"
            f"      - {{topic: '{topic}/{{device}}', format: json, measurement: mqtt_e2e,"
            f" types: {{seq: int}}}}\n")
    path.write_text(
        f"""agent:
  name: e2e
  state_dir: {state_dir}
  interval: {interval}
  round_interval: true
  internal_metrics: 0s
tags: {{site: test}}
influx: {{url: '{influx_url}', api: v1, bucket: {db}, timeout: 5s}}
write: {{flush_interval: 200, retry_interval: 200, max_retry_delay: 1000, commit_interval: 50{
    ", " + write if write else ""}}}
sources:
{''.join(sources) if sources else '  []'}
{extra}""")
    return path


class AgentProcess:
    """``edge-agent -c CONFIG`` in its own session; output in a log file."""

    def __init__(self, config: Path, workdir: Path, env: Optional[Dict[str, str]] = None
                 ) -> None:
        self.config = config
        self.workdir = workdir
        self.env = clean_env(**(env or {}))
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = workdir / f"agent-{uuid.uuid4().hex[:6]}.log"
        self.runs: List[Tuple[float, float]] = []  # wall-clock (start, end) of each run

    def start(self) -> AgentProcess:
        assert self.proc is None or self.proc.poll() is not None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                agent_command("-c", str(self.config)), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.workdir, env=self.env,
                start_new_session=True)
        self.runs.append((time.time(), 0.0))
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log()
        self.proc.send_signal(sig)

    def _ended(self) -> None:
        start, _ = self.runs[-1]
        self.runs[-1] = (start, time.time())

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; the exit code."""
        self.send(signal.SIGTERM)
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"edge-agent ignored SIGTERM for {timeout}s:\n{self.log()}") from None
        self._ended()
        return code

    def kill(self) -> None:
        """SIGKILL: no goodbye, no last flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self._ended()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def status(self, state_dir: Path) -> Optional[Dict[str, Any]]:
        try:
            data: Dict[str, Any] = json.loads((state_dir / "status.json").read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("pid") == self.pid else None


def series_times(influx: Any, db: str, measurement: str) -> List[int]:
    rows = influx.rows(db, f'SELECT * FROM "{measurement}"')
    return sorted(int(row["time"]) for row in rows)


def total_points(influx: Any, db: str, measurements: Sequence[str]) -> int:
    return sum(len(series_times(influx, db, m)) for m in measurements)


def mqtt_counts(influx: Any, db: str) -> Tuple[int, int]:
    """(points, distinct seq) of the MQTT measurement."""
    rows = influx.rows(db, 'SELECT count("seq") FROM "mqtt_e2e"')
    distinct = influx.rows(db, 'SELECT count(distinct("seq")) FROM "mqtt_e2e"')
    return (int(rows[0]["count"]) if rows else 0,
            int(distinct[0]["count"]) if distinct else 0)


def final_counters(state_dir: Path) -> Dict[str, Any]:
    """The counters the last run wrote into status.json at shutdown."""
    counters: Dict[str, Any] = json.loads((state_dir / "status.json").read_text())["counters"]
    return counters


def assert_sampled(times: List[int], runs: List[Tuple[float, float]], interval: float) -> None:
    """Timestamps come from sample time: inside a run, spaced by the poll grid.

    (BH1750 is left out at 0.2 s: its conversion takes 120-180 ms on the bus.)

    Stamped at flush time, a batch's lines would share one instant (or sit
    microseconds apart); stamped at sample time, consecutive points of one
    source are about an interval apart.
    """
    assert times, "no points"
    for t in times:
        assert any(start <= t / 1e9 <= end + 0.5 for start, end in runs), \
            f"point time {t} outside every run of the agent {runs}"
    gaps = [(b - a) / 1e9 for a, b in zip(times, times[1:])]
    assert min(gaps) > interval / 10, f"points closer than the poll grid allows: {min(gaps)}s"


def buffered_points(state_dir: Path) -> int:
    """Points still in the buffer when the last run wrote status.json."""
    data: Dict[str, Any] = json.loads((state_dir / "status.json").read_text())
    return int(data["buffer"]["points"])


def mqtt_connected(agent: AgentProcess, state_dir: Path) -> bool:
    """The running agent's status says an MQTT source is connected."""
    return any(s.get("connected") for s in (agent.status(state_dir) or {}).get("sources", []))


def wait_mqtt_connected(agent: AgentProcess, state_dir: Path, timeout: float = 30.0) -> None:
    wait_for(lambda: mqtt_connected(agent, state_dir), timeout, "the MQTT source to connect")


def wait_mqtt_delivered(influx: Any, db: str, published: int, timeout: float = 60.0) -> None:
    """Until InfluxDB holds (at least) ``published`` points of the MQTT measurement."""
    wait_for(lambda: mqtt_counts(influx, db)[0] >= published, timeout,
             f"all {published} MQTT messages in InfluxDB")


def run(*args: str, cwd: Optional[Path] = None, env: Optional[Dict[str, str]] = None,
        timeout: float = 120.0) -> subprocess.CompletedProcess:
    """``edge-agent ARGS`` as a user runs it, output captured."""
    return subprocess.run(agent_command(*args), capture_output=True, text=True, cwd=cwd,
                          env=clean_env(**(env or {})), timeout=timeout)


def identity(counters: Dict[str, Any], buffer_points: int) -> Dict[str, int]:
    """The accounting identity's terms: accepted = written + rejected + evicted + dropped
    + lost + buffered, where lost = lost_corrupt + lost_unsaved + lost_in_flight (each
    also given alone)."""
    out = {name: int(counters.get(name) or 0) for name in (
        "accepted", "written", "rejected", "evicted", "lost_corrupt", "lost_unsaved",
        "lost_in_flight")}
    out["lost"] = out["lost_corrupt"] + out["lost_unsaved"] + out["lost_in_flight"]
    out["dropped"] = sum(int(v or 0) for k, v in counters.items()
                         if k.startswith("dropped_") and k != "dropped_invalid")
    out["buffered"] = buffer_points
    return out
