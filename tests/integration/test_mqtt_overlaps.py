"""Overlapping subscriptions against the real mosquitto: each message stored once, by the
most specific subscription, whatever the broker sends.

mosquitto 2.0 sends an MQTT 5 client one copy per matching subscription (MQTT 5
section 3.3.4 allows it), each with the Subscription Identifier of its own
subscription; an MQTT 3.1.1 client gets a single copy. Both must end with the
same points. The broker's behaviour itself is asserted first, so a mosquitto
that changes it fails here loudly instead of making the bridge test vacuous.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, List

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.harness.mqtt import Publisher, started
from tests.harness.mqtt import mqtt_config as config
from tests.harness.sinks import MemorySink
from tests.harness.waits import wait_for


def test_mosquitto_sends_mqtt5_one_copy_per_matching_subscription(
        mosquitto: Any, publisher: Publisher) -> None:  # noqa: F811
    p = uuid.uuid4().hex[:6]
    got: List[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"o-{p}",
                      protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    try:
        wait_for(lambda: sub.is_connected())
        _, mid = sub.subscribe([(f"{p}/#", SubscribeOptions(qos=1)),
                                (f"{p}/+/t", SubscribeOptions(qos=1))])
        time.sleep(0.3)  # SUBACK
        publisher.send(f"{p}/a/t", b"1")
        wait_for(lambda: len(got) == 2)
    finally:
        sub.disconnect()
        sub.loop_stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_overlapping_subscriptions_store_each_message_once_by_the_most_specific(
        protocol: str, mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:  # noqa
    p = uuid.uuid4().hex[:6]
    # Least specific first in the config: the order must not decide.
    cfg = config(mosquitto.url, [
        dict(topic=f"{p}/#", measurement="everything", field="v"),
        dict(topic=f"{p}/+/{{field}}", measurement="generic"),
        dict(topic=f"{p}/{{room}}/temperature", measurement="climate", field="t"),
    ], protocol=protocol)
    sink = MemorySink()
    src = started(cfg, sink, state_dir=str(tmp_path))
    try:
        publisher.send_many([(f"{p}/kitchen/temperature", b"21.5"),
                             (f"{p}/kitchen/humidity", b"40"),
                             (f"{p}/x", b"1"), (f"{p}/a/b/c", b"2")])
        copies = 3 if protocol == "5" else 0  # temperature: 2 extra copies, humidity: 1
        wait_for(lambda: src.status()["acked"] == 4 + copies)
        time.sleep(0.3)  # anything more would arrive now
        status = src.status()
    finally:
        src.stop()
    got = sorted(line.rsplit(" ", 1)[0] for line in sink.snapshot())
    assert got == ["climate,room=kitchen t=21.5", "everything v=1", "everything v=2",
                   "generic humidity=40"]
    subs = status["subscriptions"]
    assert subs[f"{p}/{{room}}/temperature"]["messages_received"] == 1
    assert subs[f"{p}/+/{{field}}"]["messages_received"] == 1
    assert subs[f"{p}/#"]["messages_received"] == 2
    assert sum(s["overlap_copies"] for s in subs.values()) == copies
    # 3.1.1: only the covering filter is subscribed (no copies whatever the broker does).
    assert src.ledger.filters == (sorted(f.topic.replace("{room}", "+").replace("{field}", "+")
                                         for f in cfg.subscriptions)
                                  if protocol == "5" else [f"{p}/#"])
    assert sum(s["messages_rejected"] for s in subs.values()) == 0
    assert status["messages_unmatched"] == 0


def test_collect_once_stores_an_overlapping_retained_message_once(
        mosquitto: Any, publisher: Publisher) -> None:  # noqa: F811
    from edge_agent.sources.mqtt.once import collect_once

    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/#", measurement="all", field="v"),
                                 dict(topic=f"{p}/{{room}}/t", measurement="climate", field="t")])
    publisher.send(f"{p}/hall/t", b"19.5", retain=True)
    try:
        result = collect_once(cfg, 1.0)
    finally:
        publisher.send(f"{p}/hall/t", b"", retain=True)
    assert [line.rsplit(" ", 1)[0] for line in result.lines] == ["climate,room=hall t=19.5"]
    assert result.subscriptions[f"{p}/#"]["messages_received"] == 0
    assert result.subscriptions[f"{p}/{{room}}/t"]["overlap_copies"] == 1


def test_a_refused_subscription_hands_its_topics_to_the_next_most_specific() -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from edge_agent.sources.mqtt.source import MqttSource

    cfg = config("mqtt://127.0.0.1:9", [dict(topic="h/#", measurement="all", field="v"),
                                        dict(topic="h/{room}/t", measurement="climate")])
    src = MqttSource(cfg, MemorySink())  # never started: no broker needed
    assert src._lookup(b"h/hall/t")[0].filter == "h/+/t"  # type: ignore[index]
    src._suback_wait[7] = "h/+/t"
    src._on_subscribe(src._client, None, 7, [ReasonCode(PacketTypes.SUBACK, "Not authorized")],
                      None)
    found = src._lookup(b"h/hall/t")
    assert found is not None and found[0].filter == "h/#"
    # Its copies are not skipped any more: h/# is the chosen one now.
    assert not src._overlaps.other_copy(found[0].filter, (src._overlaps.ids["h/#"],))
    assert src.status()["refused"] == ["h/+/t"]
