"""The MQTT bridge's bookkeeping: rejected-messages file, persistent counters, overlaps order,
timestamp collisions, Subscription Identifiers in PUBLISH packets."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

from edge_agent.lineproto.encoder import LineEncoder
from edge_agent.lineproto.parse import split_fields
from edge_agent.sources.mqtt.collisions import MAX_SHIFT, CollisionGuard
from edge_agent.sources.mqtt.ledger import Ledger, offline_sources, status_lines
from edge_agent.sources.mqtt.overlaps import (
    Overlaps,
    broker_filters,
    covers,
    subscription_ids,
)
from edge_agent.sources.mqtt.rejected import PAYLOAD_KEEP, RejectedFile
from edge_agent.sources.mqtt.routes import compile_parsers, route

T = 1_796_000_000.25


def entries(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- rejected-messages file and the persistent counters -------------------------------


def test_rejected_entry_fields_text_binary_and_truncated(tmp_path: Path) -> None:
    ledger = Ledger("bridge", str(tmp_path), clock=lambda: T)
    ledger.reject("z2m/{device}", b"z2m/Living Room", b'{"temperature": 21.5,', 1, 7,
                  b"\x01" * 16, "invalid JSON: Expecting value\n at line 1")
    ledger.reject("z2m/{device}", b"z2m/x", b"\xff\xfe", 0, 0, b"", "payload is not UTF-8")
    ledger.reject(None, b"old/topic", b"x" * (PAYLOAD_KEEP + 10), 1, 8, b"\x02" * 16,
                  "no subscription matches this topic")
    assert not (tmp_path / "mqtt-bridge-rejected.jsonl").exists()  # nothing before commit()
    ledger.commit()
    got = entries(tmp_path / "mqtt-bridge-rejected.jsonl")
    assert got[0] == {
        "time": "2026-11-30T00:53:20.250Z", "source": "bridge", "subscription": "z2m/{device}",
        "topic": "z2m/Living Room", "qos": 1,
        "reason": "invalid JSON: Expecting value at line 1", "n": 1, "bytes": 21,
        "payload": '{"temperature": 21.5,', "mid": 7, "id": "01" * 16}
    assert got[1]["payload_base64"] == "//4=" and "payload" not in got[1]
    assert got[1]["n"] == 2 and "id" not in got[1]  # QoS 0: never redelivered
    assert got[2]["subscription"] is None and got[2]["n"] == 1
    assert got[2]["truncated"] is True and len(got[2]["payload"]) == PAYLOAD_KEEP
    assert got[2]["bytes"] == PAYLOAD_KEEP + 10
    assert ledger.kept(7, b"\x01" * 16) and not ledger.kept(7, b"\x03" * 16)


def test_counters_survive_a_restart_and_the_journal_beats_a_stale_checkpoint(
        tmp_path: Path) -> None:
    ledger = Ledger("b", str(tmp_path), clock=lambda: T)
    stats = ledger.sub("a/{x}")
    stats.messages_received = 5
    ledger.reject("a/{x}", b"a/1", b"bad", 1, 1, b"\x05" * 16, "first")
    ledger.commit()
    ledger.checkpoint(force=True)
    # Rejected after the last checkpoint, then kill -9: only the journal has them.
    ledger.reject("a/{x}", b"a/2", b"bad2", 1, 2, b"\x06" * 16, "second")
    ledger.reject(None, b"gone/1", b"?", 1, 3, b"\x07" * 16, "no subscription matches this topic")
    ledger.commit()
    again = Ledger("b", str(tmp_path))
    st = again.stats["a/{x}"]
    assert (st.messages_received, st.messages_rejected) == (5, 2)
    assert (st.last_reject_reason, st.last_reject_topic) == ("second", "a/2")
    assert st.last_reject_time == pytest.approx(T, abs=0.001)
    assert again.source["messages_unmatched"] == 1 and again.last_unmatched == "gone/1"
    assert again.kept(2, b"\x06" * 16) and again.kept(3, b"\x07" * 16)


def test_torn_last_line_and_unreadable_checkpoint_are_survived(tmp_path: Path) -> None:
    ledger = Ledger("b", str(tmp_path), clock=lambda: T)
    ledger.reject("s", b"t", b"p", 0, 0, b"", "why")
    ledger.commit()
    with open(ledger.rejected.path, "ab") as f:
        f.write(b'{"time": "2026-')  # a power cut mid-append
    Path(ledger.path).write_text("{not json")
    again = Ledger("b", str(tmp_path))
    assert again.stats["s"].messages_rejected == 1


def test_rejected_file_uses_the_dead_letter_budget(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rejected = RejectedFile(path, max_bytes=4096)
    for i in range(200):
        rejected.add([{"n": i + 1, "subscription": "s", "payload": "x" * 50}], sync=False)
        assert path.stat().st_size <= 4096
    assert rejected.files() == [str(path), str(path) + ".1"]
    assert rejected.scan().counts == {"s": 200}


def test_offline_sources_and_status_lines(tmp_path: Path) -> None:
    ledger = Ledger("bridge", str(tmp_path), clock=lambda: T)
    ledger.sub("z2m/{device}").messages_received = 3
    ledger.reject("z2m/{device}", b"z2m/Kitchen", b"{oops", 1, 1, b"\x01" * 16,
                  "invalid JSON: Expecting property name enclosed in double quotes")
    ledger.commit()
    ledger.checkpoint(force=True)
    (src,) = offline_sources(str(tmp_path))
    lines = status_lines(src)
    assert lines[:3] == [
        "mqtt bridge: 1 rejected, 0 unmatched, 0 QoS 0 dropped",
        f"  rejected messages in {tmp_path / 'mqtt-bridge-rejected.jsonl'}",
        "subscription 'z2m/{device}': 3 received, 0 points, 1 rejected"]
    assert lines[3].startswith("  last rejected ") and lines[3].endswith(" on 'z2m/Kitchen':")
    assert lines[4] == "    invalid JSON: Expecting property name enclosed in double quotes"
    assert status_lines({"name": "i2c", "state": "ok"}) == []


def test_without_state_dir_rejections_are_counted_only(tmp_path: Path) -> None:
    ledger = Ledger("b", None)
    ledger.reject("s", b"t", b"p", 1, 1, b"\x01" * 16, "why")
    ledger.commit()
    ledger.checkpoint(force=True)
    assert ledger.stats["s"].messages_rejected == 1 and ledger.files() == []
    assert not list(tmp_path.iterdir())


# -- overlapping subscriptions --------------------------------------------------------


def _subs(*topics: str) -> List[Any]:
    return [SimpleNamespace(topic=t, format="value") for t in topics]


def test_most_specific_subscription_wins_whatever_the_config_order() -> None:
    parsers = compile_parsers(None, _subs("a/#", "a/+/c", "a/b/#", "a/b/{x}", "a/{y}/{z}"),
                              LineEncoder("ns"))
    order = [p.template.template for p in parsers]
    assert order == ["a/+/c", "a/b/{x}", "a/b/#", "a/{y}/{z}", "a/#"]

    def chosen(topic: str) -> str:
        parser, _ = route(parsers, topic)
        return parser.template.template if parser else ""

    assert chosen("a/b/c") == "a/+/c"  # 2 literals, no '#': config order among equals
    assert chosen("a/b/d") == "a/b/{x}"
    assert chosen("a/b/d/e") == "a/b/#"
    assert chosen("a/q/d") == "a/{y}/{z}"
    assert chosen("a/q") == "a/#"


def test_subscription_ids_are_stable_and_distinct() -> None:
    ids = subscription_ids(["a/#", "a/+/c", "b"])
    assert ids == subscription_ids(["b", "a/+/c", "a/#", "a/#"])
    assert len(set(ids.values())) == 3 and all(1 <= v <= 268_435_455 for v in ids.values())
    ov = Overlaps(["a/#", "a/+/c"])
    mine, other = ov.ids["a/+/c"], ov.ids["a/#"]
    assert ov.other_copy("a/+/c", (other,))
    assert not ov.other_copy("a/+/c", (mine,)) and not ov.other_copy("a/+/c", (other, mine))
    assert not ov.other_copy("a/+/c", ())  # no identifier: stored
    assert not ov.other_copy("a/+/c", (other, 12345))  # an unknown one: stored, not guessed


@pytest.mark.parametrize("outer, inner, expected", [
    ("a/#", "a/+/t", True), ("a/#", "a", True), ("a/#", "a/#", True), ("#", "x/y", True),
    ("a/+/t", "a/b/t", True), ("a/+/+", "a/+/t", True), ("a/+/t", "a/+/+", False),
    ("a/+/t", "a/b/+", False), ("a/b/+", "a/+/t", False), ("a/+", "a/b/c", False),
    ("a/b", "a/b/c", False), ("a/b/c", "a/#", False), ("#", "$SYS/broker", False),
    ("+/x", "$aws/x", False), ("$SYS/#", "$SYS/broker/load", True),
])
def test_filter_cover(outer: str, inner: str, expected: bool) -> None:
    assert covers(outer, inner) is expected


def test_mqtt311_subscribes_only_the_uncovered_filters() -> None:
    filters = ["z2m/#", "z2m/+", "z2m/+/set", "tele/+/SENSOR", "tele/x/+", "stat/#"]
    assert broker_filters(filters, v5=False) == ["stat/#", "tele/+/SENSOR", "tele/x/+", "z2m/#"]
    assert broker_filters(filters, v5=True) == sorted(filters)


def test_decode_publish_reads_subscription_identifiers_like_paho() -> None:
    from paho.mqtt import _packet
    from paho.mqtt.client import MQTTv5
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from edge_agent.sources.mqtt.client import decode_publish_ids

    rng = random.Random(11)
    for _ in range(1000):
        qos = rng.choice((0, 1))
        body = struct.pack("!H", 3) + b"a/b" + (struct.pack("!H", 9) if qos else b"")
        props = Properties(PacketTypes.PUBLISH)
        if rng.random() < 0.5:
            props.UserProperty = [("k" * rng.randint(1, 200), "v")]
        if rng.random() < 0.5:
            props.ContentType = "text/plain"
        if rng.random() < 0.5:
            props.CorrelationData = b"\x00\x01"
        if rng.random() < 0.7:
            props.SubscriptionIdentifier = rng.randint(1, 268_435_455)
        body += props.pack() + b"21.5"
        ref = _packet.decode_publish(0x30 | qos << 1, bytearray(body), MQTTv5)
        got = decode_publish_ids(0x30 | qos << 1, bytearray(body), True)
        want = tuple(getattr(ref.properties, "SubscriptionIdentifier", []) or ())
        assert got == (ref.topic, ref.payload, ref.qos, ref.mid, False, want)
    with pytest.raises(ValueError):
        decode_publish_ids(0x30, b"\x00\x01a\x02\x0b", True)  # runs past the packet


# -- timestamp collisions ---------------------------------------------------------------


def test_split_fields_keeps_quoted_commas() -> None:
    assert split_fields('a=1,b="x,y=\\"z",c\\,d=2i') == [
        ("a", "1"), ("b", '"x,y=\\"z"'), ("c\\,d", "2i")]


def test_receive_time_points_of_one_series_are_moved_apart() -> None:
    guard = CollisionGuard("s")
    got = [guard.place([f"m,room=a t={v} 100"], own_time=False) for v in range(MAX_SHIFT + 3)]
    assert [p.shift for p in got[:MAX_SHIFT + 1]] == list(range(MAX_SHIFT + 1))
    assert got[3].lines == ["m,room=a t=3 103"]
    assert got[MAX_SHIFT + 1].clash.startswith(
        "timestamp collision: series 'm,room=a' field 't' already has a point at 100 "
        "(precision s); more than 10 points within 10 s")
    # Another field of the series (the humidity of the same room) merges: no collision.
    assert guard.place(["m,room=a h=40 100"], own_time=False).shift == 0
    assert guard.place(["m,room=b t=1 100"], own_time=False).shift == 0  # another series
    assert guard.place(["m,room=a t=9 200"], own_time=False).shift == 0  # later: free again


def test_own_time_points_are_never_moved_and_replays_are_no_collision() -> None:
    guard = CollisionGuard("s")
    assert guard.place(["m v=1 100"], own_time=True).clash == ""
    assert guard.place(["m v=1 100"], own_time=True).clash == ""  # the same point again
    clash = guard.place(["m v=2 100"], own_time=True).clash
    assert "own timestamp is kept" in clash
    assert guard.place(["m v=2 99"], own_time=True).clash == ""  # older: not ours to judge


def test_a_message_moves_as_a_whole_and_a_redelivery_keeps_its_time() -> None:
    guard = CollisionGuard("ms")
    guard.place(["m a=1 50", "m a=2 51"], own_time=False)
    placed = guard.place(["m a=3 50", "m a=4 51"], own_time=False)
    assert placed.shift == 2 and placed.lines == ["m a=3 52", "m a=4 53"]
    assert guard.place(["m a=5 50"], own_time=False, fixed=True).lines == ["m a=5 50"]


def test_after_a_restart_new_points_start_past_the_recorded_moved_times(
        tmp_path: Path) -> None:
    from edge_agent.sources.mqtt.dedup import DedupIndex, index_path
    from edge_agent.sources.mqtt.source import MqttSource

    cfg = SimpleNamespace(name="b", url="mqtt://127.0.0.1:9", client_id="c1", qos=1,
                          subscriptions=_subs("a/{field}"))
    index = DedupIndex(index_path(tmp_path, "c1"))
    moved = 1_800_000_009_000_000_000  # a point moved to 9 s past its receive second
    index.record_pending([(5, b"\x01" * 16, moved, 1), (6, b"\x02" * 16, moved - 9 * 10**9, 2)])
    index.close()
    src = MqttSource(cfg, None, state_dir=str(tmp_path), precision="s")
    src._connect = lambda: None  # type: ignore[method-assign]  # no broker here
    src.start()
    try:
        guard = src._guard
        assert guard is not None and guard.floor == moved // 10**9
        placed = guard.place(["m x=1 1800000003"], own_time=False)  # received 6 s earlier
        assert placed.lines == ["m x=1 1800000010"]
        assert guard.place(["m y=1 1800000011"], own_time=False).shift == 0
        assert guard.place(["m v=1 1800000001"], own_time=True).lines == ["m v=1 1800000001"]
        # Received in the very second the floor's point was: it cannot be moved past it.
        assert "more than 10 points" in guard.place(["m w=1 1799999999"], own_time=False).clash
        # A floor more than MAX_SHIFT ahead is a clock that stepped back, not a moved point.
        assert guard.place(["m z=1 1799999990"], own_time=False).shift == 0
    finally:
        src.stop(timeout=0.5)
