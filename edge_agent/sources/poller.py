"""One polling thread per I2C bus: the sources on it share its schedule.

Each source keeps its own grid, jitter, backoff, status and messages; the
poller only decides when to run whose step. It sleeps until the next due
reading of any of its sources, starts every read that is due (the chip is
commanded and the sample stamped on its tick), and then sleeps once for the
conversions of all of them (waits due within :data:`COALESCE` of each other
end together: a chip left converting a little longer is harmless). Between
those it never wakes: 10 chips at 1 s cost a few wake-ups a second instead
of a thread each.

A step is one stretch of bus transactions (:func:`..sensors._common.steps_of`),
so the devices on a bus never talk at once. A device that hangs inside a step
holds the bus, and the others' polls that fall due meanwhile are lost and
counted as "bus busy" (not the device's fault: no backoff, no overrun), while
their grid stays where it was. A read that takes longer than its interval by
itself is an overrun of that source, as before.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generator, List, Optional, Sequence

from .schedule import MAX_JITTER_FRACTION, Grid

__all__ = ["BusPoller", "COALESCE", "MAX_WAIT", "join", "leave"]

log = logging.getLogger("edge_agent.source")

#: conversion waits ending within this many seconds of each other end together
COALESCE = 0.05
#: a poll that cannot start within this fraction of the interval because another
#: device's read holds the bus is skipped (counted as "bus busy"), so a reading
#: is never stamped far off its tick
START_PATIENCE = 0.25
#: a clock step larger than this (beyond the interval) re-aligns the grid
#: instead of being waited out or counted as overruns
CLOCK_STEP = 1.0
#: longest single wait, so a clock stepped back is noticed
MAX_WAIT = 5.0
#: a source whose poll raised something unexpected (a bug) tries again after this
BUG_PAUSE = 5.0

Read = Generator[float, None, Any]


@dataclass(eq=False)  # a slot is itself: list lookups compare identity, not fields
class _Slot:
    """The schedule of one source inside a poller."""

    source: Any
    grid: Grid
    deadline: float  # the grid time of the next (or current) read
    target: float  # when it is due: the deadline plus its jitter
    read: Optional[Read] = None  # the read under way, between its steps
    resume: float = 0.0  # monotonic time the read under way goes on (conversion done)
    started: float = 0.0  # monotonic time the read under way started
    held: float = 0.0  # seconds other devices' steps held the bus while this one waited
    planned: float = 0.0  # clock time the next read was planned at (to notice a step back)
    last_start: float = -math.inf  # monotonic time its last read started


class BusPoller:
    """The schedule of the sources on one bus.

    :meth:`run` drives given sources in the calling thread with a given
    ``wait(seconds) -> stop?`` (a fake clock's, in tests); a shared poller
    (:func:`join`) runs in its own thread and sleeps on its condition, woken
    when a source joins or leaves.
    """

    def __init__(self, name: str, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.clock = clock
        self.monotonic = monotonic
        self._slots: List[_Slot] = []
        self._cond = threading.Condition()
        self._joining: List[Any] = []
        self._leaving: List[Any] = []
        self._stepping: Optional[Any] = None  # the source whose step runs now
        self._changed = False
        self._thread: Optional[threading.Thread] = None

    # -- membership (any thread) ------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def has(self, source: Any) -> bool:
        with self._cond:
            return source in self._joining or any(s.source is source for s in self._slots)

    def add(self, source: Any) -> None:
        with self._cond:
            self._joining.append(source)
            self._changed = True
            self._cond.notify_all()
            if not self.running:
                self._thread = threading.Thread(target=self._run_shared, daemon=True,
                                                name=f"i2c-{self.name}")
                self._thread.start()

    def remove(self, source: Any, timeout: float) -> bool:
        """Take ``source`` out; False if it is still inside a device step after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if source in self._joining:
                self._joining.remove(source)
            while self._stepping is source:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._leaving.append(source)  # dropped when its step returns
                    return False
                self._cond.wait(left)
            self._drop(source)
            self._changed = True
            self._cond.notify_all()
        return True

    def _drop(self, source: Any) -> None:
        for slot in list(self._slots):
            if slot.source is source:
                if slot.read is not None:
                    slot.read.close()  # not running (not stepping): its cleanup runs here
                    slot.read = None
                self._slots.remove(slot)

    # -- the loop -----------------------------------------------------------------

    def _run_shared(self) -> None:
        while True:
            with self._cond:
                self._admit()
                empty = not self._slots
            if empty:
                with _POLLERS_LOCK, self._cond:  # join() takes them in this order too
                    if not self._slots and not self._joining:
                        if _POLLERS.get(self.name) is self:
                            del _POLLERS[self.name]
                        return
                continue
            try:
                wake = self._turn()
            except Exception as exc:  # a bug here must not stop every source on the bus
                log.error("i2c poller %s: unexpected error: %s: %s", self.name,
                          type(exc).__name__, exc)
                log.debug("i2c poller %s: traceback", self.name, exc_info=True)
                wake = BUG_PAUSE
            with self._cond:
                if not self._changed and not self._joining:
                    self._cond.wait(wake)
                self._changed = False

    def run(self, sources: Sequence[Any], wait: Callable[[float], bool]) -> None:
        """Poll ``sources`` in this thread until ``wait(seconds)`` says stop."""
        self._slots = [self._slot_for(source) for source in sources]
        while True:
            if wait(self._turn()):
                return

    def _admit(self) -> None:
        """Joins and late leaves take effect (called with the condition held)."""
        for source in self._leaving:
            self._drop(source)
        self._leaving.clear()
        for source in self._joining:
            self._slots.append(self._slot_for(source))
        self._joining.clear()

    def _slot_for(self, source: Any) -> _Slot:
        now = self.clock()
        grid = Grid.for_source(source.interval, source.round_interval, now)
        deadline = grid.next_after(now)
        return _Slot(source, grid, deadline, source.jittered(grid, deadline), planned=now)

    def _turn(self) -> float:
        """Start what is due, go on with what has converted; the seconds to sleep."""
        now = self.clock()
        # of the reads due at one tick, the one that waited longest goes first, so a
        # source skipped because the others held the bus is not skipped every time
        for slot in sorted(self._slots, key=lambda s: (s.target, s.last_start)):
            if slot.read is None and slot.target <= now:
                self._start(slot, self.clock())  # a read before this one may have held the bus
        # conversions are timed on the monotonic clock: a wall-clock step must not
        # leave a chip waiting for an hour
        now = self.monotonic()
        for slot in list(self._slots):
            if slot.read is not None and slot.resume <= now:
                self._step(slot)
        return self._sleep_for()

    def _sleep_for(self) -> float:
        now = self.clock()
        slots = list(self._slots)
        idle = [s for s in slots if s.read is None]
        for slot in idle:
            if now < slot.planned - CLOCK_STEP:
                self._schedule(slot, slot.deadline)  # the clock stepped back meanwhile
        waits = [s.target - now for s in idle]
        resumes = [s.resume for s in slots if s.read is not None]
        if resumes:
            first = min(resumes)
            waits.append(max(r for r in resumes if r <= first + COALESCE) - self.monotonic())
        if not waits:
            return MAX_WAIT
        return min(max(0.0, min(waits)), MAX_WAIT)

    def _start(self, slot: _Slot, now: float) -> None:
        source = slot.source
        late = now - slot.target
        patience = slot.grid.interval * START_PATIENCE
        if late > patience and slot.held > 0 and late - slot.held <= patience:
            # another device held the bus through this tick: a lost poll, not an overrun
            deadline, skipped = slot.grid.advance(slot.deadline, now)
            for _ in range(1 + skipped):
                source.bus_busy(patience)
            self._schedule(slot, deadline)
            return
        slot.held = 0.0
        slot.started = slot.last_start = self.monotonic()
        slot.read = source.read_steps(slot.deadline)
        self._step(slot)

    def _step(self, slot: _Slot) -> None:
        """One stretch of bus transactions of ``slot``'s read."""
        source = slot.source
        with self._cond:
            read = slot.read
            if read is None or slot not in self._slots:  # left meanwhile
                return
            self._stepping = source
        began = self.monotonic()
        done = False
        try:
            wait = read.send(None)
            slot.resume = self.monotonic() + wait  # the conversion runs from the step's end
        except StopIteration:
            done = True
        except Exception as exc:  # a bug in one source must not stop the others
            source.failed(f"unexpected error: {type(exc).__name__}: {exc}")
            source.log.debug("%s: traceback", source.name, exc_info=True)
            slot.read = None
            now = self.clock()
            self._schedule(slot, slot.grid.next_after(now), earliest=now + BUG_PAUSE)
        finally:
            with self._cond:
                self._stepping = None
                self._cond.notify_all()
        took = self.monotonic() - began
        end = self.clock()
        for other in list(self._slots):
            if other is not slot:
                if other.read is not None:
                    other.held += took
                elif other.target < end:
                    other.held += min(took, end - other.target)
        if done:
            slot.read = None
            self._finish(slot, end)

    def _finish(self, slot: _Slot, now: float) -> None:
        """Account a finished read (overruns, clock jumps, lost polls) and plan the next."""
        source = slot.source
        interval = slot.grid.interval
        took = self.monotonic() - slot.started - slot.held
        late = now - slot.deadline
        deadline, skipped = slot.grid.advance(slot.deadline, now)
        if skipped:
            if late > took + slot.held + interval * MAX_JITTER_FRACTION + CLOCK_STEP:
                # the wall clock jumped ahead (NTP after boot): not the device's doing
                source.throttle.warning("clock", "%s: the clock jumped ahead by %.0fs; polls "
                                        "re-aligned to it", source.name, late - took)
            else:
                own = slot.grid.advance(slot.deadline, now - slot.held)[1]
                for _ in range(skipped - own):
                    source.bus_busy(interval * START_PATIENCE)
                if own:
                    source.overran(took, own)
        slot.held = 0.0
        self._schedule(slot, deadline)

    def _schedule(self, slot: _Slot, deadline: float, earliest: float = -math.inf) -> None:
        """The next read on the grid at ``deadline``; a device on backoff sleeps to its
        retry tick. A deadline more than a tick away means the clock stepped back."""
        source = slot.source
        grid = slot.grid
        now = self.clock()
        if deadline - now > grid.interval + CLOCK_STEP:
            source.throttle.warning("clock", "%s: the clock stepped back; polls re-aligned "
                                    "to it", source.name)
            deadline = grid.next_after(now)
        while deadline < earliest or not source.backoff.ready(deadline):
            deadline = grid.at(grid.tick_of(deadline) + 1)
        slot.deadline = deadline
        slot.target = source.jittered(grid, deadline)
        slot.planned = now


# -- one poller per bus ------------------------------------------------------------

_POLLERS: Dict[str, BusPoller] = {}
_POLLERS_LOCK = threading.Lock()


def join(source: Any, group: str) -> BusPoller:
    """Put ``source`` under the poller of ``group`` (its bus), started if need be."""
    with _POLLERS_LOCK:
        poller = _POLLERS.get(group)
        if poller is None:
            poller = _POLLERS[group] = BusPoller(group, source.clock, source.monotonic)
        poller.add(source)
    return poller


def leave(poller: BusPoller, source: Any, timeout: float) -> bool:
    """Take ``source`` out of its poller; False if a device read kept it past ``timeout``."""
    return poller.remove(source, timeout)
