"""The agent under kill -9 and an InfluxDB outage: nothing committed is lost, nothing doubles.

Both runs carry load from emulated I2C chips polled every 0.2 s and an MQTT
publisher (QoS 1, acked by the agent only after the points are on disk).
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Set, Tuple

from edge_agent.buffer.disklog import DiskBuffer
from tests.harness.agent import (
    AgentProcess,
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

I2C = ("climate", "humidity", "soil")


def buffered_points(state: Path) -> Set[Tuple[str, int]]:
    """(measurement, time) of every line in the (closed) agent's disk buffer."""
    buffer = DiskBuffer(str(state / "buffer"), max_size=1 << 30, max_age=86400.0)
    try:
        found = set()
        for _, segment in buffer.head(10**9, 1 << 40):
            for line in segment.lines():
                text = line.decode()
                found.add((text.split(",", 1)[0], int(text.rsplit(" ", 1)[1])))
        return found
    finally:
        buffer.close()


def test_kill_9_mid_load_then_restart_delivers_committed_points_once(
    influx: Any, influx_db: str, mosquitto: Any, agents: Callable[..., AgentProcess],  # noqa: F811
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    topic = f"chaos{uuid.uuid4().hex[:6]}"
    # The agent delivers from memory while InfluxDB keeps up; 20 undelivered
    # points commit at once, so the kill finds both: points on disk, points in flight.
    config = write_config(tmp_path / "agent.yaml", state_dir=state, influx_url=influx.url,
                          db=influx_db, i2c=I2C, mqtt_url=mosquitto.url,
                          client_id=f"edge-chaos-{uuid.uuid4().hex[:6]}", topic=topic,
                          write="batch_size: 20")
    agent = agents(config).start()
    wait_mqtt_connected(agent, state)
    load = StreamPublisher(mosquitto.port, topic).start()
    wait_until(lambda: load.published > 200 and total_points(influx, influx_db, I2C) > 10, 30,
               "load and first deliveries")
    # SIGKILL mid-load: no last commit, no last flush. While InfluxDB keeps up the
    # buffer is often empty (points go from memory): kill again until a kill finds
    # committed, undelivered points.
    in_buffer: Set[Tuple[str, int]] = set()
    for _ in range(10):
        agent.kill()
        in_buffer = buffered_points(state)  # committed, not yet removed: must all arrive
        if in_buffer:
            break
        agent.start()
        wait_mqtt_connected(agent, state)
        time.sleep(0.3 + random.random())  # the next kill at a random moment (not a wait)
    agent.start()
    wait_mqtt_connected(agent, state)
    published_before = load.published
    wait_until(lambda: load.published > published_before + 100, 30, "more load")
    published = load.stop()
    wait_mqtt_delivered(influx, influx_db, published)
    assert agent.stop() == 0, agent.log()

    points, distinct = mqtt_counts(influx, influx_db)
    assert (points, distinct) == (published, published), "an MQTT message lost or doubled"
    stored = {(m, t) for m in (*I2C, "mqtt_e2e") for t in series_times(influx, influx_db, m)}
    assert in_buffer, "the kill found nothing in the buffer: the test proved nothing"
    assert in_buffer <= stored, f"committed points lost: {sorted(in_buffer - stored)[:5]}"
    # No point twice: every point InfluxDB holds was accepted once (stamped at sample
    # time, a resend after the kill overwrites itself). Redelivered MQTT messages that
    # were committed under the same receive time may be accepted twice, never stored twice.
    counters = final_counters(state)
    assert total_points(influx, influx_db, I2C) + points <= counters["accepted"]
    assert counters["rejected"] == counters["evicted"] == 0


def test_influx_outage_then_recovery_every_point_once(
    influx_factory: Callable[[], Any], mosquitto: Any,
    agents: Callable[..., AgentProcess],  # noqa: F811
    tmp_path: Path,
) -> None:
    influx = influx_factory()
    influx.create_database("chaos")
    state = tmp_path / "state"
    topic = f"outage{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path / "agent.yaml", state_dir=state, influx_url=influx.url,
                          db="chaos", i2c=I2C, mqtt_url=mosquitto.url,
                          client_id=f"edge-outage-{uuid.uuid4().hex[:6]}", topic=topic)
    agent = agents(config).start()
    wait_mqtt_connected(agent, state)
    load = StreamPublisher(mosquitto.port, topic, rate=50.0).start()
    wait_until(lambda: total_points(influx, "chaos", I2C) > 10, 30, "first deliveries")

    influx.stop()
    time.sleep(10)  # the outage: collection goes on into the buffer
    status = agent.status(state)
    assert status is not None and status["buffer"]["points"] > 0, status
    assert status["counters"]["write_errors"] > 0
    influx.start()

    published = load.stop()
    wait_until(lambda: (agent.status(state) or {}).get("buffer", {}).get("points") == 0
               and mqtt_counts(influx, "chaos")[0] >= published, 60,
               "the backlog to drain after the outage")
    agent.send(signal.SIGTERM)
    assert agent.proc is not None and agent.proc.wait(60) == 0, agent.log()

    counters = final_counters(state)
    points, distinct = mqtt_counts(influx, "chaos")
    assert (points, distinct) == (published, published), "an MQTT message lost or doubled"
    assert total_points(influx, "chaos", I2C) + points == counters["accepted"]
    assert counters["rejected"] == counters["evicted"] == 0
    assert "Traceback" not in agent.log()
