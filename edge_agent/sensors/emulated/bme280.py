"""Register-level BME280 / BMP280 emulator.

Holds the real register map (chip id, calibration block, ctrl_hum, status with
the measuring bit, ctrl_meas, config, data). A forced-mode write to ctrl_meas
starts a conversion that takes the datasheet's maximum measurement time; the
data registers then hold the raw ADC values that the Bosch compensation turns
back into the emulated temperature, pressure and humidity (found by bisection
over the ADC range, so the emulator and the formulas cannot drift apart).
"""

from __future__ import annotations

import struct
import time
from typing import Callable, Optional

from .. import bme280 as chip
from .bus import EmulatedDevice
from .signals import slow_wave

#: Datasheet worked example (section 8.1 / 4.2.3) for T and P; the humidity
#: trimming values are typical of production parts.
DATASHEET_CALIBRATION = chip.Calibration(
    t1=27504, t2=26435, t3=-1000,
    p1=36477, p2=-10685, p3=3024, p4=2855, p5=140, p6=-7, p7=15500, p8=-14600, p9=6000,
    h1=75, h2=362, h3=0, h4=313, h5=50, h6=30,
)  # fmt: skip


def encode_calibration(cal: chip.Calibration) -> tuple[bytes, bytes]:
    """The 26 bytes at 0x88..0xA1 and the 7 bytes at 0xE1..0xE7 holding ``cal``."""
    tp = struct.pack(
        "<HhhHhhhhhhhh", cal.t1, cal.t2, cal.t3,
        cal.p1, cal.p2, cal.p3, cal.p4, cal.p5, cal.p6, cal.p7, cal.p8, cal.p9,
    )  # fmt: skip
    if not cal.has_humidity:
        return tp + b"\x00\x00", b"\x00" * 7
    assert cal.h2 is not None and cal.h3 is not None and cal.h4 is not None
    assert cal.h5 is not None and cal.h6 is not None and cal.h1 is not None
    block_88 = tp + bytes((0, cal.h1))
    h4, h5 = cal.h4 & 0xFFF, cal.h5 & 0xFFF  # 12-bit two's complement
    block_e1 = struct.pack("<h", cal.h2) + bytes(
        (cal.h3, h4 >> 4, (h5 & 0x0F) << 4 | (h4 & 0x0F), h5 >> 4, cal.h6 & 0xFF)
    )
    return block_88, block_e1


def _invert(f: Callable[[int], float], target: float, lo: int, hi: int) -> int:
    """The integer in [lo, hi] where the monotonic ``f`` comes closest to ``target``."""
    increasing = f(hi) > f(lo)
    a, b = lo, hi
    while b - a > 1:
        mid = (a + b) // 2
        if (f(mid) < target) == increasing:
            a = mid
        else:
            b = mid
    return a if abs(f(a) - target) <= abs(f(b) - target) else b


def raw_values(
    cal: chip.Calibration, temperature: float, pressure: float, humidity: Optional[float]
) -> tuple[int, int, Optional[int]]:
    """(adc_t, adc_p, adc_h) that compensate to the given values."""
    top = (1 << 20) - 1
    adc_t = _invert(lambda x: chip.compensate_temperature(x, cal)[0], temperature, 0, top)
    t_fine = chip.compensate_temperature(adc_t, cal)[1]
    adc_p = _invert(lambda x: chip.compensate_pressure(x, t_fine, cal), pressure, 0, top)
    adc_h = None
    if humidity is not None and cal.has_humidity:
        adc_h = _invert(lambda x: chip.compensate_humidity(x, t_fine, cal), humidity, 0, 0xFFFF)
    return adc_t, adc_p, adc_h


