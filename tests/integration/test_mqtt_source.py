"""The MQTT bridge against a real mosquitto: delivery, ack-after-commit, restarts, dedup."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, List, Optional

import paho.mqtt.client as mqtt
import pytest

from edge_agent.sources.mqtt.once import collect_once
from edge_agent.sources.mqtt.source import MqttSource

# Running as root, mosquitto drops to the "mosquitto" user and cannot write its
# persistence file into our temp dir: a restart would then lose the session.


class MemorySink:
    """The sink contract in memory; ``durable`` cleared = disk full / not committed."""

    def __init__(self, delay: float = 0.0) -> None:
        self.lines: List[str] = []
        self.lock = threading.Lock()
        self.durable = threading.Event()
        self.durable.set()
        self.delay = delay
        self.tickets = 0
        self.flushes = 0

    def add(self, lines: Any, dest: Any = None) -> int:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.lines.extend(lines)
            self.tickets += 1
            return self.tickets

    def wait_durable(self, ticket: int, timeout: Optional[float] = None) -> bool:
        return self.durable.wait(timeout) if timeout else self.durable.is_set()

    def flush(self) -> None:
        self.flushes += 1

    def snapshot(self) -> List[str]:
        with self.lock:
            return list(self.lines)


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def config(url: str, subs: List[dict], **kw: Any) -> SimpleNamespace:
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


@pytest.fixture
def publisher(mosquitto: Any) -> Iterator[Publisher]:
    pub = Publisher(mosquitto.port)
    yield pub
    pub.close()


def started(cfg: SimpleNamespace, sink: MemorySink, **kw: Any) -> MqttSource:
    src = MqttSource(cfg, sink, **kw)
    src.start()
    wait_for(lambda: src.connected)
    time.sleep(0.2)  # SUBACK
    return src


def test_each_format_end_to_end(mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [
        dict(topic=f"{p}/v/{{room}}/{{field}}", measurement="climate", tags={"source": "mqtt"}),
        dict(topic=f"{p}/z/{{device}}", format="json", measurement="zigbee",
             fields={"temperature": "temperature", "link": "linkquality"},
             types={"link": "int"}, time={"key": "ts", "precision": "ms"}),
        dict(topic=f"{p}/k/{{device}}", format="kv", measurement="kv"),
        dict(topic=f"{p}/lp", format="influx"),
    ], tags={"site": "gh"})
    sink = MemorySink()
    src = started(cfg, sink, state_dir=str(tmp_path), default_tags={"agent": "a1"})
    try:
        publisher.send(f"{p}/v/kitchen/temp", b"21.5")
        publisher.send(f"{p}/z/plug",
                       b'{"temperature": 20, "linkquality": 87, "ts": 1700000000001}')
        publisher.send(f"{p}/k/d1", b"a=1,b=x")
        publisher.send(f"{p}/lp", b"cpu,host=h usage=0.5 42")
        wait_for(lambda: len(sink.snapshot()) == 4)
        got = sink.snapshot()
        stamp = got[0].rsplit(" ", 1)[1]
        assert got[0] == (f"climate,agent=a1,room=kitchen,site=gh,source=mqtt temp=21.5 {stamp}")
        assert abs(int(stamp) - time.time_ns()) < 60e9
        assert got[1] == "zigbee,agent=a1,device=plug,site=gh link=87i,temperature=20 " \
                         "1700000000001000000"
        assert got[2].startswith('kv,agent=a1,device=d1,site=gh a=1,b="x" ')
        assert got[3] == "cpu,agent=a1,host=h,site=gh usage=0.5 42"
        wait_for(lambda: src.status()["acked"] == 4)
        status = src.status()
        assert status["connected"] and status["subscriptions"][f"{p}/lp"]["points"] == 1
    finally:
        src.stop()


def test_ack_only_after_durable_then_redelivered_with_same_time(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")])
    held = MemorySink()
    held.durable.clear()  # the disk never confirms
    src = started(cfg, held, state_dir=str(tmp_path))
    publisher.send_many([(f"{p}/n", str(i).encode()) for i in range(50)])
    wait_for(lambda: len(held.snapshot()) == 50)
    time.sleep(0.3)
    assert src.status()["acked"] == 0
    src.stop(timeout=1.0)
    # A new process, same client id and state dir: the broker redelivers all 50
    # (DUP); the pending index entries give them their original receive time.
    sink = MemorySink()
    src2 = started(cfg, sink, state_dir=str(tmp_path))
    try:
        wait_for(lambda: len(sink.snapshot()) == 50)
        assert sink.snapshot() == held.snapshot()
        wait_for(lambda: src2.status()["acked"] == 50)
    finally:
        src2.stop()
    # The counters persist (50 received, then their 50 redeliveries); a third
    # start receives nothing more: every message was acked.
    src3 = started(cfg, MemorySink(), state_dir=str(tmp_path))
    time.sleep(0.5)
    assert src3.status()["subscriptions"][f"{p}/{{field}}"]["messages_received"] == 100
    src3.stop()


def test_committed_but_unacked_redelivery_is_skipped(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")])
    first = MemorySink()
    src = MqttSource(cfg, first, state_dir=str(tmp_path))
    src._ack = lambda acks: None  # type: ignore[method-assign]  # the PUBACK is lost
    src.start()
    wait_for(lambda: src.connected)
    time.sleep(0.2)
    publisher.send_many([(f"{p}/n", str(i).encode()) for i in range(20)])
    wait_for(lambda: len(first.snapshot()) == 20)
    time.sleep(0.2)
    src.stop(timeout=1.0)
    second = MemorySink()
    src2 = started(cfg, second, state_dir=str(tmp_path))
    try:
        key = f"{p}/{{field}}"
        wait_for(lambda: src2.status()["subscriptions"][key]["duplicates_skipped"] == 20)
        assert second.snapshot() == []
        wait_for(lambda: src2.status()["acked"] == 20)
    finally:
        src2.stop()


def test_broker_restart_mid_stream_loses_nothing(
        mosquitto_factory: Callable[..., Any], tmp_path: Path) -> None:
    # mosquitto's max_queued_messages (1000 by default) counts what it holds for
    # an offline client; beyond it the broker drops. Raised here, as a user would.
    broker = mosquitto_factory("max_queued_messages 10000")
    cfg = config(broker.url, [dict(topic="n/{field}", measurement="m")], reconnect_max=1.0)
    sink = MemorySink()
    sink.durable.clear()  # commits stall: the window is full of unacked messages
    src = started(cfg, sink, state_dir=str(tmp_path / "state"))
    pub = Publisher(broker.port)
    try:
        pub.send_many([("n/v", str(i).encode()) for i in range(1500)])
        wait_for(lambda: len(sink.snapshot()) >= 1000)
        time.sleep(1.2)  # autosave_interval 1
        pub.close()
        broker.stop()
        assert 1000 <= len(sink.snapshot()) < 1500
        broker.start()
        sink.durable.set()
        pub = Publisher(broker.port)
        pub.send_many([("n/v", str(i).encode()) for i in range(1500, 2000)])

        def distinct() -> List[str]:
            return sorted(set(sink.snapshot()))

        wait_for(lambda: len(distinct()) >= 2000, timeout=60)
        time.sleep(0.5)
        # Redelivered in-flight messages come back as the *same* lines (same
        # receive time), which InfluxDB stores as the same points.
        values = sorted(int(line.split("=")[1].split(" ")[0]) for line in distinct())
        assert values == list(range(2000))
        assert src.status()["connects"] >= 2
    finally:
        pub.close()
        src.stop()


def test_protocol_311_persistent_session(mosquitto: Any, publisher: Publisher,
                                         tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")],
                 protocol="3.1.1")
    src = started(cfg, MemorySink(), state_dir=str(tmp_path))
    src.stop()
    publisher.send_many([(f"{p}/n", str(i).encode()) for i in range(30)])  # while we are away
    sink = MemorySink()
    src2 = started(cfg, sink, state_dir=str(tmp_path))
    try:
        wait_for(lambda: len(sink.snapshot()) == 30)
    finally:
        src2.stop()


def test_update_subscriptions_subscribes_now_and_after_reconnect(
        mosquitto_factory: Callable[..., Any], tmp_path: Path) -> None:
    broker = mosquitto_factory()
    a = dict(topic="a/{field}", measurement="a")
    cfg = config(broker.url, [a], reconnect_max=1.0)
    sink = MemorySink()
    src = started(cfg, sink, state_dir=str(tmp_path))
    pub = Publisher(broker.port)
    try:
        src.update_subscriptions(config(broker.url, [a, dict(topic="b/{field}",
                                                               measurement="b")]).subscriptions)
        time.sleep(0.3)
        pub.send("b/x", b"1")
        wait_for(lambda: any(line.startswith("b x=1") for line in sink.snapshot()))
        pub.close()
        broker.kill()  # the session's subscriptions may be lost with it; we resubscribe
        (broker.workdir / "data" / "mosquitto.db").unlink(missing_ok=True)
        broker.start()
        wait_for(lambda: src.status()["connects"] >= 2 and src.connected, timeout=30)
        time.sleep(0.3)
        pub = Publisher(broker.port)
        pub.send("b/x", b"2")
        wait_for(lambda: any(line.startswith("b x=2") for line in sink.snapshot()))
    finally:
        pub.close()
        src.stop()


def test_bad_input_counted_acked_and_bridge_continues(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/{{dev}}", format="json", measurement="m")],
                 max_payload=1024)
    sink = MemorySink()
    src = started(cfg, sink, state_dir=str(tmp_path))
    try:
        bad = [b"\xff", b"{oops", b'{"a": NaN}', b"x" * 5000, b"[]"]
        publisher.send_many([(f"{p}/d", b) for b in bad] + [(f"{p}/a b", b'{"a": 1}'),
                                                            (f"{p}/d", b'{"a": 2}')])
        wait_for(lambda: len(sink.snapshot()) == 1)
        stats = src.status()["subscriptions"][f"{p}/{{dev}}"]
        assert stats["messages_received"] == 7 and stats["messages_rejected"] == 6
        wait_for(lambda: src.status()["acked"] == 7)
    finally:
        src.stop()


def test_collect_once_leaves_the_persistent_session_alone(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")])
    src = started(cfg, MemorySink(), state_dir=str(tmp_path))
    src.stop()  # the agent's session now queues for it
    publisher.send(f"{p}/r", b"7", retain=True)
    result = collect_once(cfg, 1.0)
    assert result.connected and result.error == ""
    assert [line.split(" ")[:2] for line in result.lines] == [["m", "r=7"]]
    assert result.subscriptions[f"{p}/{{field}}"]["points"] == 1
    sink = MemorySink()
    src2 = started(cfg, sink, state_dir=str(tmp_path))
    try:
        wait_for(lambda: len(sink.snapshot()) >= 1)  # still queued for the agent
        time.sleep(0.5)
        assert len(sink.snapshot()) == 1  # and not replayed as retained on resubscribe
    finally:
        src2.stop()
        publisher.send(f"{p}/r", b"", retain=True)
