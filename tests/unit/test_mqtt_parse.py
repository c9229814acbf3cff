"""Topic templates and payload formats -> lines (pure, no broker)."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace
from typing import Any

import pytest

from edge_agent.errors import ConfigError
from edge_agent.lineproto.encoder import LineEncoder
from edge_agent.sources.mqtt.client import backoff_delay
from edge_agent.sources.mqtt.dedup import DedupIndex, message_digest
from edge_agent.sources.mqtt.payloads import MessageParser, Rejected
from edge_agent.sources.mqtt.topics import TopicTemplate

T = 1_700_000_000_123_456_789  # receive time, ns


def sub(**kw: Any) -> SimpleNamespace:
    base = dict(topic="t/{field}", format="value", measurement=None, tags=None, field=None,
                fields=None, types=None, time=None)
    base.update(kw)
    return SimpleNamespace(**base)


def parser(default_tags: Any = None, source_tags: Any = None, max_payload: int = 256 * 1024,
           **kw: Any) -> MessageParser:
    return MessageParser(sub(**kw), LineEncoder("ns", default_tags), source_tags, None,
                         max_payload)


def lines(p: MessageParser, topic: str, payload: bytes, t: int = T) -> list:
    return list(p.parse(topic, payload, t).lines)


def reason(p: MessageParser, topic: str, payload: bytes) -> str:
    with pytest.raises(Rejected) as info:
        p.parse(topic, payload, T)
    return info.value.reason


# ------------------------------------------------------------------ templates


def test_template_compiles_to_filter_and_captures() -> None:
    t = TopicTemplate.compile("sensors/{room}/{device}/{field}")
    assert t.filter == "sensors/+/+/+"
    assert t.captures == ("room", "device", "field")
    assert t.match("sensors/kitchen/d1/temp") == {"room": "kitchen", "device": "d1",
                                                  "field": "temp"}
    assert t.match("sensors/kitchen/d1") is None
    assert t.match("sensors/kitchen/d1/temp/x") is None
    assert t.match("other/kitchen/d1/temp") is None


def test_template_wildcards() -> None:
    t = TopicTemplate.compile("home/+/{device}/#")
    assert t.filter == "home/+/+/#"
    assert t.match("home/a/d/x/y") == {"device": "d"}
    assert t.match("home/a/d") == {"device": "d"}  # '#' also matches the parent level
    assert t.match("home/a") is None
    assert TopicTemplate.compile("#").match("any/thing") == {}


@pytest.mark.parametrize("bad", ["a/{x}/{x}", "a/#/b", "a/dev_{id}", "a/b+", ""])
def test_template_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        TopicTemplate.compile(bad)


def test_measurement_and_field_captures_and_tag_precedence() -> None:
    p = parser(topic="{measurement}/{room}/{field}", format="value", tags={"room": "cfg", "s": "1"},
               default_tags={"site": "gh", "s": "0"}, source_tags={"src": "mqtt", "s": "2"})
    assert lines(p, "climate/kitchen/temp", b"21.5") == [
        f"climate,room=kitchen,s=1,site=gh,src=mqtt temp=21.5 {T}"]


@pytest.mark.parametrize("level,escaped", [
    ("Living Room", "Living\\ Room"), ("a,b", "a\\,b"), ("a=b", "a\\=b"),
    ('say "hi"', 'say\\ "hi"'),
    ("back\\slash", "back\\slash"), ("Kühlschrank Küche", "Kühlschrank\\ Küche"),
])
def test_any_captured_level_is_an_escaped_tag(level: str, escaped: str) -> None:
    p = parser(topic="s/{room}/{field}", measurement="m")
    assert lines(p, f"s/{level}/temp", b"1") == [f"m,room={escaped} temp=1 {T}"]


@pytest.mark.parametrize("level,why", [("", "empty"), ("a\nb", "newline"), ("a\rb", "newline"),
                                       ("Lampe\\", "ends in a backslash")])
def test_level_that_cannot_be_a_tag_rejected(level: str, why: str) -> None:
    p = parser(topic="s/{room}/{field}", measurement="m")
    assert why in reason(p, f"s/{level}/temp", b"1")
    assert why in reason(parser(topic="s/{measurement}/{field}"), f"s/{level}/temp", b"1")


# ------------------------------------------------------------------ value


@pytest.mark.parametrize("payload,expected", [
    (b"21.5", "v=21.5"), (b" 3 ", "v=3"), (b"-1e3", "v=-1000"), (b"true", "v=true"),
    (b"FALSE", "v=false"), (b"on", "v=true"), (b"OFF", "v=false"), (b"Online", "v=true"),
    (b"closed", "v=false"), (b"door open", 'v="door open"'), (b'say "hi"', 'v="say \\"hi\\""'),
])
def test_value_format(payload: bytes, expected: str) -> None:
    p = parser(topic="x/{field}", measurement="m")
    assert lines(p, "x/v", payload) == [f"m {expected} {T}"]


def test_value_field_option_and_default_name() -> None:
    assert lines(parser(topic="x/y", measurement="m", field="temp"), "x/y", b"1") == [
        f"m temp=1 {T}"]
    assert lines(parser(topic="x/y", measurement="m"), "x/y", b"1") == [f"m value=1 {T}"]
    assert lines(parser(topic="x/y"), "x/y", b"1") == [f"mqtt value=1 {T}"]


def test_value_types_int() -> None:
    p = parser(topic="x/{field}", measurement="m", types={"n": "int"})
    assert lines(p, "x/n", b"42") == [f"m n=42i {T}"]
    assert lines(p, "x/n", b"42.0") == [f"m n=42i {T}"]
    assert lines(p, "x/n", b"ON") == [f"m n=1i {T}"]
    for bad, why in ((b"4.5", "not an integer"), (b"abc", "not an int")):
        got = p.parse("x/n", bad, T)
        assert (got.lines, got.dropped_fields) == ((), 1)
        assert why in got.drop_reason


@pytest.mark.parametrize("payload", [b"nan", b"NaN", b"inf", b"-Infinity", b"1e999",
                                     b"unavailable", b"unknown", b"None"])
def test_value_nan_inf_and_no_reading_drop_the_field(payload: bytes) -> None:
    got = parser(topic="x/{field}").parse("x/v", payload, T)
    assert (got.lines, got.dropped_fields) == ((), 1)
    assert "'v'" in got.drop_reason


def test_value_empty_and_bad_utf8() -> None:
    p = parser(topic="x/{field}")
    assert "empty" in reason(p, "x/v", b"  ")
    assert "UTF-8" in reason(p, "x/v", b"\xff\xfe1")


def test_payload_above_max_rejected() -> None:
    p = parser(topic="x/{field}", max_payload=10)
    assert lines(p, "x/v", b"1234567890") == [f"mqtt v=1234567890 {T}"]
    assert "max_payload" in reason(p, "x/v", b"12345678901")


# ------------------------------------------------------------------ json


def test_json_object_numbers_float_bools_strings_nested() -> None:
    p = parser(topic="z/{device}", format="json", measurement="zigbee")
    payload = json.dumps({"temperature": 21, "ok": True, "name": "a b", "nested": {"x": 1.5,
                          "deep": {"y": 2}}, "list": [1, 2], "nothing": None}).encode()
    got = p.parse("z/plug", payload, T)
    assert got.lines == (
        f'zigbee,device=plug list_0=1,list_1=2,name="a b",nested_deep_y=2,nested_x=1.5,ok=true,'
        f'temperature=21 {T}',)
    assert (got.dropped_fields, got.drop_reason) == (1, "field 'nothing' is null")


def test_json_fields_paths_types_and_time() -> None:
    p = parser(topic="z/{device}", format="json", measurement="zigbee",
               fields={"temperature": "temperature", "link": "radio.lqi", "b": "battery"},
               types={"link": "int"}, time={"key": "ts", "precision": "ms"})
    payload = b'{"temperature": 20.5, "radio": {"lqi": 87}, "battery": 99, "ts": 1700000000123}'
    assert lines(p, "z/s1", payload) == [
        "zigbee,device=s1 b=99,link=87i,temperature=20.5 1700000000123000000"]
    assert p.parse("z/s1", payload, T).own_time is True
    assert "missing" in reason(p, "z/s1", b'{"temperature": 1, "radio": {"lqi": 3}}')
    got = p.parse("z/s1", b'{"temperature": 1, "battery": 1, "ts": 1}', T)
    assert got.lines == ("zigbee,device=s1 b=1,temperature=1 1000000",)
    assert (got.dropped_fields, got.drop_reason) == (1, "JSON path 'radio.lqi' is missing")


def test_json_time_iso_and_seconds_float_and_excluded_from_fields() -> None:
    p = parser(topic="j", format="json", measurement="m", time={"key": "t", "precision": "s"})
    assert lines(p, "j", b'{"v": 1, "t": "2024-05-17T12:34:56.000336Z"}') == [
        "m v=1 1715949296000336000"]
    assert lines(p, "j", b'{"v": 1, "t": 1.5}') == ["m v=1 1500000000"]
    assert "missing" in reason(p, "j", b'{"v": 1}')


def test_json_array_gives_several_points() -> None:
    p = parser(topic="j", format="json", measurement="m")
    # one receive time, but one ns apart: the same instant would be one point in InfluxDB
    assert lines(p, "j", b'[{"a": 1}, {"a": 2}]') == [f"m a=1 {T}", f"m a=2 {T + 1}"]


@pytest.mark.parametrize("payload,why", [
    (b"{not json", "invalid JSON"), (b"[]", "empty"), (b"{}", "no fields"),
    (b"[" * 5000 + b"]" * 5000, "JSON"),
])
def test_json_bad_input(payload: bytes, why: str) -> None:
    assert why in reason(parser(topic="j", format="json"), "j", payload)


@pytest.mark.parametrize("payload,why", [
    (b'{"a": NaN, "b": 1}', "NaN"), (b'{"a": Infinity, "b": 1}', "infinite"),
    (b'{"a": "x\\ny", "b": 1}', "newline"), (b'{"a": null, "b": 1}', "null"),
    (b'{"a": "unavailable", "b": 1}', "no reading"),
])
def test_json_value_that_cannot_be_written_drops_only_that_field(payload: bytes,
                                                                 why: str) -> None:
    got = parser(topic="j", format="json").parse("j", payload, T)
    assert got.lines == (f"mqtt b=1 {T}",)
    assert got.dropped_fields == 1 and why in got.drop_reason


def test_json_scalar_payload_is_one_field() -> None:
    p = parser(topic="j/{field}", format="json", measurement="m")
    assert lines(p, "j/n", b"42") == [f"m n=42 {T}"]
    assert lines(p, "j/list", b'["a", "b"]') == [f'm list_0="a",list_1="b" {T}']


def test_json_types_convert_strings() -> None:
    p = parser(topic="j", format="json", types={"a": "float", "n": "int", "on": "bool",
                                                 "s": "str"})
    assert lines(p, "j", b'{"a": "12", "n": "17", "on": "ON", "s": 5}') == [
        f'mqtt a=12,n=17i,on=true,s="5" {T}']
    got = p.parse("j", b'{"a": "twelve", "n": 1}', T)
    assert got.lines == (f"mqtt n=1i {T}",)
    assert got.drop_reason == "field 'a' = 'twelve' is not a float"


# ------------------------------------------------------------------ kv


def test_kv_both_separators() -> None:
    p = parser(topic="k/{room}", format="kv", measurement="m")
    expected = [f"m,room=r a=1,b=2.5,c=true,d=\"x\" {T}"]
    assert lines(p, "k/r", b"a=1 b=2.5 c=true d=x") == expected
    assert lines(p, "k/r", b"a=1,b=2.5,c=true,d=x") == expected
    assert "key=value" in reason(p, "k/r", b"a=1 junk")
    got = p.parse("k/r", b"a=nan b=1", T)
    assert got.lines == (f"m,room=r b=1 {T}",) and got.dropped_fields == 1


# ------------------------------------------------------------------ influx


def test_influx_merges_tags_under_the_lines_own() -> None:
    p = parser(topic="lp/{device}", format="influx", tags={"src": "mqtt", "room": "cfg"},
               default_tags={"site": "gh"})
    payload = b'cpu,room=lab\\ 1,host=a usage=0.5,s="x y" 123\n\n# comment\nmem free=1i'
    assert lines(p, "lp/d1", payload) == [
        'cpu,device=d1,host=a,room=lab\\ 1,site=gh,src=mqtt usage=0.5,s="x y" 123',
        f"mem,device=d1,room=cfg,site=gh,src=mqtt free=1i {T}",
    ]
    assert p.parse("lp/d1", payload, T).own_time is False


def test_influx_timestamp_precision_and_bad_lines() -> None:
    p = parser(topic="lp", format="influx", time={"key": None, "precision": "s"})
    assert lines(p, "lp", b"m v=1 17") == ["m v=1 17000000000"]
    assert reason(p, "lp", b"m")
    assert reason(p, "lp", b"m v=1 12x")
    assert reason(p, "lp", b'm s="open 1')
    assert reason(p, "lp", b"m,novalue v=1")


# ------------------------------------------ fuzz-ish: never anything but Rejected


def test_random_payloads_only_ever_reject() -> None:
    rng = random.Random(5)
    parsers = [parser(topic="f/{a}/{field}", format=f) for f in ("value", "json", "influx", "kv")]
    for _ in range(3000):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        level = "".join(rng.choice("ab =,\\\"{}") for _ in range(rng.randrange(4)))
        for p in parsers:
            try:
                out = p.parse(f"f/{level}/v", payload, T)
            except Rejected:
                continue
            for line in out.lines:
                assert "\n" not in line and line


# ------------------------------------------------------------------ dedup index and backoff


def test_dedup_index_persists_and_respects_window(tmp_path: Any) -> None:
    d = message_digest(b"t", b"1", 1)
    index = DedupIndex(tmp_path / "i.sqlite", window=10)
    index.record_pending([(5, d, 111, index.next_seq())])
    entry = index.lookup(5, d)
    assert entry is not None and entry == index.lookup(5, d) and not entry.committed
    index.mark_committed([(5, d)])
    index.close()
    again = DedupIndex(tmp_path / "i.sqlite", window=10)
    hit = again.lookup(5, d)
    assert hit is not None and hit.committed and hit.receive_ns == 111
    assert again.lookup(5, message_digest(b"t", b"2", 1)) is None
    assert again.lookup(6, d) is None
    assert again.lookup(5, d, seq=again.seq + 11) is None  # a reused mid, long ago


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(k, 30.0, rng) for k in range(1, 12)]
    assert all(0.5 <= d < 30.0 for d in delays)
    assert delays[-1] >= 15.0
    assert len({round(backoff_delay(8, 30.0, rng), 6) for _ in range(5)}) == 5


# ------------------------------------------------------------------ time of kv, time formats


def test_kv_time_key_and_precision() -> None:
    p = parser(topic="k", format="kv", measurement="m", time={"key": "ts", "precision": "ms"})
    assert lines(p, "k", b"a=1 ts=1700000000123") == ["m a=1 1700000000123000000"]
    assert lines(p, "k", b"ts=1700000000123,a=1") == ["m a=1 1700000000123000000"]
    assert p.parse("k", b"a=1 ts=1700000000123", T).own_time is True
    assert lines(p, "k", b"a=1 ts=1700000000123.5") == ["m a=1 1700000000123500000"]
    assert lines(p, "k", b"a=1 ts=2024-05-17T12:34:56.000336Z") == [
        "m a=1 1715949296000336000"]  # VECTORS.md: exact microseconds
    assert "missing" in reason(p, "k", b"a=1")
    assert "no fields" in reason(p, "k", b"ts=1")
    assert "ts" in reason(p, "k", b"a=1 ts=yesterday")


def test_kv_without_time_uses_receive_time() -> None:
    p = parser(topic="k", format="kv", measurement="m")
    assert lines(p, "k", b"a=1 ts=5") == [f"m a=1,ts=5 {T}"]
    assert p.parse("k", b"a=1", T).own_time is False


def test_time_format_strptime_and_iso() -> None:
    p = parser(topic="j", format="json", measurement="m",
               time={"key": "t", "precision": "s", "format": "%d.%m.%Y %H:%M:%S.%f"})
    assert lines(p, "j", b'{"v": 1, "t": "17.05.2024 12:34:56.000336"}') == [
        "m v=1 1715949296000336000"]
    assert lines(p, "j", b'{"v": 1, "t": 1715949296}') == ["m v=1 1715949296000000000"]
    assert "does not match" in reason(p, "j", b'{"v": 1, "t": "2024-05-17T12:34:56Z"}')
    kv = parser(topic="k", format="kv", measurement="m",
                time={"key": "t", "format": "%Y%m%dT%H%M%S%z"})
    assert lines(kv, "k", b"v=1 t=20240517T143456+0200") == ["m v=1 1715949296000000000"]
    iso = parser(topic="k", format="kv", measurement="m",
                 time={"key": "t", "precision": "s", "format": "ISO"})
    assert lines(iso, "k", b"v=1 t=2024-05-17T12:34:56Z") == ["m v=1 1715949296000000000"]
    assert "t" in reason(iso, "k", b"v=1 t=1715949296")  # iso: a number is not ISO-8601


@pytest.mark.parametrize("spec,fmt,why", [
    ({"key": "t", "format": "unix"}, "json", "neither 'iso' nor a strptime pattern"),
    ({"key": "t"}, "value", "only to format json, auto or kv"),
])
def test_time_config_errors(spec: Any, fmt: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parser(topic="k", format=fmt, time=spec)


# ------------------------------------------------------------------ PUBLISH decoding


def paho_decode(clients: Any, header: int, body: bytes, v5: bool) -> tuple:
    """paho's own reading of a PUBLISH, through its stock ``_handle_publish``: the
    same private path on every 2.x (2.2 moved the decoding to ``paho.mqtt._packet``)."""
    client = clients[v5]
    got: list = []
    client.on_message = lambda _c, _u, msg: got.append(msg)
    client._in_packet = {"command": header, "packet": bytearray(body)}
    client._handle_publish()
    msg = got[0] if got else client._in_messages.pop(max(client._in_messages))  # QoS 2
    return msg._topic, msg.payload, msg.qos, msg.mid, msg.dup  # _topic: the raw bytes


def test_decode_publish_agrees_with_paho() -> None:
    """The bridge's own PUBLISH decoder against paho's, for both protocols and QoS 0-2."""
    import struct

    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from edge_agent.sources.mqtt.client import decode_publish

    clients = {v5: mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, manual_ack=True,
                               protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
               for v5 in (False, True)}
    rng = random.Random(5)
    for _ in range(2000):
        qos, dup, v5 = rng.choice((0, 1, 2)), rng.random() < 0.5, rng.random() < 0.5
        topic = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        body = struct.pack("!H", len(topic)) + topic
        if qos:
            body += struct.pack("!H", rng.randint(1, 65535))
        if v5:
            props = Properties(PacketTypes.PUBLISH)
            if rng.random() < 0.5:  # > 127 bytes: a two-byte property length
                props.UserProperty = [("k" * rng.randint(1, 200), "v")]
            if rng.random() < 0.5:
                props.MessageExpiryInterval = 5
            body += props.pack()
        body += payload
        header = 0x30 | qos << 1 | (0x08 if dup else 0)
        got = decode_publish(header, bytearray(body), v5)
        assert got == paho_decode(clients, header, body, v5)
        assert type(got[0]) is bytes and type(got[1]) is bytes
    for truncated in (b"", b"\x00", b"\x00\x05ab", b"\x00\x01a\x00"):
        with pytest.raises(ValueError):
            decode_publish(0x32, truncated, True)
