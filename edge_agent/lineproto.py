"""InfluxDB line protocol: escaping, field values, timestamps, and a fast encoder.

Everything after a source handles bytes of line protocol; this module is where
a reading becomes one. The encoder caches escaped series keys (measurement plus
sorted tags) and the sorted order of field keys, because a sensor repeats the
same series and the same field set millions of times.

Rules (InfluxDB's line protocol reference, see shared/reference/VECTORS.md):

* measurement: escape ``,`` and space;
* tag keys, tag values, field keys: escape ``,`` ``=`` and space;
* string field values: double-quoted, escape ``"`` and ``\\``;
* integers end in ``i``, unsigned in ``u``; floats in shortest round-trip form
  with a trailing ``.0`` removed; NaN and +-Inf cannot be written and are
  dropped (and counted);
* tags sorted by key, empty tag values omitted; a point with no field left
  gives no line at all;
* a newline (``\\n`` or ``\\r``) cannot be escaped in a name, so it is a
  ``ValueError`` that names the offending part.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

__all__ = [
    "PRECISIONS",
    "Drops",
    "LineEncoder",
    "convert_time",
    "escape_measurement",
    "escape_key",
    "escape_tag_value",
    "format_field_value",
    "normalize_precision",
    "time_to_ns",
]

# Nanoseconds per unit of each precision. Integer arithmetic only: the
# reference client's float division puts ~1.6% of us timestamps one unit low.
PRECISIONS: Dict[str, int] = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_PRECISION_ALIASES = {
    "n": "ns", "ns": "ns", "nanosecond": "ns", "nanoseconds": "ns",
    "u": "us", "us": "us", "µs": "us", "microsecond": "us", "microseconds": "us",
    "ms": "ms", "millisecond": "ms", "milliseconds": "ms",
    "s": "s", "second": "s", "seconds": "s",
}

_ESCAPE_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_ESCAPE_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_ESCAPE_STRING = str.maketrans({'"': '\\"', "\\": "\\\\"})

_EPOCH_AWARE = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)

# A bound on each cache so a source with unbounded tag values (a bad MQTT
# topic template, say) cannot grow memory without limit.
_CACHE_MAX = 20_000


def normalize_precision(precision: Any) -> str:
    """Return ``ns``, ``us``, ``ms`` or ``s`` for any accepted spelling."""
    value = getattr(precision, "value", precision)
    if isinstance(value, str):
        found = _PRECISION_ALIASES.get(value.lower())
        if found:
            return found
    raise ValueError(
        f"unknown precision {precision!r}: use one of ns, us, ms, s"
    )


def _check_name(value: str, part: str) -> None:
    if not value:
        raise ValueError(f"{part} must not be empty")
    if "\n" in value or "\r" in value:
        raise ValueError(f"{part} {value!r} contains a newline, which line protocol cannot carry")


def escape_measurement(name: Any) -> str:
    """Escape a measurement name; empty or newline-bearing names raise ValueError."""
    text = str(name)
    _check_name(text, "measurement")
    return text.translate(_ESCAPE_MEASUREMENT)


def escape_key(key: Any, part: str = "key") -> str:
    """Escape a tag key or field key; empty or newline-bearing keys raise ValueError."""
    text = str(key)
    _check_name(text, part)
    return text.translate(_ESCAPE_KEY)


def escape_tag_value(value: Any, key: Any = "") -> str:
    """Escape a tag value (the caller drops empty ones)."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"tag {key!r} value {text!r} contains a newline, which line protocol cannot carry")
    out = text.translate(_ESCAPE_KEY)
    # A trailing backslash would escape the separator that follows; the
    # reference client pads it with a space, and so do we (same bytes).
    if out.endswith("\\"):
        out += " "
    return out


def escape_string(value: str) -> str:
    return value.translate(_ESCAPE_STRING)


# --------------------------------------------------------------------------- fields

_NOT_FINITE = None  # marker returned for NaN / Inf


def _format_float(value: float) -> Optional[str]:
    if value - value != 0.0:  # NaN and +-Inf (inf - inf is NaN)
        return None
    text = repr(value)
    if text.endswith(".0"):
        return text[:-2]
    return text


