"""Instruction-level BH1750 emulator (power states, one-time and continuous modes).

Reading before a one-time measurement has finished returns the previous
result, as the chip does; the result scales with the measurement time
register (MTreg) and the resolution mode.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from .bus import EmulatedDevice
from .signals import slow_wave

POWER_DOWN, POWER_ON, RESET = 0x00, 0x01, 0x07
#: instruction -> (one-time?, duration at MTreg 69 in s, counts per lux at MTreg 69)
MODES = {
    0x10: (False, 0.120, 1.2), 0x11: (False, 0.120, 2.4), 0x13: (False, 0.016, 1.2),
    0x20: (True, 0.120, 1.2), 0x21: (True, 0.120, 2.4), 0x23: (True, 0.016, 1.2),
}  # fmt: skip


class BH1750Emulator(EmulatedDevice):
    """BH1750; quantity lux."""

    NAME = "bh1750"

    def __init__(self, clock: Callable[[], float] = time.monotonic, phase: float = 0.0) -> None:
        super().__init__(clock)
        self.phase = phase
        self.powered = False
        self.mtreg = 69
        self.mode: Optional[int] = None
        self.data = 0
        self._ready_at = 0.0
        self._pending: Optional[int] = None

    def values(self, t: float) -> dict[str, float]:
        return {"lux": max(0.0, slow_wave(t, 400.0, 300.0, 6000.0, self.phase))}

    def _count(self, mode: int) -> int:
        per_lux = MODES[mode][2] * self.mtreg / 69
        return max(0, min(0xFFFF, round(self.quantities()["lux"] * per_lux)))

    def _settle(self) -> None:
        if self._pending is not None and self.clock() >= self._ready_at:
            self.data, self._pending = self._pending, None
            if self.mode is not None and MODES[self.mode][0]:
                self.powered = False  # one-time modes power down after measuring
        if self.mode is not None and not MODES[self.mode][0] and self._pending is None:
            self._start(self.mode)  # continuous: the next conversion starts right away

    def _start(self, mode: int) -> None:
        self.mode = mode
        self._pending = self._count(mode)
        self._ready_at = self.clock() + MODES[mode][1] * self.mtreg / 69

    def write(self, data: bytes) -> None:
        for instruction in data:
            self._settle()
            if instruction == POWER_DOWN:
                self.powered, self.mode, self._pending = False, None, None
            elif instruction == POWER_ON:
                self.powered = True
            elif instruction == RESET:
                if self.powered:
                    self.data = 0
            elif instruction in MODES:
                self.powered = True
                self._start(instruction)
            elif instruction & 0xF8 == 0x40:
                self.mtreg = (instruction & 0x07) << 5 | (self.mtreg & 0x1F)
            elif instruction & 0xE0 == 0x60:
                self.mtreg = (self.mtreg & 0xE0) | (instruction & 0x1F)

    def read(self, length: int) -> bytes:
        self._settle()
        return (bytes((self.data >> 8, self.data & 0xFF)) * length)[:length]
