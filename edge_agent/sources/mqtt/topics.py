"""MQTT topic templates: the subscription filter and the captured levels.

A subscription's ``topic`` is a template such as ``sensors/{room}/{device}/{field}``:
each ``{name}`` is one whole topic level captured as a tag; ``+`` and ``#`` keep
their MQTT meaning and capture nothing. A template is compiled once into the MQTT
subscription filter (captures become ``+``) and a matcher.

An MQTT 5 shared subscription ``$share/<group>/<template>`` (several bridges
split one topic tree) subscribes with the ``$share/<group>/`` prefix, while
the template rules, captures and matching apply to the filter inside it: the
broker delivers messages under their own topic, without the prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ...errors import ConfigError

__all__ = ["TopicTemplate", "parse_template", "split_share"]

_CAPTURE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def split_share(template: str, fail: Callable[[str], Exception] = ConfigError
                ) -> Tuple[str, str]:
    """``("$share/<group>/", inner)`` for a shared subscription, else ``("", template)``."""
    if not template.startswith("$share/"):
        return "", template
    group, sep, inner = template[len("$share/"):].partition("/")
    if not sep or not group or not inner or any(c in group for c in "+#{}"):
        raise fail(f"shared subscription {template!r}: write $share/<group>/<filter>, the "
                   "group a name without + # { }")
    return f"$share/{group}/", inner


def parse_template(template: str, fail: Callable[[str], Exception] = ConfigError
                   ) -> Tuple[Tuple[str, str], ...]:
    """The levels of a topic template as ``(kind, text)``: lit, cap, plus or hash.

    The one place the template rules live (the config checks with it too):
    a capture ``{name}`` fills a whole level and appears once (and is not
    ``{time}``, a tag key InfluxDB refuses), ``+`` and ``#`` fill a whole level,
    ``#`` comes last. ``fail(message)`` builds the error.
    """
    if not template:
        raise fail("must not be empty")
    template = split_share(template, fail)[1]
    parts = template.split("/")
    levels: List[Tuple[str, str]] = []
    names: List[str] = []
    for index, part in enumerate(parts):
        capture = _CAPTURE.match(part)
        if capture:
            name = capture.group(1)
            if name == "time":
                raise fail(f"capture {{time}} in {template!r}: InfluxDB refuses a tag named "
                           "time; use another name, e.g. {when}")
            if name in names:
                raise fail(f"capture {{{name}}} appears twice in {template!r}; each name once")
            names.append(name)
            levels.append(("cap", name))
        elif "{" in part or "}" in part:
            raise fail(f"level {part!r} of {template!r}: a capture must fill a whole level, "
                       "as in sensors/{room}/temperature (names: letters, digits, _)")
        elif part == "#":
            if index != len(parts) - 1:
                raise fail(f"'#' must be the last level of {template!r}")
            levels.append(("hash", ""))
        elif part == "+":
            levels.append(("plus", ""))
        elif "+" in part or "#" in part:
            raise fail(f"level {part!r} of {template!r}: + and # must fill a whole level")
        else:
            levels.append(("lit", part))
    return tuple(levels)


@dataclass(frozen=True)
class TopicTemplate:
    """A compiled topic template: ``filter`` for SUBSCRIBE, :meth:`match` for routing."""

    template: str
    filter: str
    levels: Tuple[Tuple[str, str], ...]  # (kind, text): lit | cap | plus | hash

    @classmethod
    def compile(cls, template: str,
                fail: Callable[[str], Exception] = ConfigError) -> TopicTemplate:
        levels = parse_template(template, fail)
        mqtt_filter = split_share(template, fail)[0] + "/".join(
            "+" if kind in ("cap", "plus") else "#" if kind == "hash" else text
            for kind, text in levels
        )
        return cls(template, mqtt_filter, levels)

    @property
    def captures(self) -> Tuple[str, ...]:
        return tuple(text for kind, text in self.levels if kind == "cap")

    def match(self, topic: str) -> Optional[Dict[str, str]]:
        """The captured levels of ``topic``, or ``None`` when it does not match.

        Captured levels are returned as they are; :meth:`MessageParser.parse`
        rejects the ones that cannot be a tag, field or measurement.
        """
        parts = topic.split("/")
        levels = self.levels
        has_hash = bool(levels) and levels[-1][0] == "hash"
        fixed = len(levels) - 1 if has_hash else len(levels)
        if len(parts) < fixed or (not has_hash and len(parts) != fixed):
            return None
        captured: Dict[str, str] = {}
        for (kind, text), part in zip(levels[:fixed], parts):
            if kind == "lit":
                if part != text:
                    return None
            elif kind == "cap":
                captured[text] = part
        return captured
