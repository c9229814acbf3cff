"""TI ADS1115 16-bit 4-channel ADC.

Datasheet: TI SBAS444, section 9.3.3 (multiplexer), 9.3.3/table 3 (full-scale
range and LSB), 9.4.2 (single-shot mode), 9.6 (register map: table 8 config
register, 9.6.1 conversion register).

Registers used (pointer register values):
  0x00 conversion: int16, big-endian on the wire
  0x01 config: OS[15] (write 1 = start a single conversion; reads 1 when idle),
       MUX[14:12], PGA[11:9], MODE[8] (1 = single shot), DR[7:5],
       COMP_MODE/POL/LAT[4:2], COMP_QUE[1:0] (0b11 = comparator off)
SMBus word transfers are little-endian while the chip is big-endian, so every
word is byte-swapped (word transfers work on every adapter, block reads don't).
"""

from __future__ import annotations

import time
from typing import Any, Generator, Mapping, Optional, Union

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
    run_steps,
    swap16,
    to_signed,
)

ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)
REG_CONVERSION = 0x00
REG_CONFIG = 0x01
OS_START = 0x8000  # write: start a conversion; read: 1 = not converting
MODE_SINGLE = 0x0100
COMP_QUE_OFF = 0x0003
#: full-scale range in volts -> PGA code
PGA = {6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5}
#: samples per second -> DR code
DATA_RATE = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}
#: differential input pairs -> MUX code; single-ended AINx is 0b100 + x
DIFFERENTIAL = {"0-1": 0, "0-3": 1, "1-3": 2, "2-3": 3}


def mux_code(channel: Union[int, str]) -> int:
    """MUX bits for channel 0..3 (single-ended, against GND) or "0-1" etc."""
    if isinstance(channel, int) and not isinstance(channel, bool) and 0 <= channel <= 3:
        return 0b100 + channel
    if isinstance(channel, str) and channel in DIFFERENTIAL:
        return DIFFERENTIAL[channel]
    raise ValueError(
        f"ads1115: channel {channel!r} is not 0, 1, 2, 3 or one of "
        + ", ".join(repr(k) for k in DIFFERENTIAL)
    )


def config_word(channel: Union[int, str], full_scale: float = 4.096, data_rate: int = 128) -> int:
    """The config register value that starts one single-shot conversion."""
    return (
        OS_START
        | mux_code(channel) << 12
        | PGA[full_scale] << 9
        | MODE_SINGLE
        | DATA_RATE[data_rate] << 5
        | COMP_QUE_OFF
    )


def decode(raw: bytes, full_scale: float = 4.096) -> float:
    """Volts from the 2 conversion-register bytes (big-endian int16)."""
    count = to_signed(raw[0] << 8 | raw[1], 16)
    return count * full_scale / 32768.0


def field_name(channel: Union[int, str]) -> str:
    return f"ain{channel}" if isinstance(channel, int) else "ain" + channel.replace("-", "_")


class ADS1115(Stepped):
    """One single-shot conversion per configured channel per :meth:`read`.

    Options: ``channels`` (list of 0..3 or "0-1", "0-3", "1-3", "2-3"; default
    [0]), ``full_scale`` (volts: 6.144, 4.096 default, 2.048, 1.024, 0.512,
    0.256), ``data_rate`` (8..860 SPS, default 128), ``fields`` (optional field
    names, one per channel). Fields: ain0..ain3 / ain0_1 ... in volts.
    """

    NAME = "ads1115"
    ADDRESSES = ADDRESSES
    OPTIONS = (
        Option("channels", "any", [0], doc="a list of inputs: 0-3 (single-ended) or '0-1', "
               "'0-3', '1-3', '2-3' (differential)"),
        Option("full_scale", "choice", 4.096, choices=tuple(PGA), doc="volts (the PGA)"),
        Option("data_rate", "choice", 128, choices=tuple(DATA_RATE), doc="samples per second"),
        Option("fields", "any", None, doc="one field name per channel"),
    )
    MAX_READY_POLLS = 20

    def __init__(
        self,
        bus: SMBusLike,
        address: int = 0x48,
        options: Optional[Mapping[str, Any]] = None,
        *,
        sleep: Sleep = time.sleep,
    ) -> None:
        opts = Options(self.NAME, options, self.OPTIONS)
        channels = opts["channels"]
        if isinstance(channels, (int, str)):
            channels = [channels]
        if not isinstance(channels, list) or not channels:
            raise opts.error("channels", f"must be a non-empty list, got {channels!r}")
        for channel in channels:
            mux_code(channel)
        self.channels: list[Union[int, str]] = channels
        self.full_scale: float = opts["full_scale"]
        self.data_rate: int = opts["data_rate"]
        names = opts["fields"]
        if names is None:
            names = [field_name(c) for c in channels]
        if (
            not isinstance(names, list)
            or len(names) != len(channels)
            or not all(isinstance(n, str) and n for n in names)
        ):
            raise opts.error("fields", f"must be a list of {len(channels)} names, got {names!r}")
        self.fields: list[str] = names
        self.bus = bus
        self.address = check_address(self.NAME, address, ADDRESSES)
        self.sleep = sleep

    def read_channel(self, channel: Union[int, str]) -> float:
        """Volts at one channel (one single-shot conversion)."""
        return run_steps(self.channel_steps(channel), self.sleep)

    def channel_steps(self, channel: Union[int, str]) -> Generator[float, None, float]:
        """:meth:`read_channel` as steps (yields its conversion waits)."""
        word = config_word(channel, self.full_scale, self.data_rate)
        self.bus.write_word_data(self.address, REG_CONFIG, swap16(word))
        # one conversion takes 1/DR; the internal oscillator may run 10% slow
        yield 1.1 / self.data_rate + 0.0001
        for _ in range(self.MAX_READY_POLLS):
            if swap16(self.bus.read_word_data(self.address, REG_CONFIG)) & OS_START:
                break
            yield 0.1 / self.data_rate
        else:
            raise SensorError(f"ads1115 at 0x{self.address:02x}: conversion did not finish")
        raw = swap16(self.bus.read_word_data(self.address, REG_CONVERSION))
        return decode(bytes((raw >> 8, raw & 0xFF)), self.full_scale)

    def steps(self) -> Steps:
        reading: Reading = {}
        for name, channel in zip(self.fields, self.channels):
            reading[name] = round((yield from self.channel_steps(channel)), 6)
        return reading
