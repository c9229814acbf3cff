"""Shared pieces of the sensor drivers: reading type, bus protocol, option checks.

Drivers validate their ``options`` dict in ``__init__`` with these helpers so a
user sees one sentence naming the driver, the option and what is allowed.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Protocol, Sequence, Union

FieldValue = Union[float, int, bool, str]
Reading = Dict[str, FieldValue]
Sleep = Callable[[float], None]

#: errno of a NACK on Linux I2C (EREMOTEIO): the device did not answer.
EREMOTEIO = 121


class SMBusLike(Protocol):
    """The subset of :class:`smbus2.SMBus` the drivers use (the emulated bus has it too)."""

    def read_byte(self, i2c_addr: int) -> int: ...
    def write_byte(self, i2c_addr: int, value: int) -> None: ...
    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_word_data(self, i2c_addr: int, register: int) -> int: ...
    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...
    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None: ...
    def i2c_rdwr(self, *i2c_msgs: Any) -> None: ...


class Options:
    """Reads and checks one driver's ``options`` dict; unknown keys are an error."""

    def __init__(self, driver: str, options: Optional[Mapping[str, Any]]) -> None:
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise ValueError(f"{driver}: options must be a mapping, got {type(options).__name__}")
        self.driver = driver
        self._options = dict(options)
        self._used: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self._used.add(key)
        return self._options.get(key, default)

    def has(self, key: str) -> bool:
        return key in self._options

    def error(self, key: str, message: str) -> ValueError:
        return ValueError(f"{self.driver}: option {key!r} {message}")

    def choice(self, key: str, default: Any, allowed: Iterable[Any]) -> Any:
        value = self._get(key, default)
        allowed = list(allowed)
        if isinstance(value, str):
            matches = [a for a in allowed if isinstance(a, str) and a.lower() == value.lower()]
            if matches:
                return matches[0]
        elif not isinstance(value, bool) and value in allowed:
            return allowed[allowed.index(value)]
        shown = ", ".join(repr(a) for a in allowed)
        raise self.error(key, f"must be one of {shown}, got {value!r}")

    def number(
        self,
        key: str,
        default: Optional[float],
        minimum: Optional[float] = None,
        maximum: Optional[float] = None,
        integer: bool = False,
    ) -> Any:
        value = self._get(key, default)
        if value is None:
            raise self.error(key, "is required")
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be {kind}, got {value!r}")
        if integer and not isinstance(value, int):
            raise self.error(key, f"must be {kind}, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def string(self, key: str, default: Optional[str]) -> str:
        value = self._get(key, default)
        if value is None:
            raise self.error(key, "is required")
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def raw(self, key: str, default: Any) -> Any:
        return self._get(key, default)

    def finish(self) -> None:
        """Raise on keys no getter asked for (typos must not pass silently)."""
        unknown = sorted(set(self._options) - self._used)
        if unknown:
            known = ", ".join(sorted(self._used)) or "none"
            raise ValueError(
                f"{self.driver}: unknown option(s) {', '.join(map(repr, unknown))}; "
                f"known options: {known}"
            )


def check_address(driver: str, address: Any, allowed: Sequence[int]) -> int:
    """Validate an I2C address against the addresses the chip can answer on."""
    if isinstance(address, bool) or not isinstance(address, int):
        raise ValueError(f"{driver}: address must be an integer such as 0x{allowed[0]:02x}")
    if allowed and address not in allowed:
        shown = ", ".join(f"0x{a:02x}" for a in allowed)
        raise ValueError(f"{driver}: address 0x{address:02x} is not one of {shown}")
    if not 0x03 <= address <= 0x77:
        raise ValueError(f"{driver}: address 0x{address:02x} is outside 0x03..0x77")
    return address


def swap16(word: int) -> int:
    """Swap the bytes of a 16-bit word (SMBus words are little-endian on the wire)."""
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def to_signed(value: int, bits: int) -> int:
    """Two's-complement interpretation of an unsigned ``bits``-wide integer."""
    sign = 1 << (bits - 1)
    return (value & (sign - 1)) - (value & sign)


def i2c_read(bus: SMBusLike, address: int, length: int) -> bytes:
    """A plain I2C read transaction of ``length`` bytes (no command byte sent first)."""
    from smbus2 import i2c_msg

    msg = i2c_msg.read(address, length)
    bus.i2c_rdwr(msg)
    return bytes(msg)


def i2c_write(bus: SMBusLike, address: int, data: bytes) -> None:
    """A plain I2C write transaction."""
    from smbus2 import i2c_msg

    bus.i2c_rdwr(i2c_msg.write(address, data))
