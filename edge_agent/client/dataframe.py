"""pandas DataFrame -> line protocol, column by column (no Python loop per cell).

Imported only when a DataFrame is written, so ``import edge_agent`` stays light.
Each field column becomes an array of ``key=value`` strings (empty where the
cell is missing); tag columns likewise, escaping each distinct value once; the
arrays are then joined row-wise with numpy's element-wise string operations.

What a cell becomes is what influxdb-client 1.50 writes for it, so a field
keeps the type the reference gave it (a type conflict would reject the write):
integer dtypes (numpy, nullable ``Int64``/``UInt8``... and unsigned) ``5i``;
float dtypes the Python float's digits (``2.0``, float32 widened as the
reference does); bool dtypes ``True``/``False``; every other dtype (object,
string, categorical, datetime, timedelta, period) a quoted ``str(cell)``.
Missing cells (NaN, None, ``pd.NA``, NaT) are left out. Deliberate
differences (README, "Differences from influxdb-client"): ±Inf is dropped and
counted instead of written, timestamps use integer arithmetic, a tag value is
always escaped as a tag, a missing tag cell takes the default tag, and a
timedelta is quoted instead of written as a broken ``... daysi``.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence

from ..lineproto.encoder import LineEncoder
from ..lineproto.escape import escape_key, escape_measurement, escape_string, escape_tag_value
from ..lineproto.timestamps import PRECISIONS
from .point import warn_comment_measurement

__all__ = ["DataFrameColumnError", "dataframe_lines"]


class DataFrameColumnError(KeyError, TypeError):
    """A column named in the write's arguments is not in the DataFrame.

    A ``TypeError`` as the reference's DataFrame argument errors are, and a
    ``KeyError`` as a missing column is in pandas.
    """

    def __str__(self) -> str:
        return str(self.args[0])


def _join(acc: Any, part: Any, sep: str) -> Any:
    import numpy as np

    both = (acc != "") & (part != "")
    return acc + np.where(both, sep, "") + part


def _kind(dtype: Any) -> str:
    """``int``, ``float``, ``bool`` or ``str``: how the reference writes a column."""
    import numpy as np

    scalar = getattr(dtype, "type", None)
    if not isinstance(scalar, type) or issubclass(scalar, np.timedelta64):
        return "str"
    if issubclass(scalar, np.integer):
        return "int"
    if issubclass(scalar, np.floating):
        return "float"
    if issubclass(scalar, np.bool_):
        return "bool"
    return "str"


def _by_value(column: Any, missing: Any, render: Any) -> Any:
    """``render(cell)`` for each cell, computed once per distinct value; ``""`` where missing."""
    import numpy as np
    import pandas as pd

    if column.dtype.kind not in "OUS" and str(column.dtype) != "string":
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        table = np.array([render(v) for v in uniques] + [""], dtype=object)
        codes = np.where(missing, len(table) - 1, codes)
        return table[codes]
    # Strings: pandas 2.x hashes them as C strings, so "" and "\x00" (any two that
    # differ after a NUL) would share one rendering; keyed by (type, value) here,
    # which also keeps 1, 1.0 and True apart in an object column.
    cache: Dict[Any, str] = {}
    out = []
    for cell, gone in zip(column.tolist(), missing):
        if gone:
            out.append("")
            continue
        try:
            key = (type(cell), cell)
            text = cache.get(key)
            if text is None:
                text = cache[key] = render(cell)
        except TypeError:  # unhashable cells (lists...): one by one
            text = render(cell)
        out.append(text)
    return np.array(out, dtype=object)


def _field_column(name: str, column: Any, encoder: LineEncoder) -> Any:
    """An object array of ``key=value`` or ``""`` for one field column."""
    import numpy as np

    prefix = escape_key(name, "field key") + "="
    missing = column.isna().to_numpy(dtype=bool)
    dtype = column.dtype
    kind = _kind(dtype)
    if kind == "int":
        values = column.to_numpy(dtype="u8" if dtype.kind == "u" else "i8", na_value=0)
        text = prefix + values.astype(str).astype(object) + "i"
    elif kind == "float":
        # The reference writes the cells as Python floats: float32 with float64 digits.
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        infinite = np.isinf(values)
        if infinite.any():  # ±Inf cannot be written: dropped and counted
            encoder.drops.add(fields=int(infinite.sum()))
            missing = missing | infinite
        text = prefix + values.astype(str).astype(object)
    elif kind == "bool":
        values = column.to_numpy(dtype=bool, na_value=False)
        text = np.where(values, prefix + "True", prefix + "False").astype(object)
    else:
        return _by_value(column, missing, lambda v: f'{prefix}"{escape_string(str(v))}"')
    return np.where(missing, "", text).astype(object)


def _tag_column(key: str, column: Any, default: Optional[str]) -> Any:
    """An object array of ``,key=value`` (or ``""``) for one tag column."""
    import numpy as np

    prefix = "," + escape_key(key, "tag key") + "="

    def render(value: Any) -> str:
        text = str(value)
        return prefix + escape_tag_value(text, key) if text else ""  # empty: no tag

    out = _by_value(column, column.isna().to_numpy(dtype=bool), render)
    if default is not None:  # the column wins; where it has no value, the default
        out = np.where(out == "", prefix + escape_tag_value(default, key), out).astype(object)
    return out


def _timestamps(df: Any, column: Optional[str], timezone: Optional[str],
                encoder: LineEncoder) -> Any:
    """Integer timestamps in the encoder's precision, as an object array of str.

    The index (or ``column``): integers are taken as already in the write
    precision (as the reference's ``to_datetime(unit=precision)`` reads them),
    a PeriodIndex at the start of each period, anything else through
    ``pd.to_datetime``; naive times are in ``timezone`` (default UTC).
    """
    import numpy as np
    import pandas as pd

    source = df.index if column is None else df[column]
    precision = encoder.precision
    dtype = source.dtype
    if isinstance(dtype, pd.PeriodDtype):
        stamps = (source.to_timestamp() if isinstance(source, pd.Index)
                  else source.dt.to_timestamp())
    elif dtype.kind in "iu":
        return np.asarray(source).astype(str).astype(object)
    elif dtype.kind == "f":
        stamps = pd.to_datetime(source, unit=precision)
    else:
        stamps = pd.to_datetime(source)
    index = pd.DatetimeIndex(stamps)
    if index.hasnans:
        row = int(np.flatnonzero(index.isna())[0])
        where = f"column {column!r}" if column is not None else "the index"
        raise ValueError(f"DataFrame row {row}: {where} has no time (NaT)")
    if index.tz is None:
        index = index.tz_localize(timezone or "UTC")
    index = index.tz_convert("UTC").tz_localize(None)
    if hasattr(index, "as_unit"):  # pandas >= 2 keeps s/ms/us resolutions
        index = index.as_unit("ns")
    return (index.asi8 // PRECISIONS[precision]).astype(str).astype(object)


def _check_columns(df: Any, tag_columns: Sequence[Any], timestamp_column: Optional[Any]) -> None:
    columns = set(df.columns)
    for name, role in [(c, "data_frame_tag_columns") for c in tag_columns] + (
            [(timestamp_column, "data_frame_timestamp_column")]
            if timestamp_column is not None else []):
        if name not in columns:
            shown = ", ".join(repr(c) for c in list(df.columns)[:20])
            raise DataFrameColumnError(
                f"{role} names {name!r}, which is not a column of the DataFrame "
                f"(its columns: {shown or 'none'})")


def dataframe_lines(
    df: Any,
    encoder: LineEncoder,
    data_frame_measurement_name: Optional[str] = None,
    data_frame_tag_columns: Optional[Sequence[str]] = None,
    data_frame_timestamp_column: Optional[str] = None,
    data_frame_timestamp_timezone: Optional[str] = None,
    **_: Any,
) -> Iterator[str]:
    """Yield one line per row that has at least one writable field."""
    import numpy as np
    import pandas as pd

    if data_frame_measurement_name is None:
        raise TypeError("writing a DataFrame needs data_frame_measurement_name="
                        "'the measurement'")
    tag_columns: List[Any] = list(data_frame_tag_columns or [])
    _check_columns(df, tag_columns, data_frame_timestamp_column)
    measurement = escape_measurement(data_frame_measurement_name)
    warn_comment_measurement(measurement)
    if len(df) == 0:
        return
    n = len(df)
    skip = set(tag_columns)
    if data_frame_timestamp_column is not None:
        skip.add(data_frame_timestamp_column)

    fields = np.full(n, "", dtype=object)
    for name in sorted((c for c in df.columns if c not in skip), key=str):
        fields = _join(fields, _field_column(str(name), df[name], encoder), ",")

    # Tags sorted by key: the tag columns, and the default tags no column is named
    # after (as the reference: a column of that name, tag or field, wins).
    by_key: Dict[str, Any] = {str(c): c for c in tag_columns}
    names = {str(c) for c in df.columns}
    defaults = {k: v for k, v in encoder.default_tags.items() if k not in names or k in by_key}
    series = np.full(n, measurement, dtype=object)
    for key in sorted(set(by_key) | set(defaults)):
        if key in by_key:
            series = series + _tag_column(key, df[by_key[key]], defaults.get(key))
        else:
            series = series + ("," + escape_key(key, "tag key") + "="
                               + escape_tag_value(defaults[key], key))

    stamps = _timestamps(df, data_frame_timestamp_column, data_frame_timestamp_timezone, encoder)
    lines = series + " " + fields + " " + stamps
    has_field = fields != ""
    dropped = int(n - has_field.sum())
    if dropped:
        encoder.drops.add(points=dropped)
    yield from pd.Series(lines[has_field]).tolist()
