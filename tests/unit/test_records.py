"""Record kinds -> lines: what ``write(record=...)`` accepts."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

import pandas as pd
import pytest

from edge_agent import Point
from edge_agent.lineproto import DROPS, Drops, LineEncoder
from edge_agent.records import Serializer


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
        'env,room=a,site=gh label="x",n=1i,ok=true,temp=21.5 1715949296000000336',
        "env,room=b\\ c,site=gh n=2i,ok=false 1715949297000000000",
        'env,site=gh label="q\\"",n=3i,ok=true,temp=3 1715949298000000000',
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
    assert drops.take() == (0, 2)


def test_dataframe_matches_the_point_path() -> None:
    df = pd.DataFrame({"t": ["a", "b"], "x": [0.1, 2.0], "y": [7, 8]},
                      index=pd.to_datetime([10, 20], unit="s"))
    via_points = Serializer("s").to_list(
        [Point("m").tag("t", t).field("x", x).field("y", y).time(s, "s")
         for t, x, y, s in [("a", 0.1, 7, 10), ("b", 2.0, 8, 20)]])
    assert Serializer("s").to_list(df, data_frame_measurement_name="m",
                                   data_frame_tag_columns=["t"]) == via_points


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
