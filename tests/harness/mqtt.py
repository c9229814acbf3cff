"""MQTT helpers: a publishing client and the attributes of an ``mqtt`` source config."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any, List

import paho.mqtt.client as mqtt

__all__ = ["Publisher", "mqtt_config"]


def mqtt_config(url: str, subs: List[dict], **kw: Any) -> SimpleNamespace:
    """An ``mqtt`` source entry as MqttSource reads it (defaults of the config schema)."""
    base = dict(name="bridge", url=url, client_id=f"t-{uuid.uuid4().hex[:10]}", username=None,
                password=None, protocol=5, qos=1, clean_session=False, session_expiry=3600,
                keepalive=30, tls=None, max_payload=256 * 1024, reconnect_max=2.0,
                measurement=None, tags={},
                subscriptions=[SimpleNamespace(**{**dict(format="value", measurement=None,
                               tags=None, field=None, fields=None, types=None, time=None), **s})
                               for s in subs])
    base.update(kw)
    return SimpleNamespace(**base)


class Publisher:
    """A second client publishing on 127.0.0.1 (what a sensor or gateway does)."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"pub-{uuid.uuid4().hex[:8]}")
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def send_many(self, items: List[tuple], qos: int = 1) -> None:
        infos = [self.client.publish(t, p, qos=qos) for t, p in items]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
