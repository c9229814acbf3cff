"""I2C sources: a driver polled on the clock grid, one polling thread per bus.

Devices on one bus share one bus handle and one poller (:mod:`.poller`), which
runs their reads interleaved: each read is a chain of steps (bus transactions)
separated by conversion waits, and the bus's lock is held through each step,
so transactions never interleave. ``bus: emulated`` uses the emulated bus with
the demo chips, so the agent runs on a laptop.

A device that does not answer (errno 121), fails its CRC or times out is
counted, reported once in ``status`` and retried on its own backoff; its
driver is set up again when it returns. A device that hangs holds its bus: the
others on it lose the polls that fall due meanwhile (counted as "bus busy",
not as their fault) and keep their grid; devices on other buses do not notice.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from typing import Any, Callable, Deque, Dict, Generator, Mapping, Optional, Tuple

from ..destination import Destination
from ..errors import SensorError
from ..sensors._common import Steps, run_steps, steps_of
from .base import Sink, Source
from .poller import MAX_WAIT, BusPoller, join, leave
from .schedule import MAX_JITTER_FRACTION, DeviceBackoff, Grid

__all__ = ["I2CSource", "MAX_WAIT", "bus_key", "forget_bus", "open_bus", "register_bus"]

_BUSES: Dict[Any, Tuple[Any, threading.Lock]] = {}
_BUSES_LOCK = threading.Lock()

#: how long a poll waits for its bus (a fraction of the interval), so a device
#: that hangs while holding the bus costs the others one lost poll, not their schedule
BUS_PATIENCE = 0.9


def bus_key(spec: Any) -> Any:
    """One key per physical bus: ``1``, ``"1"`` and ``"/dev/i2c-1"`` are the same bus."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        return f"/dev/i2c-{spec}"
    if isinstance(spec, str) and spec.isdigit():
        return f"/dev/i2c-{int(spec)}"
    return spec


def open_bus(spec: Any) -> Tuple[Any, threading.Lock]:
    """The shared handle and lock of a bus: 1, "/dev/i2c-1" or "emulated"."""
    key = bus_key(spec)
    with _BUSES_LOCK:
        found = _BUSES.get(key)
        if found is None:
            if key == "emulated":
                from ..sensors.emulated import demo_bus

                bus: Any = demo_bus()
            else:
                from smbus2 import SMBus

                bus = SMBus(key)
            found = _BUSES[key] = (bus, threading.Lock())
        return found


def register_bus(spec: Any, bus: Any) -> threading.Lock:
    """Attach an existing bus object (e.g. an :class:`EmulatedSMBus`) under ``spec``,
    so sources with ``bus: spec`` share it and its lock; returns the lock."""
    with _BUSES_LOCK:
        lock = threading.Lock()
        _BUSES[bus_key(spec)] = (bus, lock)
        return lock


def forget_bus(spec: Any) -> None:
    """Drop a bus from the shared table (the next ``open_bus`` opens it again)."""
    with _BUSES_LOCK:
        _BUSES.pop(bus_key(spec), None)


class _BusBusy(Exception):
    """The bus was not free again after a conversion wait (another device holds it)."""


