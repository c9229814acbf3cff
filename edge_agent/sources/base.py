"""What every source shares: its sink, its status, its thread, its error reporting.

A source turns readings into lines of line protocol and hands them to a sink
(``add(lines, dest) -> ticket``). A failing source never stops another: each
catches what a device can throw, counts it, logs it once per change of state,
and waits on its own backoff. A serial source runs in its own thread; the I2C
sources of one bus share that bus's polling thread (:mod:`.poller`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence

from ..destination import Destination
from ..errors import BufferError_
from ..lineproto.encoder import LineEncoder
from ..throttle import LogThrottle

__all__ = ["Sink", "Source", "SourceStatus"]


class Sink(Protocol):
    def add(self, lines: Sequence[str], dest: Destination) -> int: ...

    def wait_durable(self, ticket: int, timeout: Optional[float] = None) -> bool: ...


@dataclass
class SourceStatus:
    """What ``status`` and ``--once`` show for one source."""

    name: str
    type: str
    state: str = "starting"  # starting | ok | error | stopped
    reads: int = 0
    points: int = 0
    errors: int = 0
    overruns: int = 0
    last_error: str = ""
    last_reading: Dict[str, Any] = field(default_factory=dict)
    last_time: float = 0.0
    busy_since: float = 0.0  # clock time a read started and has not returned yet; 0 = idle

    def as_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


class Source:
    """Base of the polled (I2C) and streamed (serial) sources."""

    kind = "source"

    def __init__(self, config: Any, sink: Sink, dest: Destination,
                 default_tags: Mapping[str, str]) -> None:
        self.config = config
        self.name: str = config.name
        self.sink = sink
        self.dest = dest
        self.measurement: str = config.measurement or config.name
        self.encoder = LineEncoder(dest.precision, {**default_tags, **dict(config.tags)})
        self.status = SourceStatus(self.name, self.kind)
        self.log = logging.getLogger(f"edge_agent.source.{self.name}")
        # a flapping device (fails, reads, fails ...) must not log twice a poll
        self.throttle = LogThrottle(self.log)
        self._stop = threading.Event()
        # waits go through here so a test can drive the loop with a fake clock
        self._wait: Callable[[float], bool] = self._stop.wait
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._guarded_run, name=f"source-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # stuck in a device call; it is a daemon thread
                self.log.warning("%s: still inside a device read after %gs; not waiting for it",
                                 self.name, timeout)
            self._thread = None
        self.status.state = "stopped"
        self.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _guarded_run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
                return
            except Exception as exc:  # a bug in one source must not kill it for good
                self.failed(f"unexpected error: {type(exc).__name__}: {exc}")
                self.log.debug("%s: traceback", self.name, exc_info=True)
                self._stop.wait(5.0)

    def run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release the device (port, bus handle)."""

    # -- readings -------------------------------------------------------------

    def emit(self, readings: List[Dict[str, Any]], stamp_ns: Optional[int] = None) -> int:
        """Turn readings into lines (timestamped at sample time) and hand them to the sink."""
        stamp = time.time_ns() if stamp_ns is None else stamp_ns
        lines = []
        fields: Dict[str, Any] = {}
        for reading in readings:
            fields = dict(reading)  # never change the caller's dict
            tags = fields.pop("_tags", None)
            line = self.encoder.encode(self.measurement, tags, fields, stamp, "ns")
            if line is not None:
                lines.append(line)
        if lines:
            try:
                self.sink.add(lines, self.dest)
            except BufferError_ as exc:  # the disk refuses writes: this reading is lost
                count_refused = getattr(self.sink, "count_refused", None)
                if count_refused is not None:
                    count_refused(len(lines))
                self.failed(f"reading dropped: {exc}")
                return 0
        self.status.reads += 1
        self.status.points += len(lines)
        if readings:
            self.status.last_reading = fields
        self.status.last_time = stamp / 1e9
        if self.status.state != "ok":
            if self.status.state == "error":
                self.throttle.log(logging.INFO, "recovered", "%s: reading again", self.name)
            self.status.state = "ok"
        return len(lines)

    def failed(self, message: str) -> None:
        """Count a failure; log it when the state changes or the reason does."""
        status = self.status
        status.errors += 1
        if status.state != "error" or status.last_error != message:
            self.throttle.error("failed", "%s: %s", self.name, message)
        status.state = "error"
        status.last_error = message
