"""kill -9 of the MQTT bridge while good and bad QoS 1 messages keep coming: every message
the broker accepted ends up in InfluxDB or in the rejected-messages file, exactly once.

The real ``edge-agent`` process (MQTT 5, QoS 1, persistent session) against the
real mosquitto and influxd is SIGKILLed at seeded random moments and started
again at once. Messages are numbered Zigbee2MQTT-style JSON objects
(``{"n": 17, "linkquality": 120}``, the shape of zigbee2mqtt.io's device state
messages); every seventh is cut short (invalid JSON), as a flaky radio link or a
too-small MQTT buffer in a gateway leaves it. At the end, with the agent drained:

* InfluxDB holds each good number exactly once (count == distinct),
* the rejected file holds each bad number exactly once, with its reason,
* nothing is in both, nothing is missing,
* the persistent rejected counter equals the file's entries.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable, List

from edge_agent.sources.mqtt.ledger import Ledger
from tests.chaos.test_mqtt_kill import (
    SEED,
    NumberPublisher,
    kill_repeatedly,
    wait_subscribed,
    write_kill_config,
)
from tests.integration.test_agent_e2e import (
    AgentProcess,
    agents,  # noqa: F401  (fixture)
    wait_until,
)

KILLS = 8
RATE = 200.0
BAD_EVERY = 7


def payload(n: int) -> bytes:
    text = json.dumps({"n": n, "linkquality": 120})
    return (text[:-6] if n % BAD_EVERY == 0 else text).encode()  # '{"n": 7, "linkqua'


def test_kill_9_every_acked_message_in_influxdb_or_the_rejected_file_exactly(
    influx: Any, influx_db: str, mosquitto_factory: Callable[..., Any],
    agents: Callable[..., AgentProcess], tmp_path: Path,  # noqa: F811
) -> None:
    broker = mosquitto_factory("max_queued_messages 100000\n")  # only the agent on trial
    state = tmp_path / "state"
    topic = f"krej{uuid.uuid4().hex[:6]}"
    config = write_kill_config(
        tmp_path / "agent.yaml", state, influx, influx_db, broker,
        f"{{topic: '{topic}/{{stream}}', format: json, measurement: kills}}")
    rng = random.Random(SEED)
    agent = agents(config).start()
    wait_subscribed(agent, state)
    load = NumberPublisher(broker.port, topic, RATE, payload).start()
    lifetimes = kill_repeatedly(agent, rng, KILLS)
    time.sleep(1.0)
    published = load.stop()
    bad = {n for n in range(published) if n % BAD_EVERY == 0}
    good = set(range(published)) - bad
    rejected_path = state / "mqtt-bridge-rejected.jsonl"

    def kept() -> List[int]:
        if not rejected_path.exists():
            return []
        out = []
        for line in rejected_path.read_text().splitlines():
            entry = json.loads(line)
            match = re.match(r'\{"n": (\d+),', entry["payload"])
            assert match and entry["reason"].startswith("invalid JSON"), entry
            out.append(int(match.group(1)))
        return out

    def stored() -> List[int]:
        return [int(r["n"]) for r in influx.rows(influx_db, 'SELECT "n" FROM "kills"')]

    wait_until(lambda: len(stored()) >= len(good) and len(kept()) >= len(bad), 60,
               "the drain of every message")
    assert agent.stop() == 0, agent.log()
    values, rejected = stored(), kept()
    where = f"seed {SEED}, kills after {lifetimes} s"
    assert sorted(values) == sorted(good), (
        f"{where}: lost {sorted(good - set(values))[:30]}, doubled "
        f"{sorted(v for v in set(values) if values.count(v) > 1)[:30]}")
    assert sorted(rejected) == sorted(bad), (
        f"{where}: not kept {sorted(bad - set(rejected))[:30]}, kept twice "
        f"{sorted(v for v in set(rejected) if rejected.count(v) > 1)[:30]}")
    counters = Ledger("bridge", str(state)).stats[f"{topic}/{{stream}}"]
    assert counters.messages_rejected == len(bad), where
    assert "Traceback" not in agent.log(), agent.log()[-3000:]
