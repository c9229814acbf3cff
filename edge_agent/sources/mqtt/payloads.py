"""MQTT payload formats -> lines of line protocol (pure).

A subscription's ``topic`` is a template (:mod:`.topics`): ``{field}`` names
the field, ``{measurement}`` the measurement; other captures become tags. Any
topic level can be a tag value, field or measurement name: spaces, ``,``
``=`` ``"`` ``\\`` and any UTF-8 text are escaped by the encoder. Only a level
that no tag can hold is refused (the message is rejected, with the rule): an
empty level (``a//b``), a level holding a newline (``\\n`` or ``\\r``: line
protocol cannot carry one) and a level ending in a backslash (InfluxDB 1.x
reads it as escaping the separator after it and stores another value).

Payload formats:

* ``value``: one value (:mod:`.values`: a number, a boolean word or text).
  The field is ``{field}``, else ``field:``, else ``value``.
* ``json``: an object, an array of objects (one point each) or one JSON value
  (a field as in ``value``). Nested objects and arrays are flattened with
  ``_`` (:mod:`.jsonpaths`: ``aenergy_by_minute_0``) unless ``fields:`` picks
  paths (``sensor.temp``, ``aenergy.by_minute[0]``); a path a message lacks
  drops that field. With a ``{field}`` capture an object's names start with
  the field (``list_0``).
* ``auto``: JSON when the payload is JSON, else ``value``: for firmware that
  publishes both on one topic tree (Home Assistant's statestream: ``on``,
  ``21.4``, ``"\\u00b0C"``; Tasmota's ``tele/+/LWT`` next to JSON telemetry).
* ``influx``: line protocol. Each line's measurement and tag set are parsed
  (escapes honoured) and re-encoded with the default, source and subscription
  tags and the topic's captures merged under the line's own tags; the field
  set is passed through as written (InfluxDB validates it: a bad line goes to
  the dead-letter file, not back to the broker). A line without a timestamp
  gets the receive time.
* ``kv``: ``a=1 b=2`` or ``a=1,b=2``; values as in ``value``.

Field rules (json, auto, kv): ``skip``, ``tag_keys``, ``where``, ``decode``
(:mod:`.rules`); ``types`` and ``booleans`` (:mod:`.values`). A field that
cannot be written is dropped and counted (``Parsed.dropped_fields``), never
the whole message.

Time: ``time: {key, precision, format}`` and the subscription's ``timezone``
(:mod:`.times`) read the timestamp from the JSON object's ``key`` (a path) or
from the kv pair ``key=...`` (which is then not a field); without ``time`` the
receive time (ns, taken when the message arrived) is used, as it is for a
payload that is not an object. In ``kv`` a time value cannot hold spaces or
commas (they separate the pairs). A missing or unreadable time rejects the
message.

Anything malformed raises :class:`Rejected` with a one-line reason; the
source counts it, logs it (rate limited) and acks the message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ...errors import ConfigError
from ...lineproto.encoder import LineEncoder
from ...lineproto.timestamps import PRECISIONS, normalize_precision
from .jsonpaths import MISSING_PATH, flatten, lookup, parse_path, path_name
from .passthrough import relay_lines
from .rules import FieldRules, RuleMismatch
from .times import TimeError, TimeReader
from .topics import TopicTemplate
from .values import TYPE_ALIASES, Drop, FieldKinds, boolean_words, convert

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "FORMATS",
    "MessageParser",
    "Parsed",
    "Rejected",
]

DEFAULT_MAX_PAYLOAD = 256 * 1024
FORMATS = frozenset({"value", "json", "influx", "kv", "auto"})
DEFAULT_MEASUREMENT = "mqtt"


class Rejected(ValueError):
    """A message that cannot become points; ``reason`` is one line for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Parsed:
    """The lines of one message; ``own_time`` when every point carried its own timestamp.

    ``dropped_fields`` counts the values that could not be written (null,
    "unavailable", unconvertible: :mod:`.values`), the last reason in
    ``drop_reason``; a message whose every field was dropped has no lines.
    """

    lines: Tuple[str, ...]
    own_time: bool
    dropped_fields: int = 0
    drop_reason: str = ""


