"""Generic register driver against a hand-built register device."""

from __future__ import annotations

import pytest

from edge_agent.sensors import Register
from edge_agent.sensors import register as driver_module
from edge_agent.sensors.emulated import EmulatedSMBus
from edge_agent.sensors.emulated.bus import EmulatedDevice


class RegisterFile(EmulatedDevice):
    """A plain auto-incrementing register file."""

    NAME = "registers"

    def __init__(self) -> None:
        super().__init__()
        self.regs = bytearray(256)
        self.pointer = 0
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        if data:
            self.pointer = data[0]
        for offset, value in enumerate(data[1:]):
            self.regs[(self.pointer + offset) & 0xFF] = value

    def read(self, length: int) -> bytes:
        out = bytes(self.regs[(self.pointer + i) & 0xFF] for i in range(length))
        self.pointer = (self.pointer + length) & 0xFF
        return out


def test_decode():
    assert driver_module.decode(b"\x01\x00") == 256
    assert driver_module.decode(b"\x01\x00", "little") == 1
    assert driver_module.decode(b"\xff\xfe", signed=True) == -2
    assert driver_module.decode(b"\x00\x64", scale=0.5, offset=-10) == 40.0


def test_tmp102_example():
    device = RegisterFile()
    device.regs[0:2] = b"\x19\x00"  # 0x190 >> 4 = 25.0 °C at 0.0625 °C/LSB
    bus = EmulatedSMBus(1, {0x48: device})
    options = {"register": 0, "signed": True, "scale": 0.0625 / 16, "field": "temperature"}
    assert Register(bus, 0x48, options).read() == {"temperature": 25.0}
    device.regs[0:2] = b"\xe7\x00"  # -25 °C
    assert Register(bus, 0x48, options).read() == {"temperature": -25.0}


def test_integer_when_unscaled_and_trigger_writes():
    device = RegisterFile()
    device.regs[0x10:0x13] = b"\x01\x02\x03"
    bus = EmulatedSMBus(1, {0x20: device})
    slept: list[float] = []
    driver = Register(bus, 0x20, {"register": 0x10, "length": 3, "byteorder": "little",
                                  "write": [[0x01, 0x80]], "delay": 0.01},
                      sleep=slept.append)  # fmt: skip
    assert driver.read() == {"value": 0x030201}
    assert device.writes[0] == b"\x01\x80" and slept == [0.01]


@pytest.mark.parametrize("options,message", [
    ({}, "'register' is required"),
    ({"register": 300}, "register"),
    ({"register": 0, "length": 0}, "length"),
    ({"register": 0, "byteorder": "middle"}, "byteorder"),
    ({"register": 0, "write": [[1]]}, "write"),
    ({"register": 0, "scale": "x"}, "scale"),
    ({"register": 0, "regsiter": 1}, "unknown option"),
])  # fmt: skip
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        Register(EmulatedSMBus(), 0x20, options)


def test_absent_is_errno_121():
    with pytest.raises(OSError) as info:
        Register(EmulatedSMBus(), 0x20, {"register": 0}).read()
    assert info.value.errno == 121
