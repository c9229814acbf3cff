"""json, kv and regex line parsers: values, chunking, errors, options."""

from __future__ import annotations

import pytest

from edge_agent.sensors import SERIAL_PARSERS, JSONLines, KVLines, RegexLines


def test_registry():
    assert set(SERIAL_PARSERS) == {"pms5003", "nmea", "json", "kv", "regex"}


def test_json_lines_flatten_and_errors():
    parser = JSONLines()
    data = (b'{"temp": 21.5, "ok": true, "env": {"hum": 40, "tags": ["a", "b"]}, "n": null}\r\n'
            b"not json\n[1, 2]\n\n"
            b'{"v": NaN}\n')  # fmt: skip
    assert parser.feed(data[:10]) == []
    readings = parser.feed(data[10:])
    assert readings == [{"temp": 21.5, "ok": True, "env_hum": 40, "env_tags_0": "a",
                         "env_tags_1": "b"}]  # fmt: skip
    assert parser.errors == 3


def test_json_field_selection():
    parser = JSONLines({"fields": ["temp"]})
    assert parser.feed(b'{"temp": 1, "x": 2}\n') == [{"temp": 1}]


def test_kv_lines():
    parser = KVLines()
    readings = parser.feed(b"temp=21.5 hum=40\ntemp=21.6, hum=41,state=ok,on=true\n")
    assert readings == [{"temp": 21.5, "hum": 40},
                        {"temp": 21.6, "hum": 41, "state": "ok", "on": True}]  # fmt: skip
    assert parser.feed(b"temp 21\n") == [] and parser.errors == 1
    custom = KVLines({"separator": ";", "delimiter": ":"})
    assert custom.feed(b"a:1;b:x y\n") == [{"a": 1, "b": "x y"}]


def test_regex_lines():
    parser = RegexLines({"pattern": r"T=(?P<temperature>[-\d.]+)C H=(?P<humidity>\d+)%"
                                    r"(?: (?P<note>\w+))?"})  # fmt: skip
    readings = parser.feed(b"boot\nT=-1.5C H=40%\nT=2C H=41% warm\n")
    assert readings == [{"temperature": -1.5, "humidity": 40},
                        {"temperature": 2, "humidity": 41, "note": "warm"}]  # fmt: skip
    assert parser.errors == 1 and "does not match" in parser.last_error


@pytest.mark.parametrize("options,message", [
    ({}, "'pattern' is required"),
    ({"pattern": "("}, "not a valid regular expression"),
    ({"pattern": r"\d+"}, "named groups"),
])  # fmt: skip
def test_regex_option_errors(options, message):
    with pytest.raises(ValueError, match=message):
        RegexLines(options)


def test_long_lines_and_bad_encoding_are_errors():
    parser = KVLines({"max_line": 16})
    assert parser.feed(b"a=" + b"1" * 40) == []
    assert parser.feed(b"11\nb=2\n\xff\xfe=1\n") == [{"b": 2}]
    assert parser.errors == 2
    with pytest.raises(ValueError, match="encoding"):
        KVLines({"encoding": "klingon"})
