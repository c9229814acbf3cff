"""Record kinds -> lines: what ``write(record=...)`` accepts."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterator

import pandas as pd
import pytest

from edge_agent import Point
from edge_agent.client.records import Serializer
from edge_agent.lineproto import encoder, formatters
from edge_agent.lineproto.encoder import DROPS, Drops, LineEncoder


def test_str_and_bytes_lose_blank_lines_and_surrounding_whitespace() -> None:
    text = "\n  m v=1i 1  \n\n\r\n\tm v=2i 2\r\n   \n"
    assert Serializer().to_list(text) == ["m v=1i 1", "m v=2i 2"]
    assert Serializer().to_list(text.encode()) == ["m v=1i 1", "m v=2i 2"]
    assert Serializer().to_bytes([b"a v=1", "b v=2\n"]) == b"a v=1\nb v=2"
    assert Serializer().to_list("  \n\n") == []


def test_point_keeps_its_own_precision_converted_to_the_writers() -> None:
    point = Point("m").field("v", 1).time(5, "s")
    assert Serializer("ms").to_list(point) == ["m v=1i 5000"]
    assert Serializer("s").to_list([point, point]) == ["m v=1i 5", "m v=1i 5"]


def test_dict_default_shape() -> None:
    record = {"measurement": "h2o", "tags": {"loc": "coyote creek"},
              "fields": {"level": 1.5, "n": 3}, "time": 7}
    assert Serializer().to_list(record) == ["h2o,loc=coyote\\ creek level=1.5,n=3i 7"]
    assert Serializer().to_list({"measurement": "h2o", "fields": {"n": 3},
                                 "field_types": {"n": "uint"}}) == ["h2o n=3u"]


def test_dict_with_record_kwargs() -> None:
    record = {"name": "sensor", "location": "w1", "version": "2", "pressure": 125,
              "temperature": 10.5, "created": 1632208639, "ignored": "x"}
    lines = Serializer("s").to_list(
        record, record_measurement_key="name", record_time_key="created",
        record_tag_keys=["location", "version"],
        record_field_keys=["pressure", "temperature"], field_types={"pressure": "float"},
    )
    assert lines == ["sensor,location=w1,version=2 pressure=125,temperature=10.5 1632208639"]
    fixed = Serializer().to_list(record, record_measurement_name="fixed",
                                 record_field_keys=["pressure"])
    assert fixed == ["fixed pressure=125i"]


@dataclass
class Reading:
    room: str
    temp: float
    hum: float
    at: datetime


Sample = namedtuple("Sample", "room temp hum at")

_KWARGS = dict(record_measurement_name="env", record_tag_keys=["room"],
               record_field_keys=["temp", "hum"], record_time_key="at")


@pytest.mark.parametrize("cls", [Reading, Sample])
def test_dataclass_and_namedtuple(cls: Any) -> None:
    record = cls("north bay", 21.5, 40.0, datetime(2024, 5, 17, 12, 34, 56, 336))
    assert Serializer("us").to_list(record, **_KWARGS) == \
        ["env,room=north\\ bay hum=40,temp=21.5 1715949296000336"]
    # Without record_field_keys every other attribute is a field.
    other = dict(_KWARGS)
    del other["record_field_keys"]
    assert Serializer("s").to_list(record, **other) == \
        ["env,room=north\\ bay hum=40,temp=21.5 1715949296"]


def test_dataclass_needs_a_measurement() -> None:
    with pytest.raises(ValueError, match="record_measurement_name"):
        Serializer().to_list(Reading("a", 1.0, 2.0, datetime(2024, 1, 1)))


def test_dataframe_with_index_as_time_and_nan_cells_omitted() -> None:
    df = pd.DataFrame(
        {"room": ["a", "b c", None], "temp": [21.5, float("nan"), 3.0],
         "n": [1, 2, 3], "label": ["x", None, 'q"'], "ok": [True, False, True]},
        index=pd.to_datetime(["2024-05-17T12:34:56.000000336Z", "2024-05-17T12:34:57Z",
                              "2024-05-17T12:34:58Z"], format="ISO8601"),
    )
    lines = Serializer("ns", default_tags={"site": "gh"}).to_list(
        df, data_frame_measurement_name="env", data_frame_tag_columns=["room"])
    assert lines == [
        'env,room=a,site=gh label="x",n=1i,ok=True,temp=21.5 1715949296000000336',
        "env,room=b\\ c,site=gh n=2i,ok=False 1715949297000000000",
        'env,site=gh label="q\\"",n=3i,ok=True,temp=3.0 1715949298000000000',
    ]


def test_dataframe_timestamp_column_and_rows_without_field_counted() -> None:
    df = pd.DataFrame({
        "when": pd.to_datetime([1_000, 2_000, 3_000], unit="s"),
        "host": ["p1", "p2", "p3"],
        "v": [1.5, float("nan"), float("inf")],
    })
    drops = Drops()
    lines = Serializer("s", drops=drops).to_list(
        df, data_frame_measurement_name="m", data_frame_tag_columns=["host"],
        data_frame_timestamp_column="when")
    assert lines == ["m,host=p1 v=1.5 1000"]
    assert drops.take() == (1, 2)  # the Inf field; two rows left with no field


def test_dataframe_matches_the_point_path_but_spells_floats_as_the_reference() -> None:
    df = pd.DataFrame({"t": ["a", "b"], "x": [0.1, 2.0], "y": [7, 8]},
                      index=pd.to_datetime([10, 20], unit="s"))
    via_points = Serializer("s").to_list(
        [Point("m").tag("t", t).field("x", x).field("y", y).time(s, "s")
         for t, x, y, s in [("a", 0.1, 7, 10), ("b", 2.0, 8, 20)]])
    # The reference writes 2.0 in a DataFrame and 2 for a Point; both are floats.
    assert Serializer("s").to_list(df, data_frame_measurement_name="m",
                                   data_frame_tag_columns=["t"]) == \
        [line.replace("x=2,", "x=2.0,") for line in via_points]


def test_generator_is_consumed_lazily() -> None:
    pulled = []

    def readings() -> Iterator[Any]:
        for i in range(3):
            pulled.append(i)
            yield {"measurement": "m", "fields": {"v": i}, "time": i}

    lines = Serializer().lines(readings())
    assert pulled == []
    assert next(lines) == "m v=0i 0"
    assert pulled == [0]
    assert next(lines) == "m v=1i 1"
    assert pulled == [0, 1]


def test_nested_iterables_of_mixed_kinds() -> None:
    batch = ["a v=1", [Point("b").field("v", 2), ({"measurement": "c", "fields": {"v": 3}},)]]
    assert Serializer().to_list(iter(batch)) == ["a v=1", "b v=2i", "c v=3i"]


def test_unsupported_record_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="record of type int is not supported"):
        Serializer().to_list(42)


def test_cache_never_conflates_equal_values_that_print_differently() -> None:
    enc = LineEncoder("ns")
    assert enc.encode("m", {"t": 1}, {"v": 1}) == "m,t=1 v=1i"
    assert enc.encode("m", {"t": 1.0}, {"v": 1}) == "m,t=1.0 v=1i"
    assert enc.encode("m", {"t": True}, {"v": 1}) == "m,t=True v=1i"
    assert enc.encode("m", {"t": "1"}, {"v": 1}) == "m,t=1 v=1i"
    assert enc.encode("m", {"t": 1.0}, {"v": 1}) == "m,t=1.0 v=1i"
    assert enc.encode(1, None, {True: 1}) == "1 True=1i"
    assert enc.encode(1.0, None, {1: 1}) == "1.0 1=1i"
    # A field key that looks like a tag item cannot hit a tagged entry.
    assert enc.encode("m", {"a": "b"}, {"v": 1}) == "m,a=b v=1i"
    assert enc.encode("m", None, {"v": 1, ("a", "b"): 2}) == "m ('a'\\,\\ 'b')=2i,v=1i"


def test_drops_default_counter_counts_empty_points() -> None:
    DROPS.take()
    assert Serializer().to_list([{"measurement": "m", "fields": {}},
                                 {"measurement": "m", "fields": {"v": None}}]) == []
    assert DROPS.take() == (0, 2)


# --------------------------------------------------------------------------- compiled formatters


def _steady(enc: LineEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, a line taking the general loop fails the test."""
    def general(*args: Any) -> None:
        raise AssertionError("took the general loop")

    monkeypatch.setattr(enc, "_encode_fields", general)