def _opt(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or mapping key ``name`` of a config object (dataclass, namespace or dict)."""
    if obj is None:
        return default
    value = obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)
    return default if value is None else value


# --------------------------------------------------------------------------- parser


class MessageParser:
    """Parses the messages of one subscription into lines of line protocol.

    ``sub`` has the subscription's config attributes (topic, format,
    measurement, tags, field, fields, types, time, timezone, booleans, skip,
    tag_keys, where, decode; a preset already expanded); ``source_tags`` and
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
        where = f"subscription {self.template.template!r}"
        self.format = str(_opt(sub, "format", "value")).lower()
        if self.format not in FORMATS:
            raise ConfigError(f"{where}: format {self.format!r} is not one of "
                              f"{', '.join(sorted(FORMATS))}")
        self.encoder = encoder
        self.measurement = str(_opt(sub, "measurement", None) or measurement
                               or DEFAULT_MEASUREMENT)
        tags: Dict[str, str] = {str(k): str(v) for k, v in dict(source_tags or {}).items()}
        tags.update({str(k): str(v) for k, v in dict(_opt(sub, "tags", {})).items()})
        self.tags = tags
        self.field = str(_opt(sub, "field", "value"))
        self.field_captured = "field" in self.template.captures
        try:
            self.fields = {str(k): (str(v), parse_path(str(v)))
                           for k, v in dict(_opt(sub, "fields", {})).items()}
        except ValueError as exc:
            raise ConfigError(f"{where}: fields: {exc}") from None
        self.types: Dict[str, str] = {}
        for key, kind in dict(_opt(sub, "types", {})).items():
            alias = TYPE_ALIASES.get(str(kind).lower())
            if alias is None:
                raise ConfigError(f"{where}: type {kind!r} of {key!r} is not one of int, "
                                  "float, str, bool")
            self.types[str(key)] = alias
        self.words = boolean_words(_opt(sub, "booleans", {}))
        self.kinds = FieldKinds()
        time_cfg = _opt(sub, "time", None)
        self.time_key: Optional[str] = _opt(time_cfg, "key", None)
        self.time: Optional[TimeReader] = None
        self.time_steps: Tuple[Any, ...] = ()
        zone = _opt(sub, "timezone", None) or _opt(time_cfg, "timezone", None)
        try:
            if self.time_key:
                self.time = TimeReader(self.time_key, _opt(time_cfg, "precision", "ns"),
                                       _opt(time_cfg, "format", None), zone)
                self.time_steps = parse_path(self.time_key)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        self.time_precision = normalize_precision(
            _opt(time_cfg, "precision", "ns") if self.format == "influx" else "ns")
        try:
            self.rules = FieldRules(tuple(_opt(sub, "skip", ())), tuple(_opt(sub, "tag_keys", ())),
                                    _opt(sub, "where", {}), tuple(_opt(sub, "decode", ())),
                                    path_name(self.time_steps) if self.time_steps else "")
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if self.time_key and self.format not in ("json", "kv", "auto"):
            raise ConfigError(f"{where}: time applies only to format json, auto or kv, "
                              f"this one has format {self.format}")
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
        field: Optional[str] = None
        for name, level in captured.items():
            if not level:
                raise Rejected(f"topic level {{{name}}} is empty (a tag, field or "
                               "measurement name cannot be empty)")
            if "\n" in level or "\r" in level:
                raise Rejected(f"topic level {{{name}}} = {level[:60]!r} holds a newline, "
                               "which line protocol cannot carry")
            if level[-1] == "\\":
                raise Rejected(f"topic level {{{name}}} = {level[-60:]!r} ends in a backslash, "
                               "which InfluxDB reads as escaping what follows it")
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
            fmt = self.format
            if fmt == "value":
                return self._value(text, measurement, tags, field or self.field, receive_ns)
            if fmt == "kv":
                return self._kv(text, measurement, tags, receive_ns)
            if fmt == "influx":
                lines, own_time = relay_lines(text, tags, receive_ns, self.encoder,
                                              PRECISIONS[self.time_precision])
                return Parsed(lines, own_time)
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                if fmt == "auto":
                    return self._value(text, measurement, tags, field or self.field,
                                       receive_ns)
                raise Rejected(f"invalid JSON: {exc.msg} at line {exc.lineno} col "
                               f"{exc.colno}") from None
            except RecursionError:
                raise Rejected("invalid JSON: nested too deeply") from None
            return self._json(doc, measurement, tags, field, receive_ns)
        except Rejected:
            raise
        except (ValueError, TypeError, OverflowError) as exc:  # from the encoder
            raise Rejected(str(exc)) from None

    # -- values -------------------------------------------------------------

    def _values(self, measurement: str, raw: Mapping[str, Any], drops: List[str]
                ) -> Dict[str, Any]:
        """Typed field values (:func:`.values.convert`); a value that cannot be is dropped."""
        fields: Dict[str, Any] = {}
        types = self.types
        kinds = self.kinds
        words = self.words
        for name, value in raw.items():
            if name == "time":  # InfluxDB 1.x answers 204 and leaves it out: drop it here
                drops.append("field 'time' cannot be stored (InfluxDB ignores a field named "
                             "time); use time: {key: time} to make it the timestamp")
                continue
            kind = types.get(name)
            learned = None if kind is not None else kinds.get(measurement, name)
            try:
                typed = convert(name, value, kind or learned, words)
            except Drop as exc:
                drops.append(exc.reason)
                continue
            if kind is None and learned is None:
                kinds.learn(measurement, name, typed)
            fields[name] = typed
        return fields

    # -- formats ------------------------------------------------------------

    def _line(self, measurement: str, tags: Dict[str, str], fields: Dict[str, Any],
              stamp: int) -> str:
        line = self.encoder.encode(measurement, tags, fields, stamp, "ns")
        if line is None:
            raise Rejected("no field could be written")
        return line

    @staticmethod
    def _result(lines: List[str], own_time: bool, drops: List[str]) -> Parsed:
        if not drops:
            return Parsed(tuple(lines), own_time)
        return Parsed(tuple(lines), own_time, len(drops), drops[-1])

    def _value(self, text: str, measurement: str, tags: Dict[str, str], field: str,
               receive_ns: int) -> Parsed:
        if not text.strip():
            raise Rejected("payload is empty")
        drops: List[str] = []
        fields = self._values(measurement, {field: text}, drops)
        lines = [self._line(measurement, tags, fields, receive_ns)] if fields else []
        return self._result(lines, False, drops)

    def _kv(self, text: str, measurement: str, tags: Dict[str, str], receive_ns: int) -> Parsed:
        raw: Dict[str, Any] = {}
        time_key = self.time_key
        stamp: Optional[int] = None
        for token in re.split(r"[\s,]+", text.strip()):
            if not token:
                continue
            key, sep, value = token.partition("=")
            if not sep or not key:
                raise Rejected(f"kv token {token[:40]!r} is not key=value")
            if key == time_key and self.time is not None:
                stamp = self._stamp(value)
            elif self.rules.keep(key):
                raw[key] = value
        if time_key is not None and stamp is None:
            raise Rejected(f"time key {time_key!r} is missing")
        drops: List[str] = []
        tags = self.rules.tags(raw, tags, self.words)
        fields = self._values(measurement, raw, drops)
        if not fields and not drops:
            raise Rejected("payload is empty" if stamp is None else "kv payload has no fields")
        lines = [self._line(measurement, tags, fields,
                            receive_ns if stamp is None else stamp)] if fields else []
        return self._result(lines, stamp is not None, drops)

    def _json(self, doc: Any, measurement: str, tags: Dict[str, str],
              field: Optional[str], receive_ns: int) -> Parsed:
        if isinstance(doc, list) and doc and all(isinstance(o, dict) for o in doc):
            objects: Sequence[Any] = doc
        elif isinstance(doc, dict):
            objects = [doc]
        elif isinstance(doc, list) and not doc:
            raise Rejected("JSON array is empty")
        else:  # one JSON value (a Home Assistant attribute): a field, as in ``value``
            raw: Dict[str, Any] = {}
            flatten(doc, field or self.field, raw)
            drops: List[str] = []
            fields = self._values(measurement, raw, drops)
            lines = [self._line(measurement, tags, fields, receive_ns)] if fields else []
            return self._result(lines, False, drops)
        lines = []
        drops = []
        own_time = True
        # Elements without a time of their own share the receive time: one unit of
        # the write precision apart, or InfluxDB would keep only the last of them.
        unit = PRECISIONS[self.encoder.precision]
        prefix = field if self.field_captured and field else ""
        for index, obj in enumerate(objects):
            try:
                self.rules.check(obj)
            except RuleMismatch as exc:
                raise Rejected(str(exc)) from None
            raw = {}
            before = len(drops)
            if self.fields:
                for name, (path, steps) in self.fields.items():
                    value = lookup(obj, steps)
                    if value is MISSING_PATH:
                        drops.append(f"JSON path {path!r} is missing")
                    else:
                        raw[name] = value
            else:
                flat: Dict[str, Any] = {}
                flatten(obj, prefix, flat)
                raw = self.rules.fields(flat)
            point_tags = self.rules.tags(raw, tags, self.words)
            fields = self._values(measurement, raw, drops)
            if self.time is not None:
                stamp = self._stamp(lookup(obj, self.time_steps))
            else:
                stamp, own_time = receive_ns + index * unit, False
            if fields:
                lines.append(self._line(measurement, point_tags, fields, stamp))
            elif len(drops) == before:
                raise Rejected("JSON object has no fields")
        return self._result(lines, own_time, drops)

    def _stamp(self, raw: Any) -> int:
        assert self.time is not None
        if raw is MISSING_PATH:
            raise Rejected(f"time key {self.time_key!r} is missing")
        try:
            return self.time.read(raw)
        except TimeError as exc:
            raise Rejected(str(exc)) from None
