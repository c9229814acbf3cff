"""``edge-agent --once``: one full cycle, for a technician standing at the device.

Reads every source once (MQTT: a separate client id and a clean session, so
the running agent's persistent session is untouched), delivers through the
buffer including any backlog, and prints a human report. ``--dry-run`` prints
the line protocol it would write and touches nothing (no buffer, no network).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Sequence, TextIO

from ..config import Config
from ..delivery.transport import strip_userinfo
from ..destination import Destination, retarget_to

__all__ = ["run_once", "ListSink"]


class ListSink:
    """A sink that only collects lines (dry run, and reading before delivery)."""

    def __init__(self) -> None:
        self.lines: List[str] = []

    def add(self, lines: Sequence[str], dest: Optional[Destination] = None) -> int:
        self.lines.extend(lines)
        return len(self.lines)

    def wait_durable(self, ticket: int, timeout: Optional[float] = None) -> bool:
        return True


def _fmt_reading(reading: Dict[str, Any]) -> str:
    parts = []
    for key, value in reading.items():
        if key.startswith("_"):
            continue
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def read_sources(config: Config, sink: ListSink, dest: Destination, wait: float,
                 out: TextIO) -> bool:
    """Read every enabled source once into ``sink``; print a line each. ``True`` if all ok."""
    from ..sources.i2c import I2CSource
    from ..sources.serial import SerialSource

    ok = True
    out.write("sources:\n")
    for entry in config.sources:
        if not entry.enabled:
            out.write(f"  {entry.name:<14} disabled\n")
            continue
        before = len(sink.lines)
        error = ""
        detail = ""
        if entry.type == "i2c":
            src = I2CSource(entry, sink, dest, config.tags)
            reading = src.poll()
            error = "" if reading is not None else src.status.last_error
            detail = _fmt_reading(reading or {})
        elif entry.type == "serial":
            serial_src = SerialSource(entry, sink, dest, config.tags)
            readings = serial_src.read_once(max(wait, 3.0))
            error = "" if readings else serial_src.status.last_error
            detail = _fmt_reading(readings[0]) if readings else ""
        elif entry.type == "mqtt":
            from ..sources.mqtt.once import collect_once

            result = collect_once(entry, wait, default_tags=dict(config.tags),
                                  precision=dest.precision)
            sink.add(result.lines, dest)
            if not result.connected:
                where = strip_userinfo(getattr(entry, "url", ""))
                error = result.error or f"cannot connect to {where}"
            received = sum(s.get("messages_received", 0) for s in result.subscriptions.values())
            rejected = sum(s.get("messages_rejected", 0) for s in result.subscriptions.values())
            detail = f"{received} message(s) in {wait:g}s, {rejected} rejected"
        points = len(sink.lines) - before
        if error:
            ok = False
            out.write(f"  {entry.name:<14} ERROR  {error}\n")
        else:
            out.write(f"  {entry.name:<14} ok     {points} point(s)  {detail}\n")
    return ok


def _deliver(config: Config, lines: List[str], dest: Destination, out: TextIO) -> bool:
    from ..buffer.durable import DurableWriter
    from ..delivery.flusher import Flusher
    from ..delivery.outcome import Outcome
    from ..delivery.transport import InfluxSettings, Transport
    from ..options import WriteOptions
    from .store import open_buffer, open_dead_letters

    options = WriteOptions(**config.write_options())
    state = config.agent.state_dir
    os.makedirs(state, exist_ok=True)
    buffer = open_buffer(config)
    dead = open_dead_letters(config)
    transport = Transport(InfluxSettings(**config.influx.settings()))
    ok = True
    try:
        writer = DurableWriter(buffer, commit_interval=options.commit_interval / 1000,
                               batch_size=options.batch_size)
        if lines:
            writer.add(lines, dest)
        writer.close()
        backlog = buffer.stats().points
        out.write(f"influxdb: {strip_userinfo(config.influx.url)} (api {config.influx.api}, "
                  f"bucket {dest.bucket})\n")
        ping = transport.ping()
        if ping.outcome is Outcome.OK:
            out.write(f"  reachable  yes, {ping.latency * 1000:.0f} ms  {ping.message}\n")
        else:
            ok = False
            out.write(f"  reachable  NO: {ping.message}\n")
        written_before = int(buffer.counters.get("written") or 0)
        flusher = Flusher(buffer, transport, options, dead, durable=True,
                          route=retarget_to(dest))
        # A technician waits for this report: stop at the first failure.
        delivered = flusher.drain(min(30.0, options.max_retry_delay / 1000),
                                  give_up_on_failure=True)
        written = int(buffer.counters.get("written") or 0) - written_before
        last = flusher.last_result
        if last is not None and last.outcome is Outcome.AUTH:
            out.write(f"  authorised NO: HTTP {last.status} {last.message}\n")
        elif last is not None and last.status == 0:
            out.write("  authorised unknown (no answer)\n")
        elif last is not None:
            out.write("  authorised yes\n")
        if not delivered:
            ok = False
            reason = last.message if last is not None else "unknown"
            out.write(f"  written    {written} of {backlog} point(s); kept for later: {reason}\n")
        else:
            out.write(f"  written    {written} point(s) (incl. backlog)\n")
        stats = buffer.stats()
        oldest = (f"{time.time() - stats.oldest:.0f}s old" if stats.oldest else "none")
        out.write(f"buffer: {stats.points} point(s), {stats.segments} segment(s), "
                  f"{stats.bytes} bytes, oldest {oldest}\n")
        rejected = int(buffer.counters.get("rejected") or 0)
        files = dead.files()
        out.write(f"dead letters: {rejected} line(s) total" + (f" in {files[0]}" if files else "")
                  + "\n")
    finally:
        buffer.close()
        transport.close()
    return ok


def run_once(config: Config, out: TextIO, dry_run: bool = False, wait: float = 5.0) -> int:
    """The diagnostic cycle; exit code 0 when everything worked, 1 otherwise."""
    dest = config.influx.destination()
    sink = ListSink()
    sources_ok = read_sources(config, sink, dest, wait, out)
    if dry_run:
        out.write(f"line protocol ({len(sink.lines)} point(s), not written):\n")
        for line in sink.lines:
            out.write(line + "\n")
        return 0 if sources_ok else 1
    from .commands import read_status

    running = read_status(config)
    if running is not None:
        # The running agent owns the buffer (one writer per SQLite log): write
        # these readings directly and leave its backlog to it.
        delivered_ok = _deliver_direct(config, sink.lines, dest, out, int(running["pid"]))
    else:
        delivered_ok = _deliver(config, sink.lines, dest, out)
    return 0 if sources_ok and delivered_ok else 1


def _deliver_direct(config: Config, lines: List[str], dest: Destination, out: TextIO,
                    pid: int) -> bool:
    from ..delivery.outcome import Outcome
    from ..delivery.transport import InfluxSettings, Transport

    out.write(f"influxdb: {strip_userinfo(config.influx.url)} (api {config.influx.api}, "
              f"bucket {dest.bucket})\n")
    with Transport(InfluxSettings(**config.influx.settings())) as transport:
        ping = transport.ping()
        if ping.outcome is Outcome.OK:
            out.write(f"  reachable  yes, {ping.latency * 1000:.0f} ms  {ping.message}\n")
        else:
            out.write(f"  reachable  NO: {ping.message}\n")
        result = transport.write(dest, "\n".join(lines).encode("utf-8")) if lines else None
    if result is not None and result.outcome is Outcome.AUTH:
        out.write(f"  authorised NO: HTTP {result.status} {result.message}\n")
    elif result is not None and result.status:
        out.write("  authorised yes\n")
    ok = result is None or result.outcome is Outcome.OK
    if ok:
        out.write(f"  written    {len(lines)} point(s) directly\n")
    else:
        assert result is not None
        out.write(f"  written    0 of {len(lines)} point(s): {result.message} (not buffered)\n")
    out.write(f"buffer: in use by the running agent (pid {pid}); see edge-agent status\n")
    return ok and ping.outcome is Outcome.OK

