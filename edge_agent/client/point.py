"""``Point``: the seed's builder for one record, and ``WritePrecision``.

    Point("cpu").tag("core", "0").field("temp", 25.3).time(1657729063, WritePrecision.S)

A point keeps what it is given; it becomes line protocol in
:meth:`Point.to_line_protocol` (through :class:`~edge_agent.lineproto.LineEncoder`).
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Mapping, Optional, Tuple

from ..lineproto.encoder import LineEncoder
from ..lineproto.timestamps import normalize_precision

__all__ = ["ClientEncoder", "Point", "WritePrecision", "DEFAULT_WRITE_PRECISION",
           "warn_comment_measurement"]


def warn_comment_measurement(measurement: Any) -> None:
    """Warn as the reference does: InfluxDB reads a line starting with ``#`` as a comment."""
    name = str(measurement)
    if name.startswith("#"):
        warnings.warn(
            f"The measurement name '{name}' start with '#'.\n\n"
            "The output Line protocol will be interpret as a comment by InfluxDB. "
            "For more info see:\n    - https://docs.influxdata.com/influxdb/latest/reference/"
            "syntax/line-protocol/#comments\n", SyntaxWarning, stacklevel=4)


class ClientEncoder(LineEncoder):
    """The line encoder of the client API: also warns about ``#`` measurements.

    The check runs where a series key is built, i.e. once per new shape, so
    the steady state pays nothing for it; a ``#`` shape is never cached, so it
    warns on every write, as the reference does.
    """

    def series_key(self, measurement: Any, tags: Optional[Mapping[Any, Any]]) -> str:
        warn_comment_measurement(measurement)
        return super().series_key(measurement, tags)

    def _new_shape(self, key: Tuple[Any, ...], measurement: Any,
                   tags: Optional[Mapping[Any, Any]], fields: Mapping[Any, Any]) -> Any:
        if str(measurement).startswith("#"):
            return self.series_key(measurement, tags), self.field_layout(fields), None
        return super()._new_shape(key, measurement, tags, fields)


class WritePrecision:
    """Timestamp precision of a write (the seed's constants)."""

    NS = "ns"
    US = "us"
    MS = "ms"
    S = "s"


DEFAULT_WRITE_PRECISION = WritePrecision.NS

_FIELD_TYPE_SUFFIX = {"int": "i", "uint": "u", "float": ""}

_PRECISIONS = frozenset(("ns", "us", "ms", "s"))

# One encoder per precision, shared by all points (no default tags: a Point
# alone has none; a writer's Serializer applies its own).
_ENCODERS: Dict[str, LineEncoder] = {p: ClientEncoder(p) for p in _PRECISIONS}


class Point:
    """One record: a measurement, tags, fields and an optional time."""

    __slots__ = ("_name", "_tags", "_fields", "_time", "_write_precision", "_field_types")

    def __init__(self, measurement_name: str) -> None:
        self._name = measurement_name
        self._tags: Dict[str, Any] = {}
        self._fields: Dict[str, Any] = {}
        self._time: Any = None
        self._write_precision: str = DEFAULT_WRITE_PRECISION
        self._field_types: Optional[Dict[str, str]] = None

    @staticmethod
    def measurement(measurement: str) -> Point:
        """Create a new point with this measurement name."""
        return Point(measurement)

    def tag(self, key: str, value: Any) -> Point:
        """Add a tag (``None`` and empty values are left out of the line)."""
        self._tags[key] = value
        return self

    def field(self, field: str, value: Any) -> Point:
        """Add a field: int, float, bool or str (``None`` is left out)."""
        self._fields[field] = value
        return self

    def time(self, time: Any, write_precision: Any = DEFAULT_WRITE_PRECISION) -> Point:
        """Set the timestamp.

        An int is taken as already in ``write_precision``; a ``datetime``
        (naive means UTC), ``timedelta`` since the epoch or ISO-8601 string
        (up to nanoseconds) is converted exactly, with integer arithmetic.
        """
        self._time = time
        self._write_precision = (
            write_precision if write_precision in _PRECISIONS
            else normalize_precision(write_precision)
        )
        return self

    @property
    def write_precision(self) -> str:
        return self._write_precision

    def to_line_protocol(self, precision: Optional[Any] = None) -> str:
        """This point as one line, in ``precision`` (default: the point's own).

        A point whose fields are all ``None``, NaN or Inf gives ``""``: it
        cannot be written, and it is counted in ``edge_agent.lineproto.DROPS``.
        """
        own = self._write_precision
        encoder = _ENCODERS[own if precision is None else normalize_precision(precision)]
        line = encoder.encode(
            self._name, self._tags, self._fields, self._time, own, self._field_types
        )
        return "" if line is None else line

    @staticmethod
    def from_dict(
        dictionary: Mapping[str, Any],
        write_precision: Any = DEFAULT_WRITE_PRECISION,
        **kwargs: Any,
    ) -> Point:
        """Build a point from a dict, with the seed's keyword arguments.

        Default shape ``{"measurement", "tags", "fields", "time"}``; or a flat
        dict with ``record_measurement_key`` / ``record_measurement_name``,
        ``record_tag_keys``, ``record_field_keys``, ``record_time_key``;
        ``field_types`` maps a field to ``int``, ``uint`` or ``float``.
        """
        name = kwargs.get("record_measurement_name")
        if name is None:
            name = dictionary[kwargs.get("record_measurement_key", "measurement")]
        point = Point(name)
        tag_keys = kwargs.get("record_tag_keys")
        if tag_keys is not None:
            for key in tag_keys:
                if key in dictionary:
                    point._tags[key] = dictionary[key]
        elif "tags" in dictionary:
            point._tags.update(dictionary["tags"])
        field_keys = kwargs.get("record_field_keys")
        if field_keys is not None:
            for key in field_keys:
                if key in dictionary:
                    point._fields[key] = dictionary[key]
        else:
            point._fields.update(dictionary["fields"])
        time_key = kwargs.get("record_time_key", "time")
        if time_key in dictionary:
            point.time(dictionary[time_key], write_precision)
        field_types = dictionary.get("field_types", kwargs.get("field_types")) or {}
        if field_types:
            point._field_types = {
                k: _FIELD_TYPE_SUFFIX.get(v, "i") for k, v in field_types.items()
            }
        return point

    def __str__(self) -> str:
        return self.to_line_protocol()

    def __repr__(self) -> str:
        return f"Point({self.to_line_protocol()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point):
            return NotImplemented
        return (
            self._name == other._name
            and self._tags == other._tags
            and self._fields == other._fields
            and self._time == other._time
            and self._write_precision == other._write_precision
            and (self._field_types or {}) == (other._field_types or {})
        )

    __hash__ = None  # type: ignore[assignment]  # mutable builder
