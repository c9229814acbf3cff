"""Timestamp collisions: points of one series that would share a timestamp at the write precision.

InfluxDB identifies a point by measurement, tag set and time; a second point
with the same three overwrites the fields the first one had (and keeps the
others). With ``precision: s`` ten messages of one sensor in one second would
become one row, while the agent counted ten as written. So before a message's
lines are added, :class:`CollisionGuard` looks at each (series, field) it
writes and the last timestamp that (series, field) got from this source:

* **Receive-time points** (the message has no time of its own; the time is
  ours): moved later by whole units of the precision, just past the last
  one, at most :data:`MAX_SHIFT` units (10 s at ``precision: s``, 10 ms at
  ``ms``). All lines of one message move together, and the moved receive
  time is what the dedup index records, so a redelivery after a crash is
  written at the same moved time (the same point again, not a new one).
  Counted per subscription as ``timestamps_shifted``.
* **Own-time points** (the device's timestamp) are never moved: two
  different values for one field at the same time are a collision.
* A collision that cannot be kept apart (own time, or more than
  ``MAX_SHIFT`` units needed) rejects the message: counted, kept in the
  rejected-messages file with the reason, never overwritten silently.
* An own-time point with the same value at the same time (a device's
  message replayed) is no collision: InfluxDB stores the same point again.
  Two receive-time messages are two readings, even with equal values.

Fields of one series in separate messages at the same time (``{field}`` from
the topic: temperature and humidity of one room) do not collide: InfluxDB
merges them into one row, which is what one wants.

After a restart the guard's memory is empty, but points moved ahead before a
crash may lie in the next few units. So it starts with a ``floor``: the
newest receive time the dedup index recorded (moved times included): a new
receive-time point at or before it is moved just past it. Without a dedup
index (QoS 0, no state_dir) there is no floor: a point moved ahead just
before a crash can be overwritten by one received in those few units after
a quick restart. A redelivered message keeps its recorded time.

The guard remembers up to :data:`MAX_KEYS` (series, field) pairs; beyond that
it forgets those whose time lies more than ``MAX_SHIFT`` units behind the
newest. It runs only when the precision is coarser than ns (at ns, receive
times are distinct). It sees the points of its own source only.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

from ...lineproto.parse import split_fields, split_line
from ...lineproto.timestamps import PRECISIONS

__all__ = ["MAX_KEYS", "MAX_SHIFT", "CollisionGuard", "Placement"]

MAX_SHIFT = 10  # units of the write precision a receive-time point may be moved
MAX_KEYS = 100_000

Key = Tuple[str, str]  # (series, field key)


class Placement:
    """The outcome for one message: ``lines`` to write, ``shift`` units applied, or ``clash``."""

    __slots__ = ("lines", "shift", "clash")

    def __init__(self, lines: Sequence[str], shift: int = 0, clash: str = "") -> None:
        self.lines = lines
        self.shift = shift
        self.clash = clash


class CollisionGuard:
    """Keeps one source's points of a series apart at the write ``precision``."""

    def __init__(self, precision: str, max_shift: int = MAX_SHIFT,
                 max_keys: int = MAX_KEYS) -> None:
        self.precision = precision
        self.unit = PRECISIONS[precision]  # ns per unit of the precision
        self.max_shift = max_shift
        self.max_keys = max_keys
        self._last: Dict[Key, Tuple[int, str]] = {}
        self._newest = 0
        self.floor = -1  # units: receive-time points go after it (set on start, see above)

    def place(self, lines: Sequence[str], own_time: bool, fixed: bool = False) -> Placement:
        """Where the lines of one message go; ``fixed``: a redelivery, keep its times."""
        parsed = []
        for line in lines:
            series, fields, stamp = split_line(line)
            parsed.append((series, fields, int(stamp or 0), split_fields(fields)))
        last = self._last
        shift = 0
        floor = self.floor
        for series, _, t, pairs in parsed:
            for name, value in pairs:
                if fixed:
                    break
                prev = last.get((series, name))
                if own_time:
                    if prev is not None and prev[0] == t and prev[1] != value:
                        return Placement(lines, 0, self._reason(series, name, t, "own"))
                    continue  # newer, older (not ours to judge) or the same point again
                top = None if prev is None else prev[0]
                # Moved points of before a restart may lie up to the floor (a floor
                # further ahead than max_shift is a clock step, not a move).
                if 0 <= floor - t <= self.max_shift and (top is None or top < floor):
                    top = floor
                if top is not None and top >= t:
                    shift = max(shift, top - t + 1)
        if shift > self.max_shift:
            series, _, t, pairs = parsed[0]
            return Placement(lines, 0, self._reason(series, pairs[0][0], t, "full"))
        out = lines
        if shift:
            out = [f"{series} {fields} {t + shift}" for series, fields, t, _ in parsed]
        for series, _, t, pairs in parsed:
            for name, value in pairs:
                cur = last.get((series, name))
                if cur is None or t + shift >= cur[0]:  # the newest time of each is kept
                    last[(series, name)] = (t + shift, value)
            if t + shift > self._newest:
                self._newest = t + shift
        if len(last) > self.max_keys:
            self._forget()
        return Placement(out, shift)

    def _reason(self, series: str, field: str, t: int, why: str) -> str:
        if why == "own":
            detail = "the message's own timestamp is kept, so it cannot be moved"
        else:
            detail = f"more than {self.max_shift} points within {self.max_shift} {self.precision}"
        return (f"timestamp collision: series {series[:80]!r} field {field!r} already has a "
                f"point at {t} (precision {self.precision}); {detail}; "
                "use a finer influx.precision")

    def _forget(self) -> None:
        horizon = self._newest - self.max_shift
        self._last = {k: v for k, v in self._last.items() if v[0] >= horizon}
        if len(self._last) > self.max_keys:
            self._last.clear()


def make_guard(precision: str) -> Optional[CollisionGuard]:
    """A guard for ``precision``, or None at ns (receive times are distinct there)."""
    return None if precision == "ns" else CollisionGuard(precision)
