"""Subscriptions compiled to parsers, a topic routed to its parser, per-subscription counters.

Overlapping subscriptions: a topic may match several subscriptions (``a/#``
and ``a/{device}/temp``). It is stored once, by the **most specific** one:

1. more literal levels (``a/b/+`` and ``a/+/c`` over ``a/#`` for ``a/b/c``);
2. then without ``#`` over with ``#`` (``a/b/+`` over ``a/b/#``);
3. then fewer wildcard levels (``+``, ``#`` and ``{captures}`` count alike);
4. then the earlier in the config.

The order depends only on the templates, so :func:`compile_parsers` sorts
them once and :func:`route` takes the first match. (A broker may deliver one
copy per matching subscription: MQTT 5 section 3.3.4; :mod:`.source` keeps the
copy of the chosen subscription only.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...errors import ConfigError
from ...lineproto.encoder import LineEncoder
from .payloads import DEFAULT_MAX_PAYLOAD, MessageParser, Parsed, _opt

__all__ = ["SubscriptionStats", "compile_parsers", "route", "specificity"]


@dataclass
class SubscriptionStats:
    """Counters of one subscription (keyed by its topic template)."""

    messages_received: int = 0
    messages_rejected: int = 0  # messages that did not become points (in the rejected file)
    last_reject_reason: str = ""
    last_reject_topic: str = ""
    last_reject_time: float = 0.0
    points: int = 0
    duplicates_skipped: int = 0  # redeliveries of messages already committed
    overlap_copies: int = 0  # copies the broker sent for another matching subscription
    timestamps_shifted: int = 0  # messages moved later to keep a series' points apart
    fields_dropped: int = 0  # values that could not be written (null, "unavailable", ...)
    last_drop_reason: str = ""

    def count_drops(self, parsed: Parsed) -> None:
        if parsed.dropped_fields:
            self.fields_dropped += parsed.dropped_fields
            self.last_drop_reason = parsed.drop_reason


def specificity(levels: Sequence[Tuple[str, str]], index: int) -> Tuple[int, bool, int, int]:
    """Sort key of a template's levels: the most specific subscription sorts first."""
    literal = sum(1 for kind, _ in levels if kind == "lit")
    has_hash = any(kind == "hash" for kind, _ in levels)
    return (-literal, has_hash, len(levels) - literal, index)


def compile_parsers(cfg: Any, subscriptions: Sequence[Any], encoder: LineEncoder
                    ) -> List[MessageParser]:
    """One parser per subscription, most specific first (see the module's rule)."""
    tags = dict(_opt(cfg, "tags", {}))
    measurement = _opt(cfg, "measurement", None)
    max_payload = int(_opt(cfg, "max_payload", DEFAULT_MAX_PAYLOAD))
    parsers = [MessageParser(sub, encoder, tags, measurement, max_payload) for sub in subscriptions]
    seen = set()
    for parser in parsers:
        if parser.template.template in seen:
            raise ConfigError(f"mqtt topic {parser.template.template!r} is subscribed twice")
        seen.add(parser.template.template)
    order = sorted(range(len(parsers)),
                   key=lambda i: specificity(parsers[i].template.levels, i))
    return [parsers[i] for i in order]


def route(parsers: Sequence[MessageParser], topic: str
           ) -> Tuple[Optional[MessageParser], Optional[Dict[str, str]]]:
    """The first (most specific, as compiled) parser matching ``topic``, with its captures."""
    for parser in parsers:
        captured = parser.match(topic)
        if captured is not None:
            return parser, captured
    return None, None
