"""Bosch BME280 (temperature, pressure, humidity) and BMP280 (no humidity).

Datasheet: Bosch BST-BME280-DS002, section 3.3 (forced mode), 4.2.2/4.2.3
(calibration data and compensation), 5.3/5.4 (memory map), 8.1 (compensation
formulas in double precision), 9.1 (measurement time).

Registers used:
  0xD0 chip id (0x60 = BME280, 0x58 = BMP280; 0x56/0x57 = BMP280 samples)
  0x88..0xA1 calibration T1..T3, P1..P9 (little-endian), H1 at 0xA1
  0xE1..0xE7 calibration H2..H6 (H4/H5 share the nibbles of 0xE5)
  0xF2 ctrl_hum (takes effect only after a write to ctrl_meas)
  0xF3 status (bit 3 = measuring)
  0xF4 ctrl_meas (osrs_t, osrs_p, mode; 0b01 = forced)
  0xF5 config (IIR filter)
  0xF7..0xFE data: press[19:0], temp[19:0], hum[15:0], MSB first
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..errors import SensorError
from ._common import Option, Options, Reading, Sleep, SMBusLike, Stepped, Steps, check_address

REG_CALIB_TP = 0x88
REG_CALIB_H = 0xE1
REG_CHIP_ID = 0xD0
REG_RESET = 0xE0
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7

CHIP_ID_BME280 = 0x60
CHIP_IDS_BMP280 = (0x56, 0x57, 0x58)
STATUS_MEASURING = 0x08
MODE_FORCED = 0b01
RESET_WORD = 0xB6

#: oversampling factor -> register code (0 = measurement skipped)
OVERSAMPLING = {1: 1, 2: 2, 4: 3, 8: 4, 16: 5}
#: IIR filter coefficient -> config register code
IIR_FILTER = {0: 0, 2: 1, 4: 2, 8: 3, 16: 4}
#: the value a data register holds when its measurement was skipped
SKIPPED_20BIT = 0x80000
SKIPPED_16BIT = 0x8000
ADDRESSES = (0x76, 0x77)


@dataclass(frozen=True)
class Calibration:
    """The trimming parameters burnt into each chip (datasheet table 16)."""

    t1: int
    t2: int
    t3: int
    p1: int
    p2: int
    p3: int
    p4: int
    p5: int
    p6: int
    p7: int
    p8: int
    p9: int
    h1: Optional[int] = None
    h2: Optional[int] = None
    h3: Optional[int] = None
    h4: Optional[int] = None
    h5: Optional[int] = None
    h6: Optional[int] = None

    @property
    def has_humidity(self) -> bool:
        return self.h1 is not None


def parse_calibration(block_88: bytes, block_e1: Optional[bytes] = None) -> Calibration:
    """Decode the 26 bytes at 0x88..0xA1 and (BME280 only) the 7 bytes at 0xE1..0xE7."""
    if len(block_88) < 24:
        raise SensorError(f"BME280 calibration block too short: {len(block_88)} bytes")
    t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9 = struct.unpack_from("<HhhHhhhhhhhh", block_88)
    tp = dict(t1=t1, t2=t2, t3=t3, p1=p1, p2=p2, p3=p3, p4=p4, p5=p5, p6=p6, p7=p7, p8=p8, p9=p9)
    if block_e1 is None:
        return Calibration(**tp)
    if len(block_88) < 26 or len(block_e1) < 7:
        raise SensorError("BME280 humidity calibration block too short")
    e1, e2, e3, e4, e5, e6, e7 = block_e1[:7]
    h2 = struct.unpack("<h", bytes((e1, e2)))[0]
    # H4 and H5 are 12-bit signed values sharing register 0xE5: H4 takes its
    # low nibble, H5 its high nibble; the int8 high part carries the sign.
    h4 = _int8(e4) * 16 | (e5 & 0x0F)
    h5 = _int8(e6) * 16 | (e5 >> 4)
    return Calibration(**tp, h1=block_88[25], h2=h2, h3=e3, h4=h4, h5=h5, h6=_int8(e7))


def _int8(value: int) -> int:
    return value - 256 if value > 127 else value


def compensate_temperature(adc_t: int, cal: Calibration) -> tuple[float, int]:
    """Temperature in °C and ``t_fine`` (datasheet 8.1, double precision)."""
    var1 = (adc_t / 16384.0 - cal.t1 / 1024.0) * cal.t2
    var2 = (adc_t / 131072.0 - cal.t1 / 8192.0) ** 2 * cal.t3
    t_fine = int(var1 + var2)  # the datasheet's (BME280_S32_t) cast truncates
    return (var1 + var2) / 5120.0, t_fine


def compensate_pressure(adc_p: int, t_fine: int, cal: Calibration) -> float:
    """Pressure in Pa (datasheet 8.1, double precision)."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * cal.p6 / 32768.0
    var2 = var2 + var1 * cal.p5 * 2.0
    var2 = var2 / 4.0 + cal.p4 * 65536.0
    var1 = (cal.p3 * var1 * var1 / 524288.0 + cal.p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * cal.p1
    if var1 == 0.0:
        raise SensorError("BME280 pressure compensation divided by zero: bad calibration data")
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = cal.p9 * p * p / 2147483648.0
    var2 = p * cal.p8 / 32768.0
    return p + (var1 + var2 + cal.p7) / 16.0


def compensate_humidity(adc_h: int, t_fine: int, cal: Calibration) -> float:
    """Relative humidity in %, clamped to 0..100 (datasheet 8.1, double precision)."""
    assert cal.h1 is not None and cal.h2 is not None and cal.h3 is not None
    assert cal.h4 is not None and cal.h5 is not None and cal.h6 is not None
    h = t_fine - 76800.0
    h = (adc_h - (cal.h4 * 64.0 + cal.h5 / 16384.0 * h)) * (
        cal.h2 / 65536.0 * (1.0 + cal.h6 / 67108864.0 * h * (1.0 + cal.h3 / 67108864.0 * h))
    )
    h = h * (1.0 - cal.h1 * h / 524288.0)
    return min(100.0, max(0.0, h))


def split_raw(raw: bytes) -> tuple[int, int, Optional[int]]:
    """(adc_p, adc_t, adc_h or None) from the data registers read at 0xF7."""
    if len(raw) < 6:
        raise SensorError(f"BME280 data block too short: {len(raw)} bytes")
    adc_p = (raw[0] << 12) | (raw[1] << 4) | (raw[2] >> 4)
    adc_t = (raw[3] << 12) | (raw[4] << 4) | (raw[5] >> 4)
    adc_h = (raw[6] << 8) | raw[7] if len(raw) >= 8 else None
    return adc_p, adc_t, adc_h


def decode(raw: bytes, cal: Calibration, pressure_unit: str = "Pa") -> Reading:
    """Fields from the data registers (0xF7.., 8 bytes for BME280, 6 for BMP280)."""
    adc_p, adc_t, adc_h = split_raw(raw)
    if adc_t == SKIPPED_20BIT:
        raise SensorError("BME280 temperature measurement was skipped (no data yet)")
    temperature, t_fine = compensate_temperature(adc_t, cal)
    reading: Reading = {"temperature": round(temperature, 2)}
    if adc_p != SKIPPED_20BIT:
        pressure = compensate_pressure(adc_p, t_fine, cal)
        if pressure_unit == "hPa":
            reading["pressure"] = round(pressure / 100.0, 4)
        else:
            reading["pressure"] = round(pressure, 2)
    if cal.has_humidity and adc_h is not None and adc_h != SKIPPED_16BIT:
        reading["humidity"] = round(compensate_humidity(adc_h, t_fine, cal), 3)
    return reading


def measurement_time(osrs_t: int, osrs_p: int, osrs_h: int) -> float:
    """Maximum forced-mode measurement time in seconds (datasheet 9.1)."""
    ms = 1.25 + 2.3 * osrs_t
    if osrs_p:
        ms += 2.3 * osrs_p + 0.575
    if osrs_h:
        ms += 2.3 * osrs_h + 0.575
    return ms / 1000.0


class BME280(Stepped):
    """BME280 / BMP280 in forced mode: one measurement per :meth:`read`.

    Options: ``pressure_unit`` ("Pa" default, or "hPa"), ``oversampling``
    (1, 2, 4, 8, 16; default 1, applied to every quantity), ``iir_filter``
    (0, 2, 4, 8, 16; default 0). The constructor does no I/O: the first
    :meth:`read` checks the chip id and reads the calibration, and does so again
    after any bus error (the chip may have been swapped). Fields: temperature
    (°C), pressure (Pa or hPa), humidity (%, BME280 only).
    """

    NAME = "bme280"
    ADDRESSES = ADDRESSES
    OPTIONS = (
        Option("pressure_unit", "choice", "Pa", choices=("Pa", "hPa")),
        Option("oversampling", "choice", 1, choices=tuple(OVERSAMPLING),
               doc="of every measurement (x1 .. x16)"),
        Option("iir_filter", "choice", 0, choices=tuple(IIR_FILTER), doc="IIR filter coefficient"),
    )
    MAX_STATUS_POLLS = 50

    def __init__(
        self,
        bus: SMBusLike,
        address: int = 0x76,
        options: Optional[Mapping[str, Any]] = None,
        *,
        sleep: Sleep = time.sleep,
    ) -> None:
        opts = Options(self.NAME, options, self.OPTIONS)
        self.pressure_unit: str = opts["pressure_unit"]
        self.oversampling: int = opts["oversampling"]
        self.iir_filter: int = opts["iir_filter"]
        self.bus = bus
        self.address = check_address(self.NAME, address, ADDRESSES)
        self.sleep = sleep
        self.chip_id: Optional[int] = None
        self.calibration: Optional[Calibration] = None

    @property
    def chip(self) -> str:
        """"bme280", "bmp280", or "unknown" before the first successful read."""
        if self.chip_id is None:
            return "unknown"
        return "bme280" if self.chip_id == CHIP_ID_BME280 else "bmp280"

    def _setup(self) -> Calibration:
        chip_id = self.bus.read_byte_data(self.address, REG_CHIP_ID)
        if chip_id != CHIP_ID_BME280 and chip_id not in CHIP_IDS_BMP280:
            raise SensorError(
                f"bme280: chip id 0x{chip_id:02x} at address 0x{self.address:02x} is neither "
                "a BME280 (0x60) nor a BMP280 (0x58); check the address with i2cdetect"
            )
        block_88 = bytes(self.bus.read_i2c_block_data(self.address, REG_CALIB_TP, 26))
        block_e1 = None
        if chip_id == CHIP_ID_BME280:
            block_e1 = bytes(self.bus.read_i2c_block_data(self.address, REG_CALIB_H, 7))
        self.bus.write_byte_data(self.address, REG_CONFIG, IIR_FILTER[self.iir_filter] << 2)
        self.chip_id = chip_id
        self.calibration = parse_calibration(block_88, block_e1)
        return self.calibration

    def steps(self) -> Steps:
        """Trigger one forced measurement, wait for it, and return the fields."""
        try:
            return (yield from self._steps())
        except (OSError, SensorError):
            self.calibration = None  # redo detection after the device comes back
            raise

    def _steps(self) -> Steps:
        cal = self.calibration or self._setup()
        code = OVERSAMPLING[self.oversampling]
        if cal.has_humidity:
            self.bus.write_byte_data(self.address, REG_CTRL_HUM, code)
        self.bus.write_byte_data(self.address, REG_CTRL_MEAS, code << 5 | code << 2 | MODE_FORCED)
        yield measurement_time(self.oversampling, self.oversampling,
                               self.oversampling if cal.has_humidity else 0)
        for _ in range(self.MAX_STATUS_POLLS):
            if not self.bus.read_byte_data(self.address, REG_STATUS) & STATUS_MEASURING:
                break
            yield 0.002
        else:
            raise SensorError(
                f"bme280 at 0x{self.address:02x}: measurement did not finish "
                "(status measuring bit stuck)"
            )
        length = 8 if cal.has_humidity else 6
        raw = bytes(self.bus.read_i2c_block_data(self.address, REG_DATA, length))
        return decode(raw, cal, self.pressure_unit)
