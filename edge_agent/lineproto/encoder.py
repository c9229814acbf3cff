"""The line protocol encoder: a reading becomes a line here.

(Escaping and field values are in :mod:`.escape`, compiled formatters in
:mod:`.formatters`, timestamps and precisions in :mod:`.timestamps`.)

Everything after a source handles bytes of line protocol; this module is where
a reading becomes one. The encoder caches escaped series keys (measurement plus
sorted tags) and the sorted order of field keys, because a sensor repeats the
same series and the same field set millions of times.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .escape import _ESCAPE_STRING, _format_other, escape_key, escape_measurement, escape_tag_value
from .formatters import _Formatter, _formatter, _Layout
from .timestamps import convert_time, normalize_precision

__all__ = ["DROPS", "Drops", "LineEncoder"]

# A bound on each cache so a source with unbounded tag values (a bad MQTT
# topic template, say) cannot grow memory without limit.
_CACHE_MAX = 20_000


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
                other = _format_other(value, int_types.get(name, "i") if int_types else "i",
                                      name)
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
