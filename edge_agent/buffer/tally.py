"""The counters' journal in RAM: what the agent counted since its last commit.

The disk buffer commits its counters with its segments, and in the SD-card
mode (``buffer.hold``) that is once a minute or less. Points delivered from
memory, failed attempts and points still held in memory change the counters
in between. ``Tally`` keeps them in a small file in RAM-backed storage
(/dev/shm or systemd's ``$RUNTIME_DIRECTORY``), mapped into memory and
updated with every change: it costs the SD card nothing, and it survives the
process (kill -9, a crash, the OOM killer), though not a power cut.

Layout (little-endian, one page): a header (magic, epoch, the current slot)
and two slots. A slot holds ``gen`` (the last buffer commit its numbers
include), ``held`` (points in memory, neither committed nor delivered),
``flight`` (of those, the ones in the last request to InfluxDB from memory),
one int64 per name in ``NAMES``, ``last_success`` and ``last_error``. A single
count changes in place (one aligned 8-byte store: no torn value); a change
of several numbers at once writes the other slot whole and then flips the
current slot, so a kill leaves the old numbers or the new, never a mix.

:func:`reconcile` joins the journal with the buffer's last commit on the
next start (``Bookkeeping.attach_tally``).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import struct
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .counters import COUNTS, Value

__all__ = ["NAMES", "Tally", "TallyState", "join_record", "parse", "reconcile"]

logger = logging.getLogger("edge_agent.buffer")

MAGIC = b"EAT1"
FILE_NAME = "tally"
NAMES = (*COUNTS, "dropped")  # "dropped": the library's non-durable give-ups
_HEADER = struct.Struct("<4s4xqq")  # magic, epoch, current slot
_SLOT_HEAD = struct.Struct("<qqq")  # gen, held, in flight
_Q = struct.Struct("<q")
_D = struct.Struct("<d")
_I = struct.Struct("<I")
_ERROR_BYTES = 1000
_SLOT_SIZE = _SLOT_HEAD.size + 8 * len(NAMES) + 8 + 4 + _ERROR_BYTES
_SLOTS_AT = 64
_SIZE = mmap.PAGESIZE
_INDEX = {name: i for i, name in enumerate(NAMES)}
assert _SLOTS_AT + 2 * _SLOT_SIZE <= _SIZE


@dataclass
class TallyState:
    """One slot's numbers, as read back."""

    epoch: int
    gen: int
    held: int
    flight: int
    counts: Dict[str, int]
    last_success: Optional[float]
    last_error: Optional[str]

    def values(self) -> Dict[str, Value]:
        out: Dict[str, Value] = dict(self.counts)
        out["last_success"] = self.last_success
        out["last_error"] = self.last_error
        return out


def parse(data: Union[bytes, mmap.mmap]) -> Optional[TallyState]:
    """The current slot of a journal's page, None when it holds no journal."""
    magic, epoch, slot = _HEADER.unpack_from(data, 0)
    if magic != MAGIC or slot not in (0, 1):
        return None
    at = _SLOTS_AT + slot * _SLOT_SIZE
    gen, held, flight = _SLOT_HEAD.unpack_from(data, at)
    at += _SLOT_HEAD.size
    counts = dict(zip(NAMES, struct.unpack_from(f"<{len(NAMES)}q", data, at)))
    at += 8 * len(NAMES)
    (success,) = _D.unpack_from(data, at)
    (length,) = _I.unpack_from(data, at + 8)
    raw = bytes(data[at + 12 : at + 12 + min(length, _ERROR_BYTES)])
    return TallyState(epoch, gen, held, flight, counts, None if success < 0 else success,
                      raw.decode("utf-8", "replace") if length else None)


