"""``edge-agent check-config`` and ``edge-agent status``."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional, TextIO

from ..config import Config

__all__ = ["check_config", "status", "read_status"]

STATUS_FRESH = 30.0  # seconds


def check_config(config: Config, out: TextIO) -> int:
    """Print the effective config with secrets redacted (the config already validated)."""
    import yaml

    out.write(f"# {config.path}: valid\n")
    out.write(yaml.safe_dump(config.redacted(), sort_keys=False, default_flow_style=False))
    return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed agent not yet reaped by its parent is a zombie: not running
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return True


def read_status(config: Config) -> Optional[Dict[str, Any]]:
    """The running agent's status file, or ``None`` when no agent is running."""
    path = os.path.join(config.agent.state_dir, "status.json")
    try:
        with open(path, encoding="utf-8") as handle:
            data: Dict[str, Any] = json.load(handle)
    except (OSError, ValueError):
        return None
    if not _pid_alive(int(data.get("pid", 0))):
        return None
    # The agent rewrites it every 2 s; an old file with a reused pid (after a
    # reboot) is not a running agent.
    if time.time() - float(data.get("time", 0)) > STATUS_FRESH:
        return None
    return data


def _offline_status(config: Config) -> Dict[str, Any]:
    """What a stopped agent left, read without the writer lock and without writing."""
    from ..buffer.ledger import read_ledger
    from ..delivery.transport import strip_userinfo
    from ..sources.mqtt.ledger import offline_sources
    from .store import buffer_dir, read_buffer_state

    meta = read_buffer_state(config) or read_ledger(buffer_dir(config)) or {}
    buffer = {"points": int(meta.get("points") or 0), "segments": int(meta.get("segments") or 0),
              "bytes": int(meta.get("bytes") or 0), "oldest": meta.get("oldest")}
    return {"buffer": buffer, "counters": dict(meta.get("counters") or {}),
            "sources": offline_sources(config.agent.state_dir),
            "unsaved": int(meta.get("unsaved") or 0),
            "dead_letters": [], "stale": bool(meta.get("stale")),
            "delivery": {"url": strip_userinfo(config.influx.url), "rate": None}}


def status(config: Config, out: TextIO, as_json: bool = False) -> int:
    """``edge-agent status``: what the running agent reports, else what the disk holds."""
    from .status_view import render

    live = read_status(config)
    data = dict(live or _offline_status(config), live=bool(live))
    if as_json:
        json.dump(data, out, indent=1, default=str)
        out.write("\n")
    else:
        out.write("\n".join(render(data)) + "\n")
    return 0
