"""Sensirion SHT30/SHT31/SHT35 (temperature, humidity).

Datasheet: Sensirion SHT3x-DIS, section 4.3 (single shot mode, table 9),
4.12 (CRC-8), 4.13 (conversion of signal output); table 4 (measurement
durations).

Commands used (16 bit, MSB first; no registers): single shot without clock
stretching 0x24 0x00 (high repeatability), 0x24 0x0B (medium), 0x24 0x16
(low). After the command the sensor NACKs reads until the measurement is done;
the result is 6 bytes ``T_msb T_lsb CRC RH_msb RH_lsb CRC``. Both the command
and the result use plain I2C transactions (``i2c_rdwr``), because an SMBus
register read would first send a stray command byte.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

from ..errors import SensorError
from ._common import (
    Option,
    Options,
    Reading,
    Sleep,
    SMBusLike,
    Stepped,
    Steps,
    check_address,
    i2c_read,
    i2c_write,
)

ADDRESSES = (0x44, 0x45)
#: repeatability -> (command bytes, maximum measurement duration in s)
SINGLE_SHOT = {
    "high": (b"\x24\x00", 0.0155),
    "medium": (b"\x24\x0b", 0.0065),
    "low": (b"\x24\x16", 0.0045),
}
CRC_POLYNOMIAL = 0x31
CRC_INIT = 0xFF


def crc8(data: bytes) -> int:
    """Sensirion CRC-8: polynomial 0x31, init 0xFF, no reflection, no final xor."""
    crc = CRC_INIT
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLYNOMIAL) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def decode(raw: bytes) -> Reading:
    """Fields from the 6 result bytes; a CRC mismatch raises :class:`SensorError`."""
    if len(raw) != 6:
        raise SensorError(f"sht3x: expected 6 bytes, got {len(raw)}")
    for name, word, crc in (("temperature", raw[0:2], raw[2]), ("humidity", raw[3:5], raw[5])):
        expected = crc8(word)
        if crc != expected:
            raise SensorError(
                f"sht3x: CRC error in {name} word {word.hex()}: got 0x{crc:02x}, "
                f"expected 0x{expected:02x} (noise on the bus or a loose wire)"
            )
    raw_t = raw[0] << 8 | raw[1]
    raw_rh = raw[3] << 8 | raw[4]
    return {
        "temperature": round(-45.0 + 175.0 * raw_t / 65535.0, 3),
        "humidity": round(100.0 * raw_rh / 65535.0, 3),
    }


class SHT3x(Stepped):
    """SHT3x single-shot measurement per :meth:`read`.

    Options: ``repeatability`` ("high" default, "medium", "low").
    Fields: temperature (°C), humidity (%).
    """

    NAME = "sht3x"
    ADDRESSES = ADDRESSES
    OPTIONS = (Option("repeatability", "choice", "high", choices=tuple(SINGLE_SHOT),
                      doc="single-shot repeatability: higher = less noise, longer wait"),)

    def __init__(
        self,
        bus: SMBusLike,
        address: int = 0x44,
        options: Optional[Mapping[str, Any]] = None,
        *,
        sleep: Sleep = time.sleep,
    ) -> None:
        opts = Options(self.NAME, options, self.OPTIONS)
        self.repeatability: str = opts["repeatability"]
        self.bus = bus
        self.address = check_address(self.NAME, address, ADDRESSES)
        self.sleep = sleep

    def steps(self) -> Steps:
        command, duration = SINGLE_SHOT[self.repeatability]
        i2c_write(self.bus, self.address, command)
        yield duration
        return decode(i2c_read(self.bus, self.address, 6))