class Tally:
    """The journal file, mapped. Callers serialise their writes (Counters' lock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self._slot = 0

    @classmethod
    def in_dir(cls, directory: str) -> Tally:
        return cls(os.path.join(directory, FILE_NAME))

    # -- reading -------------------------------------------------------------

    def read(self) -> Optional[TallyState]:
        """The current slot, or None when the file holds no journal."""
        return parse(self._map)

    @staticmethod
    def peek(path: str) -> Optional[TallyState]:
        """The journal at ``path`` read without writing (``status``); None if there is none."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(_SIZE)
        except OSError:
            return None
        return parse(data) if len(data) == _SIZE else None

    # -- writing -------------------------------------------------------------

    def _at(self, slot: int) -> int:
        return _SLOTS_AT + slot * _SLOT_SIZE

    def rewrite(self, epoch: int, gen: int, held: int, flight: int,
                values: Mapping[str, Value]) -> None:
        """Write every number into the other slot, then make it the current one."""
        slot = 1 - self._slot
        at = self._at(slot)
        _SLOT_HEAD.pack_into(self._map, at, gen, held, flight)
        struct.pack_into(f"<{len(NAMES)}q", self._map, at + _SLOT_HEAD.size,
                         *(int(values.get(n) or 0) for n in NAMES))
        self._write_last(slot, values.get("last_success"), values.get("last_error"))
        _HEADER.pack_into(self._map, 0, MAGIC, epoch, slot)
        self._slot = slot

    def put(self, name: str, value: int) -> None:
        """One count's new total, in place (names outside NAMES are not kept here)."""
        index = _INDEX.get(name)
        if index is not None:
            _Q.pack_into(self._map, self._at(self._slot) + _SLOT_HEAD.size + 8 * index, value)

    def put_held(self, held: int) -> None:
        _Q.pack_into(self._map, self._at(self._slot) + 8, held)

    def put_flight(self, flight: int) -> None:
        _Q.pack_into(self._map, self._at(self._slot) + 16, flight)

    def put_last(self, name: str, value: Value) -> None:
        if name == "last_success":
            self._write_last(self._slot, value, ...)
        elif name == "last_error":
            self._write_last(self._slot, ..., value)

    def _write_last(self, slot: int, success: object, error: object) -> None:
        at = self._at(slot) + _SLOT_HEAD.size + 8 * len(NAMES)
        if success is not ...:
            _D.pack_into(self._map, at, float(success) if isinstance(success, (int, float))
                         else -1.0)
        if error is not ...:
            raw = b"" if error is None else str(error).encode("utf-8")[:_ERROR_BYTES]
            self._map[at + 12 : at + 12 + len(raw)] = raw
            _I.pack_into(self._map, at + 8, len(raw))

    def close(self) -> None:
        with contextlib.suppress(ValueError, BufferError):
            self._map.close()


def reconcile(stored: Mapping[str, Value], gen: int, delta: Mapping[str, Value],
              journal: Optional[TallyState], epoch: int
              ) -> Optional[Tuple[Dict[str, Value], int, int]]:
    """The counters as the last run left them, the points it held in memory, and
    how many of those were in its last request to InfluxDB (maybe written).

    ``stored``/``gen``/``delta``: the counters of the buffer's last commit, its
    number and what that commit added. The journal is the truth when it
    includes that commit (its gen is ``gen``), or when it ends just before it
    (``gen - 1``: the run died between the commit and noting it), plus
    ``delta``. Otherwise (no journal after a reboot, another buffer's) None:
    the stored counters stand and what was held in memory is unknown.
    """
    if journal is None or journal.epoch != epoch or journal.gen not in (gen, gen - 1):
        return None
    values: Dict[str, Value] = dict(stored)
    values.update(journal.values())
    held = journal.held
    if journal.gen == gen - 1:
        for name, n in delta.items():
            if name == "held":
                held += int(n or 0)
            elif name.startswith("last_"):
                values[name] = n
            else:
                values[name] = int(values.get(name) or 0) + int(n or 0)
    held = max(held, 0)
    return values, held, min(max(journal.flight, 0), held)


def join_record(record: Mapping[str, Any], journal: Optional[TallyState]
                ) -> Optional[Tuple[Dict[str, Value], int, int]]:
    """:func:`reconcile` for a stored buffer record, with what the dead run held in
    memory already counted (accepted, lost_unsaved, lost_in_flight): the counters,
    the points lost, and of those the ones in flight. None as for ``reconcile``."""
    info = record.get("tally") or {}
    found = reconcile(record.get("counters") or {}, int(info.get("gen") or 0),
                      info.get("delta") or {}, journal, int(info.get("epoch") or 0))
    if found is None:
        return None
    values, lost, flight = found
    if lost:
        values["accepted"] = int(values.get("accepted") or 0) + lost
        values["lost_unsaved"] = int(values.get("lost_unsaved") or 0) + lost - flight
        values["lost_in_flight"] = int(values.get("lost_in_flight") or 0) + flight
    return values, lost, flight