ALL_TYPES = {"f": 1.5, "whole": 2.0, "i": -3, "big": 2**63 - 1, "s": 'a "b" \\c,d=e f',
             "t": True, "no": False, "neg0": -0.0, "tiny": 5e-324, "huge": 1e300}
ALL_TYPES_LINE = ('m,h=x big=9223372036854775807i,f=1.5,huge=1e+300,i=-3i,neg0=-0,no=false,'
                  's="a \\"b\\" \\\\c,d=e f",t=true,tiny=5e-324,whole=2 7')


def test_compiled_formatter_writes_every_field_type(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = LineEncoder("ns")
    lines = [enc.encode("m", {"h": "x"}, dict(ALL_TYPES), 7) for _ in range(2)]
    assert lines == [ALL_TYPES_LINE] * 2  # first sighting and compile
    _steady(enc, monkeypatch)
    assert enc.encode("m", {"h": "x"}, dict(ALL_TYPES), 7) == ALL_TYPES_LINE
    assert enc.encode("m", {"h": "x"}, dict(ALL_TYPES)) == ALL_TYPES_LINE[:-2]  # no time
    # Another series with the same fields shares the compiled formatter.
    assert enc.encode("m", {"h": "y"}, dict(ALL_TYPES), 7) == ALL_TYPES_LINE.replace("h=x", "h=y")


def test_compiled_formatter_converts_time_first(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = LineEncoder("ms")
    for _ in range(2):
        enc.encode("m", None, {"v": 1.25}, 5, "s")
    _steady(enc, monkeypatch)
    assert enc.encode("m", None, {"v": 1.25}, 5, "s") == "m v=1.25 5000"
    assert enc.encode("m", None, {"v": 1.25}, datetime(1970, 1, 1, 0, 0, 1)) == "m v=1.25 1000"


@pytest.mark.parametrize("key", ["{v}", "}{", "a'b", 'a"b', "x\\", "a b,c=d", "温度", "{{"])
def test_compiled_formatter_keeps_hostile_field_keys_literal(
        key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = LineEncoder("ns")
    expected = enc.encode("m", None, {key: "{v}", "n": 1})
    enc.encode("m", None, {key: "{v}", "n": 1})
    _steady(enc, monkeypatch)
    assert enc.encode("m", None, {key: "{v}", "n": 1}) == expected
    assert "{v}" in expected


def test_nan_inf_and_none_after_compiling_are_dropped_and_counted() -> None:
    drops = Drops()
    enc = LineEncoder("ns", drops=drops)
    for _ in range(3):
        assert enc.encode("m", None, {"a": 1.5, "b": 2}) == "m a=1.5,b=2i"
    assert enc.encode("m", None, {"a": float("nan"), "b": 2}) == "m b=2i"
    assert enc.encode("m", None, {"a": float("-inf"), "b": 2}) == "m b=2i"
    assert enc.encode("m", None, {"a": None, "b": 2}) == "m b=2i"
    assert enc.encode("m", None, {"a": float("inf"), "b": None}) is None
    assert drops.take() == (3, 1)
    assert enc.encode("m", None, {"a": 1.5, "b": 2}) == "m a=1.5,b=2i"


def test_changed_value_types_recompile(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sensor whose first readings were None or ints does not stay on the slow path."""
    enc = LineEncoder("ns")
    assert enc.encode("m", None, {"v": None, "w": 1}) == "m w=1i"
    assert enc.encode("m", None, {"v": 20, "w": 1}) == "m v=20i,w=1i"
    for value in (20.5, 21.5, 22.5):  # the new types: seen, compiled, steady
        assert enc.encode("m", None, {"v": value, "w": 1}) == f"m v={value},w=1i"
    _steady(enc, monkeypatch)
    assert enc.encode("m", None, {"v": 23.0, "w": 2}) == "m v=23,w=2i"


def test_unusual_types_and_int_types_take_the_general_loop() -> None:
    enc = LineEncoder("ns")

    class Celsius(float):
        pass

    for _ in range(3):
        assert enc.encode("m", None, {"v": 5, "w": 1.0}) == "m v=5i,w=1"
    assert enc.encode("m", None, {"v": 5, "w": 1.0}, int_types={"v": "u"}) == "m v=5u,w=1"
    assert enc.encode("m", None, {"v": 5, "w": 1.0}, int_types={"v": ""}) == "m v=5,w=1"
    assert enc.encode("m", None, {"v": True, "w": Celsius(1.5)}) == "m v=true,w=1.5"
    assert enc.encode("m", None, {"v": Decimal("2.50"), "w": 1.0}) == "m v=2.50,w=1"
    batch = [{"measurement": "m", "fields": {"c": 5, "f": 7}, "field_types": {"c": "uint",
                                                                            "f": "float"}}] * 3
    assert Serializer().to_list(batch) == ["m c=5u,f=7"] * 3


def test_non_str_tag_values_are_written_but_not_cached() -> None:
    enc = LineEncoder("ns")
    for _ in range(3):
        assert enc.encode("m", {"n": 1, "f": 2.5}, {"v": 1.0}) == "m,f=2.5,n=1 v=1"
        assert enc.encode("m", {"n": [1]}, {"v": 1.0}) == "m,n=[1] v=1"  # unhashable
    assert list(enc._shapes) == []


def test_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder, "_CACHE_MAX", 5)
    monkeypatch.setattr(formatters, "_FORMATTER_MAX", 4)
    monkeypatch.setattr(formatters, "_FORMATTERS", {})
    enc = LineEncoder("ns")
    for round_ in range(3):
        for i in range(12):
            fields = {f"f{i % 6}": 1.5, "n": i}
            assert enc.encode("m", {"host": f"h{i}"}, fields, round_) == \
                f"m,host=h{i} f{i % 6}=1.5,n={i}i {round_}"
            assert len(enc._shapes) <= 5
            assert len(formatters._FORMATTERS) <= 4


def test_layout_compiles_only_when_seen_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formatters, "_FORMATTERS", {})
    enc = LineEncoder("ns")
    enc.encode("m", None, {"once": 1})
    assert list(formatters._FORMATTERS.values()) == [None]
    enc.encode("m", {"t": "a"}, {"once": 2})  # another series, same layout and types
    assert [f is not None for f in formatters._FORMATTERS.values()] == [True]


def test_batch_list_and_tuple_match_lazy_lines() -> None:
    batch = [{"measurement": "m", "tags": {"h": str(i % 3)}, "fields": {"v": i / 4}, "time": i}
             for i in range(20)] + [Point("p").field("v", 1), "x v=1", b"y v=2"]
    lazy = list(Serializer().lines(iter(batch)))
    assert Serializer().to_list(batch) == lazy
    assert Serializer().to_list(tuple(batch)) == lazy
    assert Serializer().to_bytes(batch) == "\n".join(lazy).encode()
