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

Run again at ``precision: s``, where five series of 40 messages a second each
collide: the moved timestamps (and their redeliveries after a kill) must not
overwrite one another, and what cannot be moved is in the rejected file.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest

from edge_agent.sources.mqtt.ledger import Ledger
from tests.chaos.test_mqtt_kill import SEED, kill_repeatedly, write_kill_config
from tests.harness.agent import AgentProcess, wait_mqtt_connected
from tests.harness.mqtt import StreamPublisher
from tests.harness.waits import wait_for as wait_until

KILLS = 8
RATE = 200.0
BAD_EVERY = 7


def payload(n: int) -> bytes:
    text = json.dumps({"n": n, "linkquality": 120})
    return (text[:-6] if n % BAD_EVERY == 0 else text).encode()  # '{"n": 7, "linkqua'


@pytest.mark.parametrize("precision", ["ns", "s"])
def test_kill_9_every_acked_message_in_influxdb_or_the_rejected_file_exactly(
    precision: str, influx: Any, influx_db: str, mosquitto_factory: Callable[..., Any],
    agents: Callable[..., AgentProcess], tmp_path: Path,  # noqa: F811
) -> None:
    broker = mosquitto_factory("max_queued_messages 100000\n")  # only the agent on trial
    state = tmp_path / "state"
    topic = f"krej{uuid.uuid4().hex[:6]}"
    config = write_kill_config(
        tmp_path / "agent.yaml", state, influx, influx_db, broker,
        f"{{topic: '{topic}/{{stream}}', format: json, measurement: kills}}", precision)
    rng = random.Random(SEED)
    agent = agents(config).start()
    wait_mqtt_connected(agent, state)
    load = StreamPublisher(broker.port, topic, RATE,
                           payload=lambda n: (f"s{n % 5}", payload(n))).start()
    lifetimes = kill_repeatedly(agent, rng, KILLS)
    time.sleep(1.0)
    published = load.stop()
    bad = {n for n in range(published) if n % BAD_EVERY == 0}
    rejected_path = state / "mqtt-bridge-rejected.jsonl"

    def kept() -> List[Tuple[int, str]]:
        if not rejected_path.exists():
            return []
        out = []
        for line in rejected_path.read_text().splitlines():
            entry = json.loads(line)
            match = re.match(r'\{"n": (\d+),', entry["payload"])
            assert match, entry
            out.append((int(match.group(1)), entry["reason"]))
        return out

    def stored() -> List[int]:
        return [int(r["n"]) for r in influx.rows(influx_db, 'SELECT "n" FROM "kills"')]

    with contextlib.suppress(AssertionError):  # the exact checks below say what is missing
        wait_until(lambda: len(stored()) + len(kept()) >= published, 60,
                   "the drain of every message")
    assert agent.stop() == 0, agent.log()
    values, entries = stored(), kept()
    rejected = [n for n, _ in entries]
    where = f"seed {SEED}, precision {precision}, kills after {lifetimes} s"
    doubled = sorted(v for v in set(values) if values.count(v) > 1)
    twice = sorted(v for v in set(rejected) if rejected.count(v) > 1)
    both = sorted(set(values) & set(rejected))
    lost = sorted(set(range(published)) - set(values) - set(rejected))
    assert not (doubled or twice or both or lost), (
        f"{where}: lost {lost[:30]}, doubled in InfluxDB {doubled[:30]}, kept twice "
        f"{twice[:30]}, in both {both[:30]}")
    assert {n for n, reason in entries if reason.startswith("invalid JSON")} == bad, where
    others = {reason.split(":")[0] for n, reason in entries if n not in bad}
    # At precision s 40 messages a second per series: past the shift window, the rest collide.
    assert others == (set() if precision == "ns" else {"timestamp collision"}), others
    counters = Ledger("bridge", str(state)).stats[f"{topic}/{{stream}}"]
    assert counters.messages_rejected == len(entries), where
    assert "Traceback" not in agent.log(), agent.log()[-3000:]
