"""MQTT helpers: publishing clients and the attributes of an ``mqtt`` source config."""

from __future__ import annotations

import json
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any, Callable, List, Set, Tuple

import paho.mqtt.client as mqtt

from .waits import wait_for

__all__ = ["Publisher", "StreamPublisher", "json_seq", "mqtt_config"]


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


def json_seq(n: int) -> Tuple[str, str]:
    """``dev{n%3}`` and ``{"seq": n, "v": n/2}``: a gateway's numbered JSON reports."""
    return f"dev{n % 3}", json.dumps({"seq": n, "v": n * 0.5})


class StreamPublisher:
    """Publishes message 0, 1, 2, ... at a steady ``rate`` (QoS 1) in a thread.

    ``payload(n) -> (subtopic, text)`` makes message ``n`` (under ``topic/``).
    ``published`` counts the PUBACKs so far; :meth:`stop` waits for all of them
    and returns the count: each such message must end up in InfluxDB exactly
    once. While the broker is down paho queues the messages and sends them after
    its reconnect (``persistent`` keeps the publisher's own session).
    """

    def __init__(self, port: int, topic: str, rate: float = 100.0,
                 payload: Callable[[int], Tuple[str, str]] = json_seq,
                 persistent: bool = False) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"stream-{uuid.uuid4().hex[:8]}",
                                  clean_session=not persistent)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(200)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.acked: Set[int] = set()
        self.mids: List[int] = []
        self.client.on_publish = lambda c, u, mid, rc, props: self.acked.add(mid)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.topic = topic
        self.period = 1.0 / rate
        self.payload = payload
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StreamPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        next_at = time.monotonic()
        n = 0
        while not self._stop.is_set():
            subtopic, text = self.payload(n)
            self.mids.append(self.client.publish(f"{self.topic}/{subtopic}", text, qos=1).mid)
            n += 1
            next_at += self.period
            time.sleep(max(0.0, next_at - time.monotonic()))

    @property
    def sent(self) -> int:
        return len(self.mids)

    @property
    def published(self) -> int:
        return len(self.acked)

    def stop(self, timeout: float = 60.0) -> int:
        """Stop sending; wait for every PUBACK; the number of messages the broker accepted."""
        self._stop.set()
        self._thread.join(10)
        wait_for(lambda: self.acked.issuperset(self.mids), timeout, "the broker's PUBACKs")
        assert len(set(self.mids)) == len(self.mids) < 65_535  # mids unique: the count is exact
        self.client.disconnect()
        self.client.loop_stop()
        return len(self.mids)


def started(cfg: SimpleNamespace, sink: Any, **kw: Any) -> Any:
    """An MQTT source, started and connected."""
    from edge_agent.sources.mqtt.source import MqttSource

    src = MqttSource(cfg, sink, **kw)
    src.start()
    wait_for(lambda: src.connected)
    time.sleep(0.2)  # SUBACK
    return src
