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
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Set

import paho.mqtt.client as mqtt

from tests.integration.test_agent_e2e import (
    AgentProcess,
    agents,  # noqa: F401  (fixture)
    wait_until,
)

SEED = int(os.environ.get("CHAOS_SEED", "20251125"))  # another seed: CHAOS_SEED=n pytest ...
KILLS = 20
RATE = 300.0  # msg/s: modest, the point is the kills, not the throughput


class NumberPublisher:
    """Publishes 0, 1, 2, ... (QoS 1) at a steady rate; ``published`` = PUBACKed."""

    def __init__(self, port: int, topic: str, rate: float,
                 payload: Callable[[int], bytes] = lambda n: str(n).encode()) -> None:
        self.payload = payload
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"num-{uuid.uuid4().hex[:8]}")
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(200)
        self.acked: Set[int] = set()
        self.mids: List[int] = []
        self.client.on_publish = lambda c, u, mid, rc, props: self.acked.add(mid)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.topic = topic
        self.period = 1.0 / rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> NumberPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        next_at = time.monotonic()
        n = 0
        while not self._stop.is_set():
            info = self.client.publish(f"{self.topic}/s{n % 5}", self.payload(n), qos=1)
            self.mids.append(info.mid)
            n += 1
            next_at += self.period
            time.sleep(max(0.0, next_at - time.monotonic()))

    @property
    def sent(self) -> int:
        return len(self.mids)

    def stop(self) -> int:
        """Stop, wait for every PUBACK; the number of messages the broker accepted."""
        self._stop.set()
        self._thread.join(10)
        wait_until(lambda: self.acked.issuperset(self.mids), 30, "the broker's PUBACKs")
        assert len(set(self.mids)) == len(self.mids) < 65_535  # mids unique: count is exact
        self.client.disconnect()
        self.client.loop_stop()
        return len(self.mids)


def counts(influx: Any, db: str) -> Dict[str, int]:
    total = influx.rows(db, 'SELECT count("n") FROM "kills"')
    distinct = influx.rows(db, 'SELECT count(distinct("n")) FROM "kills"')
    return {"points": int(total[0]["count"]) if total else 0,
            "distinct": int(distinct[0]["count"]) if distinct else 0}


def write_kill_config(path: Path, state: Path, influx: Any, db: str, broker: Any,
                      subscription: str, precision: str = "ns") -> Path:
    """The killed agent's config: MQTT 5, QoS 1, persistent session, short intervals."""
    path.write_text(f"""agent: {{name: killed, state_dir: {state}, internal_metrics: 0s}}
tags: {{site: chaos}}
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


def wait_subscribed(agent: AgentProcess, state: Path) -> None:
    # The first connect creates the persistent session: only messages published
    # after its SUBSCRIBE are ours to keep.
    wait_until(lambda: any(s.get("connected") for s in
                           (agent.status(state) or {}).get("sources", [])),
               30, "the MQTT source to connect and subscribe")


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
    wait_subscribed(agent, state)
    load = NumberPublisher(broker.port, topic, RATE).start()
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
