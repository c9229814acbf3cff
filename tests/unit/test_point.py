"""Point and line protocol: the reference client's observed outputs (VECTORS.md)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from edge_agent import Point, WritePrecision
from edge_agent.lineproto.encoder import DROPS, LineEncoder


def test_reference_outputs():
    p = Point("m").tag("b", "2").tag("a", "1").field("i", 1).field("f", 1.5).field("s", "x")
    assert p.time(123).to_line_protocol() == 'm,a=1,b=2 f=1.5,i=1i,s="x" 123'
    assert Point("my meas,x=y").field("v", 1).to_line_protocol() == "my\\ meas\\,x=y v=1i"
    assert Point("m").tag("k =,", "v").field("v", 1).to_line_protocol() == "m,k\\ \\=\\,=v v=1i"
    assert Point("m").field("s", 'a"b\\c').to_line_protocol() == 'm s="a\\"b\\\\c"'
    assert Point("m").field("f", 2.0).to_line_protocol() == "m f=2"


def test_datetime_microseconds_exact():
    p = Point("m").field("v", 1).time(datetime(2024, 5, 17, 12, 34, 56, 336), WritePrecision.US)
    assert p.to_line_protocol() == "m v=1i 1715949296000336"


@pytest.mark.parametrize("stamp,expected", [
    ("2024-05-17T12:34:56.123456789Z", 1715949296123456789),
    ("2024-05-17T14:34:56.5+02:00", 1715949296500000000),
    ("2024-05-17", 1715904000000000000),
    (datetime(2024, 5, 17, 12, 34, 56, tzinfo=timezone(timedelta(hours=-1))), 1715952896000000000),
    (timedelta(seconds=3), 3_000_000_000),
])
def test_time_kinds_to_ns(stamp, expected):
    assert Point("m").field("v", 1).time(stamp).to_line_protocol() == f"m v=1i {expected}"


def test_int_time_converted_exactly_between_precisions():
    p = Point("m").field("v", 1).time(1657729063, WritePrecision.S)
    assert p.to_line_protocol() == "m v=1i 1657729063"
    assert p.to_line_protocol("ms") == "m v=1i 1657729063000"
    q = Point("m").field("v", 1).time(1657729063999, WritePrecision.MS)
    assert q.to_line_protocol("s") == "m v=1i 1657729063"


def test_nan_and_inf_dropped_and_counted():
    DROPS.take()
    p = Point("m").field("a", float("nan")).field("b", 1.0).field("c", float("-inf"))
    assert p.to_line_protocol() == "m b=1"
    assert Point("m").field("a", float("inf")).to_line_protocol() == ""
    assert DROPS.take() == (3, 1)


@pytest.mark.parametrize("build,part", [
    (lambda: Point("").field("v", 1), "measurement"),
    (lambda: Point("a\nb").field("v", 1), "measurement"),
    (lambda: Point("m").tag("", "x").field("v", 1), "tag key"),
    (lambda: Point("m").field("", 1), "field key"),
    (lambda: Point("m").field("a\rb", 1), "field key"),
    (lambda: Point("m").tag("t", "x\ny").field("v", 1), "tag 't'"),
])
def test_bad_names_raise_naming_the_part(build, part):
    with pytest.raises(ValueError, match=part):
        build().to_line_protocol()


def test_default_tags_lose_to_the_points_own():
    enc = LineEncoder("ns", {"host": "default", "site": "gh"})
    assert enc.encode("m", {"host": "mine"}, {"v": 1}) == "m,host=mine,site=gh v=1i"
    assert enc.encode("m", None, {"v": 1}) == "m,host=default,site=gh v=1i"


def test_uint_and_float_field_types_from_dict():
    p = Point.from_dict(
        {"measurement": "m", "fields": {"c": 5, "f": 7}, "time": 1},
        field_types={"c": "uint", "f": "float"},
    )
    assert p.to_line_protocol() == "m c=5u,f=7 1"
