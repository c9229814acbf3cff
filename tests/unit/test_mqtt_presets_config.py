"""The subscription schema's preset, booleans, timezone and field-rule keys (config side)."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.config import parse_config
from edge_agent.config.model import MqttSourceConfig, Subscription
from edge_agent.errors import ConfigError

HEAD = ("influx:\n  bucket: b\nsources:\n  - name: m\n    type: mqtt\n    url: mqtt://broker\n"
        "    subscriptions:\n")


def subscription(text: str) -> Subscription:
    config = parse_config(HEAD + text, "conf/edge.yaml", env={})
    source = config.sources[0]
    assert isinstance(source, MqttSourceConfig)
    return source.subscriptions[0]


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(HEAD + text, "conf/edge.yaml", env={})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_preset_is_one_line() -> None:
    sub = subscription("      - preset: zigbee2mqtt\n")
    assert (sub.topic, sub.format, sub.measurement, sub.filter) == (
        "zigbee2mqtt/{device}", "json", "zigbee2mqtt", "zigbee2mqtt/+")
    assert sub.booleans == {"close": False, "lock": True, "unlock": False}
    assert "last_seen" in sub.skip


def test_user_keys_win_and_maps_merge() -> None:
    sub = subscription("      - preset: tasmota\n        topic: 'home/tele/{device}/{kind}'\n"
                       "        timezone: Europe/Berlin\n        types: {UptimeSec: int}\n"
                       "        skip: [Heap]\n        booleans: {HOLD: true}\n")
    assert sub.topic == "home/tele/{device}/{kind}"
    assert sub.time is not None and sub.time.key == "Time" and sub.time.precision == "s"
    assert sub.timezone == "Europe/Berlin"
    assert sub.types == {"UptimeSec": "int"}
    assert sub.skip[-1] == "Heap" and "Epoch" in sub.skip
    assert sub.booleans == {"HOLD": True}


@pytest.mark.parametrize("text,expected", [
    ("      - preset: zigbee\n",
     "conf/edge.yaml:8:17: sources[0].subscriptions[0].preset: unknown preset 'zigbee' "
     "(did you mean 'zigbee2mqtt'?); accepted: zigbee2mqtt, tasmota, shelly, esphome, "
     "homeassistant, owntracks"),
    ("      - {preset: tasmota, timezone: Mars/Olympus}\n",
     "conf/edge.yaml:8:37: sources[0].subscriptions[0].timezone: unknown time zone "
     "'Mars/Olympus'; use an IANA name such as Europe/Berlin or America/New_York (see "
     "/usr/share/zoneinfo), or UTC"),
    ("      - {topic: a/b, format: json, timezone: UTC}\n",
     "conf/edge.yaml:8:46: sources[0].subscriptions[0].timezone: applies to the time: key of "
     "the payload (a naive timestamp is read in this zone); there is none"),
    ("      - {topic: a/b, format: value, booleans: {LOCK: yes}}\n",
     "conf/edge.yaml:8:54: sources[0].subscriptions[0].booleans.LOCK: must be true or false, "
     "got 'yes'"),
    ("      - {topic: a/b, format: influx, skip: [a]}\n",
     "conf/edge.yaml:8:44: sources[0].subscriptions[0].skip: applies only to format json or kv "
     "or auto, this subscription has format influx"),
    ("      - {topic: a/b}\n",
     "conf/edge.yaml:8:9: sources[0].subscriptions[0]: missing required key 'format' (one of "
     "value, json, auto, influx, kv) (or a preset: zigbee2mqtt, tasmota, shelly, esphome, "
     "homeassistant, owntracks)"),
    ("      - {topic: a/b, format: json, fields: {t: 'a[x]'}}\n",
     "conf/edge.yaml:8:48: sources[0].subscriptions[0].fields.t: path 'a[x]': '[x]' is not "
     "[n] (an array index)"),
])
def test_errors_name_the_line_and_column(text: str, expected: Any) -> None:
    assert error(text) == expected


def test_auto_precision_and_list_or_single_name() -> None:
    sub = subscription("      - {topic: a/b, format: json, time: {key: ts, precision: auto},"
                       " tag_keys: tid, where: {_type: [location, transition]}}\n")
    assert sub.time is not None and sub.time.precision == "auto"
    assert sub.tag_keys == ("tid",)
    assert sub.where == {"_type": ["location", "transition"]}


def test_timezone_inside_time_merges_with_the_presets_time() -> None:
    sub = subscription("      - {preset: tasmota, time: {timezone: Asia/Kolkata}}\n")
    assert sub.time is not None and (sub.time.key, sub.time.precision) == ("Time", "s")
    assert sub.timezone == "Asia/Kolkata"


@pytest.mark.parametrize("text,expected", [
    ("      - {topic: a/b, format: json, time: {precision: ms}}\n",
     "conf/edge.yaml:8:42: sources[0].subscriptions[0].time: missing required key 'key' (the "
     "payload key holding the timestamp)"),
    ("      - {topic: a/b, format: json, timezone: UTC, time: {key: t, timezone: UTC}}\n",
     "conf/edge.yaml:8:76: sources[0].subscriptions[0].time.timezone: is given twice (here and "
     "as the subscription's timezone:); keep one"),
    ("      - {topic: a/b, format: json, time: {key: t, timezone: Nowhere}}\n",
     "conf/edge.yaml:8:61: sources[0].subscriptions[0].time.timezone: unknown time zone "
     "'Nowhere'; use "
     "an IANA name such as Europe/Berlin or America/New_York (see /usr/share/zoneinfo), or UTC"),
])
def test_time_errors(text: str, expected: str) -> None:
    assert error(text) == expected
