"""Command-level SHT3x emulator (single shot, status register, soft reset).

While a single-shot measurement without clock stretching runs, the chip NACKs
its read header (errno 121 on Linux), so a driver that does not wait long
enough fails here as it would on the bench. Results carry real CRC-8 bytes.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from ..sht3x import crc8
from .bus import EmulatedDevice, nack
from .signals import slow_wave

#: command -> measurement duration (datasheet table 4, maximum values)
SINGLE_SHOT = {0x2400: 0.015, 0x240B: 0.006, 0x2416: 0.004}
#: clock-stretching variants: the chip holds SCL until done, so data is ready at once
SINGLE_SHOT_STRETCH = (0x2C06, 0x2C0D, 0x2C10)
SOFT_RESET = 0x30A2
READ_STATUS = 0xF32D
CLEAR_STATUS = 0x3041


def encode(temperature: float, humidity: float) -> tuple[int, int]:
    """Raw 16-bit words for °C and %RH (inverse of the datasheet formulas)."""
    raw_t = round((temperature + 45.0) * 65535.0 / 175.0)
    raw_rh = round(humidity * 65535.0 / 100.0)
    return max(0, min(0xFFFF, raw_t)), max(0, min(0xFFFF, raw_rh))


class SHT3xEmulator(EmulatedDevice):
    """SHT3x; quantities temperature (°C) and humidity (%). Faults add "bad_crc"."""

    NAME = "sht3x"
    FAULTS = ("absent", "hang", "stuck", "bad_crc")

    def __init__(self, clock: Callable[[], float] = time.monotonic, phase: float = 0.5) -> None:
        super().__init__(clock)
        self.phase = phase
        self._result: Optional[bytes] = None
        self._ready_at = 0.0
        self.measurements = 0

    def values(self, t: float) -> dict[str, float]:
        return {
            "temperature": slow_wave(t, 22.0, 2.5, 3000.0, self.phase),
            "humidity": slow_wave(t, 50.0, 12.0, 4000.0, self.phase + 1.0),
        }

    def _words(self, *words: int) -> bytes:
        out = bytearray()
        for word in words:
            pair = bytes((word >> 8, word & 0xFF))
            crc = crc8(pair)
            if self.fault == "bad_crc":
                crc ^= 0x01
            out += pair + bytes((crc,))
        return bytes(out)

    def write(self, data: bytes) -> None:
        if len(data) != 2:
            raise nack()
        command = data[0] << 8 | data[1]
        if command in SINGLE_SHOT or command in SINGLE_SHOT_STRETCH:
            q = self.quantities()
            self._result = self._words(*encode(q["temperature"], q["humidity"]))
            self._ready_at = self.clock() + SINGLE_SHOT.get(command, 0.0)
            self.measurements += 1
        elif command == READ_STATUS:
            self._result = self._words(0x0000)
            self._ready_at = self.clock()
        elif command in (SOFT_RESET, CLEAR_STATUS):
            self._result = None
        else:
            raise nack()

    def read(self, length: int) -> bytes:
        if self._result is None or self.clock() < self._ready_at:
            raise nack()  # measuring (or nothing to send): the read header is not acknowledged
        result, self._result = self._result, None
        return (result + b"\xff" * length)[:length]
