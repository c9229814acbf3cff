"""Differential tests: our Point against influxdb-client 1.50's, line for line.

Wherever the reference is right, the bytes must be identical. Each place we
deliberately differ has its own named test below, which also pins down what
the reference does (so a reference upgrade that changes it is noticed).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, List

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from influxdb_client import InfluxDBClient
from influxdb_client import Point as RefPoint
from influxdb_client.client.write_api import SYNCHRONOUS, PointSettings

from edge_agent import Point
from edge_agent.client.records import Serializer
from edge_agent.lineproto.encoder import DROPS

Build = Callable[[Any], Any]

# Generated names may start with '#': both clients warn (see the named test below).
_NO_HASH_WARNING = pytest.mark.filterwarnings("ignore:The measurement name:SyntaxWarning")

# The seed's examples (and VECTORS.md), applied to both classes.
SEED_EXAMPLES: List[Build] = [
    lambda P: P("m").tag("b", "2").tag("a", "1").field("i", 1).field("f", 1.5)
    .field("s", "x").time(123),
    lambda P: P("cpu").tag("core", "0").field("temp", 25.3).time(1657729063, "s"),
    lambda P: P("h2o_feet").tag("location", "coyote_creek").field("water_level", 1.0).time(1),
    lambda P: P("my meas,x=y").field("v", 1),
    lambda P: P("m").tag("k =,", "v").field("v", 1),
    lambda P: P("m").field("s", 'a"b\\c'),
    lambda P: P("m").field("f", 2.0),
    lambda P: P("m").field("big", 9223372036854775807).field("neg", -5),
    lambda P: P("m").field("t", True).field("f", False),
    lambda P: P("m").tag("t", "ends\\").field("v", 1),
    lambda P: P("m").tag("empty", "").tag("none", None).field("v", 0.1),
    lambda P: P("m").field("nan", float("nan")).field("v", 1e300).field("tiny", 5e-324),
    lambda P: P("m").field("v", 1).time("2024-05-17T12:34:56.123456Z"),
    lambda P: P("m").field("v", 1).time(datetime(2024, 5, 17, 12, 34, 56, tzinfo=timezone.utc)),
    lambda P: P("m").field("v", 1).time(datetime(2024, 5, 17, 12, 34, 56, 123000), "ms"),
    lambda P: P("m").field("v", 1).time(datetime(2024, 5, 17, 12, 34, 56), "s"),
    lambda P: P.from_dict({"measurement": "h2o", "tags": {"loc": "a b"},
                           "fields": {"lvl": 1.5, "n": 3}, "time": 7}),
    lambda P: P.from_dict({"name": "sensor_pt859", "location": "warehouse_125",
                           "version": "2021.06.05.5874", "pressure": 125,
                           "temperature": 10, "created": 1632208639},
                          write_precision="s", record_measurement_key="name",
                          record_time_key="created", record_tag_keys=["location", "version"],
                          record_field_keys=["pressure", "temperature"]),
    lambda P: P.from_dict({"measurement": "h2o", "fields": {"lvl": 1.0, "c": 108913123234},
                           "time": 1}, field_types={"c": "uint"}),
    lambda P: P.from_dict({"measurement": "h2o", "fields": {"c": 12}},
                          field_types={"c": "float"}),
]


def ref_line(point: Any, precision: Any = None) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # '#' measurement warning
        return str(point.to_line_protocol(precision))


@pytest.mark.parametrize("build", SEED_EXAMPLES, ids=range(len(SEED_EXAMPLES)))
def test_seed_examples_match_reference(build: Build) -> None:
    assert build(Point).to_line_protocol() == ref_line(build(RefPoint))


# --------------------------------------------------------------------------- hypothesis

# Names: anything but what the reference gets wrong (\n \r \t, see the named
# tests) and empty (the reference silently drops an empty tag key; we raise).
_name_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\t")
names = st.text(_name_chars, min_size=1, max_size=12)
hostile = st.sampled_from([" ", ",", "=", '"', "\\", "\\ ", "a\\", "é", "温度", "💡", "#",
                          "{", "}", "{v}", "'"])
name = st.one_of(names, st.lists(hostile | names, min_size=1, max_size=4).map("".join))
FIELD_KINDS = [
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.none(),
]
field_value = st.one_of(*FIELD_KINDS)
tag_value = st.one_of(name, st.just(""), st.none())


@st.composite
def point_specs(draw: st.DrawFn) -> Dict[str, Any]:
    return {
        "measurement": draw(name),
        "tags": draw(st.dictionaries(name, tag_value, max_size=4)),
        "fields": draw(st.dictionaries(name, field_value, min_size=1, max_size=5)),
        "time": draw(st.one_of(st.none(), st.integers(0, 2**62))),
    }


def build_from(cls: Any, spec: Dict[str, Any]) -> Any:
    point = cls(spec["measurement"])
    for k, v in spec["tags"].items():
        point.tag(k, v)
    for k, v in spec["fields"].items():
        point.field(k, v)
    if spec["time"] is not None:
        point.time(spec["time"])
    return point


@_NO_HASH_WARNING
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(point_specs())
def test_generated_points_match_reference(spec: Dict[str, Any]) -> None:
    assert build_from(Point, spec).to_line_protocol() == ref_line(build_from(RefPoint, spec))


@_NO_HASH_WARNING
@settings(max_examples=100, deadline=None)
@given(st.lists(point_specs(), min_size=1, max_size=20))
def test_generated_dicts_match_reference_write_path(specs: List[Dict[str, Any]]) -> None:
    """A batch of dicts through both write-path serializers (no empty points here)."""
    expected = [ref_line(RefPoint.from_dict(s)) for s in specs]
    ours = Serializer("ns").to_list(specs)
    assert ours == [line for line in expected if line]


@st.composite
def shape_runs(draw: st.DrawFn) -> List[Dict[str, Any]]:
    """One shape (measurement, tags, field keys) written again and again with
    new values: the steady state, where the encoder uses compiled formatters.
    Each field keeps a value kind, with an occasional other kind, NaN or None."""
    spec = draw(point_specs())
    kinds = {key: draw(st.sampled_from(FIELD_KINDS)) for key in spec["fields"]}
    rows = draw(st.lists(
        st.fixed_dictionaries({key: st.one_of(kind, kind, kind, field_value)
                               for key, kind in kinds.items()}),
        min_size=2, max_size=8))
    return [dict(spec, fields=row) for row in rows]


@_NO_HASH_WARNING
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape_runs())
def test_repeated_shapes_match_reference(run: List[Dict[str, Any]]) -> None:
    expected = [ref_line(build_from(RefPoint, spec)) for spec in run]
    assert [build_from(Point, spec).to_line_protocol() for spec in run] == expected
    serializer = Serializer("ns")
    assert serializer.to_list([build_from(Point, spec) for spec in run]) == \
        [line for line in expected if line]
    assert serializer.to_list(run) == [line for line in expected if line]


# --------------------------------------------------------------------------- deliberate differences


def test_int_time_is_converted_exactly_between_precisions() -> None:
    """The reference writes an int timestamp unchanged whatever the precision asked."""
    ref = RefPoint("m").field("v", 1).time(1657729063, "s")
    assert ref_line(ref, "ms") == "m v=1i 1657729063"  # wrong: seconds sent as ms
    ours = Point("m").field("v", 1).time(1657729063, "s")
    assert ours.to_line_protocol("ms") == "m v=1i 1657729063000"
    assert ours.to_line_protocol("ns") == "m v=1i 1657729063000000000"
    late = Point("m").field("v", 1).time(1657729063999999, "us")
    assert late.to_line_protocol("s") == "m v=1i 1657729063"  # floor, no rounding up


def test_datetime_to_microseconds_is_exact_integer_arithmetic() -> None:
    moment = datetime(2024, 5, 17, 12, 34, 56, 336)
    assert ref_line(RefPoint("m").field("v", 1).time(moment, "us")) == "m v=1i 1715949296000335"
    assert Point("m").field("v", 1).time(moment, "us").to_line_protocol() == \
        "m v=1i 1715949296000336"


def test_datetime_microseconds_exact_on_every_microsecond_of_a_second() -> None:
    base = datetime(2024, 5, 17, 12, 34, 56)
    seconds = 1715949296
    wrong = 0
    for us in range(0, 1_000_000, 7):
        moment = base.replace(microsecond=us)
        line = Point("m").field("v", 1).time(moment, "us").to_line_protocol()
        assert line == f"m v=1i {seconds * 1_000_000 + us}"
        if ref_line(RefPoint("m").field("v", 1).time(moment, "us")) != line:
            wrong += 1
    assert wrong > 0  # the reference's float division is really off here


def test_iso_string_keeps_nanoseconds() -> None:
    """The reference parses ISO strings to datetime and loses the last three digits."""
    stamp = "2024-05-17T12:34:56.123456789Z"
    assert ref_line(RefPoint("m").field("v", 1).time(stamp)) == "m v=1i 1715949296123456000"
    assert Point("m").field("v", 1).time(stamp).to_line_protocol() == "m v=1i 1715949296123456789"


def test_default_tags_lose_to_the_points_own_tag() -> None:
    client = InfluxDBClient(url="http://127.0.0.1:9", token="unused", org="unused")
    ref_api = client.write_api(SYNCHRONOUS, point_settings=PointSettings(host="default"))
    ref = RefPoint("m").tag("host", "mine").field("v", 1)
    ref_api._append_default_tags(ref)
    assert ref_line(ref) == "m,host=default v=1i"  # the reference overwrites
    client.close()

    ours = Serializer("ns", default_tags={"host": "default", "site": "gh"})
    assert ours.to_list(Point("m").tag("host", "mine").field("v", 1)) == \
        ["m,host=mine,site=gh v=1i"]
    assert ours.to_list({"measurement": "m", "fields": {"v": 1}}) == \
        ["m,host=default,site=gh v=1i"]


def test_point_without_writable_field_gives_no_line_in_a_batch() -> None:
    batch = [RefPoint("m").field("v", 1), RefPoint("m").field("v", float("nan")),
             RefPoint("m").field("v", None), RefPoint("m").field("v", 2)]
    client = InfluxDBClient(url="http://127.0.0.1:9", token="unused", org="unused")
    payloads: Dict[str, List[bytes]] = defaultdict(list)
    client.write_api(SYNCHRONOUS)._serialize(batch, "ns", payloads)
    client.close()
    assert b"\n".join(payloads["ns"]) == b"m v=1i\n\n\nm v=2i"  # blank lines sent

    DROPS.take()
    ours = [Point("m").field("v", 1), Point("m").field("v", float("nan")),
            Point("m").field("v", None), Point("m").field("v", 2)]
    assert Serializer("ns").to_bytes(ours) == b"m v=1i\nm v=2i"
    assert DROPS.take() == (1, 2)  # one NaN field, two points with no field


@pytest.mark.parametrize("build,part", [
    (lambda P: P("a\nb").field("v", 1), "measurement"),
    (lambda P: P("m").tag("a\nb", "x").field("v", 1), "tag key"),
    (lambda P: P("m").tag("t", "x\ny").field("v", 1), "tag 't'"),
    (lambda P: P("m").field("a\nb", 1), "field key"),
    (lambda P: P("m\r").field("v", 1), "measurement"),
])
def test_newline_in_a_name_raises(build: Build, part: str) -> None:
    assert "\\n" in ref_line(build(RefPoint)) or "\\r" in ref_line(build(RefPoint))
    with pytest.raises(ValueError, match=part):
        build(Point).to_line_protocol()


def test_tab_in_a_name_is_written_raw() -> None:
    """The reference writes a tab as the two characters backslash-t, which
    InfluxDB stores literally (tests/integration shows the round trip); a raw
    tab is read back as a tab."""
    assert ref_line(RefPoint("a\tb").field("v", 1)) == "a\\tb v=1i"
    assert Point("a\tb").field("v", 1).to_line_protocol() == "a\tb v=1i"


# --------------------------------------------------------------------------- numpy, Decimal, errors

NUMPY_VALUES = [np.uint8(3), np.uint16(65535), np.uint32(7), np.uint64(2**63 - 1), np.int8(-4),
                np.int64(-(2**63)), np.float16(2.123), np.float32(1.1), np.float32(2.0),
                np.float32(1e20), np.float32(-0.0), np.float64(0.1), np.float64(2.0),
                np.float32(np.nan), np.float64(np.inf), Decimal("1.10"), Decimal("1E+2"),
                Decimal("2.0"), Decimal("NaN")]


@pytest.mark.parametrize("value", NUMPY_VALUES, ids=[repr(v) for v in NUMPY_VALUES])
def test_numpy_and_decimal_values_match_reference(value: Any) -> None:
    """Unsigned numpy ints are written ``i`` as the reference writes them (a field
    it stored as integer stays one), float16/float32 in their own shortest digits."""
    expected = ref_line(RefPoint("m").field("v", value).field("k", 1))
    assert Point("m").field("v", value).field("k", 1).to_line_protocol() == expected
    assert Serializer("ns").to_list([{"measurement": "m", "fields": {"v": value, "k": 1}}]) == \
        [expected]


def test_float32_is_not_written_with_float64_digits() -> None:
    assert Point("m").field("v", np.float16(2.123)).to_line_protocol() == "m v=2.123"
    assert Point("m").field("v", np.float32(0.1)).to_line_protocol() == "m v=0.1"


def test_uint64_beyond_int64_is_written_unsigned() -> None:
    """``i`` cannot carry it: the reference's line is rejected by InfluxDB."""
    big = np.uint64(2**64 - 1)
    assert ref_line(RefPoint("m").field("v", big)) == "m v=18446744073709551615i"
    assert Point("m").field("v", big).to_line_protocol() == "m v=18446744073709551615u"