def _format_other(value: Any, int_suffix: str) -> Optional[str]:
    """Slow path for subclasses, numpy scalars, Decimal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{int(value)}{int_suffix}"
    if isinstance(value, float):
        return _format_float(float(value))
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPE_STRING) + '"'
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return _format_float(float(value))
    dtype = getattr(value, "dtype", None)
    if dtype is not None:  # numpy / pandas scalar
        kind = getattr(dtype, "kind", "")
        if kind == "f":
            return _format_float(float(value))
        if kind in "iu":
            return f"{int(value)}{'u' if kind == 'u' and int_suffix == 'i' else int_suffix}"
        if kind == "b":
            return "true" if bool(value) else "false"
    raise TypeError(f"field value {value!r} of type {type(value).__name__} is not supported")


def format_field_value(value: Any, int_suffix: str = "i") -> Optional[str]:
    """Format one field value; ``None`` means "cannot be written" (NaN, Inf).

    ``int_suffix`` is ``i`` (int64), ``u`` (uint64) or ``""`` (write as float).
    """
    kind = type(value)
    if kind is float:
        return _format_float(value)
    if kind is int:
        return f"{value}{int_suffix}"
    if kind is str:
        return '"' + value.translate(_ESCAPE_STRING) + '"'
    if kind is bool:
        return "true" if value else "false"
    return _format_other(value, int_suffix)


# --------------------------------------------------------------------------- time

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _iso_to_ns(text: str) -> int:
    match = _ISO.match(text.strip())
    if not match:
        raise ValueError(f"time {text!r} is not an ISO-8601 timestamp")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                      int(second or 0))
    offset_s = 0
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset_s = sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60)
    delta = moment - _EPOCH_NAIVE
    seconds = delta.days * 86_400 + delta.seconds - offset_s
    frac_ns = int((frac or "").ljust(9, "0")) if frac else 0
    return seconds * 1_000_000_000 + frac_ns


def _delta_to_ns(delta: timedelta) -> int:
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1_000


def time_to_ns(value: Any, precision: str = "ns") -> int:
    """Convert a timestamp to integer nanoseconds since the epoch.

    ``value`` is an int (already in ``precision``), a ``datetime`` (naive is
    UTC; pandas' nanosecond part is kept), a ``timedelta`` since the epoch, or
    an ISO-8601 string with up to nine fractional digits.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value * PRECISIONS[precision]
    if isinstance(value, datetime):
        epoch = _EPOCH_NAIVE if value.tzinfo is None else _EPOCH_AWARE
        return _delta_to_ns(value - epoch) + int(getattr(value, "nanosecond", 0) or 0)
    if isinstance(value, str):
        return _iso_to_ns(value)
    if isinstance(value, timedelta):
        return _delta_to_ns(value)
    integer = getattr(value, "__index__", None)  # numpy integers
    if integer is not None:
        return int(integer()) * PRECISIONS[precision]
    raise TypeError(f"time {value!r} of type {type(value).__name__} is not supported: "
                    "use an int, datetime, timedelta or ISO-8601 string")


def convert_time(value: Any, source_precision: str, target_precision: str) -> int:
    """A timestamp in ``target_precision`` (floor division, exact)."""
    if type(value) is int:
        if source_precision == target_precision:
            return value
        return value * PRECISIONS[source_precision] // PRECISIONS[target_precision]
    return time_to_ns(value, source_precision) // PRECISIONS[target_precision]


# --------------------------------------------------------------------------- counters


class Drops:
    """Counts what could not become line protocol (never silently lost).

    ``fields``: NaN/Inf field values dropped; ``points``: points left with no
    field. Thread-safe; readers take deltas with :meth:`take`.
    """

    __slots__ = ("fields", "points", "_lock")

    def __init__(self) -> None:
        self.fields = 0
        self.points = 0
        self._lock = threading.Lock()

    def add(self, fields: int = 0, points: int = 0) -> None:
        with self._lock:
            self.fields += fields
            self.points += points

    def take(self) -> Tuple[int, int]:
        """Return and reset ``(fields, points)``."""
        with self._lock:
            out = (self.fields, self.points)
            self.fields = 0
            self.points = 0
            return out


DROPS = Drops()  # process-wide default, used when an encoder gets none


# --------------------------------------------------------------------------- encoder


@dataclass(frozen=True)
class _FieldLayout:
    """For one field-key set in insertion order: the sorted keys and their prefixes."""

    keys: Tuple[Any, ...]
    prefixes: Tuple[str, ...]


class LineEncoder:
    """Turns (measurement, tags, fields, time) into one line of line protocol.

    One encoder per writer: it holds the write precision, the default tags
    (a point's own tag wins over a default with the same key) and caches of
    escaped series keys and field layouts.
    """

    def __init__(
        self,
        precision: Any = "ns",
        default_tags: Optional[Mapping[str, Any]] = None,
        drops: Optional[Drops] = None,
    ) -> None:
        self.precision = normalize_precision(precision)
        self.default_tags: Dict[str, str] = {
            str(k): str(v) for k, v in (default_tags or {}).items() if v is not None and v != ""
        }
        self.drops = drops if drops is not None else DROPS
        self._series: Dict[Any, str] = {}
        self._layouts: Dict[Tuple[Any, ...], _FieldLayout] = {}
        self._lock = threading.Lock()

    # -- series key -------------------------------------------------------

    def series_key(self, measurement: Any, tags: Optional[Mapping[Any, Any]]) -> str:
        """Escaped ``measurement,tag=value,...`` with default tags merged, cached."""
        if tags:
            cache_key: Any = (measurement, *tags.items())
        else:
            cache_key = measurement
        try:
            return self._series[cache_key]
        except KeyError:
            pass
        except TypeError:  # an unhashable tag value: build without caching
            return self._build_series(measurement, tags)
        key = self._build_series(measurement, tags)
        if len(self._series) >= _CACHE_MAX:
            self._series.clear()
        self._series[cache_key] = key
        return key

    def _build_series(self, measurement: Any, tags: Optional[Mapping[Any, Any]]) -> str:
        merged: Dict[str, str] = dict(self.default_tags)
        if tags:
            for key, value in tags.items():
                if value is None:
                    continue
                text = str(value)
                if text == "":
                    continue
                merged[str(key)] = text
        parts = [escape_measurement(measurement)]
        for key in sorted(merged):
            parts.append(f"{escape_key(key, 'tag key')}={escape_tag_value(merged[key], key)}")
        return ",".join(parts)

    # -- fields -----------------------------------------------------------

    def _layout(self, keys: Tuple[Any, ...]) -> _FieldLayout:
        layout = self._layouts.get(keys)
        if layout is None:
            ordered = tuple(sorted(keys, key=str))
            layout = _FieldLayout(
                ordered, tuple(escape_key(k, "field key") + "=" for k in ordered)
            )
            if len(self._layouts) >= _CACHE_MAX:
                self._layouts.clear()
            self._layouts[keys] = layout
        return layout

    def fields_text(
        self,
        fields: Mapping[Any, Any],
        int_types: Optional[Mapping[Any, str]] = None,
    ) -> Optional[str]:
        """``k=v,k=v`` sorted by key; ``None`` when no field can be written."""
        layout = self._layout(tuple(fields))
        out: List[str] = []
        dropped = 0
        fmt: Callable[[Any, str], Optional[str]] = format_field_value
        for key, prefix in zip(layout.keys, layout.prefixes):
            value = fields[key]
            if value is None:
                continue
            kind = type(value)
            if kind is float and not int_types:
                if value - value != 0.0:
                    dropped += 1
                    continue
                text = repr(value)
                if text[-2:] == ".0":
                    text = text[:-2]
                out.append(prefix + text)
                continue
            suffix = int_types.get(key, "i") if int_types else "i"
            text2 = fmt(value, suffix)
            if text2 is None:
                dropped += 1
                continue
            out.append(prefix + text2)
        if dropped:
            self.drops.add(fields=dropped)
        if not out:
            self.drops.add(points=1)
            return None
        return ",".join(out)

    # -- whole line -------------------------------------------------------

    def encode(
        self,
        measurement: Any,
        tags: Optional[Mapping[Any, Any]],
        fields: Mapping[Any, Any],
        time: Any = None,
        time_precision: Optional[str] = None,
        int_types: Optional[Mapping[Any, str]] = None,
    ) -> Optional[str]:
        """One line (no newline), or ``None`` when the point has no writable field.

        ``time`` is taken in ``time_precision`` (default: the encoder's) and
        written in the encoder's precision.
        """
        field_text = self.fields_text(fields, int_types) if fields else None
        if field_text is None:
            if not fields:
                self.drops.add(points=1)
            return None
        series = self.series_key(measurement, tags)
        if time is None:
            return f"{series} {field_text}"
        if type(time) is int and (time_precision is None or time_precision == self.precision):
            return f"{series} {field_text} {time}"
        stamp = convert_time(time, time_precision or self.precision, self.precision)
        return f"{series} {field_text} {stamp}"

    def encode_many(self, rows: Iterable[Tuple[Any, Any, Any, Any]]) -> List[str]:
        """Encode ``(measurement, tags, fields, time)`` rows, skipping empty points."""
        out = []
        for measurement, tags, fields, time in rows:
            line = self.encode(measurement, tags, fields, time)
            if line is not None:
                out.append(line)
        return out
