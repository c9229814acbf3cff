"""Generic register driver, for I2C chips edge-agent does not ship a driver for.

Reads ``length`` bytes starting at ``register`` with one SMBus I2C block read
(the chip must auto-increment its register pointer, as most do), optionally
after writing trigger bytes, and turns them into one field:
``value = int(bytes, byteorder, signed) * scale + offset``.

Example, the TI TMP102 temperature register (datasheet SBOS397 section 7.5.1):
register 0x00, length 2, big-endian, signed, 12 bits left-justified, so
``scale = 0.0625 / 16`` gives °C.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

from ._common import Option, Options, Sleep, SMBusLike, Stepped, Steps, check_address


def decode(
    raw: bytes,
    byteorder: str = "big",
    signed: bool = False,
    scale: float = 1.0,
    offset: float = 0.0,
) -> float:
    """The scaled value of the raw register bytes."""
    value = int.from_bytes(raw, "big" if byteorder == "big" else "little", signed=signed)
    return value * scale + offset


class Register(Stepped):
    """Read one value from a register.

    Options: ``register`` (0..255, required), ``length`` (1..32 bytes,
    default 2), ``byteorder`` ("big" default, "little"), ``signed`` (default
    false), ``scale`` (default 1), ``offset`` (default 0), ``field`` (field
    name, default "value"), ``write`` (list of [register, byte] pairs written
    before each read, e.g. to trigger a conversion), ``delay`` (seconds to wait
    after those writes, default 0). The field is an integer when neither scale
    nor offset is given, a float otherwise.
    """

    NAME = "register"
    ADDRESSES: tuple[int, ...] = ()
    OPTIONS = (
        Option("register", "int", required=True, minimum=0, maximum=255,
               doc="the register to read"),
        Option("length", "int", 2, minimum=1, maximum=32, doc="bytes to read"),
        Option("byteorder", "choice", "big", choices=("big", "little")),
        Option("signed", "bool", False),
        Option("scale", "number", 1.0),
        Option("offset", "number", 0.0),
        Option("field", "str", "value"),
        Option("write", "any", [], doc="[register, byte] pairs written before each read"),
        Option("delay", "number", 0.0, minimum=0.0, maximum=10.0,
               doc="seconds between the writes and the read"),
    )

    def __init__(
        self,
        bus: SMBusLike,
        address: int,
        options: Optional[Mapping[str, Any]] = None,
        *,
        sleep: Sleep = time.sleep,
    ) -> None:
        opts = Options(self.NAME, options, self.OPTIONS)
        self.register: int = opts["register"]
        self.length: int = opts["length"]
        self.byteorder: str = opts["byteorder"]
        self.signed: bool = opts["signed"]
        self.integer = not (opts.has("scale") or opts.has("offset"))
        self.scale: float = opts["scale"]
        self.offset: float = opts["offset"]
        self.field: str = opts["field"]
        writes = opts["write"]
        if not isinstance(writes, list) or not all(
            isinstance(w, (list, tuple))
            and len(w) == 2
            and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in w)
            for w in writes
        ):
            raise opts.error("write", f"must be a list of [register, byte] pairs, got {writes!r}")
        self.writes: list[tuple[int, int]] = [(w[0], w[1]) for w in writes]
        self.delay: float = opts["delay"]
        self.bus = bus
        self.address = check_address(self.NAME, address, ())
        self.sleep = sleep

    def steps(self) -> Steps:
        for register, value in self.writes:
            self.bus.write_byte_data(self.address, register, value)
        if self.delay:
            yield self.delay
        raw = bytes(self.bus.read_i2c_block_data(self.address, self.register, self.length))
        if self.integer:
            return {self.field: int.from_bytes(raw, self.byteorder, signed=self.signed)}  # type: ignore[arg-type]
        return {self.field: decode(raw, self.byteorder, self.signed, self.scale, self.offset)}
