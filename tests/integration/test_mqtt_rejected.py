"""Every MQTT message that does not become points: counted (persistently), shown, kept.

For each rejection path a message goes through the real mosquitto (QoS 1) to
the bridge, which must ack it and then: the subscription's persistent counter
(read back from disk by a new ``Ledger``, as a restarted agent would) is 1,
the ``edge-agent status`` line names the reason, and the rejected-messages
file holds the topic, the payload and the reason, exactly once.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

from edge_agent.agent import commands
from edge_agent.agent.service import Agent
from edge_agent.config import load_config
from edge_agent.sources.mqtt.ledger import Ledger, status_lines
from tests.harness.mqtt import Publisher, started
from tests.harness.mqtt import mqtt_config as config
from tests.harness.sinks import MemorySink
from tests.harness.waits import wait_for


def rejected_entries(state: Path, name: str = "bridge") -> List[Dict[str, Any]]:
    path = state / f"mqtt-{name}-rejected.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# (id, subscription, good payload, bad payload, the reason's start). Payload shapes:
# Zigbee2MQTT device state (zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html),
# Tasmota SENSOR telemetry (tasmota.github.io/docs/JSON-Status-Responses), Telegraf's
# influx serializer (docs.influxdata.com/telegraf/v1/data_formats/output/influx).
CASES = [
    ("invalid-json", dict(format="json", measurement="z2m"),
     b'{"temperature":21.5,"humidity":45,"linkquality":120}',
     b'{"temperature":21.5,"humidity":', "invalid JSON: "),
    ("not-utf8", dict(format="value", measurement="v", field="x"),
     b"21.5", b"\xff\xfe\x00\x01", "payload is not UTF-8"),
    ("too-large", dict(format="json", measurement="big"),
     b'{"Time":"2024-01-01T00:00:00","ENERGY":{"Power":12}}',
     b'[' + b",".join([b'{"ENERGY":{"Power":12,"Voltage":230}}'] * 60) + b']',
     "payload of 2"),
    ("kv-not-pairs", dict(format="kv", measurement="kv"),
     b"temp=21.5 hum=40", b"temp:21.5", "kv token 'temp:21.5' is not key=value"),
    ("influx-no-fields", dict(format="influx"),
     b"cpu,host=a usage_idle=98.2 1700000000000000000", b"cpu,host=a", "line protocol "),
    ("own-time-collision", dict(format="json", measurement="stamped",
                                time=SimpleNamespace(key="ts", precision="s", format=None)),
     b'{"ts": 1700000000, "t": 21.5}', b'{"ts": 1700000000, "t": 22.0}',
     "timestamp collision: series 'stamped,dev=d' field 't' already has a point at "
     "1700000000 (precision s)"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_rejection_is_counted_persistently_shown_and_kept(
        case: Any, mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:  # noqa: F811
    name, sub, good, bad, reason = case
    p = uuid.uuid4().hex[:6]
    template = f"{p}/{{dev}}"
    cfg = config(mosquitto.url, [dict(topic=template, **sub)], max_payload=2048)
    precision = "s" if "collision" in name else "ns"
    sink = MemorySink()
    src = started(cfg, sink, state_dir=str(tmp_path), precision=precision)
    try:
        publisher.send_many([(f"{p}/d", good), (f"{p}/d", bad)])
        wait_for(lambda: src.status()["acked"] == 2)  # both acked: neither is left unseen
        assert len(sink.snapshot()) >= 1
        lines = status_lines(src.status())
    finally:
        src.stop()
    stats = src.status()["subscriptions"][template]
    assert (stats["messages_received"], stats["messages_rejected"]) == (2, 1)
    assert stats["last_reject_reason"].startswith(reason), stats
    at = lines.index(f"subscription '{template}': 2 received, 1 points, 1 rejected")
    assert lines[at + 1].startswith("  last rejected ") and lines[at + 1].endswith(
        f" on '{p}/d':")
    assert lines[at + 2] == f"    {stats['last_reject_reason']}"
    assert lines[0] == "mqtt bridge: 1 rejected, 0 unmatched, 0 QoS 0 dropped"
    assert lines[1].startswith("  rejected messages in ")
    (entry,) = rejected_entries(tmp_path)
    assert entry["subscription"] == template and entry["topic"] == f"{p}/d"
    assert entry["reason"] == stats["last_reject_reason"] and entry["n"] == 1
    assert entry["qos"] == 1 and entry["bytes"] == len(bad)
    if name == "not-utf8":
        assert entry["payload_base64"] == "//4AAQ=="
    else:
        assert entry["payload"] == bad.decode()
    again = Ledger("bridge", str(tmp_path))  # what the next start reads from disk
    assert again.stats[template].messages_rejected == 1
    assert again.stats[template].last_reject_reason == stats["last_reject_reason"]


def test_unmatched_message_queued_under_a_removed_subscription(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:  # noqa: F811
    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/keep/{{field}}", measurement="m"),
                                 dict(topic=f"{p}/old/{{field}}", measurement="m")])
    src = started(cfg, MemorySink(), state_dir=str(tmp_path))
    src.stop()
    # Offline, the persistent session queues a message for the old subscription;
    # the config then loses that subscription.
    publisher.send(f"{p}/old/t", b"7.5")
    cfg.subscriptions = cfg.subscriptions[:1]
    sink = MemorySink()
    src2 = started(cfg, sink, state_dir=str(tmp_path))
    try:
        wait_for(lambda: src2.status()["acked"] == 1)
        status = src2.status()
        lines = status_lines(status)
        # The session's old subscription is removed at the broker: no more of its messages.
        wait_for(lambda: src2.ledger.stale_filters == [])
        publisher.send(f"{p}/old/t", b"8.5")
        publisher.send(f"{p}/keep/t", b"9.5")
        wait_for(lambda: len(sink.snapshot()) == 1)
        assert src2.status()["acked"] == 2 and src2.status()["messages_unmatched"] == 1
    finally:
        src2.stop()
    assert status["messages_unmatched"] == 1
    assert lines[0] == f"mqtt bridge: 0 rejected, 1 unmatched (last on '{p}/old/t'), " \
        "0 QoS 0 dropped"
    assert lines[1].startswith("  rejected messages in ")
    (entry,) = rejected_entries(tmp_path)
    assert entry["subscription"] is None and entry["payload"] == "7.5"
    assert entry["reason"] == "no subscription matches this topic"
    assert Ledger("bridge", str(tmp_path)).source["messages_unmatched"] == 1


AGENT = """agent: {{name: rej, state_dir: {state}, internal_metrics: 1s}}
influx: {{url: '{influx}', api: v1, bucket: {db}, timeout: 5s}}
write: {{flush_interval: 100, retry_interval: 200, max_retry_delay: 1000, commit_interval: 20}}
sources:
  - name: bridge
    type: mqtt
    url: {mqtt}
    client_id: rej-{cid}
    subscriptions:
      - {{topic: '{p}/{{device}}', format: json, measurement: z2m}}
