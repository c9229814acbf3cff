"""The buffer's ledger: counters and the segment-id high-water mark, outside the SQLite file.

The counters and ``next_id`` ride in the buffer's own SQLite file with every
commit. A damaged or truncated file must not take their history with it, nor
let segment ids start again at 1, so a copy lives next to the buffer directory
in ``<buffer>.ledger.json``: written atomically (temporary file, fsync,
rename) when the buffer opens, when it closes, after a salvage, and at most
every ``LEDGER_INTERVAL`` seconds in between (it is small, but an SD card
counts every write).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any, Dict, Mapping, Optional

__all__ = ["LEDGER_INTERVAL", "ledger_path", "read_ledger", "write_ledger"]

LEDGER_INTERVAL = 300.0
_VERSION = 1


def ledger_path(directory: str) -> str:
    return directory.rstrip(os.sep) + ".ledger.json"


def read_ledger(directory: str) -> Optional[Dict[str, Any]]:
    """The last ledger written for this buffer directory, or ``None``."""
    try:
        with open(ledger_path(directory), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return None
    if not isinstance(data.get("counters"), dict):
        data["counters"] = {}
    return data


def write_ledger(directory: str, meta: Mapping[str, int], counters: Mapping[str, Any]) -> None:
    """Replace the ledger atomically; raises ``OSError`` when the disk refuses."""
    path = ledger_path(directory)
    tmp = path + ".tmp"
    record = {"version": _VERSION, "time": time.time(), **dict(meta),
              "counters": dict(counters)}
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
