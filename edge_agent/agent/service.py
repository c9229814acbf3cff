"""The long-running agent: sources -> durable writer -> disk buffer -> flusher.

Sources and the flusher run side by side in their own threads: a failing
source never stops another, a failing InfluxDB never stops collection. The
main thread only supervises: signals (SIGTERM/SIGINT stop, SIGHUP reloads),
systemd notifications and watchdog pings while healthy, internal metrics, and
the status file that ``edge-agent status`` reads.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ..buffer.durable import DurableWriter
from ..config import Config, load_config
from ..delivery.flusher import Flusher
from ..delivery.transport import InfluxSettings, Transport, strip_userinfo
from ..destination import Destination, retarget_to
from ..errors import EdgeAgentError
from ..lineproto.encoder import DROPS, LineEncoder
from ..options import WriteOptions
from ..redact import register_secret
from .runtime import STATUS_FILE, status_path
from .sdnotify import Notifier
from .status_view import DrainMeter
from .store import open_buffer, open_dead_letters

__all__ = ["Agent", "build_sources", "STATUS_FILE"]

log = logging.getLogger("edge_agent.agent")

SHUTDOWN_FLUSH_TIMEOUT = 10.0
EVICTION_CHECK = 60.0  # seconds between max_age checks
# Seconds a polled reading InfluxDB has not taken yet may stay in memory (the
# loss window of kill -9 or a power cut while InfluxDB is unreachable): long
# enough for one commit to cost about what the readings weigh on an SD card
# (README "SD cards"); short with sync: full, which asks for durability first.
HOLD = {"normal": 60.0, "full": 5.0}


def register_secrets(config: Config) -> None:
    register_secret(config.influx.token)
    register_secret(config.influx.password)
    for source in config.sources:
        register_secret(getattr(source, "password", None))


def build_sources(config: Config, sink: Any, dest: Destination) -> List[Any]:
    """One source object per enabled source entry of the config."""
    from ..sources.i2c import I2CSource
    from ..sources.serial import SerialSource

    sources: List[Any] = []
    for entry in config.sources:
        if not entry.enabled:
            continue
        if entry.type == "i2c":
            sources.append(I2CSource(entry, sink, dest, config.tags,
                                     round_interval=config.agent.round_interval,
                                     jitter=config.agent.collection_jitter))
        elif entry.type == "serial":
            sources.append(SerialSource(entry, sink, dest, config.tags))
        elif entry.type == "mqtt":
            from ..sources.mqtt.source import MqttSource

            acks = sink.for_acks(ack_window(config, entry)) \
                if getattr(sink, "hold", None) is not None else sink
            sources.append(MqttSource(entry, acks, state_dir=config.agent.state_dir,
                                      default_tags=dict(config.tags), precision=dest.precision,
                                      dest=dest, rejected_max=config.buffer.dead_letter_max))
    return sources


def ack_window(config: Config, entry: Any) -> Optional[float]:
    """How long MQTT acks may wait for InfluxDB before the points are committed (s).

    MQTT 5: the agent's ReceiveMaximum (1000) lets the broker keep sending while
    a flush interval and a round trip pass. MQTT 3.1.1: mosquitto's window is 20
    messages, so ``commit_interval`` (None).
    """
    import paho.mqtt.client as mqtt

    from ..sources.mqtt.client import _protocol

    if _protocol(entry) != mqtt.MQTTv5:
        return None
    return config.write.flush_interval / 1000 + 1.0


def source_status(source: Any) -> Dict[str, Any]:
    status = source.status
    return dict(status() if callable(status) else status.as_dict())


class Agent:
    """Owns the buffer, the flusher and the sources for one config."""

    def __init__(self, config: Config, notifier: Optional[Notifier] = None) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        register_secrets(config)
        os.makedirs(config.agent.state_dir, exist_ok=True)
        self.options = WriteOptions(**config.write_options())
        self.buffer = open_buffer(config)
        self.dead_letters = open_dead_letters(config)
        commit = self.options.commit_interval / 1000
        # buffer.hold (SD cards): points go to InfluxDB from memory and what is still
        # undelivered after HOLD is committed; the writer is then the flusher's queue.
        self.writer = DurableWriter(self.buffer, commit_interval=commit,
                                    batch_size=self.options.batch_size,
                                    hold=max(HOLD[config.buffer.sync], commit)
                                    if config.buffer.hold else None)
        self.dest = config.influx.destination()
        self.transport = Transport(InfluxSettings(**config.influx.settings()))
        self.flusher = Flusher(self._queue(), self.transport, self.options, self.dead_letters,
                               durable=True, route=retarget_to(self.dest))
        self.sources = build_sources(config, self.writer, self.dest)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._metrics_encoder = LineEncoder(self.dest.precision, config.tags)
        self.started = time.time()
        self._drain = DrainMeter()
        self._status_path = status_path(config.agent.state_dir)

    # -- signals --------------------------------------------------------------

    def _queue(self) -> Any:
        """What the flusher drains: the writer itself when it holds points in memory."""
        return self.writer if self.writer.hold is not None else self.buffer

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def request_stop(self) -> None:
        self._stop.set()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self.flusher.start()
        for source in self.sources:
            source.start()
        names = ", ".join(s.name for s in self.sources) or "no sources"
        log.info("edge-agent started: %s -> %s (%s)", names, strip_userinfo(self.config.influx.url),
                 self.dest.bucket)
        self.notifier.ready(f"collecting from {len(self.sources)} source(s)")

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; returns the exit code."""
        self.start()
        watchdog = self.notifier.watchdog_interval
        metrics_every = self.config.agent.internal_metrics
        next_metrics = time.monotonic() + metrics_every if metrics_every else None
        next_status = 0.0
        next_eviction = time.monotonic() + EVICTION_CHECK
        try:
            while not self._stop.wait(min(1.0, watchdog or 1.0)):
                if self._reload.is_set():
                    self._reload.clear()
                    self._guarded("reload", self.reload)
                now = time.monotonic()
                if watchdog and self.healthy():
                    self.notifier.watchdog()
                if next_metrics is not None and now >= next_metrics:
                    self._guarded("internal metrics", self.write_internal_metrics)
                    next_metrics = now + metrics_every
                if now >= next_status:
                    self._guarded("status file", self.write_status)
                    next_status = now + 2.0
                if now >= next_eviction:  # max_age holds during an outage with no new data
                    self._evict_expired()
                    next_eviction = now + EVICTION_CHECK
        finally:
            self.shutdown()
        return 0

    def _guarded(self, what: str, task: Callable[[], object]) -> None:
        """A periodic task that fails is logged; the agent keeps collecting."""
        try:
            task()
        except Exception as exc:
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc)

    def _evict_expired(self) -> None:
        try:
            self.buffer.evict_expired()
        except EdgeAgentError as exc:
            log.error("buffer age check failed: %s", exc)

    def healthy(self) -> bool:
        """The threads that must run are running (the watchdog's condition)."""
        thread = self.flusher._thread
        if thread is None or not thread.is_alive():
            return False
        if not self.writer.alive:
            return False
        return all(getattr(s, "alive", True) for s in self.sources)

    def stop_sources(self) -> None:
        for source in self.sources:
            try:
                source.stop()
            except Exception as exc:  # one stuck source must not block shutdown
                log.error("source %s did not stop cleanly: %s", source.name, exc)

    def shutdown(self, flush_timeout: float = SHUTDOWN_FLUSH_TIMEOUT) -> bool:
        """Stop sources, commit what is pending, try one last bounded flush."""
        self.notifier.stopping("stopping: committing and flushing")
        self.stop_sources()
        self.writer.close()
        self.flusher.stop()
        # One last try, bounded; a server that is down is not waited for.
        delivered = self.flusher.drain(flush_timeout, give_up_on_failure=True)
        left = self.buffer.stats().points
        if left:
            log.info("stopped with %d point(s) kept in the buffer for the next start", left)
        self.write_status()
        self.buffer.close()
        self.transport.close()
        return delivered

    # -- reload ---------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config; an invalid one is refused and the old one kept."""
        self.notifier.reloading()
        try:
            new = load_config(self.config.path)
        except EdgeAgentError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self.notifier.ready("reload refused: config invalid")
            return False
        if new.agent.state_dir != self.config.agent.state_dir:
            log.warning("agent.state_dir changed: takes effect at the next restart")
        dest = new.influx.destination()
        try:  # build everything new before touching what runs
            transport = Transport(InfluxSettings(**new.influx.settings()))
            options = WriteOptions(**new.write_options())
            sources = build_sources(new, self.writer, dest)
        except (EdgeAgentError, OSError, ValueError) as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self.notifier.ready("reload refused: config invalid")
            return False
        register_secrets(new)
        # Hand over: every old source stops (an MQTT source commits, acks and closes its
        # dedup index) before a new one starts (and only then loads that index).
        self.stop_sources()
        self.flusher.stop()
        self.transport.close()
        self.config, self.dest, self.transport, self.options = new, dest, transport, options
        self._metrics_encoder = LineEncoder(dest.precision, new.tags)
        self.flusher = Flusher(self._queue(), self.transport, self.options, self.dead_letters,
                               durable=True, route=retarget_to(self.dest))
        self.flusher.start()
        self.sources = sources
        for source in self.sources:
            self._guarded(f"starting source {source.name}", source.start)
        log.info("config reloaded: %d source(s)", len(self.sources))
        self.notifier.ready(f"reloaded: collecting from {len(self.sources)} source(s)")
        return True

    # -- status and internal metrics -------------------------------------------

    def snapshot(self) -> Dict[str, Any]:
        stats = self.buffer.stats()
        fields, points = DROPS.take()
        if fields or points:
            self.buffer.counters.add("dropped_invalid", fields + points)
        counters = self.buffer.counters.snapshot()
        return {
            "pid": os.getpid(),
            "time": time.time(),
            "started": self.started,
            "buffer": stats.as_dict(),
            "pending": self.writer.pending,  # accepted, in memory, not yet durable
            "counters": counters,
            "dead_letters": self.dead_letters.files(),
            "sources": [source_status(s) for s in self.sources],
            "delivery": {"url": strip_userinfo(self.config.influx.url),
                         "rate": self._drain.sample(time.monotonic(),
                                                    int(counters.get("written") or 0))},
        }

    def write_status(self) -> None:
        path = self._status_path
        tmp = path + ".tmp"
        text = json.dumps(self.snapshot(), default=str)
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except OSError as exc:
            # A full disk has no block for a new file: overwrite the old one in place
            # (its block is already there), so `edge-agent status` still works.
            try:
                with open(path, "r+", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.truncate()
            except OSError:
                log.warning("cannot write %s: %s", path, exc)

    def write_internal_metrics(self) -> None:
        snap = self.snapshot()
        fields: Dict[str, Any] = {
            k: v for k, v in snap["counters"].items() if isinstance(v, (int, float))
            and not isinstance(v, bool)}
        fields.update(buffer_points=snap["buffer"]["points"], buffer_bytes=snap["buffer"]["bytes"])
        fields["sources_failing"] = sum(1 for s in snap["sources"] if s.get("state") == "error")
        now = time.time_ns()
        lines = [self._metrics_encoder.encode("edge_agent", None, fields, now, "ns")]
        for source in self.sources:  # MQTT: per subscription, edge_agent_mqtt
            for tags, values in getattr(source, "metrics", lambda: [])():
                lines.append(self._metrics_encoder.encode("edge_agent_mqtt", tags, values, now,
                                                          "ns"))
        kept = [line for line in lines if line]
        if kept:
            self.writer.add(kept, self.dest)