"""


def test_status_command_and_internal_metrics_show_rejections_across_a_restart(
        influx: Any, influx_db: str, mosquitto: Any, publisher: Publisher,  # noqa: F811
        tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    state = tmp_path / "state"
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT.format(state=state, influx=influx.url, db=influx_db,
                                 mqtt=mosquitto.url, cid=uuid.uuid4().hex[:6], p=p))
    cfg = load_config(str(path))
    agent = Agent(cfg)
    agent.start()
    try:
        wait_for(lambda: agent.sources[0].connected)
        time.sleep(0.3)  # SUBACK
        publisher.send_many([(f"{p}/Kitchen", b'{"temperature": 21.5}'),
                             (f"{p}/Kitchen", b"{oops")])
        wait_for(lambda: agent.sources[0].status()["acked"] == 2)
        agent.write_status()
        out = io.StringIO()
        commands.status(cfg, out)
        text = out.getvalue()
        assert "agent: running" in text
        assert f"    subscription '{p}/{{device}}': 2 received, 1 points, 1 rejected\n" \
            "      last rejected " in text
        assert f" on '{p}/Kitchen':\n        invalid JSON: Expecting property name" in text
        agent.write_internal_metrics()

        def metric() -> List[Dict[str, Any]]:
            return influx.rows(influx_db, 'SELECT * FROM "edge_agent_mqtt" WHERE '
                                          "\"subscription\" <> ''")
        wait_for(lambda: metric(), 30)
        (row,) = metric()
        assert (row["messages_rejected"], row["messages_received"], row["points"]) == (1, 2, 1)
        assert row["source"] == "bridge" and row["subscription"] == f"{p}/{{device}}"
    finally:
        agent.shutdown()
    # The in-process agent's pid (ours) is still alive: remove its status file so
    # that status reads the state_dir, as after the agent process ended.
    (state / "status.json").unlink()
    out = io.StringIO()
    commands.status(cfg, out)  # no agent running: the persistent counters
    text = out.getvalue()
    assert "agent: not running" in text
    assert "    mqtt bridge: 1 rejected, 0 unmatched, 0 QoS 0 dropped\n" \
        "      rejected messages in " in text
    assert "".join(text.split()).count("".join(str(state / "mqtt-bridge-rejected.jsonl").split()))
    assert f"    subscription '{p}/{{device}}': 2 received, 1 points, 1 rejected\n" in text


def test_a_reload_keeps_the_counts_of_the_source_it_replaces(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:  # noqa: F811
    from edge_agent.sources.mqtt.source import MqttSource

    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/{{dev}}", format="json", measurement="m")])
    old = started(cfg, MemorySink(), state_dir=str(tmp_path))
    new = MqttSource(cfg, MemorySink(), state_dir=str(tmp_path))  # built first, as reload does
    try:
        publisher.send_many([(f"{p}/d", b"{oops"), (f"{p}/d", b'{"a": 1}')])
        wait_for(lambda: old.status()["acked"] == 2)
    finally:
        old.stop()
    new.start()
    try:
        stats = new.status()["subscriptions"][f"{p}/{{dev}}"]
        assert (stats["messages_received"], stats["messages_rejected"], stats["points"]) == (
            2, 1, 1)
    finally:
        new.stop()
    assert Ledger("bridge", str(tmp_path)).stats[f"{p}/{{dev}}"].messages_received == 2


def test_rate_limited_log_says_how_many_lines_it_suppressed(
        mosquitto: Any, publisher: Publisher, tmp_path: Path,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/{{dev}}", format="json", measurement="m")])
    with caplog.at_level("WARNING", logger="edge_agent.sources.mqtt"):
        src = started(cfg, MemorySink(), state_dir=str(tmp_path), log_interval=0.5)
        try:
            publisher.send_many([(f"{p}/d", b"{oops")] * 5)
            wait_for(lambda: src.status()["acked"] == 5)
            wait_for(lambda: any("suppressed" in r.getMessage() for r in caplog.records))
        finally:
            src.stop()
    messages = [r.getMessage() for r in caplog.records if "mqtt bridge" in r.getMessage()]
    rejected = [m for m in messages if m.startswith(f"mqtt bridge: rejected a message on '{p}/d'")]
    summary = [m for m in messages if "suppressed" in m]
    assert rejected and summary, messages
    counts = [int(m.split(" more line(s)")[0].rsplit(" ", 1)[1]) for m in summary]
    counts += [int(m.rsplit("(", 1)[1].split(" ")[0]) for m in rejected
               if m.endswith("similar lines suppressed since the last)")]
    assert len(rejected) + sum(counts) == 5, messages  # every line logged or counted


def test_qos0_overflow_is_counted_persistently_and_adds_up_exactly(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:  # noqa: F811
    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")], qos=0)
    sink = MemorySink(delay=0.3)  # a slow disk: the inbox overflows
    src = started(cfg, sink, state_dir=str(tmp_path), max_queue=20)
    try:
        publisher.send_many([(f"{p}/n", str(i).encode()) for i in range(300)], qos=0)
        key = f"{p}/{{field}}"

        def settled() -> bool:
            s = src.status()
            return s["subscriptions"][key]["messages_received"] + s["qos0_dropped"] == 300
        wait_for(settled, 30)
        status = src.status()
        lines = status_lines(status)
    finally:
        src.stop()
    dropped = status["qos0_dropped"]
    assert dropped > 0 and len(sink.snapshot()) == 300 - dropped
    assert f", {dropped} QoS 0 dropped" in lines[0]
    assert Ledger("bridge", str(tmp_path)).source["qos0_dropped"] == dropped
