"""ROHM BH1750FVI ambient light sensor.

Datasheet: ROHM BH1750FVI, "Instruction Set Architecture" (page 5),
"Measurement sequence example" (page 7), "Adjust measurement result for
influence of optical window" (MTreg, page 11).

No registers: one-byte instructions, then a plain 2-byte read (big-endian).
  0x01 power on, 0x07 reset, 0x20 one-time H-resolution (1 lx, <= 180 ms),
  0x21 one-time H-resolution mode 2 (0.5 lx), 0x23 one-time L-resolution
  (4 lx, <= 24 ms), 0x40|MT[7:5] and 0x60|MT[4:0] set the measurement time
  register (default 69). lux = raw / 1.2 * (69 / MTreg) (mode 2: / 2 more).
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

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
)

ADDRESSES = (0x23, 0x5C)
POWER_ON = 0x01
RESET = 0x07
DEFAULT_MTREG = 69
#: mode -> (instruction, max wait at MTreg 69 in s, lux per count divisor)
MODES = {
    "high": (0x20, 0.180, 1.2),
    "high2": (0x21, 0.180, 2.4),
    "low": (0x23, 0.024, 1.2),
}


def decode(raw: bytes, mode: str = "high", mtreg: int = DEFAULT_MTREG) -> Reading:
    """lux from the 2 result bytes."""
    count = raw[0] << 8 | raw[1]
    divisor = MODES[mode][2]
    return {"lux": round(count / divisor * DEFAULT_MTREG / mtreg, 2)}


class BH1750(Stepped):
    """BH1750 one-time measurement per :meth:`read` (the chip powers down after).

    Options: ``mode`` ("high" default, "high2", "low"), ``mtreg`` (31..254,
    default 69; larger = more sensitive, longer wait). Field: lux.
    """

    NAME = "bh1750"
    ADDRESSES = ADDRESSES
    OPTIONS = (
        Option("mode", "choice", "high", choices=tuple(MODES),
               doc="high 1 lx, high2 0.5 lx, low 4 lx (faster)"),
        Option("mtreg", "int", DEFAULT_MTREG, minimum=31, maximum=254,
               doc="measurement time register: larger = more sensitive, longer wait"),
    )

    def __init__(
        self,
        bus: SMBusLike,
        address: int = 0x23,
        options: Optional[Mapping[str, Any]] = None,
        *,
        sleep: Sleep = time.sleep,
    ) -> None:
        opts = Options(self.NAME, options, self.OPTIONS)
        self.mode: str = opts["mode"]
        self.mtreg: int = opts["mtreg"]
        self.bus = bus
        self.address = check_address(self.NAME, address, ADDRESSES)
        self.sleep = sleep

    def steps(self) -> Steps:
        instruction, wait, _ = MODES[self.mode]
        self.bus.write_byte(self.address, POWER_ON)
        # set MTreg every time: the chip forgets it on power loss and keeps
        # whatever another program set until then
        self.bus.write_byte(self.address, 0x40 | self.mtreg >> 5)
        self.bus.write_byte(self.address, 0x60 | self.mtreg & 0x1F)
        self.bus.write_byte(self.address, instruction)
        yield wait * self.mtreg / DEFAULT_MTREG
        return decode(i2c_read(self.bus, self.address, 2), self.mode, self.mtreg)
