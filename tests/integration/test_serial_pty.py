"""Serial parsers through the kernel's tty layer: emulators write into a real pty pair.

pyserial opens the slave device (through a stable symlink, as udev's
/dev/serial/by-id gives on a Pi) while the emulator writes real frames, with
garbage between them, into the master side.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import serial

from edge_agent.sensors import NMEA, PMS5003
from edge_agent.sensors.emulated import NmeaEmulator, Pms5003Emulator, PtySerialDevice

# generous: these bound a hang, they are not speed assertions
DEADLINE = 10.0


def read_readings(port: serial.Serial, parser, count: int) -> list[dict]:
    readings: list[dict] = []
    end = time.monotonic() + DEADLINE
    while len(readings) < count:
        assert time.monotonic() < end, f"only {len(readings)} readings before the deadline"
        readings += parser.feed(port.read(port.in_waiting or 1))
    return readings


@pytest.fixture
def pms_device(tmp_path: Path):
    emulator = Pms5003Emulator(interval=0.05, garbage=0.5, seed=7)
    device = PtySerialDevice(emulator, link=str(tmp_path / "ttyPMS"))
    with device:
        yield device


def test_pms5003_through_a_pty_with_garbage(pms_device: PtySerialDevice):
    assert Path(pms_device.path).resolve().as_posix().startswith("/dev/pts/")
    with serial.Serial(pms_device.path, 9600, timeout=0.5) as port:
        parser = PMS5003()
        pms_device.inject(b"\x42\x4d\x00\x1c garbage \x00\xff")
        readings = read_readings(port, parser, 10)
    assert pms_device.emulator.garbage_bytes > 0
    assert all(0 < r["pm2_5"] < 100 and r["pm10"] >= r["pm2_5"] for r in readings)
    assert parser.skipped_bytes > 0


def test_pms5003_passive_mode_round_trip(tmp_path: Path):
    emulator = Pms5003Emulator(interval=0.05, mode="passive")
    with PtySerialDevice(emulator) as device, serial.Serial(device.path, 9600, timeout=1) as port:
        parser = PMS5003({"mode": "passive"})
        port.write(parser.startup())
        port.write(parser.request())
        readings = read_readings(port, parser, 1)
    assert set(readings[0]) >= {"pm1_0", "pm2_5", "pm10"}
    assert parser.errors == 0


def test_nmea_through_a_pty(tmp_path: Path):
    emulator = NmeaEmulator(interval=0.05, garbage=0.3, seed=3, lat=51.5007, lon=-0.1246)
    with PtySerialDevice(emulator) as device, serial.Serial(device.path, 9600, timeout=0.5) as port:
        parser = NMEA()
        readings = read_readings(port, parser, 8)
    assert {("fix_quality" in r) for r in readings} == {True, False}  # GGA and RMC
    assert all(r["latitude"] == pytest.approx(51.5007, abs=0.001) for r in readings)
    assert all(r["longitude"] == pytest.approx(-0.1246, abs=0.001) for r in readings)


def test_device_vanishes_and_returns(pms_device: PtySerialDevice):
    parser = PMS5003()
    port = serial.Serial(pms_device.path, 9600, timeout=0.5)
    try:
        assert read_readings(port, parser, 2)
        pms_device.unplug()
        assert not Path(pms_device.path).exists()
        with pytest.raises(serial.SerialException):
            end = time.monotonic() + DEADLINE
            while time.monotonic() < end:  # buffered bytes may still arrive first
                port.read(64)
    finally:
        port.close()

    with pytest.raises(serial.SerialException):
        serial.Serial(pms_device.path, 9600, timeout=0.5)  # nothing there while unplugged

    pms_device.replug()
    with serial.Serial(pms_device.path, 9600, timeout=0.5) as port:
        assert len(read_readings(port, PMS5003(), 3)) >= 3
