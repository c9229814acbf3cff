"""MQTT payload formats -> lines of line protocol (pure).

A subscription's ``topic`` is a template (:mod:`.topics`): ``{field}`` names
the field (``value`` and ``kv`` formats) and ``{measurement}`` the measurement;
other captures become tags.

Payload formats:

* ``value``: one number (a float field), ``true``/``false`` (a bool) or any
  other text (a string field). The field is ``{field}``, else ``field:``,
  else ``value``.
* ``json``: an object, or an array of objects (one point each). Numbers are
  float fields unless ``types:`` says ``int``; bools and strings as they are;
  nested objects are flattened with ``_`` (arrays and nulls skipped) unless
  ``fields:`` picks dotted paths, in which case every path must exist.
* ``influx``: line protocol. Each line's measurement and tag set are parsed
  (escapes honoured) and re-encoded with the default, source and subscription
  tags and the topic's captures merged under the line's own tags; the field
  set is passed through as written (InfluxDB validates it: a bad line goes to
  the dead-letter file, not back to the broker). A line without a timestamp
  gets the receive time.
* ``kv``: ``a=1 b=2`` or ``a=1,b=2``; values as in ``value``.

Time: ``time: {key, precision, format}`` reads the timestamp from the JSON
object's ``key`` (a dotted path) or from the kv pair ``key=...`` (which is then
not a field); without ``time`` the receive time (ns, taken when the message
arrived) is used. A number (or a numeric string) is taken in ``precision``.
A string that is not a number is ISO-8601 by default; ``format`` changes how
strings are read: ``iso`` (ISO-8601 only) or a ``strptime`` pattern such as
``%d.%m.%YT%H:%M:%S`` (naive times are UTC; ``%z`` reads an offset). In
``kv`` a time value cannot hold spaces or commas (they separate the pairs).
A missing or unreadable time rejects the message.

Anything malformed raises :class:`Rejected` with a one-line reason; the
source counts it, logs it (rate limited) and acks the message.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ...errors import ConfigError
from ...lineproto.encoder import LineEncoder
from ...lineproto.parse import split_line, split_unescaped, unescape
from ...lineproto.timestamps import PRECISIONS, normalize_precision, time_to_ns
from .topics import TopicTemplate

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "FORMATS",
    "MessageParser",
    "Parsed",
    "Rejected",
]

DEFAULT_MAX_PAYLOAD = 256 * 1024
FORMATS = frozenset({"value", "json", "influx", "kv"})
DEFAULT_MEASUREMENT = "mqtt"

_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
TIME_FORMAT_ISO = "iso"
_NOT_FINITE = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity",
                         "+infinity", "-infinity"})
_BAD_IN_LEVEL = (" ", ",", "=", "\n", "\r", '"', "\\")
_TYPE_ALIASES = {
    "int": "int", "integer": "int", "float": "float", "double": "float",
    "str": "str", "string": "str", "bool": "bool", "boolean": "bool",
}


class Rejected(ValueError):
    """A message that cannot become points; ``reason`` is one line for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Parsed:
    """The lines of one message; ``own_time`` when every point carried its own timestamp."""

    lines: Tuple[str, ...]
    own_time: bool


