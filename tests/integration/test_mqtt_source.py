"""The MQTT bridge against a real mosquitto: delivery, ack-after-commit, restarts, dedup."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Callable, List

import paho.mqtt.client as mqtt
import pytest

from edge_agent.sources.mqtt.once import collect_once
from edge_agent.sources.mqtt.source import MqttSource
from tests.harness.mqtt import Publisher, mqtt_config, started
from tests.harness.sinks import MemorySink
from tests.harness.waits import wait_for

# Running as root, mosquitto drops to the "mosquitto" user and cannot write its
# persistence file into our temp dir: a restart would then lose the session.


def test_each_format_end_to_end(mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = mqtt_config(mosquitto.url, [
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


def test_stock_paho_client_fallback_delivers_every_qos(
        mosquitto: Any, publisher: Publisher, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A paho without the fast path's private names: the stock client, same points and acks."""
    from edge_agent.sources.mqtt import client as fast

    monkeypatch.setattr(fast, "FAST_PATH_MISSING", ("_sock_recv(bufsize)",))
    p = uuid.uuid4().hex[:6]
    cfg = mqtt_config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")], qos=2)
    sink = MemorySink()
    src = started(cfg, sink, state_dir=str(tmp_path))
    try:
        assert type(src._client) is mqtt.Client
        for qos in (0, 1, 2):
            publisher.send(f"{p}/q{qos}", str(qos).encode(), qos=qos)
        wait_for(lambda: len(sink.snapshot()) == 3)
        assert sorted(line.split(" ")[1] for line in sink.snapshot()) == \
            ["q0=0", "q1=1", "q2=2"]
        wait_for(lambda: src.status()["acked"] == 2)  # QoS 1 and 2
    finally:
        src.stop()


