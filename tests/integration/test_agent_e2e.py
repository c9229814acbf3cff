"""The installed ``edge-agent`` as a subprocess against real influxd and mosquitto.

What a user relies on: SIGTERM mid-load loses nothing and a restart duplicates
nothing (every point in InfluxDB exactly once, stamped at sample time);
SIGHUP with a broken config is refused in one log line while collection goes
on, and a valid one takes effect; systemd's notify protocol and watchdog work
over a real AF_UNIX datagram socket; journald-style log lines.

The helpers at the top are shared with ``tests/chaos/test_agent_signals.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import paho.mqtt.client as mqtt
import pytest

from tests.harness.servers import free_port

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


# -- helpers (also used by the chaos tests) --------------------------------------


def agent_command(*args: str) -> List[str]:
    """The installed console script, else the module (same code either way)."""
    if EDGE_AGENT.exists():
        return [str(EDGE_AGENT), *args]
    return [sys.executable, "-m", "edge_agent.cli", *args]


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
    env.update(extra)
    return env


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll until ``predicate()`` is truthy; fail naming ``what`` (not a speed assert:
    the timeouts are many times what the step needs)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


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


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Make agent processes; any still running at the end is killed."""
    made: List[AgentProcess] = []

    def make(config: Path, env: Optional[Dict[str, str]] = None) -> AgentProcess:
        agent = AgentProcess(config, tmp_path, env)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.kill()


class LoadPublisher:
    """Publishes numbered JSON messages (QoS 1) in a thread until stopped.

    ``published`` counts the messages the broker acknowledged: each must end
    up in InfluxDB exactly once.
    """

    def __init__(self, port: int, topic: str, rate: float = 100.0) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"load-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.topic = topic
        self.period = 1.0 / rate
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LoadPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        seq = 0
        while not self._stop.wait(self.period):
            payload = json.dumps({"seq": seq, "v": seq * 0.5})
            info = self.client.publish(f"{self.topic}/dev{seq % 3}", payload, qos=1)
            info.wait_for_publish(10)
            if info.is_published():
                self.published += 1
            seq += 1

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(30)
        self.client.disconnect()
        self.client.loop_stop()
        return self.published


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


# -- SIGTERM mid-load, restart: every point exactly once ---------------------------


def test_sigterm_mid_load_restart_every_point_once(
    influx: Any, influx_db: str, mosquitto: Any, agents: Callable[..., AgentProcess],
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    topic = f"e2e{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path / "agent.yaml", state_dir=state, influx_url=influx.url,
                          db=influx_db, mqtt_url=mosquitto.url,
                          client_id=f"edge-e2e-{uuid.uuid4().hex[:6]}", topic=topic)
    agent = agents(config).start()
    wait_until(lambda: any(s.get("connected") for s in
                           (agent.status(state) or {}).get("sources", [])),
               30, "the MQTT source to connect")
    load = LoadPublisher(mosquitto.port, topic).start()
    wait_until(lambda: load.published > 150, 30, "load to build up")
    assert agent.stop() == 0, agent.log()  # mid-load: the publisher keeps going
    stopped = final_counters(state)
    assert stopped["accepted"] > 0
    # The last flush delivered everything that was accepted (InfluxDB is up).
    assert json.loads((state / "status.json").read_text())["buffer"]["points"] == 0

    time.sleep(0.5)  # messages published meanwhile wait in the persistent session
    agent.start()
    wait_until(lambda: agent.status(state), 30, "the restarted agent's status")
    published_before = load.published
    wait_until(lambda: load.published > published_before + 100, 30, "more load")
    published = load.stop()
    i2c = ("climate", "humidity", "soil")

    def caught_up() -> bool:
        return mqtt_counts(influx, influx_db)[0] >= published

    wait_until(caught_up, 60, f"all {published} MQTT messages in InfluxDB")
    assert agent.stop() == 0, agent.log()

    counters = final_counters(state)
    points, distinct = mqtt_counts(influx, influx_db)
    assert (points, distinct) == (published, published), "an MQTT message lost or doubled"
    # Every point the agent accepted, across both runs, is in InfluxDB exactly once
    # (a resend stamped at flush time would be a second point and break this).
    assert total_points(influx, influx_db, i2c) + points == counters["accepted"]
    assert counters["rejected"] == counters["evicted"] == 0
    for name in i2c:
        assert_sampled(series_times(influx, influx_db, name), agent.runs, 0.2)
    assert "Traceback" not in agent.log()


# -- SIGHUP -------------------------------------------------------------------------