def _opt(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or mapping key ``name`` of a config object (dataclass, namespace or dict)."""
    if obj is None:
        return default
    value = obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)
    return default if value is None else value


# --------------------------------------------------------------------------- values


def _scalar(text: str) -> Any:
    """``value``/``kv`` text -> float, bool or str; NaN/Inf rejected."""
    stripped = text.strip()
    if _NUMBER.match(stripped):
        number = float(stripped)
        if math.isinf(number):
            raise Rejected(f"number {stripped[:40]!r} is out of range")
        return number
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in _NOT_FINITE:
        raise Rejected(f"value {stripped!r} is NaN or infinite")
    return stripped


def _typed(name: str, value: Any, kind: Optional[str]) -> Any:
    """Apply ``types:`` (or the defaults) to one field value."""
    if isinstance(value, bool):
        if kind in (None, "bool"):
            return value
        if kind == "str":
            return "true" if value else "false"
        raise Rejected(f"field {name!r} is a bool where {kind} is configured")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise Rejected(f"field {name!r} is NaN or infinite")
        if kind in (None, "float"):
            return float(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise Rejected(f"field {name!r} = {value!r} is not an integer")
            return int(value)
        if kind == "str":
            return str(value)
        raise Rejected(f"field {name!r} is a number where bool is configured")
    if isinstance(value, str):
        if kind in (None, "str"):
            if "\n" in value or "\r" in value:
                raise Rejected(f"field {name!r} holds a newline")
            return value
        raise Rejected(f"field {name!r} is a string where {kind} is configured")
    raise Rejected(f"field {name!r} has unsupported type {type(value).__name__}")


def _lookup(obj: Any, path: str) -> Any:
    current = obj
    for key in path.split("."):
        if isinstance(current, dict) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            raise Rejected(f"JSON path {path!r} is missing")
    if current is None:
        raise Rejected(f"JSON path {path!r} is null")
    return current


def _flatten(obj: Dict[str, Any], prefix: str, out: Dict[str, Any], skip: str) -> None:
    for key, value in obj.items():
        name = f"{prefix}_{key}" if prefix else str(key)
        if name == skip:
            continue
        if isinstance(value, dict):
            _flatten(value, name, out, skip)
        elif value is None or isinstance(value, list):
            continue
        else:
            out[name] = value


def _reject_constant(name: str) -> Any:
    raise Rejected(f"JSON holds {name}, which cannot be written")


# --------------------------------------------------------------------------- parser


class MessageParser:
    """Parses the messages of one subscription into lines of line protocol.

    ``sub`` has the subscription's config attributes (topic, format,
    measurement, tags, field, fields, types, time); ``source_tags`` and
    ``measurement`` are the source's own defaults; ``encoder`` carries the
    agent's default tags and the write precision.
    """

    def __init__(
        self,
        sub: Any,
        encoder: LineEncoder,
        source_tags: Optional[Mapping[str, Any]] = None,
        measurement: Optional[str] = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.template = TopicTemplate.compile(str(_opt(sub, "topic", "")))
        self.format = str(_opt(sub, "format", "value")).lower()
        if self.format not in FORMATS:
            raise ConfigError(f"subscription {self.template.template!r}: format "
                              f"{self.format!r} is not one of {', '.join(sorted(FORMATS))}")
        self.encoder = encoder
        self.measurement = str(_opt(sub, "measurement", None) or measurement
                               or DEFAULT_MEASUREMENT)
        tags: Dict[str, str] = {str(k): str(v) for k, v in dict(source_tags or {}).items()}
        tags.update({str(k): str(v) for k, v in dict(_opt(sub, "tags", {})).items()})
        self.tags = tags
        self.field = str(_opt(sub, "field", "value"))
        self.fields: Dict[str, str] = {str(k): str(v)
                                       for k, v in dict(_opt(sub, "fields", {})).items()}
        self.types: Dict[str, str] = {}
        for key, kind in dict(_opt(sub, "types", {})).items():
            alias = _TYPE_ALIASES.get(str(kind).lower())
            if alias is None:
                raise ConfigError(f"subscription {self.template.template!r}: type {kind!r} of "
                                  f"{key!r} is not one of int, float, str, bool")
            self.types[str(key)] = alias
        time_cfg = _opt(sub, "time", None)
        self.time_key: Optional[str] = _opt(time_cfg, "key", None)
        self.time_precision = normalize_precision(_opt(time_cfg, "precision", "ns"))
        self.time_format: Optional[str] = _opt(time_cfg, "format", None)
        if self.time_format is not None and self.time_format.lower() == TIME_FORMAT_ISO:
            self.time_format = TIME_FORMAT_ISO
        elif self.time_format is not None and "%" not in self.time_format:
            raise ConfigError(
                f"subscription {self.template.template!r}: time format {self.time_format!r} "
                "is neither 'iso' nor a strptime pattern such as '%Y-%m-%d %H:%M:%S'")
        if self.time_key and self.format not in ("json", "kv"):
            raise ConfigError(f"subscription {self.template.template!r}: time applies only to "
                              f"format json or kv, this one has format {self.format}")
        self.max_payload = int(max_payload or DEFAULT_MAX_PAYLOAD)

    @property
    def filter(self) -> str:
        return self.template.filter

    def match(self, topic: str) -> Optional[Dict[str, str]]:
        return self.template.match(topic)

    # -- entry point --------------------------------------------------------

    def parse(self, topic: str, payload: bytes, receive_ns: int,
              captured: Optional[Dict[str, str]] = None) -> Parsed:
        """Lines for one message; raises :class:`Rejected` with the reason."""
        if len(payload) > self.max_payload:
            raise Rejected(f"payload of {len(payload)} bytes is above max_payload "
                           f"{self.max_payload}")
        if captured is None:
            captured = self.template.match(topic)
            if captured is None:
                raise Rejected(f"topic does not match {self.template.template!r}")
        tags = dict(self.tags)
        measurement = self.measurement
        field = self.field
        for name, level in captured.items():
            if not level:
                raise Rejected(f"topic level {{{name}}} is empty")
            bad = next((c for c in _BAD_IN_LEVEL if c in level), None)
            if bad is not None:
                raise Rejected(f"topic level {{{name}}} = {level!r} contains {bad!r}")
            if name == "measurement":
                measurement = level
            elif name == "field":
                field = level
            else:
                tags[name] = level
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        try:
            if self.format == "value":
                return self._value(text, measurement, tags, field, receive_ns)
            if self.format == "kv":
                return self._kv(text, measurement, tags, receive_ns)
            if self.format == "json":
                return self._json(text, measurement, tags, receive_ns)
            return self._influx(text, tags, receive_ns)
        except Rejected:
            raise
        except (ValueError, TypeError, OverflowError) as exc:  # from the encoder
            raise Rejected(str(exc)) from None

    # -- formats ------------------------------------------------------------

    def _line(self, measurement: str, tags: Dict[str, str], fields: Dict[str, Any],
              stamp: int, precision: str) -> str:
        line = self.encoder.encode(measurement, tags, fields, stamp, precision)
        if line is None:
            raise Rejected("no field could be written")
        return line

    def _value(self, text: str, measurement: str, tags: Dict[str, str], field: str,
               receive_ns: int) -> Parsed:
        if not text.strip():
            raise Rejected("payload is empty")
        value = _typed(field, _scalar(text), self.types.get(field))
        return Parsed((self._line(measurement, tags, {field: value}, receive_ns, "ns"),), False)

    def _kv(self, text: str, measurement: str, tags: Dict[str, str], receive_ns: int) -> Parsed:
        fields: Dict[str, Any] = {}
        time_key = self.time_key
        stamp: Optional[int] = None
        for token in re.split(r"[\s,]+", text.strip()):
            if not token:
                continue
            key, sep, raw = token.partition("=")
            if not sep or not key:
                raise Rejected(f"kv token {token[:40]!r} is not key=value")
            if key == time_key:
                stamp = self._time(raw)
                continue
            fields[key] = _typed(key, _scalar(raw), self.types.get(key))
        if not fields:
            raise Rejected("payload is empty" if stamp is None else "kv payload has no fields")
        if time_key is not None and stamp is None:
            raise Rejected(f"time key {time_key!r} is missing")
        if stamp is None:
            return Parsed((self._line(measurement, tags, fields, receive_ns, "ns"),), False)
        return Parsed((self._line(measurement, tags, fields, stamp, "ns"),), True)

    def _json(self, text: str, measurement: str, tags: Dict[str, str],
              receive_ns: int) -> Parsed:
        try:
            doc = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise Rejected(f"invalid JSON: {exc.msg} at line {exc.lineno} col {exc.colno}") \
                from None
        except RecursionError:
            raise Rejected("invalid JSON: nested too deeply") from None
        objects: Sequence[Any] = doc if isinstance(doc, list) else [doc]
        if not objects:
            raise Rejected("JSON array is empty")
        lines: List[str] = []
        own_time = True
        # Elements without a time of their own share the receive time: one unit of
        # the write precision apart, or InfluxDB would keep only the last of them.
        unit = PRECISIONS[self.encoder.precision]
        for index, obj in enumerate(objects):
            if not isinstance(obj, dict):
                raise Rejected("JSON payload is not an object or an array of objects")
            fields: Dict[str, Any] = {}
            if self.fields:
                for name, path in self.fields.items():
                    fields[name] = _lookup(obj, path)
            else:
                _flatten(obj, "", fields, (self.time_key or "").replace(".", "_"))
            fields = {k: _typed(k, v, self.types.get(k)) for k, v in fields.items()}
            if not fields:
                raise Rejected("JSON object has no fields")
            if self.time_key:
                stamp, precision = self._time(_lookup(obj, self.time_key)), "ns"
            else:
                stamp, precision, own_time = receive_ns + index * unit, "ns", False
            lines.append(self._line(measurement, tags, fields, stamp, precision))
        return Parsed(tuple(lines), own_time)

    def _time(self, raw: Any) -> int:
        """A message's own timestamp (JSON value or kv text) -> ns."""
        if isinstance(raw, bool):
            raise Rejected(f"time {self.time_key!r} is a bool")
        if isinstance(raw, int):
            return raw * PRECISIONS[self.time_precision]
        if isinstance(raw, float):
            if not math.isfinite(raw):
                raise Rejected(f"time {self.time_key!r} is not finite")
            return int(round(raw * PRECISIONS[self.time_precision]))
        if not isinstance(raw, str):
            raise Rejected(f"time {self.time_key!r} is not a number or a string")
        text = raw.strip()
        fmt = self.time_format
        if fmt is None or fmt == TIME_FORMAT_ISO:
            if fmt is None and _INTEGER.match(text):
                return int(text) * PRECISIONS[self.time_precision]
            if fmt is None and _NUMBER.match(text):  # exact: a float has 15-17 digits
                return int((Decimal(text) * PRECISIONS[self.time_precision])
                           .to_integral_value(ROUND_HALF_EVEN))
            try:
                return time_to_ns(text)
            except (ValueError, TypeError) as exc:
                raise Rejected(f"time {self.time_key!r}: {exc}") from None
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            raise Rejected(f"time {self.time_key!r} = {text[:40]!r} does not match the format "
                           f"{fmt!r}") from None
        return time_to_ns(moment)

    def _influx(self, text: str, tags: Dict[str, str], receive_ns: int) -> Parsed:
        lines: List[str] = []
        own_time = True
        untimed = 0
        scale = PRECISIONS[self.time_precision]
        target = PRECISIONS[self.encoder.precision]
        for raw in text.split("\n"):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                series, fields, stamp = split_line(line)
            except ValueError as exc:
                raise Rejected(str(exc)) from None
            parts = split_unescaped(series, ",")
            if not parts[0] or not fields or "=" not in fields:
                raise Rejected(f"line protocol {line[:60]!r} has no measurement or fields")
            merged = dict(tags)
            for pair in parts[1:]:
                kv = split_unescaped(pair, "=")
                if len(kv) != 2 or not kv[0] or not kv[1]:
                    raise Rejected(f"line protocol tag {pair[:40]!r} is not key=value")
                merged[unescape(kv[0])] = unescape(kv[1])
            head = self.encoder.series_key(unescape(parts[0]), merged)
            if stamp is None:  # one unit apart, as in _json: a batch is not one point
                ns, own_time = receive_ns + untimed * target, False
                untimed += 1
            elif re.match(r"^-?\d+$", stamp):
                ns = int(stamp) * scale
            else:
                raise Rejected(f"line protocol timestamp {stamp[:30]!r} is not an integer")
            lines.append(f"{head} {fields} {ns // target}")
        if not lines:
            raise Rejected("payload is empty")
        return Parsed(tuple(lines), own_time)
