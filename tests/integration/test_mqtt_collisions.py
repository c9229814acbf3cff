"""Timestamp collisions against the real influxd: with ``precision: s`` a burst of messages
of one series must not collapse into one row while being counted as written.

N messages of one sensor within about a second: every one is a row (moved apart by
whole seconds, at most ``MAX_SHIFT``), or, beyond that, counted and kept in the
rejected-messages file: rows + rejected == N exactly.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import paho.mqtt.client as mqtt
import pytest

from edge_agent.agent.service import Agent
from edge_agent.config import load_config
from edge_agent.sources.mqtt.collisions import MAX_SHIFT
from tests.harness.waits import wait_for as wait_until

CONFIG = """agent: {{name: coll, state_dir: {state}, internal_metrics: 0s}}
influx: {{url: '{influx}', api: v1, bucket: {db}, precision: s, timeout: 5s}}
write: {{flush_interval: 100, retry_interval: 200, max_retry_delay: 1000, commit_interval: 20}}
sources:
  - name: bridge
    type: mqtt
    url: {mqtt}
    client_id: coll-{cid}
    subscriptions:
      - {{topic: '{p}/{{room}}/{{field}}', format: value, measurement: climate}}
"""


@pytest.fixture
def agent(influx: Any, influx_db: str, mosquitto: Any, tmp_path: Path) -> Iterator[Any]:
    p = uuid.uuid4().hex[:6]
    path = tmp_path / "agent.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state", influx=influx.url, db=influx_db,
                                  mqtt=mosquitto.url, cid=uuid.uuid4().hex[:6], p=p))
    config = load_config(str(path))
    assert any("precision: s" in w for w in config.warnings), config.warnings
    running = Agent(config)
    running.start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{p}")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        wait_until(lambda: running.sources[0].connected, 30, "the MQTT source to connect")
        time.sleep(0.3)  # SUBACK
        running.p, running.pub = p, pub  # type: ignore[attr-defined]
        yield running
    finally:
        pub.disconnect()
        pub.loop_stop()
        running.shutdown()


def burst(agent: Any, n: int, field: str = "temperature") -> None:
    infos = [agent.pub.publish(f"{agent.p}/kitchen/{field}", str(i + 1), qos=1)
             for i in range(n)]
    for info in infos:
        info.wait_for_publish(10)


def rows(influx: Any, db: str, field: str) -> List[Dict[str, Any]]:
    return influx.rows(db, f'SELECT "{field}" FROM "climate" WHERE "{field}" > 0')


def test_ten_messages_in_one_second_are_ten_rows(
        agent: Any, influx: Any, influx_db: str) -> None:
    burst(agent, 10)
    wait_until(lambda: agent.sources[0].status()["acked"] == 10, 30, "the acks")
    wait_until(lambda: len(rows(influx, influx_db, "temperature")) >= 10, 30, "ten rows")
    got = rows(influx, influx_db, "temperature")
    assert sorted(r["temperature"] for r in got) == list(range(1, 11))
    times = [r["time"] for r in got]
    assert len(set(times)) == 10 and all(t % 1_000_000_000 == 0 for t in times)
    stats = agent.sources[0].status()["subscriptions"][f"{agent.p}/{{room}}/{{field}}"]
    assert stats["messages_rejected"] == 0 and stats["points"] == 10
    assert stats["timestamps_shifted"] >= 8  # at most two distinct receive seconds
    # Another field of the same series in the same seconds merges into those rows.
    burst(agent, 1, "humidity")
    wait_until(lambda: rows(influx, influx_db, "humidity"), 30, "the humidity row")


def test_a_burst_beyond_the_window_is_counted_and_kept_exactly(
        agent: Any, influx: Any, influx_db: str, tmp_path: Path) -> None:
    n = MAX_SHIFT + 15
    burst(agent, n)
    wait_until(lambda: agent.sources[0].status()["acked"] == n, 30, "the acks")
    stats = agent.sources[0].status()["subscriptions"][f"{agent.p}/{{room}}/{{field}}"]
    rejected = stats["messages_rejected"]
    assert rejected >= 1 and stats["points"] == n - rejected
    wait_until(lambda: len(rows(influx, influx_db, "temperature")) >= n - rejected, 30,
               "the rows")
    time.sleep(0.5)  # nothing more may arrive
    got = rows(influx, influx_db, "temperature")
    path = tmp_path / "state" / "mqtt-bridge-rejected.jsonl"
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(got) + len(kept) == n and len(kept) == rejected
    assert {r["temperature"] for r in got} | {float(e["payload"]) for e in kept} == set(
        range(1, n + 1))
    assert all(e["reason"].startswith("timestamp collision: ") for e in kept)


def test_check_config_warns_about_precision_s_with_an_mqtt_source(tmp_path: Path) -> None:
    import subprocess

    from tests.harness.agent import agent_command, clean_env

    path = tmp_path / "agent.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state", influx="http://127.0.0.1:9",
                                  db="d", mqtt="mqtt://127.0.0.1:9", cid="x", p="p"))
    result = subprocess.run(agent_command("check-config", "-c", str(path)), env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "WARNING edge_agent.config: influx.precision: s with the MQTT source 'bridge': " \
        "messages of one series less than a second apart share a timestamp" in result.stderr
    assert f"# {path}: valid" in result.stdout