def test_ack_only_after_durable_then_redelivered_with_same_time(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = mqtt_config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")])
    held = MemorySink()
    held.durable.clear()  # the disk never confirms
    src = started(cfg, held, state_dir=str(tmp_path))
    publisher.send_many([(f"{p}/n", str(i).encode()) for i in range(50)])
    wait_for(lambda: src.status()["unacked"] == 50, what="all 50 held, waiting for the disk")
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
    # start receives only the sentinel: every message was acked.
    last = MemorySink()
    src3 = started(cfg, last, state_dir=str(tmp_path))
    publisher.send(f"{p}/sentinel", b"1")  # behind anything the broker still had for us
    wait_for(lambda: last.snapshot(), what="the sentinel")
    assert [line.split(" ")[1] for line in last.snapshot()] == ["sentinel=1"]
    assert src3.status()["subscriptions"][f"{p}/{{field}}"]["messages_received"] == 101
    src3.stop()


def test_reload_handover_the_new_source_sees_what_the_old_one_wrote(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    """A reload builds the new source while the old one runs: the new one must load
    the dedup index only when it starts, after the old one stopped writing it."""
    p = uuid.uuid4().hex[:6]
    cfg = mqtt_config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")])
    held = MemorySink()
    held.durable.clear()  # nothing is acked: the broker will deliver it all again
    old = started(cfg, held, state_dir=str(tmp_path))
    sink = MemorySink()
    new = MqttSource(cfg, sink, state_dir=str(tmp_path))  # built as the agent's reload does
    publisher.send_many([(f"{p}/n", str(i).encode()) for i in range(30)])
    wait_for(lambda: len(held.snapshot()) == 30)
    old.stop(timeout=0.5)
    new.start()
    try:
        wait_for(lambda: len(sink.snapshot()) == 30)
        # the same receive times: InfluxDB overwrites each point with itself
        assert sink.snapshot() == held.snapshot()
        wait_for(lambda: new.status()["acked"] == 30)
    finally:
        new.stop()


def test_an_unexpected_error_in_the_worker_does_not_end_it(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = mqtt_config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")])
    sink = MemorySink()
    src = MqttSource(cfg, sink, state_dir=str(tmp_path))
    process = src._process
    failures: List[int] = []

    def fails_once(msgs: Any) -> None:
        if not failures:
            failures.append(len(msgs))
            raise RuntimeError("a bug")
        process(msgs)

    src._process = fails_once  # type: ignore[method-assign]
    src.start()
    wait_for(lambda: src.connected)
    time.sleep(0.2)  # SUBACK
    try:
        publisher.send(f"{p}/a", b"1")
        wait_for(lambda: src.status().get("worker_errors") == 1)
        publisher.send(f"{p}/b", b"2")
        wait_for(lambda: len(sink.snapshot()) == 1)
        assert src.alive and sink.snapshot()[0].startswith("m b=2")
        assert "RuntimeError: a bug" in src.status()["last_error"]
    finally:
        src.stop(timeout=1.0)
    # The failed message was never acked: the next connection gets it again.
    again = MemorySink()
    src2 = started(cfg, again, state_dir=str(tmp_path))
    try:
        wait_for(lambda: [line.split(" ")[1] for line in again.snapshot()] == ["a=1"])
    finally:
        src2.stop()


def test_committed_but_unacked_redelivery_is_skipped(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = mqtt_config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")])
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
    cfg = mqtt_config(broker.url, [dict(topic="n/{field}", measurement="m")], reconnect_max=1.0)
    sink = MemorySink()
    sink.durable.clear()  # commits stall: the window is full of unacked messages
    src = started(cfg, sink, state_dir=str(tmp_path / "state"))
    pub = Publisher(broker.port)
    try:
        pub.send_many([("n/v", str(i).encode()) for i in range(1500)])
        wait_for(lambda: len(sink.snapshot()) >= 1000)
        saved = broker.workdir / "data" / "mosquitto.db"
        after = time.time()
        wait_for(lambda: saved.exists() and saved.stat().st_mtime > after,
                 what="mosquitto's autosave (autosave_interval 1)")
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
        # everything received is processed and acked: a redelivery stamped anew would show now
        wait_for(lambda: src.status()["unacked"] == 0 and src.status()["queued"] == 0)
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
    cfg = mqtt_config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")],
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
    cfg = mqtt_config(broker.url, [a], reconnect_max=1.0)
    sink = MemorySink()
    src = started(cfg, sink, state_dir=str(tmp_path))
    pub = Publisher(broker.port)
    try:
        src.update_subscriptions(mqtt_config(broker.url, [a, dict(topic="b/{field}",
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
    cfg = mqtt_config(mosquitto.url, [dict(topic=f"{p}/{{dev}}", format="json", measurement="m")],
                 max_payload=1024)
    sink = MemorySink()
    src = started(cfg, sink, state_dir=str(tmp_path))
    try:
        bad = [b"\xff", b"{oops", b'{"a": NaN}', b"x" * 5000, b"[]"]
        publisher.send_many([(f"{p}/d", b) for b in bad] + [(f"{p}/a b", b'{"a": 1}'),
                                                            (f"{p}/d", b'{"a": 2}')])
        # A NaN drops that one field (here the message's only one); "a b" is a fine tag value.
        wait_for(lambda: len(sink.snapshot()) == 2)
        series = sorted(line.rsplit(" ", 2)[0] for line in sink.snapshot())
        assert series == ["m,dev=a\\ b", "m,dev=d"]
        stats = src.status()["subscriptions"][f"{p}/{{dev}}"]
        assert stats["messages_received"] == 7 and stats["messages_rejected"] == 4
        assert stats["fields_dropped"] == 1
        wait_for(lambda: src.status()["acked"] == 7)
    finally:
        src.stop()


def test_collect_once_leaves_the_persistent_session_alone(
        mosquitto: Any, publisher: Publisher, tmp_path: Path) -> None:
    p = uuid.uuid4().hex[:6]
    cfg = mqtt_config(mosquitto.url, [dict(topic=f"{p}/{{field}}", measurement="m")])
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
        publisher.send(f"{p}/sentinel", b"1")
        wait_for(lambda: any("sentinel=1" in line for line in sink.snapshot()),
                 what="the sentinel")
        # r=7 once: not replayed as retained on resubscribe
        assert [line.split(" ")[1] for line in sink.snapshot()] == ["r=7", "sentinel=1"]
    finally:
        src2.stop()
        publisher.send(f"{p}/r", b"", retain=True)
