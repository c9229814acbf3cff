"""pandas DataFrame -> line protocol, column by column (no Python loop per cell).

Imported only when a DataFrame is written, so ``import edge_agent`` stays light.
Each field column becomes an array of ``key=value`` strings (empty where the
cell is NaN/None/Inf); tag columns likewise; the arrays are then joined row-wise
with numpy's element-wise string operations.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence

from ..lineproto.encoder import LineEncoder
from ..lineproto.escape import escape_key, escape_measurement, escape_tag_value
from ..lineproto.timestamps import PRECISIONS

__all__ = ["dataframe_lines"]


def _join(acc: Any, part: Any, sep: str) -> Any:
    import numpy as np

    both = (acc != "") & (part != "")
    return acc + np.where(both, sep, "") + part


def _escape(series: Any, table: Sequence[tuple]) -> Any:
    out = series
    for old, new in table:
        out = out.str.replace(old, new, regex=False)
    return out


_TAG_ESCAPES = ((",", "\\,"), ("=", "\\="), (" ", "\\ "))
_STR_ESCAPES = (("\\", "\\\\"), ('"', '\\"'))


def _field_column(name: str, column: Any) -> Any:
    """An object array of ``key=value`` or ``""`` for one field column."""
    import numpy as np
    import pandas as pd

    prefix = escape_key(name, "field key") + "="
    kind = column.dtype.kind
    if kind == "f":
        values = column.to_numpy(dtype="float64")
        ok = np.isfinite(values)
        text = pd.Series(values.astype(str), index=column.index)  # shortest round-trip
        text = text.str.replace(r"\.0$", "", regex=True).to_numpy(dtype=object)
        return np.where(ok, prefix + text, "").astype(object)
    if kind in "iu":
        suffix = "u" if kind == "u" else "i"
        return (prefix + column.astype(str) + suffix).to_numpy(dtype=object)
    if kind == "b":
        return np.where(column.to_numpy(), prefix + "true", prefix + "false").astype(object)
    # object / string columns: strings quoted, numbers and bools typed per cell
    present = column.notna() & ~column.isin([float("inf"), float("-inf")])
    is_str = column.map(lambda v: isinstance(v, str))
    is_bool = column.map(lambda v: isinstance(v, (bool, np.bool_)))
    is_int = column.map(lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool))
    quoted = '"' + _escape(column.where(is_str, "").astype(str), _STR_ESCAPES) + '"'
    numbers = column.where(~is_str & ~is_bool & present, 0).astype(str)
    numbers = numbers.where(is_int, numbers.str.replace(r"\.0$", "", regex=True))
    numbers = numbers + pd.Series(np.where(is_int, "i", ""), index=column.index)
    bools = column.where(is_bool, False).astype(bool).map({True: "true", False: "false"})
    value = quoted.where(is_str, bools.where(is_bool, numbers))
    return np.where(present, prefix + value.astype(str), "").astype(object)


def _timestamps(df: Any, column: Optional[str], timezone: Optional[str],
                encoder: LineEncoder) -> Any:
    """Integer timestamps in the encoder's precision, or ``None`` for no time."""
    import pandas as pd

    source = df.index if column is None else df[column]
    if column is None and not isinstance(source, pd.DatetimeIndex):
        if source.dtype.kind in "iu" and not isinstance(source, pd.RangeIndex):
            return source.to_numpy().astype(str).astype(object)
        if isinstance(source, pd.RangeIndex):
            return None
    values = pd.to_datetime(source)
    stamps = pd.DatetimeIndex(values)
    if stamps.tz is None:
        stamps = stamps.tz_localize(timezone or "UTC")
    nanos = stamps.tz_convert("UTC").tz_localize(None).as_unit("ns").asi8 \
        if hasattr(stamps, "as_unit") else stamps.tz_convert("UTC").tz_localize(None).asi8
    unit = PRECISIONS[encoder.precision]
    return (nanos // unit).astype(str).astype(object)


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
        raise ValueError("writing a DataFrame needs data_frame_measurement_name")
    if len(df) == 0:
        return
    tag_columns: List[str] = [str(c) for c in (data_frame_tag_columns or [])]
    skip = set(tag_columns)
    if data_frame_timestamp_column is not None:
        skip.add(data_frame_timestamp_column)
    field_columns = sorted((c for c in df.columns if c not in skip), key=str)

    n = len(df)
    fields = np.full(n, "", dtype=object)
    for name in field_columns:
        fields = _join(fields, _field_column(str(name), df[name]), ",")

    # Tags: defaults merged with the tag columns (a column wins), sorted by key.
    series = np.full(n, escape_measurement(data_frame_measurement_name), dtype=object)
    tag_keys = sorted(set(encoder.default_tags) | set(tag_columns))
    for key in tag_keys:
        if key in tag_columns:
            col = df[key]
            text = _escape(col.astype(str), _TAG_ESCAPES)
            text = text.where(col.notna() & (col.astype(str) != ""), "")
            part = np.where(text != "", escape_key(key, "tag key") + "=" + text, "")
            series = _join(series, part.astype(object), ",")
        else:
            value = escape_tag_value(encoder.default_tags[key], key)
            series = series + ("," + escape_key(key, "tag key") + "=" + value)

    stamps = _timestamps(df, data_frame_timestamp_column, data_frame_timestamp_timezone, encoder)
    lines = series + " " + fields
    if stamps is not None:
        lines = lines + " " + stamps
    has_field = fields != ""
    dropped = int(n - has_field.sum())
    if dropped:
        encoder.drops.add(points=dropped)
    yield from pd.Series(lines[has_field]).tolist()
