"""``edge-agent status`` as text a technician reads at a glance (80 columns, SSH on a phone).

The data is the running agent's status.json (or, with no agent running, what the
buffer on disk says); :func:`render` turns it into short lines, most important
first: is it running, is data waiting, is it being delivered, is any source failing.
"""

from __future__ import annotations

import textwrap
import time
from typing import Any, Dict, Iterable, List, Optional

__all__ = ["DrainMeter", "ago", "render", "size"]

WIDTH = 80
HUNG_AFTER = 5.0  # seconds a read may take before status calls it hung


def ago(seconds: Optional[float]) -> str:
    """``3 s``, ``4m05s``, ``2h10m``, ``3d04h``."""
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class DrainMeter:
    """The delivery rate over the last ``window`` seconds, from samples of ``written``."""

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self._samples: List[tuple] = []

    def sample(self, now: float, written: int) -> Optional[float]:
        """Record ``written`` at ``now``; returns points/s over the window (None at first)."""
        self._samples.append((now, written))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.pop(0)
        first_t, first_w = self._samples[0]
        if now - first_t <= 0:
            return None
        return max(0.0, (written - first_w) / (now - first_t))


def _wrap(line: str) -> List[str]:
    """A long line (a path, a server's reason) wrapped below its own indent."""
    if len(line) <= WIDTH:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return textwrap.wrap(line, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def _buffer_lines(data: Dict[str, Any], now: float) -> Iterable[str]:
    buf = data["buffer"]
    oldest = buf.get("oldest")
    held = int(data.get("pending") or 0)  # the running agent's points in memory
    if data.get("unsaved"):
        yield f"the last run was killed holding {data['unsaved']:,} points in memory: " \
              "counted in lost_unsaved and lost_in_flight"
    if not buf["points"]:
        yield f"buffer: {held:,} points in memory, none on disk" if held else \
            "buffer: empty (everything accepted has been delivered)"
        return
    line = f"buffer: {buf['points']:,} points ({size(buf['bytes'])}) on disk"
    if held:
        line += f", {held:,} in memory"
    if oldest:
        line += f", oldest {ago(now - float(oldest))} old"
    yield line
    if data.get("stale"):
        yield "  (as of the last checkpoint: the agent did not stop cleanly; the next start " \
              "counts the rest)"
    rate = (data.get("delivery") or {}).get("rate")
    if rate:
        yield f"  draining {rate:,.0f} points/s, empty in about {ago(buf['points'] / rate)}"
    elif data.get("live"):
        yield "  not draining: nothing delivered in the last 30 s (see last error)"


def _delivery_lines(data: Dict[str, Any], now: float) -> Iterable[str]:
    counters = data.get("counters", {})
    target = (data.get("delivery") or {}).get("url", "influxdb")
    last_ok = counters.get("last_success")
    yield f"{target}: last success {ago(now - float(last_ok)) + ' ago' if last_ok else 'never'}"
    if counters.get("last_error"):
        yield f"  last error: {counters['last_error']}"
    names = ("accepted", "written", "rejected", "evicted", "dropped_invalid")
    yield "counters: " + "  ".join(f"{n.split('_')[0]} {counters.get(n, 0):,}" for n in names)
    extra = {n: counters.get(n, 0) for n in ("dropped_disk_full", "lost_corrupt", "lost_unsaved",
                                               "lost_in_flight", "write_errors", "retries")
             if counters.get(n)}
    if extra:
        yield "  " + "  ".join(f"{n} {v:,}" for n, v in extra.items())


def _source_lines(src: Dict[str, Any], now: float) -> Iterable[str]:
    name = str(src.get("name"))
    if "subscriptions" in src:  # the MQTT bridge
        from ..sources.mqtt.ledger import status_lines as mqtt_status_lines

        state = "connected" if src.get("connected") else (
            "stopped" if src.get("state") == "stopped" else "DISCONNECTED")
        yield f"  {name:<12} {state:<12} unacked {src.get('unacked', 0)}, " \
              f"queued {src.get('queued', 0)}"
        for line in mqtt_status_lines(src):
            yield "    " + line
    else:
        state = str(src.get("state", "?"))
        busy = float(src.get("busy_since") or 0)
        if busy and now - busy >= HUNG_AFTER:
            state = "HUNG"
        last = float(src.get("last_time") or 0)
        when = ago(now - last) + " ago" if last else "never"
        line = f"  {name:<12} {state:<8} last reading {when}"
        line += f", {src.get('points', 0):,} points, {src.get('errors', 0):,} errors"
        yield line
        if state == "HUNG":
            yield f"    a read has not returned for {ago(now - busy)}"
        if src.get("overruns"):
            yield f"    {src['overruns']:,} polls skipped (a read took longer than the interval)"
    if src.get("last_error") and src.get("state") != "ok":
        yield f"    last error: {src['last_error']}"


def render(data: Dict[str, Any], now: Optional[float] = None) -> List[str]:
    """The status as lines of at most 80 characters."""
    now = time.time() if now is None else now
    lines: List[str] = []
    if data.get("live"):
        up = ago(now - float(data.get("started") or now))
        lines.append(f"agent: running, pid {data['pid']}, up {up} "
                     f"(status {ago(now - float(data.get('time', now)))} old)")
    else:
        lines.append("agent: not running")
    lines.extend(_buffer_lines(data, now))
    lines.extend(_delivery_lines(data, now))
    sources = data.get("sources", [])
    if sources:
        lines.append("sources:")
        for src in sources:
            lines.extend(_source_lines(src, now))
    for path in data.get("dead_letters", []):
        lines.append(f"dead letters: {path}")
    return [part for line in lines for part in _wrap(line)]