def _describe(exc: BaseException, address: int, bus: Any) -> str:
    if isinstance(exc, OSError) and exc.errno == 121:
        return (f"no answer at address 0x{address:02x} on bus {bus} (errno 121): "
                "check wiring, power and address (i2cdetect)")
    if isinstance(exc, OSError) and exc.errno == 2:
        where = exc.filename or f"I2C bus {bus}"
        return f"{where} does not exist: enable I2C (see hardware/README.md)"
    if isinstance(exc, PermissionError):
        return f"no permission to open I2C bus {bus} ({exc}): add the user to the i2c group"
    if isinstance(exc, TimeoutError) or (isinstance(exc, OSError) and exc.errno == 110):
        return f"timeout at address 0x{address:02x} on bus {bus}: the device holds the bus"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, SensorError) else text


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
        self.jitter = max(0.0, float(jitter))
        if self.jitter > self.interval * MAX_JITTER_FRACTION:
            self.log.warning("%s: collection_jitter %gs capped at %gs (half the interval)",
                             self.name, self.jitter, self.interval * MAX_JITTER_FRACTION)
        self.clock = clock
        # sample timestamps come from the same clock, so a test clock gives exact stamps
        self._now_ns: Callable[[], int] = (
            time.time_ns if clock is time.time else (lambda: round(clock() * 1e6) * 1000))
        # measures how long a read took, to tell an overrun from a wall-clock step;
        # an injected clock is taken as monotonic (no steps)
        self.monotonic: Callable[[], float] = time.monotonic if clock is time.time else clock
        self.throttle.clock = self.monotonic
        self._rng = random.Random()
        self._driver: Any = None
        self._bus_lock: Optional[threading.Lock] = None
        self._holding = False  # this source's thread holds the bus lock (inside a read)
        self._read_deadline = 0.0  # monotonic time by which a read must have the bus back
        self._factory = driver_factory or self._make_driver
        self.backoff = DeviceBackoff(base=max(self.interval, 1.0))
        #: clock times of the last polls (bounded), for tests and the bench
        self.poll_times: Deque[float] = collections.deque(maxlen=1000)
        # sources on one bus share a poller; a source with its own driver factory has
        # no shared bus handle (nor lock), and one with its own clock its own time,
        # so each of those is polled on its own
        self._group = (str(bus_key(config.bus)) if driver_factory is None and clock is time.time
                       else f"{self.name}@{id(self):x}")
        self._poller: Optional[BusPoller] = None

    def _make_driver(self) -> Any:
        from ..sensors import I2C_DRIVERS

        bus, self._bus_lock = open_bus(self.config.bus)
        return I2C_DRIVERS[self.config.driver](bus, self.config.address,
                                               dict(self.config.options), sleep=self._bus_sleep)

    def _bus_sleep(self, seconds: float) -> None:
        """A driver's conversion wait (BH1750: 180 ms): the bus is free meanwhile.

        The chip converts on its own once commanded, so other devices on the bus
        may talk in between; holding the lock through the wait would make a
        slow chip cost every other device its schedule.
        """
        lock = self._bus_lock
        if lock is None or not self._holding:
            time.sleep(seconds)
            return
        self._holding = False
        lock.release()
        time.sleep(seconds)
        # The whole read stays within the bus patience, so it never overruns its tick.
        if not lock.acquire(timeout=max(0.0, self._read_deadline - time.monotonic())):
            raise _BusBusy()
        self._holding = True

    # -- one poll -------------------------------------------------------------

    def poll(self, scheduled: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """Read the chip once, waiting out its conversions here; the reading, or
        ``None`` after a counted failure.

        ``scheduled`` is the grid time of this poll; the backoff after a failure
        counts from it so retries land on grid ticks.
        """
        return run_steps(self.read_steps(scheduled), time.sleep)

    def read_steps(self, scheduled: Optional[float] = None) -> Generator[float, None, Any]:
        """:meth:`poll` as steps: yields each conversion wait (the bus is free
        meanwhile), returns what :meth:`poll` returns."""
        status = self.status
        status.busy_since = self.clock()
        self.poll_times.append(status.busy_since)
        try:
            return (yield from self._poll(scheduled))
        finally:
            status.busy_since = 0.0

    def _patience(self) -> float:
        return max(self.interval * BUS_PATIENCE, 0.05)

    def _poll(self, scheduled: Optional[float]) -> Generator[float, None, Any]:
        try:
            if self._driver is None:
                self._driver = self._factory()
            steps = steps_of(self._driver)
            lock = self._bus_lock
            if lock is None:
                stamp = self._now_ns()
                reading = yield from steps
            else:
                patience = self._patience()
                self._read_deadline = time.monotonic() + patience
                if not lock.acquire(timeout=patience):
                    # not this device's fault: no backoff, just a lost poll
                    self.bus_busy(patience)
                    return None
                self._holding = True
                try:
                    stamp = self._now_ns()  # the sample is taken now, not while queueing
                    reading = yield from self._locked(steps, lock)
                except _BusBusy:
                    self.bus_busy(patience)
                    return None
                finally:
                    if self._holding:
                        self._holding = False
                        lock.release()
        except (OSError, SensorError, ValueError) as exc:
            self._driver = None  # set the chip up again (calibration, mode) when it returns
            self.backoff = self.backoff.failed(self.clock() if scheduled is None else scheduled)
            self.failed(_describe(exc, self.config.address, self.config.bus))
            return None
        self.backoff = self.backoff.succeeded()
        fields = dict(reading)
        self.emit([fields], stamp)
        return fields

    def _locked(self, steps: Steps, lock: threading.Lock) -> Steps:
        """``steps`` with the bus lock held through each step and free during the
        conversion waits between them."""
        while True:
            try:
                wait = next(steps)
            except StopIteration as done:
                return done.value
            self._holding = False
            lock.release()
            yield wait
            # the whole read stays within the bus patience, so it never overruns its tick
            if not lock.acquire(timeout=max(0.0, self._read_deadline - time.monotonic())):
                raise _BusBusy()
            self._holding = True

    # -- what the poller reports -----------------------------------------------------

    def bus_busy(self, patience: float) -> None:
        """A poll lost because another device held the bus (no backoff)."""
        self.failed(f"bus {self.config.bus} busy for more than {patience:.3g}s "
                    "(another device on it is not answering); poll skipped")

    def overran(self, took: float, skipped: int) -> None:
        self.status.overruns += skipped
        # a slow sensor at a short interval overruns every tick: one line a minute
        self.throttle.warning("overrun", "%s: a read took %.3gs, longer than the %gs "
                              "interval; skipped %d poll(s)", self.name, took, self.interval,
                              skipped)

    def jittered(self, grid: Grid, deadline: float) -> float:
        return grid.jittered(deadline, self.jitter, self._rng)

    # -- the loop -------------------------------------------------------------

    def run(self) -> None:
        """Poll in this thread alone until stopped (``_wait`` returns True)."""
        BusPoller(self.name, self.clock, self.monotonic).run([self], self._wait)

    def start(self) -> None:
        """Poll under the shared poller of this source's bus."""
        self._stop.clear()
        self._poller = join(self, self._group)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        poller, self._poller = self._poller, None
        if poller is not None and not leave(poller, self, timeout):
            # stuck in a device call; the poller drops it when the call returns
            self.log.warning("%s: still inside a device read after %gs; not waiting for it",
                             self.name, timeout)
        self.status.state = "stopped"
        self.close()

    @property
    def alive(self) -> bool:
        poller = self._poller
        return poller is not None and poller.running and poller.has(self)

    def close(self) -> None:
        self._driver = None
