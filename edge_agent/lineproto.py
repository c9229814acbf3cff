"""InfluxDB line protocol: escaping, field values, and a fast encoder.

(Timestamps and precisions are in :mod:`edge_agent.timestamps`.)

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

import threading
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from .timestamps import PRECISIONS, convert_time, normalize_precision, time_to_ns

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

_ESCAPE_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_ESCAPE_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_ESCAPE_STRING = str.maketrans({'"': '\\"', "\\": "\\\\"})

# A bound on each cache so a source with unbounded tag values (a bad MQTT
# topic template, say) cannot grow memory without limit.
_CACHE_MAX = 20_000


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
        raise ValueError(
            f"tag {key!r} value {text!r} contains a newline, which line protocol cannot carry"
        )
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


# --------------------------------------------------------------------------- compiled lines

# Field keys sorted as written, each with its escaped ``key=`` prefix.
_Layout = Tuple[Tuple[Any, str], ...]
# ``formatter(fields, series, stamp)``: the whole line, or ``None`` when a value
# is not of the type it was compiled for (or is NaN/Inf): then the general
# loop in ``LineEncoder`` writes the line.
_Formatter = Callable[[Mapping[Any, Any], str, Optional[int]], Optional[str]]

_COMPILED_TYPES = (float, int, str, bool)
_FORMATTER_MAX = 512
# (layout, value types) -> formatter; ``None`` means seen once, not compiled yet.
_FORMATTERS: Dict[Tuple[_Layout, Tuple[type, ...]], Optional[_Formatter]] = {}


def _compile_formatter(layout: _Layout, types: Tuple[type, ...]) -> _Formatter:
    """Generate one function for one field layout and its value types.

    Like ``collections.namedtuple``, the source is generated and ``exec``'d: the
    values are fetched by name, type-checked inline, and the line is one
    f-string with the escaped ``key=`` prefixes as literal text -- no loop, no
    list, no join. Next to the general loop this cuts what a line costs
    beyond ``repr`` of its floats by half; the reprs are the floor (the output
    must be byte-identical to the reference client's ``str(float)``). Only
    ``repr``-quoted keys and prefixes and generated names reach the source.
    """
    fetch = []
    checks = []
    parts = []
    for i, ((name, prefix), kind) in enumerate(zip(layout, types)):
        value = f"v{i}"
        fetch.append(f"    {value} = fields[{name!r}]")
        checks.append(f"type({value}) is {kind.__name__}")
        literal = prefix.replace("{", "{{").replace("}", "}}")
        if kind is float:
            checks.append(f"{value} - {value} == 0.0")  # not NaN or +-Inf
            parts.append(f"{literal}{{repr({value}).removesuffix(_DOT0)}}")
        elif kind is int:
            parts.append(f"{literal}{{{value}}}i")
        elif kind is str:
            parts.append(f'{literal}"{{{value}.translate(_ESCAPE_STRING)}}"')
        else:
            parts.append(f"{literal}{{_BOOL[{value}]}}")
    line = "{series} " + ",".join(parts)
    source = "\n".join((
        "def formatter(fields, series, stamp):",
        *fetch,
        f"    if not ({' and '.join(checks)}):",
        "        return None",
        "    if stamp is None:",
        f"        return f{line!r}",
        f"    return f{line + ' {stamp}'!r}",
    ))
    namespace: Dict[str, Any] = {
        "_DOT0": ".0", "_ESCAPE_STRING": _ESCAPE_STRING, "_BOOL": ("false", "true"),
    }
    exec(source, namespace)  # generated from repr-quoted literals only
    formatter: _Formatter = namespace["formatter"]
    return formatter


def _formatter(layout: _Layout, types: Tuple[type, ...]) -> Optional[_Formatter]:
    """The compiled formatter for this layout and these types, or ``None``.

    Compiling costs ~150 us, about fifty lines' worth, so a layout is compiled
    the second time it is seen: field sets seen once (a hypothesis test, a
    payload with changing keys) never pay for it. ``layout`` keys must be
    exact ``str`` (the encoder caches only such shapes).
    """
    key = (layout, types)
    if key in _FORMATTERS:
        found = _FORMATTERS[key]
        if found is None:
            found = _FORMATTERS[key] = _compile_formatter(layout, types)
        return found
    if all(kind in _COMPILED_TYPES for kind in types):
        if len(_FORMATTERS) >= _FORMATTER_MAX:
            _FORMATTERS.clear()
        _FORMATTERS[key] = None
    return None


# --------------------------------------------------------------------------- encoder

_SEP = object()


class LineEncoder:
    """Turns (measurement, tags, fields, time) into one line of line protocol.

    One encoder per writer: it holds the write precision, the default tags
    (a point's own tag wins over a default with the same key) and a cache
    that maps a point's *shape* -- measurement, tag items, field keys -- to
    its escaped series key, its sorted field layout and a formatter compiled
    for that layout and the value types last seen with it. A sensor repeats
    the same shape millions of times, so the steady state is one tuple, one
    dict lookup and one call of the compiled formatter.

    Anything the formatter was not compiled for (other value types, NaN/Inf,
    ``int_types``, a shape seen for the first time) takes the general loop in
    :meth:`_encode_fields`: type dispatch by identity, an ``isinstance`` chain
    only for subclasses, numpy scalars and Decimal.
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
        # shape key -> (series key, field layout, compiled formatter or None)
        self._shapes: Dict[Tuple[Any, ...], Tuple[str, _Layout, Optional[_Formatter]]] = {}

    # -- shape cache ------------------------------------------------------

    def _new_shape(self, key: Tuple[Any, ...], measurement: Any,
                   tags: Optional[Mapping[Any, Any]], fields: Mapping[Any, Any]
                   ) -> Tuple[str, _Layout, Optional[_Formatter]]:
        series, layout = self.series_key(measurement, tags), self.field_layout(fields)
        # Store only shapes made of exact ``str``: 1, 1.0 and True are equal
        # as dict keys but are written "1", "1.0" and "True", so they must
        # never share an entry. A lookup with a non-str part can then only
        # hit an entry it equals, and no built-in non-str value equals a str.
        if all(type(part) is str for part in fields) and (
            type(measurement) is str
            and (not tags or all(type(k) is str and type(v) is str for k, v in tags.items()))
        ):
            shape = (series, layout, _formatter(layout, tuple(type(fields[k]) for k, _ in layout)))
            if len(self._shapes) >= _CACHE_MAX:
                self._shapes.clear()  # bounded: a runaway tag value cannot eat memory
            self._shapes[key] = shape
            return shape
        return series, layout, None

    def series_key(self, measurement: Any, tags: Optional[Mapping[Any, Any]]) -> str:
        """Escaped ``measurement,tag=value,...``: default tags merged, sorted (not cached)."""
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

    @staticmethod
    def field_layout(fields: Mapping[Any, Any]) -> _Layout:
        """The field keys sorted as written, each with its escaped ``key=`` prefix."""
        return tuple((k, escape_key(k, "field key") + "=") for k in sorted(fields, key=str))

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
        written in the encoder's precision. ``int_types`` maps a field key to
        the suffix for int values: ``i`` (default), ``u`` or ``""`` (float).
        """
        if not fields:
            self.drops.add(points=1)
            return None
        # A private separator fixes where field keys end and tag items begin.
        key = (measurement, *fields, _SEP, *tags.items()) if tags else (measurement, *fields)
        hit: Optional[Tuple[Any, ...]] = key  # the key of a cached entry, else None
        try:
            series, layout, formatter = self._shapes[key]
        except KeyError:
            series, layout, formatter = self._new_shape(key, measurement, tags, fields)
            hit = None
        except TypeError:  # an unhashable tag value: build, do not cache
            series, layout, formatter = (
                self.series_key(measurement, tags), self.field_layout(fields), None)
            hit = None
        if time is not None and not (
            type(time) is int and (time_precision is None or time_precision == self.precision)
        ):
            time = convert_time(time, time_precision or self.precision, self.precision)
        if formatter is not None and int_types is None:
            line = formatter(fields, series, time)
            if line is not None:
                return line
        return self._encode_fields(hit, series, layout, fields, time, int_types)

    def _encode_fields(
        self,
        hit: Optional[Tuple[Any, ...]],
        series: str,
        layout: _Layout,
        fields: Mapping[Any, Any],
        stamp: Optional[int],
        int_types: Optional[Mapping[Any, str]],
    ) -> Optional[str]:
        """The general loop: any value type, NaN/Inf dropped and counted."""
        out = []
        dropped = 0
        for name, prefix in layout:
            value = fields[name]
            kind = type(value)
            if kind is float:
                if value - value != 0.0:  # NaN and +-Inf (inf - inf is NaN)
                    dropped += 1
                    continue
                out.append(prefix + repr(value).removesuffix(".0"))  # shortest round-trip
            elif kind is int:
                out.append(f"{prefix}{value}{int_types.get(name, 'i') if int_types else 'i'}")
            elif kind is str:
                out.append(f'{prefix}"{value.translate(_ESCAPE_STRING)}"')
            elif kind is bool:
                out.append(prefix + ("true" if value else "false"))
            elif value is not None:
                other = _format_other(value, int_types.get(name, "i") if int_types else "i")
                if other is None:
                    dropped += 1
                else:
                    out.append(prefix + other)
        if dropped:
            self.drops.add(fields=dropped)
        if not out:
            self.drops.add(points=1)
            return None
        if hit is not None and int_types is None and hit in self._shapes:
            # A cached shape whose values' types changed, or whose layout was
            # new when it was cached: compile for what is seen now, so a sensor
            # whose first reading was None or an int does not stay on this path.
            types = tuple(type(fields[name]) for name, _ in layout)
            self._shapes[hit] = (series, layout, _formatter(layout, types))
        if stamp is None:
            return f"{series} {','.join(out)}"
        return f"{series} {','.join(out)} {stamp}"

    def encode_many(self, rows: Iterable[Tuple[Any, Any, Any, Any]]) -> List[str]:
        """Encode ``(measurement, tags, fields, time)`` rows, skipping empty points."""
        encode = self.encode
        out = []
        for measurement, tags, fields, time in rows:
            line = encode(measurement, tags, fields, time)
            if line is not None:
                out.append(line)
        return out
