"""SIGHUP under a QoS 1 stream: every message in InfluxDB exactly once.

A reload replaces the MQTT source: the old one commits, acks and closes its
dedup index before the new one loads it, so a message the old one took but did
not ack comes back from the broker with its original receive time (the same
point, overwritten with itself), never as a second point.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any, Callable

from tests.harness.agent import (
    AgentProcess,
    buffered_points,
    final_counters,
    mqtt_counts,
    wait_mqtt_connected,
    wait_mqtt_delivered,
    wait_until,
    write_config,
)
from tests.harness.mqtt import StreamPublisher


def test_sighup_under_a_qos1_stream_keeps_every_message_exactly_once(
    influx: Any, influx_db: str, mosquitto: Any, agents: Callable[..., AgentProcess],
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    topic = f"rl{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path / "agent.yaml", state_dir=state, influx_url=influx.url,
                          db=influx_db, i2c=(), mqtt_url=mosquitto.url,
                          client_id=f"edge-rl-{uuid.uuid4().hex[:6]}", topic=topic)
    agent = agents(config).start()
    wait_mqtt_connected(agent, state)
    load = StreamPublisher(mosquitto.port, topic, rate=200.0).start()
    for reload in range(1, 4):
        more = load.published + 100
        wait_until(lambda: load.published > more, 30, "load between reloads")  # noqa: B023
        agent.send(signal.SIGHUP)
        wait_until(lambda: agent.log().count("config reloaded") == reload, 60,  # noqa: B023
                   f"reload {reload}")
    before = load.published
    wait_until(lambda: load.published > before + 100, 30, "load after the last reload")
    published = load.stop()
    wait_mqtt_delivered(influx, influx_db, published)
    assert agent.stop() == 0, agent.log()
    points, distinct = mqtt_counts(influx, influx_db)
    assert (points, distinct) == (published, published), "an MQTT message lost or doubled"
    counters = final_counters(state)
    assert counters["rejected"] == counters["evicted"] == counters["dropped_invalid"] == 0
    assert counters["accepted"] == counters["written"] + buffered_points(state)
    assert "Traceback" not in agent.log()
