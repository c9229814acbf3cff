"""Field rules (skip, tag_keys, where, decode) and the names InfluxDB refuses (pure)."""

from __future__ import annotations

import pytest

from edge_agent.errors import ConfigError
from edge_agent.sources.mqtt.topics import TopicTemplate
from tests.unit.test_mqtt_parse import T, lines, parser, reason


def test_skip_patterns_tag_keys_decode_and_where() -> None:
    p = parser(topic="r/{device}", format="json", measurement="m",
               skip=["Wifi_*", "TempUnit"], tag_keys=["unit"], decode=["attrs"],
               where={"kind": ["a", "b"]})
    payload = (b'{"kind": "a", "unit": "C", "TempUnit": "C", "Wifi_RSSI": 86, "t": 1,'
               b' "attrs": "{\\"x\\": [1, 2]}", "plain": "{not json"}')
    assert lines(p, "r/d", payload) == [
        f'm,device=d,unit=C attrs_x_0=1,attrs_x_1=2,kind="a",plain="{{not json",t=1 {T}']
    assert reason(p, "r/d", b'{"kind": "c", "t": 1}') == (
        "kind is 'c'; this subscription keeps only kind: a, b")
    assert reason(p, "r/d", b'{"t": 1}') == (
        "kind is missing; this subscription keeps only kind: a, b")


def test_time_is_never_a_field_or_tag_name() -> None:
    # InfluxDB 1.6 answers 204 to `m time=1,v=2` and stores only v; `m,time=x` is a 400
    got = parser(topic="j", format="json").parse("j", b'{"time": 1700000000, "v": 2}', T)
    assert got.lines == (f"mqtt v=2 {T}",)
    assert got.dropped_fields == 1 and "time: {key: time}" in got.drop_reason
    with pytest.raises(ConfigError, match="refuses a tag named time"):
        TopicTemplate.compile("a/{time}")
    with pytest.raises(ConfigError, match="refuses a tag named time"):
        parser(topic="j", format="json", tag_keys=["time"])
