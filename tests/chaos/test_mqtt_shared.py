"""Three bridges share one topic tree (MQTT 5 ``$share/<group>/<filter>``); one is
killed with -9 mid-stream, three times, and comes back.

Three real ``edge-agent`` processes (each its own client id, persistent session
and state dir) subscribe ``$share/bridges/<topic>/{stream}`` on the real
mosquitto and write to the same real influxd database, each with its own
``bridge`` tag. The broker hands each message to one member of the group;
messages in flight to the killed bridge stay in its session and are
redelivered when it reconnects (its dedup index keeps a redelivery from
becoming a second point). At the end every published number is in InfluxDB
exactly once, and every bridge stored a share.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from pathlib import Path
from typing import Any, Callable, List

from tests.chaos.test_mqtt_kill import counts, write_kill_config
from tests.harness.agent import AgentProcess
from tests.harness.mqtt import StreamPublisher
from tests.harness.waits import wait_for as wait_until

SEED = int(os.environ.get("CHAOS_SEED", "20251201"))
BRIDGES, KILLS, RATE = 3, 3, 300.0


def bridge_config(tmp_path: Path, n: int, influx: Any, db: str, broker: Any,
                  topic: str) -> Path:
    """Bridge ``n`` of the group: the killed agent's config, tagged with its number."""
    return write_kill_config(
        tmp_path / f"bridge{n}.yaml", tmp_path / f"state{n}", influx, db, broker,
        f"{{topic: '$share/bridges/{topic}/{{stream}}', format: value, measurement: kills, "
        "field: n}", name=f"bridge{n}", tags=f"{{bridge: b{n}}}")


def test_shared_subscription_three_bridges_one_killed_every_message_once(
    influx: Any, influx_db: str, mosquitto_factory: Callable[..., Any],
    agents: Callable[..., AgentProcess], tmp_path: Path,  # noqa: F811
) -> None:
    broker = mosquitto_factory("max_queued_messages 100000\n")
    topic = f"share{uuid.uuid4().hex[:6]}"
    fleet: List[AgentProcess] = []
    for n in range(BRIDGES):
        fleet.append(agents(bridge_config(tmp_path, n, influx, influx_db, broker, topic)).start())
    def connected(agent: AgentProcess, n: int) -> bool:
        status = agent.status(tmp_path / f"state{n}") or {}
        return any(s.get("connected") for s in status.get("sources", []))

    for n, agent in enumerate(fleet):
        wait_until(lambda a=agent, k=n: connected(a, k), 30,  # type: ignore[misc]
                   f"bridge {n} to connect and subscribe")
    rng = random.Random(SEED)
    load = StreamPublisher(broker.port, topic, RATE,
                           payload=lambda n: (f"s{n % 5}", str(n))).start()
    victim = fleet[0]
    lifetimes = []
    for _ in range(KILLS):
        lifetime = rng.uniform(0.8, 2.5)
        lifetimes.append(round(lifetime, 2))
        time.sleep(lifetime)
        assert victim.proc is not None and victim.proc.poll() is None, victim.log()
        victim.kill()
        time.sleep(rng.uniform(0.2, 1.0))  # the others keep the stream going meanwhile
        victim.start()
    time.sleep(1.0)
    published = load.stop()
    assert published > KILLS * 200, published

    deadline = time.monotonic() + 60
    while counts(influx, influx_db)["points"] < published and time.monotonic() < deadline:
        time.sleep(0.2)
    for agent in fleet:
        assert agent.stop() == 0, agent.log()
    values = [int(r["n"]) for r in influx.rows(influx_db, 'SELECT "n" FROM "kills"')]
    missing = sorted(set(range(published)) - set(values))
    doubled = sorted(v for v in set(values) if values.count(v) > 1)
    assert not missing and not doubled, (
        f"seed {SEED}, kills after {lifetimes} s: {len(missing)} lost {missing[:50]}, "
        f"{len(doubled)} doubled {doubled[:50]}")
    assert counts(influx, influx_db) == {"points": published, "distinct": published}
    shares = {r["bridge"]: int(r["count"]) for r in influx.rows(
        influx_db, 'SELECT count("n") FROM "kills" GROUP BY "bridge"')}
    assert set(shares) == {f"b{n}" for n in range(BRIDGES)}, shares
    assert all(v > 0 for v in shares.values()) and sum(shares.values()) == published
    for agent in fleet:
        assert "Traceback" not in agent.log(), agent.log()[-3000:]
