"""Round trip through the real influxd 1.x: write our line protocol, read it back.

Hypothesis generates points with hostile names and values; each is written
with the v1 ``/write`` API to a fresh database and read back with ``/query``
(``GROUP BY *`` so tags come back apart from fields), then compared exactly.

What influxd 1.6.7 cannot round-trip (measured, each pinned by a named test
below) is kept out of the strategies:

* a backslash at the end of a tag key or field key (it escapes the ``=``
  after it: 400) or of a tag value (the reference's, and our, padding space
  comes back as part of the value: ``a\\`` reads back as ``a ``);
* a backslash at the end of a measurement: a parse error (400); a backslash
  before ``=`` in a measurement is dropped (1.x unescapes ``\\=`` there too,
  though ``=`` needs no escape in a measurement);
* a measurement starting with ``#``: the line is a comment, silently skipped
  with 204;
* a tab at the start of the measurement or of the first field key: skipped
  as whitespace (a tab anywhere else is kept);
* ``time`` as a tag key or field key: 400 ``invalid tag key`` / ``invalid
  field name``;
* a backslash right before ``,`` ``=`` or space in a key: 1.x's key scanner
  takes ``\\\\`` as an escaped backslash and then ends the key (400), and a
  field key's ``\\"`` comes back as ``"``; in a tag value ``a\\,b``
  happens to round-trip, but the strategies avoid the pattern in every name.

What does round-trip, also pinned: tabs inside names, ``\\r`` and
``\\n`` (and quotes, backslashes) inside string field values, unicode.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent import Point
from tests.harness.servers import InfluxServer

_dbs = itertools.count(1)


def _roundtrips_as_name(text: str) -> bool:
    if "\n" in text or "\r" in text or text.endswith("\\") or text.startswith("\t"):
        return False
    return not any(f"\\{c}" in text for c in ', ="')


_chars = st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t")
_hostile = st.sampled_from([" ", ",", "=", '"', "'", "\\", "\\x", "\t", "é", "温度", "💡", "#"])
names = (
    st.lists(_hostile | st.text(_chars, min_size=1, max_size=6), min_size=1, max_size=4)
    .map("".join)
    .filter(_roundtrips_as_name)
    .filter(lambda s: s != "time")
)
measurements = \
    names.filter(lambda s: not s.startswith("#") and "\\=" not in s)
string_values = st.text(st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters="\x00"), max_size=30)
field_values = st.one_of(
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    string_values,
)


@st.composite
def points(draw: st.DrawFn) -> Tuple[str, Dict[str, str], Dict[str, Any], int]:
    tags = draw(st.dictionaries(names, names, max_size=3))
    fields = draw(st.dictionaries(names.filter(lambda k: k not in tags), field_values,
                                  min_size=1, max_size=4))
    return draw(measurements), tags, fields, draw(st.integers(0, 2**62))


def write_and_read(influx: InfluxServer, line: str) -> List[Dict[str, Any]]:
    db = f"rt{next(_dbs)}"
    influx.create_database(db)
    try:
        response = influx.write(db, line)
        assert response.status_code == 204, (line, response.status_code, response.text)
        out = []
        for result in influx.query("SELECT * FROM /.*/ GROUP BY *", db)["results"]:
            for series in result.get("series", []):
                for values in series["values"]:
                    row = dict(zip(series["columns"], values))
                    out.append({"measurement": series["name"], "tags": series.get("tags") or {},
                                "time": row.pop("time"),
                                "fields": {k: v for k, v in row.items() if v is not None}})
        return out
    finally:
        influx.query(f'DROP DATABASE "{db}"')


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(points())
def test_hostile_points_round_trip(influx: InfluxServer, spec: Tuple[Any, ...]) -> None:
    measurement, tags, fields, stamp = spec
    point = Point(measurement)
    for k, v in tags.items():
        point.tag(k, v)
    for k, v in fields.items():
        point.field(k, v)
    line = point.time(stamp).to_line_protocol()

    rows = write_and_read(influx, line)

    assert len(rows) == 1, (line, rows)
    row = rows[0]
    assert row["measurement"] == measurement
    assert row["tags"] == {k: v for k, v in tags.items() if v != ""}
    assert row["time"] == stamp
    assert row["fields"].keys() == fields.keys()
    for key, value in fields.items():
        got = row["fields"][key]
        if isinstance(value, float):
            # /query's JSON may print a large float without exponent (an int to json).
            assert type(got) in (float, int) and float(got) == value, (key, value, got)
        else:
            assert got == value and type(got) is type(value), (key, value, got)


# --------------------------------------------------------------------------- limitations


@pytest.fixture
def db(influx: InfluxServer) -> str:
    name = f"lim{next(_dbs)}"
    influx.create_database(name)
    return name


def _tag_values(influx: InfluxServer, db: str) -> List[str]:
    rows = influx.rows(db, 'SELECT * FROM "m" GROUP BY *')
    return [row["t"] for row in rows]


def test_backslash_before_escapable_char_round_trips(influx: InfluxServer, db: str) -> None:
    line = Point("m").tag("t", "a\\,b").field("v", 1).time(1).to_line_protocol()
    assert line == "m,t=a\\\\,b v=1i 1"
    assert influx.write(db, line).status_code == 204
    assert _tag_values(influx, db) == ["a\\,b"]


def test_trailing_backslash_in_field_key_breaks_the_line(influx: InfluxServer,
                                                         db: str) -> None:
    line = Point("m").field("k\\", 1).time(1).to_line_protocol()
    assert line == "m k\\=1i 1"  # the backslash escapes the "="
    assert influx.write(db, line).status_code == 400


def test_backslash_before_space_in_field_key_breaks_the_line(influx: InfluxServer,
                                                             db: str) -> None:
    line = Point("m").field("\\ ", 1).time(1).to_line_protocol()
    assert line == "m \\\\ =1i 1"
    response = influx.write(db, line)
    assert response.status_code == 400
    assert "invalid field format" in response.text


def test_trailing_backslash_in_tag_value_comes_back_as_space(influx: InfluxServer,
                                                             db: str) -> None:
    line = Point("m").tag("t", "a\\").field("v", 1).time(1).to_line_protocol()
    assert line == "m,t=a\\  v=1i 1"  # padded, as the reference does
    assert influx.write(db, line).status_code == 204
    assert _tag_values(influx, db) == ["a "]


def test_trailing_backslash_in_measurement_is_rejected(influx: InfluxServer, db: str) -> None:
    line = Point("m\\").field("v", 1).time(1).to_line_protocol()
    response = influx.write(db, line)
    assert response.status_code == 400
    assert "unable to parse" in response.text


def test_backslash_before_equals_in_measurement_is_lost(influx: InfluxServer,
                                                        db: str) -> None:
    line = Point("a\\=b").field("v", 1).time(1).to_line_protocol()
    assert line == "a\\=b v=1i 1"
    assert influx.write(db, line).status_code == 204
    assert [r["_measurement"] for r in influx.rows(db, "SELECT * FROM /.*/")] == ["a=b"]


def test_measurement_starting_with_hash_is_a_comment(influx: InfluxServer, db: str) -> None:
    with pytest.warns(SyntaxWarning, match="interpret as a comment"):  # why the client warns
        line = Point("#m").field("v", 1).time(1).to_line_protocol()
    assert influx.write(db, line).status_code == 204  # accepted ...
    assert influx.query("SHOW MEASUREMENTS", db)["results"][0].get("series") is None  # not stored


def test_leading_tab_of_measurement_and_first_field_key_is_lost(influx: InfluxServer,
                                                               db: str) -> None:
    line = Point("\tm").field("\tx", 1).time(1).to_line_protocol()
    assert line == "\tm \tx=1i 1"
    assert influx.write(db, line).status_code == 204
    rows = influx.rows(db, "SELECT * FROM /.*/")
    assert [(r["_measurement"], r["x"]) for r in rows] == [("m", 1)]


def test_time_as_a_key_is_rejected(influx: InfluxServer, db: str) -> None:
    for point in (Point("m").field("time", 1), Point("m").tag("time", "a").field("v", 1)):
        response = influx.write(db, point.time(1).to_line_protocol())
        assert response.status_code == 400
        assert "invalid" in response.text


def test_tabs_and_newlines_that_do_round_trip(influx: InfluxServer, db: str) -> None:
    line = (Point("a\tb").tag("t", "x\ty").field("s", 'l1\nl2\r"q"\\').time(1)
            .to_line_protocol())
    assert influx.write(db, line).status_code == 204
    rows = influx.rows(db, 'SELECT * FROM /.*/ GROUP BY *')
    assert [(r["_measurement"], r["t"], r["s"]) for r in rows] == \
        [("a\tb", "x\ty", 'l1\nl2\r"q"\\')]
