"""The installed ``edge-agent`` as a subprocess against real influxd and mosquitto.

What a user relies on: SIGTERM mid-load loses nothing and a restart duplicates
nothing (every point in InfluxDB exactly once, stamped at sample time);
SIGHUP with a broken config is refused in one log line while collection goes
on, and a valid one takes effect; systemd's notify protocol and watchdog work
over a real AF_UNIX datagram socket; journald-style log lines.

The helpers live in tests/harness/agent.py (the chaos tests use them too).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, List, Tuple

from tests.harness.agent import (
    AgentProcess,
    assert_sampled,
    final_counters,
    mqtt_counts,
    series_times,
    total_points,
    wait_mqtt_connected,
    wait_mqtt_delivered,
    wait_until,
    write_config,
)
from tests.harness.mqtt import StreamPublisher
from tests.harness.servers import free_port

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
    wait_mqtt_connected(agent, state)
    load = StreamPublisher(mosquitto.port, topic).start()
    wait_until(lambda: load.published > 150, 30, "load to build up")
    assert agent.stop() == 0, agent.log()  # mid-load: the publisher keeps going
    stopped = final_counters(state)
    assert stopped["accepted"] > 0
    # The last flush delivered everything that was accepted (InfluxDB is up).
    assert json.loads((state / "status.json").read_text())["buffer"]["points"] == 0

    down = load.published  # messages published meanwhile wait in the persistent session
    wait_until(lambda: load.published > down + 20, 30, "load while the agent is down")
    agent.start()
    wait_until(lambda: agent.status(state), 30, "the restarted agent's status")
    published_before = load.published
    wait_until(lambda: load.published > published_before + 100, 30, "more load")
    published = load.stop()
    i2c = ("climate", "humidity", "soil")

    wait_mqtt_delivered(influx, influx_db, published)
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
        state = tmp_path / "state"
        first_status = wait_until(lambda: agent.status(state), 30, "the status file")["time"]
        # two status writes later a watchdog-enabled agent would have pinged twice
        wait_until(lambda: (agent.status(state) or {}).get("time", 0) >= first_status + 2.0,
                   30, "two more status writes")
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
