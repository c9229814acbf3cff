"""I2C sources: a driver polled on the clock grid, one thread per device.

Devices on one bus share one bus handle and are serialised by the bus's lock
(an I2C transaction must not interleave with another). ``bus: emulated`` uses
the emulated bus with the demo chips, so the agent runs on a laptop.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ..destination import Destination
from ..errors import SensorError
from .base import Sink, Source
from .schedule import DeviceBackoff, Grid

__all__ = ["I2CSource", "open_bus"]

_BUSES: Dict[Any, Tuple[Any, threading.Lock]] = {}
_BUSES_LOCK = threading.Lock()


def open_bus(spec: Any) -> Tuple[Any, threading.Lock]:
    """The shared handle and lock of a bus: 1, "/dev/i2c-1" or "emulated"."""
    with _BUSES_LOCK:
        found = _BUSES.get(spec)
        if found is None:
            if spec == "emulated":
                from ..sensors.emulated import demo_bus

                bus: Any = demo_bus()
            else:
                from smbus2 import SMBus

                bus = SMBus(spec)
            found = _BUSES[spec] = (bus, threading.Lock())
        return found


def _describe(exc: BaseException, address: int) -> str:
    if isinstance(exc, OSError) and exc.errno == 121:
        return f"no answer at address 0x{address:02x} (errno 121): check wiring and address"
    if isinstance(exc, OSError) and exc.errno == 2:
        where = exc.filename or "the I2C bus"
        return f"{where} does not exist: enable I2C (see hardware/README.md)"
    if isinstance(exc, PermissionError):
        return f"no permission to open the bus ({exc}): add the user to the i2c group"
    return f"{type(exc).__name__}: {exc}"


class I2CSource(Source):
    """Polls one I2C chip every ``interval`` on the grid."""

    kind = "i2c"

    def __init__(self, config: Any, sink: Sink, dest: Destination,
                 default_tags: Mapping[str, str], *, round_interval: bool = True,
                 jitter: float = 0.0, clock: Callable[[], float] = time.time,
                 driver_factory: Optional[Callable[[], Any]] = None) -> None:
        super().__init__(config, sink, dest, default_tags)
        self.interval = float(config.interval)
        self.round_interval = round_interval
        self.jitter = jitter
        self.clock = clock
        self._rng = random.Random()
        self._driver: Any = None
        self._lock: Optional[threading.Lock] = None
        self._factory = driver_factory or self._make_driver
        self.backoff = DeviceBackoff(base=max(self.interval, 1.0))
        self.poll_times: list = []  # sample times of the last polls (bounded), for tests/bench

    def _make_driver(self) -> Any:
        from ..sensors import I2C_DRIVERS

        bus, self._lock = open_bus(self.config.bus)
        return I2C_DRIVERS[self.config.driver](bus, self.config.address, dict(self.config.options))

    # -- one poll -------------------------------------------------------------

    def poll(self) -> Optional[Dict[str, Any]]:
        """Read the chip once; the reading, or ``None`` after a counted failure."""
        try:
            if self._driver is None:
                self._driver = self._factory()
            stamp = time.time_ns()
            if self._lock is not None:
                with self._lock:
                    reading = self._driver.read()
            else:
                reading = self._driver.read()
        except (OSError, SensorError, ValueError, TimeoutError) as exc:
            self._driver = None  # set the chip up again (calibration, mode) when it returns
            self.backoff = self.backoff.failed(self.clock())
            self.failed(_describe(exc, self.config.address))
            return None
        self.backoff = self.backoff.succeeded()
        self.emit([dict(reading)], stamp)
        return dict(reading)

    # -- the loop -------------------------------------------------------------

    def run(self) -> None:
        grid = Grid.for_source(self.interval, self.round_interval, self.clock())
        deadline = grid.next_after(self.clock())
        while True:
            target = deadline + (self._rng.uniform(0, self.jitter) if self.jitter else 0.0)
            if self._stop.wait(max(0.0, target - self.clock())):
                return
            now = self.clock()
            if self.backoff.ready(now):
                self.poll_times.append(now)
                del self.poll_times[:-1000]
                self.poll()
            deadline, skipped = grid.advance(deadline, self.clock())
            if skipped:
                self.status.overruns += skipped
                self.log.warning("%s: a read overran its %.3gs interval; skipped %d poll(s)",
                                 self.name, self.interval, skipped)

    def close(self) -> None:
        self._driver = None
