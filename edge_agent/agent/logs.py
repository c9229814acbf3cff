"""Logging: one line per event, journald-friendly, never a secret.

Under systemd (``$JOURNAL_STREAM`` or ``$INVOCATION_ID`` set) lines carry a
``<N>`` syslog priority prefix and no timestamp (journald adds its own);
elsewhere they carry a timestamp and the level name. Every registered secret
is replaced by ``***`` in the final text, whatever put it there.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping, Optional

from ..redact import redact

__all__ = ["setup_logging", "under_systemd"]

_PRIORITY = {
    logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7,
}
class _Formatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        fmt = "%(name)s: %(message)s"
        super().__init__(fmt if journald else "%(asctime)s %(levelname)s " + fmt)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        # One line per event: exceptions are summarised, never a traceback.
        if record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        text = super().format(record).replace("\n", " | ")
        text = redact(text)
        if self.journald:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{text}"
        return text


def under_systemd(env: Optional[Mapping[str, str]] = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def setup_logging(level: str = "info", journald: Optional[bool] = None) -> None:
    """Configure the root logger for the agent (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(under_systemd() if journald is None else journald))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
