"""Typed, positioned access to one mapping of the config file.

``Section`` checks a mapping's keys against the accepted names once (unknown
key -> error with a did-you-mean), then hands out typed values; every error
message is ``path:LINE:COL: <dotted.key> ...``.
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from ..errors import ConfigError
from ..redact import REDACTED, redact
from .model import SECRET_KEY
from .units import parse_duration, parse_size
from .yamlpos import Mark, YMap, YNode, YScalar, YSeq, plain

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_KINDS = {YMap: "a mapping", YSeq: "a list"}
_START = Mark(1, 1)


def describe(node: YNode) -> str:
    """How a value looks to the user, for 'got ...' in messages."""
    if isinstance(node, YScalar):
        if node.interpolated:
            return "a value from the environment (not shown)"
        value = node.value
        if value is None:
            return "nothing (an empty value)"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return repr(value)
        return node.text
    return _KINDS[type(node)]


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Context:
    """What every section needs: the file path, collected secret positions, and the
    texts no error message may repeat (see :meth:`hide_secrets`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.literal_secrets: List[Tuple[str, Mark]] = []
        self.warnings: List[str] = []  # said once when the config is loaded
        self.hidden: List[str] = []  # never repeated where quoted
        self._anywhere: List[str] = []  # never repeated at all (secrets, long env values)

    def hide_secrets(self, node: Optional[YNode], key: str = "") -> None:
        """Remember every value that came from ``${VAR}`` and every value of a
        token/password key, before any check runs: an error about a wrong key
        (``timeout: ${INFLUX_TOKEN}``) must not print it."""
        if isinstance(node, YMap):
            for name, (_, value) in node.items.items():
                self.hide_secrets(value, name)
        elif isinstance(node, YSeq):
            for item in node.items:
                self.hide_secrets(item, key)
        elif isinstance(node, YScalar) and node.text:
            if key and SECRET_KEY.search(key):
                self.hidden.append(node.text)
                self._anywhere.append(node.text)
            elif node.interpolated:
                self.hidden.append(node.text)
                if len(node.text) >= 8:  # not 'true' or '10s' inside every sentence
                    self._anywhere.append(node.text)

    def error(self, mark: Mark, message: str) -> ConfigError:
        for text in self.hidden:  # wherever quoted, as the messages show values
            message = message.replace(repr(text), REDACTED)
        message = redact(message, [text for text in self._anywhere if len(text) >= 4])
        return ConfigError(f"{self.path}:{mark.line}:{mark.col}: {message}")


class Section:
    """Typed getters for the keys of one mapping; ``where`` is its dotted name."""

    def __init__(
        self,
        ctx: Context,
        node: Optional[YNode],
        where: str,
        accepted: Sequence[str],
        mark: Mark = _START,
        foreign: Optional[Dict[str, str]] = None,
    ) -> None:
        self.ctx = ctx
        self.where = where
        if node is None or (isinstance(node, YScalar) and node.value is None):
            node = YMap(mark)
        if not isinstance(node, YMap):
            raise ctx.error(node.mark, f"{where or 'the file'} must be a mapping of keys, "
                            f"got {describe(node)}")
        self.node = node
        self.mark = node.mark
        for key, (key_mark, _) in node.items.items():
            if key in accepted:
                continue
            owner = (foreign or {}).get(key)
            if owner:
                raise ctx.error(key_mark, f"key '{key}' does not apply here ({owner}); "
                                f"accepted keys in {where}: {', '.join(accepted)}")
            inside = f"in {where}" if where else "at the top level"
            raise ctx.error(
                key_mark,
                f"unknown key '{key}' {inside}{suggest(key, accepted)}; accepted keys: "
                f"{', '.join(accepted)}",
            )

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str) -> Optional[YNode]:
        """The value node, or None when the key is absent or empty."""
        entry = self.node.items.get(key)
        if entry is None:
            return None
        node = entry[1]
        if isinstance(node, YScalar) and node.value is None:
            return None
        return node

    def key_mark(self, key: str) -> Mark:
        entry = self.node.items.get(key)
        return entry[0] if entry else self.mark

    def value_mark(self, key: str) -> Mark:
        node = self.get(key)
        return node.mark if node is not None else self.key_mark(key)

    def fail(self, key: str, message: str) -> ConfigError:
        return self.ctx.error(self.value_mark(key), f"{self.name(key)}: {message}")

    def scalar(self, key: str, kind: str) -> Optional[YScalar]:
        node = self.get(key)
        if node is None:
            return None
        if not isinstance(node, YScalar):
            raise self.fail(key, f"must be {kind}, got {describe(node)}")
        return node

    def required(self, key: str, hint: str = "") -> YNode:
        node = self.get(key)
        if node is None:
            raise self.ctx.error(
                self.key_mark(key) if key in self.node.items else self.mark,
                f"{self.where or 'the file'}: missing required key '{key}'{hint}",
            )
        return node

    def string(self, key: str, default: T, secret: bool = False) -> str | T:
        node = self.scalar(key, "a string")
        if node is None:
            return default
        if isinstance(node.value, (dict, list)):
            raise self.fail(key, f"must be a string, got {describe(node)}")
        if secret and not node.interpolated:
            self.ctx.literal_secrets.append((self.name(key), node.mark))
        return node.text if not isinstance(node.value, str) else node.value

    def boolean(self, key: str, default: bool) -> bool:
        node = self.scalar(key, "true or false")
        if node is None:
            return default
        if isinstance(node.value, bool):
            return node.value
        if isinstance(node.value, str) and node.value.strip().lower() in _TRUE | _FALSE:
            return node.value.strip().lower() in _TRUE
        raise self.fail(key, f"must be true or false, got {describe(node)}")

    def integer(self, key: str, default: T, minimum: Optional[int] = None,
                maximum: Optional[int] = None) -> int | T:
        node = self.scalar(key, "an integer")
        if node is None:
            return default
        value = node.value
        if isinstance(value, str):
            try:
                value = int(value.strip(), 0)
            except ValueError:
                value = node.value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {describe(node)}")
        self.check_range(key, value, minimum, maximum)
        return value

    def number(self, key: str, default: float, minimum: Optional[float] = None) -> float:
        node = self.scalar(key, "a number")
        if node is None:
            return default
        value = node.value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, got {describe(node)}")
        self.check_range(key, value, minimum, None)
        return value

    def check_range(self, key: str, value: float, minimum: Optional[float],
                    maximum: Optional[float]) -> None:
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be {minimum} or more, got {value}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"must be {maximum} or less, got {value}")

    def duration(self, key: str, default: float, plain_unit: str = "s",
                 positive: bool = False) -> float:
        """Seconds; plain numbers are in ``plain_unit``."""
        node = self.scalar(key, "a duration")
        if node is None:
            return default
        try:
            seconds = parse_duration(node.value, plain_unit)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None
        if positive and seconds <= 0:
            raise self.fail(key, f"must be more than zero, got {describe(node)}")
        return seconds

    def millis(self, key: str, default: int) -> int:
        """A ``write:`` duration in whole milliseconds (plain numbers are milliseconds)."""
        return int(round(self.duration(key, default / 1000.0, plain_unit="ms") * 1000))

    def size(self, key: str, default: int) -> int:
        node = self.scalar(key, "a size")
        if node is None:
            return default
        try:
            return parse_size(node.value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def choice(self, key: str, choices: Sequence[str], default: T, what: str = "value",
               aliases: Optional[Dict[str, str]] = None) -> str | T:
        node = self.scalar(key, f"one of {', '.join(choices)}")
        if node is None:
            return default
        text = node.text.strip()
        lowered = text.lower()
        if lowered in choices:
            return lowered
        if aliases and lowered in aliases:
            return aliases[lowered]
        raise self.fail(
            key,
            f"unknown {what} '{text}'{suggest(lowered, choices)}; accepted: {', '.join(choices)}",
        )

    def string_map(self, key: str) -> Dict[str, str]:
        """A mapping of names to text (tags, fields, types)."""
        node = self.get(key)
        if node is None:
            return {}
        if not isinstance(node, YMap):
            raise self.fail(key, f"must be a mapping of name: value, got {describe(node)}")
        result: Dict[str, str] = {}
        for name, (name_mark, value) in node.items.items():
            if not name:
                raise self.ctx.error(name_mark, f"{self.name(key)}: names must not be empty")
            if not isinstance(value, YScalar) or value.value is None:
                got = "an empty value" if isinstance(value, YScalar) else describe(value)
                raise self.ctx.error(value.mark, f"{self.name(key)}.{name}: must be a string, "
                                     f"number or true/false, got {got}")
            result[name] = value.text
        return result

    def mapping(self, key: str) -> Dict[str, Any]:
        """A free-form mapping as plain Python values (driver options)."""
        node = self.get(key)
        if node is None:
            return {}
        if not isinstance(node, YMap):
            raise self.fail(key, f"must be a mapping, got {describe(node)}")
        value: Dict[str, Any] = plain(node)
        return value

    def section(self, key: str, accepted: Sequence[str]) -> Section:
        return Section(self.ctx, self.get(key), self.name(key), accepted, self.value_mark(key))

    def items(self, key: str) -> List[YNode]:
        node = self.get(key)
        if node is None:
            return []
        if not isinstance(node, YSeq):
            raise self.fail(key, f"must be a list (entries starting with '- '), "
                            f"got {describe(node)}")
        return node.items