def test_field_types_still_choose_the_integer_suffix_for_numpy_ints() -> None:
    spec = {"measurement": "m", "fields": {"c": np.uint32(5), "f": np.int16(7)}}
    kwargs = {"field_types": {"c": "uint", "f": "float"}}
    expected = ref_line(RefPoint.from_dict(spec, **kwargs))
    assert expected == "m c=5u,f=7"
    assert Point.from_dict(spec, **kwargs).to_line_protocol() == expected


@pytest.mark.parametrize("value", [datetime(2020, 1, 1), [1], b"x", {"a": 1}, object()],
                         ids=["datetime", "list", "bytes", "dict", "object"])
def test_unsupported_field_type_raises_value_error_as_the_reference(value: Any) -> None:
    with pytest.raises(ValueError, match="not supported"):
        RefPoint("m").field("v", value).to_line_protocol()
    with pytest.raises(ValueError, match="field 'v' has type"):
        Point("m").field("v", value).to_line_protocol()
    with pytest.raises(ValueError, match="field 'v'"):
        Serializer("ns").to_list([{"measurement": "m", "fields": {"v": value}}])


def test_numpy_bool_is_written_where_the_reference_raises() -> None:
    with pytest.raises(ValueError):
        RefPoint("m").field("v", np.bool_(True)).to_line_protocol()
    assert Point("m").field("v", np.bool_(True)).to_line_protocol() == "m v=true"


def test_measurement_starting_with_hash_warns_as_the_reference() -> None:
    with pytest.warns(SyntaxWarning) as ref_warnings:
        ref = RefPoint("#m").field("v", 1).to_line_protocol()
    with pytest.warns(SyntaxWarning) as our_point:
        ours = Point("#m").field("v", 1).to_line_protocol()
    with pytest.warns(SyntaxWarning, match="start with '#'"):
        Serializer("ns").to_list([{"measurement": "#other", "fields": {"v": 1}}])
    assert ours == ref == "#m v=1i"
    assert str(our_point[0].message) == str(ref_warnings[0].message)
    for _ in range(2):  # every time, not only for a new shape
        with pytest.warns(SyntaxWarning):
            Point("#m").field("v", 2).to_line_protocol()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Point("m#").field("v", 1).to_line_protocol()  # only a leading '#'