def test_sighup_broken_config_refused_then_valid_one_applied(
    influx: Any, influx_db: str, agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    config = tmp_path / "agent.yaml"
    write_config(config, state_dir=state, influx_url=influx.url, db=influx_db, i2c=["climate"])
    agent = agents(config).start()
    wait_until(lambda: series_times(influx, influx_db, "climate"), 30, "first points")

    config.write_text(config.read_text().replace("round_interval: true",
                                                 "round_interval: true\n  polling: fast"))
    agent.send(signal.SIGHUP)
    refusal = wait_until(lambda: [ln for ln in agent.log().splitlines() if "reload refused" in ln],
                         30, "the reload refusal in the log")
    line = config.read_text().splitlines().index("  polling: fast") + 1
    assert len(refusal) == 1
    assert f"{config}:{line}:3: unknown key 'polling'" in refusal[0]
    assert "Traceback" not in agent.log()
    before = len(series_times(influx, influx_db, "climate"))
    wait_until(lambda: len(series_times(influx, influx_db, "climate")) > before + 5, 30,
               "points to keep arriving with the old config")

    write_config(config, state_dir=state, influx_url=influx.url, db=influx_db,
                 i2c=["climate", "soil"])
    agent.send(signal.SIGHUP)
    wait_until(lambda: series_times(influx, influx_db, "soil"), 30,
               "the source added by the reload to write")
    assert agent.stop() == 0, agent.log()
    assert "config reloaded: 2 source(s)" in agent.log()
    counters = final_counters(state)
    assert total_points(influx, influx_db, ["climate", "soil"]) == counters["accepted"]


# -- systemd: notify socket, watchdog, journald log lines -----------------------------


def test_sd_notify_ready_watchdog_stopping_and_journald_lines(
    agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    """InfluxDB is down (a closed port): the watchdog is about the agent's own
    threads, so pings go on while delivery fails and logs errors."""
    # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer.
    sockdir = tempfile.mkdtemp(prefix="ea-notify-", dir="/tmp")
    address = os.path.join(sockdir, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(0.2)
    messages: List[Tuple[float, str]] = []
    try:
        config = write_config(tmp_path / "agent.yaml", state_dir=tmp_path / "state",
                              influx_url=f"http://127.0.0.1:{free_port()}", db="db",
                              i2c=["climate"])
        agent = agents(config, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000",
                                    "JOURNAL_STREAM": "8:12345"}).start()

        def receive_until(predicate: Callable[[], bool], timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while not predicate():
                assert time.monotonic() < deadline, f"got only {messages}\n{agent.log()}"
                with contextlib.suppress(socket.timeout):
                    messages.append((time.monotonic(), sock.recv(4096).decode()))

        def pings() -> List[float]:
            return [t for t, m in messages if "WATCHDOG=1" in m.split("\n")]

        receive_until(lambda: len(pings()) >= 3, 30)
        first = messages[0][1].split("\n")  # READY before any ping, with a status line
        assert "READY=1" in first and any(ln.startswith("STATUS=") for ln in first), messages
        agent.send(signal.SIGTERM)
        receive_until(lambda: any("STOPPING=1" in m.split("\n") for _, m in messages), 30)
        assert agent.proc is not None and agent.proc.wait(60) == 0
    finally:
        sock.close()
        os.unlink(address)
        os.rmdir(sockdir)

    lines = [ln for ln in agent.log().splitlines() if ln.strip()]
    assert any("edge-agent started" in ln for ln in lines), lines
    for line in lines:
        assert re.match(r"<[0-7]>\S", line), f"no syslog priority prefix: {line!r}"
        assert not re.search(r"\d{4}-\d\d-\d\d|\d\d:\d\d:\d\d", line), \
            f"timestamp under journald: {line!r}"
    assert any(ln.startswith("<6>") for ln in lines)
    assert any(ln.startswith("<3>edge_agent.flusher: cannot reach") for ln in lines), lines


def test_watchdog_silent_without_watchdog_usec(
    fault_server: Any, agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    """READY and STOPPING still arrive, but no pings when systemd asked for none."""
    sockdir = tempfile.mkdtemp(prefix="ea-notify-", dir="/tmp")
    address = os.path.join(sockdir, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(60)
    try:
        config = write_config(tmp_path / "agent.yaml", state_dir=tmp_path / "state",
                              influx_url=fault_server.url, db="db", i2c=["climate"])
        agent = agents(config, env={"NOTIFY_SOCKET": address}).start()
        first = sock.recv(4096).decode()
        assert "READY=1" in first.split("\n")
        time.sleep(2.5)  # a watchdog-enabled agent would have pinged twice by now
        agent.send(signal.SIGTERM)
        rest: List[str] = []
        while not any("STOPPING=1" in m.split("\n") for m in rest):
            rest.append(sock.recv(4096).decode())
        assert not any("WATCHDOG=1" in m.split("\n") for m in rest), rest
        assert agent.proc is not None and agent.proc.wait(60) == 0
    finally:
        sock.close()
        os.unlink(address)
        os.rmdir(sockdir)
