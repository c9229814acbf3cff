"""Field values of MQTT payloads: numbers, boolean words, ``types``, and what drops a field.

Rules (docs/presets.md shows them on real firmware messages):

* A number (JSON number or numeric text such as ``"23.50"``) is a float field
  unless ``types`` says otherwise; a JSON bool is a bool.
* Boolean words, case-insensitive: ``true/false``, ``on/off``, ``open/closed``,
  ``online/offline`` (:data:`DEFAULT_BOOLEANS`), plus a subscription's own
  ``booleans`` map (e.g. ``{LOCK: true, UNLOCK: false}``).
* Any other text is a string field.
* ``types`` converts when it can without loss: ``int`` from 3.0, "17" or a
  bool (1/0); ``float`` from a number, numeric text or a bool; ``bool`` from a
  boolean word or 0/1; ``str`` from anything (a word keeps its spelling).
* A value that cannot be written drops that one field, never the message:
  JSON ``null``, NaN or infinite numbers, the "no reading" words of
  :data:`MISSING` (Home Assistant's ``unavailable``/``unknown``, ESPHome's
  ``nan``/``None``), text with a newline, and a value ``types`` cannot
  convert. The parser counts each drop (:class:`Drop` carries the reason).
* A field keeps the type it was first written with: :class:`FieldKinds`
  remembers it per measurement and converts later values to it (or drops
  them), so a field never changes type in InfluxDB (which would refuse the
  whole point). The memory lives in the process; after a restart the first
  value sets it again.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = [
    "DEFAULT_BOOLEANS",
    "KINDS",
    "MISSING",
    "TYPE_ALIASES",
    "Drop",
    "FieldKinds",
    "boolean_words",
    "convert",
    "kind_of",
]

KINDS = ("int", "float", "str", "bool")
TYPE_ALIASES = {
    "int": "int", "integer": "int", "float": "float", "double": "float",
    "str": "str", "string": "str", "bool": "bool", "boolean": "bool",
}
DEFAULT_BOOLEANS: Mapping[str, bool] = {
    "true": True, "false": False, "on": True, "off": False,
    "open": True, "closed": False, "online": True, "offline": False,
}
MISSING = frozenset({"unavailable", "unknown", "nan", "+nan", "-nan", "none", "null"})
_NOT_FINITE = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_KIND_OF = {bool: "bool", int: "int", float: "float", str: "str"}
FIELD_KINDS_MAX = 100_000


class Drop(ValueError):
    """One field that cannot be written; ``reason`` is one line (the message goes on)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def boolean_words(extra: Optional[Mapping[str, Any]] = None) -> Dict[str, bool]:
    """The defaults plus a subscription's own words (keys lowered; values bool or text)."""
    words = dict(DEFAULT_BOOLEANS)
    for word, value in dict(extra or {}).items():
        if isinstance(value, str):
            value = value.strip().lower() in ("true", "yes", "on", "1")
        words[str(word).strip().lower()] = bool(value)
    return words


def kind_of(value: Any) -> str:
    return _KIND_OF[type(value)]


def _text(name: str, raw: str, words: Mapping[str, bool]) -> Any:
    """Untyped text -> float, bool or str; raises :class:`Drop` for a no-reading word."""
    text = raw.strip()
    if _NUMBER.match(text):
        number = float(text)
        if math.isinf(number):
            raise Drop(f"field {name!r} = {text[:40]!r} is out of range")
        return number
    lowered = text.lower()
    word = words.get(lowered)
    if word is not None:
        return word
    if lowered in MISSING:
        raise Drop(f"field {name!r} is {text!r} (no reading)")
    if lowered in _NOT_FINITE:
        raise Drop(f"field {name!r} = {text!r} is infinite")
    if "\n" in text or "\r" in text:
        raise Drop(f"field {name!r} holds a newline")
    return text


def convert(name: str, value: Any, kind: Optional[str], words: Mapping[str, bool]) -> Any:
    """A JSON value or payload text as the field value of ``kind`` (None: as it looks)."""
    if value is None:
        raise Drop(f"field {name!r} is null")
    if type(value) is float and value - value != 0.0:
        raise Drop(f"field {name!r} is NaN or infinite")
    if kind is None:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return _text(name, value, words)
        raise Drop(f"field {name!r} has unsupported type {type(value).__name__}")
    if kind == "str":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        text = str(value)
        if text.strip().lower() in MISSING:
            raise Drop(f"field {name!r} is {text.strip()!r} (no reading)")
        if "\n" in text or "\r" in text:
            raise Drop(f"field {name!r} holds a newline")
        return text
    if isinstance(value, str):
        exact = text_int(value) if kind == "int" else None
        if exact is not None:
            return exact
        value = _text(name, value, words)
        if isinstance(value, str):
            raise Drop(f"field {name!r} = {value[:40]!r} is not {_ARTICLE[kind]}")
    if kind == "float":
        return float(value)
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise Drop(f"field {name!r} = {value!r} is not an integer")
            return int(value)
        return int(value)
    # bool
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise Drop(f"field {name!r} = {value!r} is not a bool (0/1 or a boolean word)")


_ARTICLE = {"int": "an int", "float": "a float", "bool": "a bool"}


def text_int(text: str) -> Optional[int]:
    """Exact integer of numeric text (no float rounding), or None."""
    stripped = text.strip()
    return int(stripped) if _INTEGER.match(stripped) else None


def is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.strip()))


class FieldKinds:
    """The kind each field was first written with, per measurement (bounded)."""

    def __init__(self, limit: int = FIELD_KINDS_MAX) -> None:
        self._kinds: Dict[Tuple[str, str], str] = {}
        self._limit = limit

    def get(self, measurement: str, name: str) -> Optional[str]:
        return self._kinds.get((measurement, name))

    def learn(self, measurement: str, name: str, value: Any) -> None:
        if len(self._kinds) < self._limit:
            self._kinds[(measurement, name)] = _KIND_OF[type(value)]
