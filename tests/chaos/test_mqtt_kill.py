"""kill -9 of the MQTT bridge, 20 times, while numbered QoS 1 messages keep coming.

The ``edge-agent`` subprocess (MQTT 5, QoS 1, persistent session, state in
tmp) is SIGKILLed at seeded random moments: during start-up, mid-commit,
between the disk commit and the PUBACK. Each time it is started again at once.
The payloads are bare numbers (format ``value``): no timestamp of their own,
so each point is stamped with its receive time, and a redelivery of a message
whose points were already committed would become a second point unless the
dedup index recognises it. At the end the agent drains and every published
number must be in InfluxDB exactly once: count == count(distinct) == published.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List

from tests.harness.agent import AgentProcess, wait_mqtt_connected
from tests.harness.mqtt import StreamPublisher

SEED = int(os.environ.get("CHAOS_SEED", "20251125"))  # another seed: CHAOS_SEED=n pytest ...
KILLS = 20
RATE = 300.0  # msg/s: modest, the point is the kills, not the throughput


def counts(influx: Any, db: str) -> Dict[str, int]:
    total = influx.rows(db, 'SELECT count("n") FROM "kills"')
    distinct = influx.rows(db, 'SELECT count(distinct("n")) FROM "kills"')
    return {"points": int(total[0]["count"]) if total else 0,
            "distinct": int(distinct[0]["count"]) if distinct else 0}


def write_kill_config(path: Path, state: Path, influx: Any, db: str, broker: Any,
                      subscription: str, precision: str = "ns", name: str = "killed",
                      tags: str = "{site: chaos}") -> Path:
    """The killed agent's config: MQTT 5, QoS 1, persistent session, short intervals."""
    path.write_text(f"""agent: {{name: {name}, state_dir: {state}, internal_metrics: 0s}}
tags: {tags}
influx: {{url: '{influx.url}', api: v1, bucket: {db}, timeout: 5s, precision: {precision}}}
write: {{flush_interval: 100, retry_interval: 200, max_retry_delay: 1000, commit_interval: 20}}
sources:
  - name: bridge
    type: mqtt
    url: {broker.url}
    client_id: edge-kill-{uuid.uuid4().hex[:6]}
    protocol: 5
    qos: 1
    clean_session: false
    session_expiry: 1h
    reconnect_max: 1s
    subscriptions:
      - {subscription}
""")
    return path


def kill_repeatedly(agent: AgentProcess, rng: random.Random, kills: int) -> List[float]:
    """SIGKILL the running agent ``kills`` times, restarting it at once; the lifetimes."""
    lifetimes = []
    for kill in range(kills):
        if kill:
            agent.start()
        # From process start: some kills land during start-up, most while
        # messages are being committed and acked.
        lifetime = rng.uniform(0.4, 2.5)
        lifetimes.append(round(lifetime, 2))
        time.sleep(lifetime)
        assert agent.proc is not None and agent.proc.poll() is None, agent.log()
        agent.kill()
    agent.start()
    return lifetimes


def test_kill_9_twenty_times_every_message_exactly_once(
    influx: Any, influx_db: str, mosquitto_factory: Callable[..., Any],
    agents: Callable[..., AgentProcess], tmp_path: Path,  # noqa: F811
) -> None:
    # The broker queues our persistent session's messages while the agent is
    # dead or restarting and drops those beyond max_queued_messages (1000 by
    # default). That budget is the broker operator's; raised so that only the
    # agent is on trial here.
    broker = mosquitto_factory("max_queued_messages 100000\n")
    state = tmp_path / "state"
    topic = f"kill{uuid.uuid4().hex[:6]}"
    config = write_kill_config(
        tmp_path / "agent.yaml", state, influx, influx_db, broker,
        f"{{topic: '{topic}/{{stream}}', format: value, measurement: kills, field: n}}")
    rng = random.Random(SEED)
    agent = agents(config).start()
    wait_mqtt_connected(agent, state)
    load = StreamPublisher(broker.port, topic, RATE,
                           payload=lambda n: (f"s{n % 5}", str(n))).start()
    lifetimes = kill_repeatedly(agent, rng, KILLS)
    time.sleep(1.0)
    published = load.stop()
    assert published > KILLS * 100, published

    deadline = time.monotonic() + 60  # the drain: many times what it needs
    while counts(influx, influx_db)["points"] < published and time.monotonic() < deadline:
        time.sleep(0.2)
    assert agent.stop() == 0, agent.log()
    got = counts(influx, influx_db)
    values = [int(r["n"]) for r in influx.rows(influx_db, 'SELECT "n" FROM "kills"')]
    missing = sorted(set(range(published)) - set(values))
    doubled = sorted(v for v in set(values) if values.count(v) > 1)
    assert not missing and not doubled, (
        f"seed {SEED}, kills after {lifetimes} s: {len(missing)} lost {missing[:50]}, "
        f"{len(doubled)} doubled {doubled[:50]}")
    assert got == {"points": published, "distinct": published}, (
        f"lost or doubled messages with seed {SEED}, kills after {lifetimes} s: {got}")
    log = agent.log()
    assert "Traceback" not in log, log[-3000:]
