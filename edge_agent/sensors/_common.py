"""Shared pieces of the sensor drivers: reading type, bus protocol, option checks.

Each driver declares its options once (``OPTIONS``, a tuple of :class:`Option`);
``Options`` checks a user's ``options`` dict against it, so a user sees one
sentence naming the driver, the option and what is allowed, and config
validation reports the same sentence at the option's line.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

FieldValue = Union[float, int, bool, str]
Reading = Dict[str, FieldValue]
Sleep = Callable[[float], None]
#: a measurement as a generator: it yields each conversion wait (seconds) and
#: returns the reading, so one poller can wait for several chips at once
Steps = Generator[float, None, Reading]
T = TypeVar("T")

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


class Stepped:
    """Base of a driver whose :meth:`read` is written as :meth:`steps`.

    ``read()`` runs the steps with the driver's own ``sleep``; a poller that
    reads several chips on one bus runs their steps interleaved instead
    (:func:`steps_of`), so it sleeps once for all their conversions.
    """

    sleep: Sleep

    def steps(self) -> Steps:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self) -> Reading:
        return run_steps(self.steps(), self.sleep)


def run_steps(steps: Generator[float, None, T], sleep: Callable[[float], Any]) -> T:
    """Run ``steps`` to the end, ``sleep``-ing out each wait it yields; its result."""
    try:
        while True:
            sleep(next(steps))
    except StopIteration as done:
        result: T = done.value
        return result


def steps_of(driver: Any) -> Steps:
    """The measurement of ``driver`` as steps; a driver with only ``read()`` (or
    one that overrides a :class:`Stepped` read) is one step that does it all."""
    if isinstance(driver, Stepped) and type(driver).read is Stepped.read:
        return driver.steps()
    return _whole(driver)


def _whole(driver: Any) -> Steps:
    reading: Reading = driver.read()
    return reading
    yield 0.0  # pragma: no cover - makes this a generator


@dataclass(frozen=True)
class Option:
    """One driver option, declared once: config validation, the driver and the
    docs (:func:`describe_options`) all read this declaration.

    ``kind`` is ``"choice"`` (one of ``choices``; strings match case-insensitively),
    ``"int"``, ``"number"``, ``"bool"``, ``"str"`` (non-empty) or ``"any"`` (the
    driver checks the shape itself, e.g. a list of channels). ``required`` options
    have no default.
    """

    name: str
    kind: str
    default: Any = None
    choices: Tuple[Any, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    required: bool = False
    doc: str = ""

    def accepted(self) -> str:
        """What the option takes, for messages and docs."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        text = {"int": "an integer", "number": "a number", "bool": "true or false",
                "str": "a non-empty string", "any": "a value the driver checks"}[self.kind]
        if self.minimum is not None and self.maximum is not None:
            text += f" from {self.minimum} to {self.maximum}"
        elif self.minimum is not None:
            text += f" >= {self.minimum}"
        return text

    def check(self, value: Any) -> Any:
        """The value to use; raises :class:`ValueError` with the reason."""
        if value is None:
            if self.required:
                raise ValueError("is required")
            return self.default
        if self.kind == "choice":
            if isinstance(value, str):
                for choice in self.choices:
                    if isinstance(choice, str) and choice.lower() == value.lower():
                        return choice
            elif not isinstance(value, bool) and value in self.choices:
                return self.choices[self.choices.index(value)]
            shown = ", ".join(repr(a) for a in self.choices)
            raise ValueError(f"must be one of {shown}, got {value!r}")
        if self.kind in ("int", "number"):
            kind = "an integer" if self.kind == "int" else "a number"
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    self.kind == "int" and not isinstance(value, int)):
                raise ValueError(f"must be {kind}, got {value!r}")
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"must be >= {self.minimum}, got {value!r}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"must be <= {self.maximum}, got {value!r}")
        elif self.kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        elif self.kind == "str" and (not isinstance(value, str) or not value):
            raise ValueError(f"must be a non-empty string, got {value!r}")
        return value


class OptionError(ValueError):
    """A bad driver option; ``key`` names it (config points at its line)."""

    def __init__(self, driver: str, key: str, message: str, unknown: bool = False) -> None:
        #: the sentence after the option's name (config puts it after ``options.KEY:``)
        self.reason = f"unknown option{message}" if unknown else message
        super().__init__(f"{driver}: unknown option {key!r}{message}" if unknown
                         else f"{driver}: option {key!r} {message}")
        self.key = key
        self.unknown = unknown


class Options:
    """One driver's ``options`` dict checked against its declared :class:`Option` s.

    Every declared option is checked here, and any other key is an error (typos
    must not pass silently); ``opts[name]`` is then the value to use.
    """

    def __init__(self, driver: str, options: Optional[Mapping[str, Any]],
                 declared: Sequence[Option]) -> None:
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise ValueError(f"{driver}: options must be a mapping, got {type(options).__name__}")
        self.driver = driver
        self._given = dict(options)
        names = [option.name for option in declared]
        for key in self._given:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise OptionError(driver, str(key), f"{hint}; known options of {driver}: "
                                  f"{', '.join(names) or 'none'}", unknown=True)
        self._values: Dict[str, Any] = {}
        for option in declared:
            try:
                self._values[option.name] = option.check(self._given.get(option.name))
            except ValueError as exc:
                raise OptionError(driver, option.name, str(exc)) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def has(self, key: str) -> bool:
        """Whether the user gave ``key`` (not just its default)."""
        return self._given.get(key) is not None

    def error(self, key: str, message: str) -> OptionError:
        return OptionError(self.driver, key, message)


def describe_options(declared: Sequence[Option]) -> List[str]:
    """One line per option (name, what it takes, default, doc), for docs and help."""
    lines = []
    for option in declared:
        if option.required:
            default = "required"
        elif option.default is None:
            default = "optional"
        elif isinstance(option.default, bool):
            default = f"default {str(option.default).lower()}"
        else:
            default = f"default {option.default!r}"
        accepted = "" if option.kind == "any" else f"{option.accepted()}; "
        doc = f": {option.doc}" if option.doc else ""
        lines.append(f"{option.name} ({accepted}{default}){doc}")
    return lines


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
