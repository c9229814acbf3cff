"""DataFrames: our serializer against influxdb-client 1.50's, over every pandas dtype family.

Same frame in, same lines out, wherever the reference is right. The places we
differ on purpose have their own named tests (each also pins down what the
reference does, so an upgrade that changes it is noticed).
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.dataframe_serializer import DataframeSerializer
from influxdb_client.client.write_api import PointSettings

from edge_agent.client.dataframe import DataFrameColumnError
from edge_agent.client.records import Serializer
from edge_agent.lineproto.encoder import Drops

SECONDS = pd.date_range("2024-05-17 12:34:56", periods=3, freq="s")


def ref_lines(df: pd.DataFrame, precision: str = "ns", tags: Dict[str, str] = None,
              **kwargs: Any) -> List[str]:
    kwargs.setdefault("data_frame_measurement_name", "m")
    return DataframeSerializer(df, PointSettings(**(tags or {})), precision, **kwargs).serialize()


def our_lines(df: pd.DataFrame, precision: str = "ns", tags: Dict[str, str] = None,
              **kwargs: Any) -> List[str]:
    kwargs.setdefault("data_frame_measurement_name", "m")
    return Serializer(precision, default_tags=tags).to_list(df, **kwargs)


# One column per dtype, three rows; None marks a missing cell where the dtype has one.
COLUMNS: Dict[str, Any] = {
    "int8": np.array([1, -2, 3], dtype="int8"),
    "int64": np.array([2**62, -5, 0], dtype="int64"),
    "uint8": np.array([0, 7, 255], dtype="uint8"),
    "uint32": np.array([1, 2, 4_000_000_000], dtype="uint32"),
    "uint64": np.array([1, 2, 2**63 - 1], dtype="uint64"),
    "float16": np.array([2.123, 0.5, 1.0], dtype="float16"),
    "float32": np.array([1.1, 2.0, -0.25], dtype="float32"),
    "float64": np.array([0.1, 2.0, 1e300]),
    "float64_nan": np.array([np.nan, 2.5, 3.0]),
    "bool": np.array([True, False, True]),
    "Int64": pd.array([1, None, 3], dtype="Int64"),
    "UInt16": pd.array([None, 65535, 3], dtype="UInt16"),
    "Float64": pd.array([1.5, None, 2.0], dtype="Float64"),
    "Float32": pd.array([1.1, None, 2.0], dtype="Float32"),
    "boolean": pd.array([True, None, False], dtype="boolean"),
    "string": pd.array(["a", None, 'q"\\ b'], dtype="string"),
    "object_str": pd.array(["x", "y z", None], dtype=object),
    "object_mixed": pd.array([1, "a", 2.5], dtype=object),
    "category": pd.Categorical(["red", "green", None]),
    "category_int": pd.Categorical([1, 2, 1]),
    "datetime": pd.to_datetime(["2024-01-01 00:00:00", "2024-01-02 03:04:05", None]),
    "datetime_tz": pd.to_datetime(["2024-01-01", "2024-06-01", "2024-12-31"])
    .tz_localize("Europe/Berlin"),
    "period": pd.period_range("2024-01", periods=3, freq="M"),
}


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_every_dtype_as_a_field_matches_reference(name: str) -> None:
    df = pd.DataFrame({name: COLUMNS[name], "v": [1, 2, 3]}, index=SECONDS)
    assert our_lines(df) == ref_lines(df)


def test_all_dtypes_together_match_reference() -> None:
    df = pd.DataFrame(COLUMNS, index=SECONDS)
    assert our_lines(df) == ref_lines(df)
    assert our_lines(df, "s") == ref_lines(df, "s")


def test_nullable_cells_are_left_out_and_booleans_written_as_the_reference() -> None:
    df = pd.DataFrame({"i": pd.array([1, None], dtype="Int64"),
                       "b": pd.array([None, False], dtype="boolean"),
                       "s": pd.array([pd.NA, "x"], dtype="string")}, index=SECONDS[:2])
    expected = ["m i=1i 1715949296000000000", 'm b=False,s="x" 1715949297000000000']
    assert ref_lines(df) == expected
    assert our_lines(df) == expected


@pytest.mark.parametrize("index", [
    pd.period_range("2024-01", periods=3, freq="M"),
    pd.period_range("2024-05-17 12:00", periods=3, freq="h"),
    SECONDS,
    SECONDS.tz_localize("America/New_York"),
    pd.RangeIndex(3),
    pd.Index([1715949296, 1715949297, 1715949298]),
], ids=["period-month", "period-hour", "datetime", "datetime-tz", "range", "int"])
@pytest.mark.parametrize("precision", ["ns", "us", "ms", "s"])
def test_index_kinds_and_precisions_match_reference(index: Any, precision: str) -> None:
    df = pd.DataFrame({"v": [1.5, 2.0, 3.25]}, index=index)
    assert our_lines(df, precision) == ref_lines(df, precision)


@pytest.mark.parametrize("when", [
    pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:02"]),
    pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:02"])
    .tz_localize("Asia/Tokyo"),
    ["2018-10-26", "2018-10-26 12:00", "2018-10-26 12:00:00-05:00"],
], ids=["naive", "zoned", "strings"])
def test_timestamp_column_matches_reference(when: Any) -> None:
    df = pd.DataFrame({"when": when, "host": ["a", "b", "c"], "v": [1, 2, 3]})
    kwargs = {"data_frame_timestamp_column": "when", "data_frame_tag_columns": ["host"]}
    if isinstance(when, list):
        df["when"] = pd.to_datetime(df["when"], utc=True, format="mixed")
    assert our_lines(df, **kwargs) == ref_lines(df, **kwargs)


def test_naive_timestamp_column_in_a_named_timezone_matches_reference() -> None:
    df = pd.DataFrame({"when": pd.to_datetime(["2024-03-30 12:00", "2024-03-31 12:00"]),
                       "v": [1, 2]})
    kwargs = {"data_frame_timestamp_column": "when",
              "data_frame_timestamp_timezone": "Europe/Berlin"}
    assert our_lines(df, "s", **kwargs) == ref_lines(df, "s", **kwargs) == \
        ["m v=1i 1711796400", "m v=2i 1711879200"]  # UTC+1, then UTC+2 after the switch


@pytest.mark.parametrize("dtype", ["object", "string", "category"])
def test_tag_columns_of_each_kind_match_reference(dtype: str) -> None:
    df = pd.DataFrame({"room": pd.array(["a b", "c,d", "e=f"], dtype=dtype),
                       "v": [1.0, 2.0, 3.0]}, index=SECONDS)
    kwargs = {"data_frame_tag_columns": ["room"]}
    assert our_lines(df, **kwargs) == ref_lines(df, **kwargs)
    assert our_lines(df, tags={"site": "gh"}, **kwargs) == \
        ref_lines(df, tags={"site": "gh"}, **kwargs)


def test_nullable_string_tag_column_with_a_missing_cell() -> None:
    """The reference fails on this ("boolean value of NA is ambiguous")."""
    kwargs = {"data_frame_tag_columns": ["room"]}
    df = pd.DataFrame({"room": pd.array(["a b", None], dtype="string"), "v": [1.0, 2.0]},
                      index=SECONDS[:2])
    with pytest.raises(TypeError, match="NA"):
        ref_lines(df, **kwargs)
    assert our_lines(df, **kwargs) == ["m,room=a\\ b v=1.0 1715949296000000000",
                                       "m v=2.0 1715949297000000000"]


def test_numeric_tag_column_and_default_tag_named_like_a_field() -> None:
    df = pd.DataFrame({"id": [1, 2, 3], "site": [7, 8, 9], "v": [1.0, 2.0, 3.0]}, index=SECONDS)
    kwargs = {"data_frame_tag_columns": ["id"]}
    # A column named like the default tag (here a field) wins: no site= tag.
    assert our_lines(df, tags={"site": "gh", "z": "1"}, **kwargs) == \
        ref_lines(df, tags={"site": "gh", "z": "1"}, **kwargs)


@settings(max_examples=60, deadline=None)
# pandas 2.x factorizes strings as C strings: "" and "\x00" were one value (found here
# under Python 3.9 with pandas 2.3.3)
@example(rows=[(0.0, 0, False, ""), (0.0, 0, False, "\x00"), (1.0, 1, True, "a\x00b"),
               (1.0, 1, True, "a")])
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=False),
                          st.integers(-(2**63), 2**63 - 1), st.booleans(),
                          st.text(max_size=8)), min_size=1, max_size=12))
def test_generated_frames_match_reference(rows: List[Any]) -> None:
    df = pd.DataFrame(rows, columns=["f", "i", "b", "s"],
                      index=pd.date_range("2024-01-01", periods=len(rows), freq="ms"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert our_lines(df) == ref_lines(df)


# --------------------------------------------------------------------------- errors


def test_missing_tag_column_is_a_clear_error() -> None:
    df = pd.DataFrame({"v": [1.0]}, index=SECONDS[:1])
    # The reference ignores the name: a typo silently turns tags into nothing.
    assert ref_lines(df, data_frame_tag_columns=["romo"]) == ["m v=1.0 1715949296000000000"]
    with pytest.raises(TypeError, match="data_frame_tag_columns names 'romo', which is not "
                       "a column of the DataFrame .its columns: 'v'."):
        our_lines(df, data_frame_tag_columns=["romo"])
    with pytest.raises(KeyError):  # what pandas raises for a missing column, too
        our_lines(df, data_frame_tag_columns=["romo"])


def test_missing_timestamp_column_and_measurement_name() -> None:
    df = pd.DataFrame({"v": [1.0]})
    with pytest.raises(KeyError):
        ref_lines(df, data_frame_timestamp_column="when")
    with pytest.raises(DataFrameColumnError, match="data_frame_timestamp_column names 'when'"):
        our_lines(df, data_frame_timestamp_column="when")
    with pytest.raises(TypeError, match="data_frame_measurement_name"):
        DataframeSerializer(df, PointSettings())
    with pytest.raises(TypeError, match="data_frame_measurement_name"):
        Serializer().to_list(df)


def test_not_a_time_in_the_index_is_a_clear_error() -> None:
    df = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.to_datetime(["2024-01-01", None]))
    with pytest.raises(ValueError, match="row 1: the index has no time"):
        our_lines(df)


# --------------------------------------------------------------------------- deliberate differences


def test_infinity_is_dropped_and_counted_not_written() -> None:
    df = pd.DataFrame({"v": [1.5, np.inf], "w": [1.0, -np.inf]}, index=SECONDS[:2])
    assert ref_lines(df) == ["m v=1.5,w=1.0 1715949296000000000",
                             "m v=inf,w=-inf 1715949297000000000"]  # InfluxDB rejects it
    drops = Drops()
    lines = Serializer("ns", drops=drops).to_list(df, data_frame_measurement_name="m")
    assert lines == ["m v=1.5,w=1.0 1715949296000000000"]
    assert drops.take() == (2, 1)


def test_tag_values_are_escaped_as_tags_even_beside_missing_cells() -> None:
    """With a missing cell in the column the reference escapes tag values as
    strings: ``a b`` is written raw, and the line no longer parses."""
    df = pd.DataFrame({"room": ["a b", None], "v": [1.0, 2.0]}, index=SECONDS[:2])
    kwargs = {"data_frame_tag_columns": ["room"]}
    assert ref_lines(df, **kwargs)[0] == "m,room=a b v=1.0 1715949296000000000"
    assert our_lines(df, **kwargs) == ["m,room=a\\ b v=1.0 1715949296000000000",
                                       "m v=2.0 1715949297000000000"]


def test_missing_tag_cell_takes_the_default_tag() -> None:
    df = pd.DataFrame({"site": ["attic", None], "v": [1.0, 2.0]}, index=SECONDS[:2])
    kwargs = {"data_frame_tag_columns": ["site"]}
    assert ref_lines(df, tags={"site": "gh"}, **kwargs)[1] == "m v=2.0 1715949297000000000"
    assert our_lines(df, tags={"site": "gh"}, **kwargs) == [
        "m,site=attic v=1.0 1715949296000000000", "m,site=gh v=2.0 1715949297000000000"]


def test_timestamp_column_name_is_matched_exactly() -> None:
    """The reference tests ``column in timestamp_column`` (a substring test):
    a field named ``dt`` vanishes when the time column is ``dtz``."""
    df = pd.DataFrame({"dtz": pd.to_datetime(["2024-01-01"]), "dt": [5], "v": [1]})
    kwargs = {"data_frame_timestamp_column": "dtz"}
    assert ref_lines(df, "s", **kwargs) == ["m v=1i 1704067200"]
    assert our_lines(df, "s", **kwargs) == ["m dt=5i,v=1i 1704067200"]


def test_timedelta_is_quoted_not_a_broken_integer() -> None:
    df = pd.DataFrame({"d": pd.to_timedelta([1], unit="s"), "v": [1]}, index=SECONDS[:1])
    assert ref_lines(df) == ["m d=0 days 00:00:01i,v=1i 1715949296000000000"]  # unparseable
    assert our_lines(df) == ['m d="0 days 00:00:01",v=1i 1715949296000000000']


def test_timestamps_are_exact_integers() -> None:
    index = pd.DatetimeIndex([pd.Timestamp("2024-05-17 12:34:56.000336")])
    df = pd.DataFrame({"v": [1]}, index=index)
    assert ref_lines(df, "us") == ["m v=1i 1715949296000335"]  # float division, one low
    assert our_lines(df, "us") == ["m v=1i 1715949296000336"]


def test_trailing_backslash_in_a_tag_is_padded_as_in_points() -> None:
    df = pd.DataFrame({"t": ["a\\"], "v": [1]}, index=SECONDS[:1])
    kwargs = {"data_frame_tag_columns": ["t"]}
    assert ref_lines(df, **kwargs) == ["m,t=a\\ v=1i 1715949296000000000"]  # escapes the space
    assert our_lines(df, **kwargs) == ["m,t=a\\  v=1i 1715949296000000000"]


def test_newline_in_a_tag_value_raises() -> None:
    df = pd.DataFrame({"t": ["a\nb"], "v": [1]}, index=SECONDS[:1])
    with pytest.raises(ValueError, match="newline"):
        our_lines(df, data_frame_tag_columns=["t"])
