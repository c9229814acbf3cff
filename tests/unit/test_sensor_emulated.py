"""The emulated SMBus, the demo bus, the registries and the emulated:// URLs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import serial
from smbus2 import i2c_msg

import edge_agent.sensors as sensors
from edge_agent.sensors import I2C_DRIVERS, NMEA, PMS5003
from edge_agent.sensors import pms5003 as pms
from edge_agent.sensors.emulated import EmulatedSMBus, VirtualClock, demo_bus
from edge_agent.sensors.emulated.bus import EmulatedDevice


class Recorder(EmulatedDevice):
    NAME = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> None:
        self.log.append(("w", data))

    def read(self, length: int) -> bytes:
        self.log.append(("r", bytes((length,))))
        return bytes(range(0x10, 0x10 + length))


def test_smbus_calls_become_wire_transactions():
    device = Recorder()
    bus = EmulatedSMBus(1, {0x30: device})
    assert bus.read_word_data(0x30, 0x05) == 0x1110  # first byte on the wire is the LSB
    bus.write_word_data(0x30, 0x01, 0xABCD)
    assert bus.read_i2c_block_data(0x30, 0x88, 3) == [0x10, 0x11, 0x12]
    bus.write_i2c_block_data(0x30, 0x02, [1, 2])
    bus.write_byte(0x30, 0x07)
    assert bus.read_byte(0x30) == 0x10
    assert bus.read_byte_data(0x30, 0xD0) == 0x10
    bus.write_byte_data(0x30, 0xF4, 0x27)
    assert device.log == [
        ("w", b"\x05"), ("r", b"\x02"),
        ("w", b"\x01\xcd\xab"),
        ("w", b"\x88"), ("r", b"\x03"),
        ("w", b"\x02\x01\x02"),
        ("w", b"\x07"),
        ("r", b"\x01"),
        ("w", b"\xd0"), ("r", b"\x01"),
        ("w", b"\xf4\x27"),
    ]  # fmt: skip


def test_i2c_rdwr_with_real_smbus2_messages():
    device = Recorder()
    bus = EmulatedSMBus(1, {0x30: device})
    write, read = i2c_msg.write(0x30, [0x24, 0x00]), i2c_msg.read(0x30, 4)
    bus.i2c_rdwr(write, read)
    assert bytes(read) == b"\x10\x11\x12\x13" and list(read) == [16, 17, 18, 19]
    assert device.log == [("w", b"\x24\x00"), ("r", b"\x04")]


def test_missing_address_nacks_and_block_limit():
    bus = EmulatedSMBus()
    with pytest.raises(OSError) as info:
        bus.read_byte_data(0x40, 0)
    assert info.value.errno == 121 and "Remote I/O" in str(info.value)
    bus.add(0x40, Recorder())
    with pytest.raises(ValueError):
        bus.read_i2c_block_data(0x40, 0, 33)
    bus.remove(0x40)
    with pytest.raises(OSError):
        bus.write_byte(0x40, 1)


def test_demo_bus_serves_every_driver():
    clock = VirtualClock()
    bus = demo_bus(clock=clock.now, sleep=clock.sleep)
    expected = {
        (0x76, "bme280"): {"temperature", "pressure", "humidity"},
        (0x44, "sht3x"): {"temperature", "humidity"},
        (0x23, "bh1750"): {"lux"},
        (0x48, "ads1115"): {"ain0"},
    }
    for (address, name), fields in expected.items():
        driver = I2C_DRIVERS[name](bus, address, {}, sleep=clock.sleep)
        assert name == driver.NAME
        reading = driver.read()
        assert set(reading) == fields
        assert all(isinstance(v, float) for v in reading.values())


def test_faults_are_per_device():
    clock = VirtualClock()
    bus = demo_bus(clock=clock.now, sleep=clock.sleep)
    bus.devices[0x76].fault = "absent"
    with pytest.raises(OSError):
        I2C_DRIVERS["bme280"](bus, 0x76, {}, sleep=clock.sleep).read()
    assert "lux" in I2C_DRIVERS["bh1750"](bus, 0x23, {}, sleep=clock.sleep).read()
    with pytest.raises(ValueError, match="bad_crc"):
        bus.devices[0x76].fault = "bad_crc"  # a BME280 has no CRC to corrupt


def test_import_is_light():
    code = (
        "import sys, edge_agent.sensors as s; "
        "assert 'smbus2' not in sys.modules, 'smbus2 imported eagerly'; "
        "assert 'edge_agent.sensors.emulated' not in sys.modules; "
        "import serial; assert 'edge_agent.sensors.urlhandler' in serial.protocol_handler_packages"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_emulated_pms5003_url():
    assert sensors.register_url_handlers()
    port = serial.serial_for_url("emulated://pms5003?interval=0.05&garbage=0.5&seed=2",
                                 baudrate=9600, timeout=2)  # fmt: skip
    try:
        parser = PMS5003()
        readings: list[dict] = []
        while len(readings) < 3:
            data = port.read(64)
            assert data, "no frame within the timeout"
            readings += parser.feed(data)
        assert set(readings[0]) == set(pms.FIELDS)
    finally:
        port.close()


def test_emulated_pms5003_url_passive_mode():
    port = serial.serial_for_url("emulated://pms5003?mode=passive&interval=0.05", timeout=0.3)
    try:
        parser = PMS5003({"mode": "passive"})
        assert parser.feed(port.read(64)) == []  # silent until asked
        port.write(parser.request())
        assert len(parser.feed(port.read(32))) == 1
    finally:
        port.close()


def test_emulated_nmea_url():
    port = serial.serial_for_url("emulated://nmea?interval=0.05&lat=-33.8688&lon=151.2093",
                                 timeout=2)  # fmt: skip
    try:
        parser = NMEA()
        readings: list[dict] = []
        while len(readings) < 4:
            readings += parser.feed(port.readline())
        assert all(r["latitude"] == pytest.approx(-33.8688, abs=0.001) for r in readings)
        assert parser.errors == 0
    finally:
        port.close()


@pytest.mark.parametrize("url,message", [
    ("emulated://toaster", "no emulated serial device 'toaster'"),
    ("emulated://pms5003?colour=red", "bad option colour"),
    ("emulated://nmea?interval=0", "interval must be > 0"),
])  # fmt: skip
def test_bad_emulated_urls(url, message):
    with pytest.raises(serial.SerialException, match=message):
        serial.serial_for_url(url)
