"""Serial sources: a port read continuously, frames parsed into readings.

Any pyserial URL is a port (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``,
``socket://``, ``rfc2217://``, and ``emulated://pms5003`` for the demo). Each
complete frame becomes one point, timestamped when it arrived. Devices that
only answer when asked (a parser with a ``request()``) are asked every
``interval``. A port that vanishes is closed and reopened with backoff when it
returns; bad frames are counted by the parser, never turned into readings.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, List, Mapping, Optional

from ..destination import Destination
from .base import Sink, Source
from .schedule import DeviceBackoff, Grid

__all__ = ["SerialSource", "open_port"]


def open_port(config: Any, timeout: float = 0.2) -> Any:
    import serial

    from .. import sensors  # noqa: F401  (registers the emulated:// URL handler)

    kwargs = {"baudrate": config.baudrate, "timeout": timeout}
    if config.bytesize:
        kwargs["bytesize"] = int(config.bytesize)
    if config.parity:
        kwargs["parity"] = config.parity
    if config.stopbits:
        kwargs["stopbits"] = config.stopbits
    return serial.serial_for_url(config.port, **kwargs)


class SerialSource(Source):
    """Reads one serial device and emits a point per frame."""

    kind = "serial"

    def __init__(self, config: Any, sink: Sink, dest: Destination,
                 default_tags: Mapping[str, str], *,
                 clock: Callable[[], float] = time.monotonic,
                 opener: Optional[Callable[[Any], Any]] = None) -> None:
        super().__init__(config, sink, dest, default_tags)
        self.clock = clock
        self._open = opener or open_port
        self._port: Any = None
        self.parser = self._make_parser()
        self.backoff = DeviceBackoff(base=1.0, cap=30.0)
        self._bad_frames_seen = 0

    def _make_parser(self) -> Any:
        from ..sensors import SERIAL_PARSERS

        return SERIAL_PARSERS[self.config.driver](dict(self.config.options))

    # -- port -----------------------------------------------------------------

    def _connect(self) -> bool:
        # a fresh parser: a half frame from before the port vanished must not be
        # glued to the first bytes after it returns
        self.parser = self._make_parser()
        self._bad_frames_seen = 0
        try:
            self._port = self._open(self.config)
            hello = self.parser.startup()
            if hello:
                self._port.write(hello)
        except Exception as exc:  # pyserial raises SerialException, OSError, ValueError
            self.close()  # opened but the first write failed: release the port
            self.backoff = self.backoff.failed(self.clock())
            self.failed(f"cannot open {self.config.port}: {_reason(exc)}")
            return False
        self.backoff = self.backoff.succeeded()
        return True

    def close(self) -> None:
        if self._port is not None:
            # closing a vanished port may fail; it is gone either way
            with contextlib.suppress(Exception):
                self._port.close()
            self._port = None

    # -- reading --------------------------------------------------------------

    def read_once(self, timeout: float) -> List[dict]:
        """Open, read until one reading arrives or ``timeout`` passes, close (``--once``)."""
        deadline = self.clock() + timeout
        if not self._connect():
            return []
        try:
            request = self.parser.request()
            if request:
                self._port.write(request)
            while self.clock() < deadline:
                readings = self._read_chunk()
                if readings:
                    for reading in readings:
                        self.emit([dict(reading)])
                    return readings
            self.failed(f"no valid frame from {self.config.port} within {timeout:g}s")
            return []
        except Exception as exc:
            self.failed(f"{self.config.port}: {_reason(exc)}")
            return []
        finally:
            self.close()

    def _read_chunk(self) -> List[dict]:
        data = self._port.read(self._port.in_waiting or 1)
        if not data:
            return []
        readings = list(self.parser.feed(data))
        bad = self.parser.errors - self._bad_frames_seen
        if bad > 0:  # bad frames are counted, never turned into readings
            self._bad_frames_seen = self.parser.errors
            self.status.errors += bad
            self.status.last_error = self.parser.last_error
            self.log.debug("%s: %d bad frame(s): %s", self.name, bad, self.parser.last_error)
        return readings

    def run(self) -> None:
        # devices that only answer when asked are asked on a grid (no drift)
        grid = Grid.for_source(float(self.config.interval), False, self.clock())
        next_request = self.clock()
        while not self._stop.is_set():
            if self._port is None:
                wait = max(0.0, self.backoff.retry_at - self.clock())
                if (wait > 0 and self._wait(wait)) or not self._connect():
                    continue
            now = self.clock()
            try:
                request = self.parser.request()
                if request and now >= next_request:
                    self._port.write(request)
                    next_request = grid.next_after(now)
                readings = self._read_chunk()
            except Exception as exc:  # the port vanished (unplugged): reopen later
                self.close()
                self.backoff = self.backoff.failed(self.clock())
                self.failed(f"{self.config.port} failed: {_reason(exc)}; reopening")
                continue
            for reading in readings:  # each frame its own timestamp: no two collide
                self.emit([reading])


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
