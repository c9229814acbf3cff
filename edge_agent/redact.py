"""Secrets never reach a log line, an error message or a repr.

The ground floor: transport, config and the logging setup all redact with this one
registry, so a token registered once is hidden wherever its text turns up.
"""

from __future__ import annotations

from typing import Iterable, Optional, Set

__all__ = ["REDACTED", "redact", "register_secret"]

REDACTED = "***"
_SECRETS: Set[str] = set()


def register_secret(secret: Optional[str]) -> None:
    """Never let this string reach a log line (tokens, passwords)."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def redact(text: str, secrets: Optional[Iterable[str]] = None) -> str:
    """``text`` with every secret (default: every registered one) replaced by ``***``."""
    for secret in _SECRETS if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
