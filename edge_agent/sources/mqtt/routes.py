"""Subscriptions compiled to parsers, a topic routed to its parser, per-subscription counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...errors import ConfigError
from ...lineproto.encoder import LineEncoder
from .payloads import DEFAULT_MAX_PAYLOAD, MessageParser, Parsed, _opt

__all__ = ["SubscriptionStats", "compile_parsers", "route"]


@dataclass
class SubscriptionStats:
    """Counters of one subscription (keyed by its topic template)."""

    messages_received: int = 0
    messages_rejected: int = 0
    last_reject_reason: str = ""
    last_reject_topic: str = ""
    points: int = 0
    duplicates_skipped: int = 0
    fields_dropped: int = 0  # values that could not be written (null, "unavailable", ...)
    last_drop_reason: str = ""

    def count_drops(self, parsed: Parsed) -> None:
        if parsed.dropped_fields:
            self.fields_dropped += parsed.dropped_fields
            self.last_drop_reason = parsed.drop_reason


def compile_parsers(cfg: Any, subscriptions: Sequence[Any], encoder: LineEncoder
                    ) -> List[MessageParser]:
    tags = dict(_opt(cfg, "tags", {}))
    measurement = _opt(cfg, "measurement", None)
    max_payload = int(_opt(cfg, "max_payload", DEFAULT_MAX_PAYLOAD))
    parsers = [MessageParser(sub, encoder, tags, measurement, max_payload) for sub in subscriptions]
    seen = set()
    for parser in parsers:
        if parser.template.template in seen:
            raise ConfigError(f"mqtt topic {parser.template.template!r} is subscribed twice")
        seen.add(parser.template.template)
    return parsers


def route(parsers: Sequence[MessageParser], topic: str
           ) -> Tuple[Optional[MessageParser], Optional[Dict[str, str]]]:
    for parser in parsers:
        captured = parser.match(topic)
        if captured is not None:
            return parser, captured
    return None, None
