"""``edge-agent check-config`` and ``edge-agent status``."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional, TextIO

from ..config import Config
from ..sources.mqtt.ledger import status_lines as mqtt_status_lines

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
    from ..buffer.segment import BufferStats
    from .store import buffer_dir, open_buffer

    if not os.path.isdir(buffer_dir(config)):
        return {"buffer": BufferStats(0, 0, 0, None).as_dict(),
                "counters": {}, "sources": [], "dead_letters": []}
    from ..sources.mqtt.ledger import offline_sources

    buffer = open_buffer(config)
    try:
        return {"buffer": buffer.stats().as_dict(), "counters": buffer.counters.snapshot(),
                "sources": offline_sources(config.agent.state_dir), "dead_letters": []}
    finally:
        buffer.close()


def status(config: Config, out: TextIO) -> int:
    live = read_status(config)
    data = live or _offline_status(config)
    if live:
        age = time.time() - float(live.get("time", 0))
        out.write(f"agent: running (pid {live['pid']}, status {age:.0f}s old)\n")
    else:
        out.write("agent: not running\n")
    buf = data["buffer"]
    oldest = buf.get("oldest")
    oldest_text = f"{time.time() - float(oldest):.0f}s old" if oldest else "none"
    out.write(f"buffer: {buf['points']} point(s) in {buf['segments']} segment(s), "
              f"{buf['bytes']} bytes, oldest {oldest_text}\n")
    counters = data.get("counters", {})
    names = ("accepted", "written", "rejected", "evicted", "dropped_invalid", "write_errors",
             "retries")
    out.write("counters: " + ", ".join(f"{n} {counters.get(n, 0)}" for n in names) + "\n")
    last_ok = counters.get("last_success")
    out.write("last success: " + (time.strftime("%Y-%m-%d %H:%M:%S",
                                                time.localtime(float(last_ok)))
                                  if last_ok else "never") + "\n")
    if counters.get("last_error"):
        out.write(f"last error: {counters['last_error']}\n")
    for path in data.get("dead_letters", []):
        out.write(f"dead letters: {path}\n")
    for src in data.get("sources", []):
        state = src.get("state") or ("connected" if src.get("connected") else "disconnected")
        line = f"source {src.get('name')}: {state}"
        if src.get("last_error"):
            line += f" ({src['last_error']})"
        out.write(line + "\n")
        for extra in mqtt_status_lines(src):  # MQTT: rejections per subscription
            out.write(f"  {extra}\n")
    return 0
