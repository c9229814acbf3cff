"""MQTT 5 shared subscriptions: ``$share/<group>/<template>``.

The broker is subscribed with the prefix; captures, matching and the config
checks work on the filter inside it (the broker delivers messages under their
own topic).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edge_agent.errors import ConfigError
from edge_agent.lineproto.encoder import LineEncoder
from edge_agent.sources.mqtt.payloads import MessageParser
from edge_agent.sources.mqtt.topics import TopicTemplate, split_share


def test_shared_template_subscribes_with_the_prefix_and_matches_inside() -> None:
    t = TopicTemplate.compile("$share/bridges/sensors/{room}/{field}")
    assert t.filter == "$share/bridges/sensors/+/+"
    assert t.captures == ("room", "field")
    assert t.match("sensors/kitchen/temperature") == {"room": "kitchen", "field": "temperature"}
    assert t.match("$share/bridges/sensors/kitchen/temperature") is None
    assert t.match("other/kitchen/temperature") is None


def test_shared_template_with_hash() -> None:
    t = TopicTemplate.compile("$share/g1/tele/{device}/#")
    assert t.filter == "$share/g1/tele/+/#"
    assert t.match("tele/plug1/SENSOR") == {"device": "plug1"}


def test_plain_templates_are_unchanged() -> None:
    assert split_share("sensors/{room}") == ("", "sensors/{room}")
    assert TopicTemplate.compile("sensors/{room}").filter == "sensors/+"


@pytest.mark.parametrize("bad", ["$share/", "$share/g", "$share//a/b", "$share/g+/a",
                                 "$share/{g}/a", "$share/g/"])
def test_malformed_shares_are_one_clear_error(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"\$share/<group>/<filter>"):
        TopicTemplate.compile(bad)


def test_capture_rules_apply_inside_the_share() -> None:
    with pytest.raises(ConfigError, match="twice"):
        TopicTemplate.compile("$share/g/{a}/{a}")


def test_a_parser_on_a_shared_subscription_tags_from_the_inner_levels() -> None:
    # Shelly Plus H&T (Gen2) publishes shellies/<id>/status/temperature:0 as JSON
    # (Shelly Gen2 API docs, "Temperature" component): {"id":0,"tC":21.7,"tF":71.1}
    sub = SimpleNamespace(topic="$share/bridges/shellies/{device}/status/{component}",
                          format="json", measurement="shelly", tags=None, field=None,
                          fields=None, types=None, time=None)
    parser = MessageParser(sub, LineEncoder("ns"))
    assert parser.filter == "$share/bridges/shellies/+/status/+"
    parsed = parser.parse("shellies/ht-1/status/temperature:0", b'{"id":0,"tC":21.7,"tF":71.1}',
                          1_764_000_000_000_000_000)
    text = "\n".join(ln if isinstance(ln, str) else ln.decode() for ln in parsed.lines)
    assert "device=ht-1" in text and "tC=21.7" in text, text
