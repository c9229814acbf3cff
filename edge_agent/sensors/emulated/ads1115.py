"""Register-level ADS1115 emulator (pointer, config, conversion, thresholds).

Writing the config register with OS=1 in single-shot mode starts a conversion
of the selected input pair at the selected full-scale range; OS reads 0 until
it completes after 1/DR seconds. Registers are big-endian on the wire.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from .. import ads1115 as chip
from .bus import EmulatedDevice
from .signals import slow_wave

RESET_CONFIG = 0x8583
FULL_SCALE = {code: volts for volts, code in chip.PGA.items()}
FULL_SCALE.update({6: 0.256, 7: 0.256})
RATES = {code: rate for rate, code in chip.DATA_RATE.items()}
#: MUX code -> (positive input, negative input or None for GND)
INPUTS = {0: (0, 1), 1: (0, 3), 2: (1, 3), 3: (2, 3), 4: (0, None), 5: (1, None),
          6: (2, None), 7: (3, None)}  # fmt: skip


class ADS1115Emulator(EmulatedDevice):
    """ADS1115; quantities ain0..ain3 (volts against GND)."""

    NAME = "ads1115"

    def __init__(self, clock: Callable[[], float] = time.monotonic, phase: float = 0.0) -> None:
        super().__init__(clock)
        self.phase = phase
        self.pointer = 0
        self.registers = {0: 0x0000, 1: RESET_CONFIG, 2: 0x8000, 3: 0x7FFF}
        self._ready_at = 0.0
        self._pending: Optional[int] = None
        self.conversions = 0

    def values(self, t: float) -> dict[str, float]:
        return {
            "ain0": slow_wave(t, 1.65, 0.5, 600.0, self.phase),
            "ain1": slow_wave(t, 2.5, 0.2, 900.0, self.phase + 1.0),
            "ain2": slow_wave(t, 0.8, 0.05, 1200.0, self.phase + 2.0),
            "ain3": 3.3,
        }

    def _convert(self, config: int) -> int:
        q = self.quantities()
        positive, negative = INPUTS[config >> 12 & 7]
        volts = q[f"ain{positive}"] - (q[f"ain{negative}"] if negative is not None else 0.0)
        count = round(volts * 32768.0 / FULL_SCALE[config >> 9 & 7])
        return max(-32768, min(32767, count)) & 0xFFFF

    def _settle(self) -> None:
        if self._pending is not None and self.clock() >= self._ready_at:
            self.registers[0], self._pending = self._pending, None
            self.registers[1] |= chip.OS_START  # idle again

    def write(self, data: bytes) -> None:
        self._settle()
        if not data:
            return
        self.pointer = data[0] & 0x03
        if len(data) < 3:
            return
        value = data[1] << 8 | data[2]
        if self.pointer == chip.REG_CONVERSION:
            return  # read-only
        if self.pointer != chip.REG_CONFIG:
            self.registers[self.pointer] = value
            return
        self.registers[1] = value & ~chip.OS_START
        if value & chip.OS_START and value & chip.MODE_SINGLE:
            self._pending = self._convert(value)
            self._ready_at = self.clock() + 1.0 / RATES[value >> 5 & 7]
            self.conversions += 1
        elif not value & chip.MODE_SINGLE:
            self.registers[0] = self._convert(value)  # continuous mode: always fresh
        else:
            self.registers[1] |= chip.OS_START

    def read(self, length: int) -> bytes:
        self._settle()
        if self.pointer == chip.REG_CONVERSION and not self.registers[1] & chip.MODE_SINGLE:
            self.registers[0] = self._convert(self.registers[1])
        value = self.registers[self.pointer]
        return (bytes((value >> 8, value & 0xFF)) * length)[:length]