class BME280Emulator(EmulatedDevice):
    """BME280 (``chip_id=0x60``, default) or BMP280 (``chip_id=0x58``).

    Quantities: temperature (°C), pressure (Pa), humidity (%).
    """

    NAME = "bme280"

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        chip_id: int = chip.CHIP_ID_BME280,
        calibration: chip.Calibration = DATASHEET_CALIBRATION,
        phase: float = 0.0,
    ) -> None:
        super().__init__(clock)
        self.chip_id = chip_id
        self.calibration = calibration
        self.phase = phase
        self.regs = bytearray(256)
        self.pointer = 0
        self._done_at = 0.0
        self._pending: Optional[bytes] = None
        self.measurements = 0
        self.reset()

    @property
    def has_humidity(self) -> bool:
        return self.chip_id == chip.CHIP_ID_BME280

    def reset(self) -> None:
        block_88, block_e1 = encode_calibration(self.calibration)
        self.regs[:] = bytes(256)
        self.regs[chip.REG_CALIB_TP : chip.REG_CALIB_TP + 26] = block_88
        if self.has_humidity:
            self.regs[chip.REG_CALIB_H : chip.REG_CALIB_H + 7] = block_e1
        self.regs[chip.REG_CHIP_ID] = self.chip_id
        # data registers after power-on reset hold the "skipped" pattern
        self.regs[chip.REG_DATA : chip.REG_DATA + 8] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
        self._pending = None

    def values(self, t: float) -> dict[str, float]:
        values = {
            "temperature": slow_wave(t, 21.0, 3.0, 3600.0, self.phase),
            "pressure": slow_wave(t, 100800.0, 300.0, 7200.0, self.phase + 1.0),
        }
        if self.has_humidity:
            values["humidity"] = slow_wave(t, 45.0, 10.0, 5400.0, self.phase + 2.0)
        return values

    def _measure(self) -> bytes:
        q = self.quantities()
        ctrl = self.regs[chip.REG_CTRL_MEAS]
        adc_t, adc_p, adc_h = raw_values(
            self.calibration, q["temperature"], q["pressure"], q.get("humidity")
        )
        if not ctrl >> 5 & 0x7:
            adc_t = chip.SKIPPED_20BIT
        if not ctrl >> 2 & 0x7:
            adc_p = chip.SKIPPED_20BIT
        if adc_h is None or not self.regs[chip.REG_CTRL_HUM] & 0x7:
            adc_h = chip.SKIPPED_16BIT
        return bytes(
            (adc_p >> 12, adc_p >> 4 & 0xFF, (adc_p & 0xF) << 4,
             adc_t >> 12, adc_t >> 4 & 0xFF, (adc_t & 0xF) << 4,
             adc_h >> 8, adc_h & 0xFF)
        )  # fmt: skip

    def _settle(self) -> None:
        if self._pending is not None and self.clock() >= self._done_at:
            self.regs[chip.REG_DATA : chip.REG_DATA + 8] = self._pending
            self._pending = None
            self.regs[chip.REG_CTRL_MEAS] &= 0xFC  # forced mode returns to sleep

    def write(self, data: bytes) -> None:
        # the chip takes (register, value) pairs; it does not auto-increment on writes
        if data:
            self.pointer = data[0]
        for i in range(0, len(data) - 1, 2):
            self._write_register(data[i], data[i + 1])

    def _write_register(self, register: int, value: int) -> None:
        self._settle()
        if register == chip.REG_RESET:
            if value == chip.RESET_WORD:
                self.reset()
            return
        if register == chip.REG_CTRL_HUM and not self.has_humidity:
            return
        if register not in (chip.REG_CTRL_HUM, chip.REG_CTRL_MEAS, chip.REG_CONFIG):
            return  # read-only
        self.regs[register] = value
        if register == chip.REG_CTRL_MEAS and value & 0x3 in (1, 2, 3):
            osrs = [1 << (c - 1) if c else 0 for c in
                    (value >> 5 & 7, value >> 2 & 7, self.regs[chip.REG_CTRL_HUM] & 7)]
            if not self.has_humidity:
                osrs[2] = 0
            self._done_at = self.clock() + chip.measurement_time(*(min(o, 16) for o in osrs))
            self._pending = self._measure()
            self.measurements += 1

    def read(self, length: int) -> bytes:
        self._settle()
        out = bytearray()
        for _ in range(length):
            register = self.pointer
            if register == chip.REG_STATUS:
                out.append(chip.STATUS_MEASURING if self._pending is not None else 0)
            else:
                out.append(self.regs[register])
            self.pointer = (self.pointer + 1) & 0xFF
        if self.regs[chip.REG_CTRL_MEAS] & 3 == 3 and self._pending is None:
            # normal mode: keep converting
            self.regs[chip.REG_DATA : chip.REG_DATA + 8] = self._measure()
        return bytes(out)
