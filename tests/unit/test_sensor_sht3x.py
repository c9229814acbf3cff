"""SHT3x: CRC vector, decode, driver against its emulator, faults."""

from __future__ import annotations

import pytest

from edge_agent.errors import SensorError
from edge_agent.sensors import SHT3x
from edge_agent.sensors import sht3x as chip
from edge_agent.sensors.emulated import EmulatedSMBus, SHT3xEmulator, VirtualClock


def test_crc_datasheet_vector():
    assert chip.crc8(b"\xbe\xef") == 0x92


def test_decode_known_words():
    # raw 0x6666 -> -45 + 175 * 26214/65535 = 24.999 °C; 0x8000 -> 50.0008 %
    raw = b"\x66\x66" + bytes((chip.crc8(b"\x66\x66"),)) + b"\x80\x00"
    raw += bytes((chip.crc8(b"\x80\x00"),))
    reading = chip.decode(raw)
    assert reading["temperature"] == pytest.approx(25.0, abs=0.01)
    assert reading["humidity"] == pytest.approx(50.0, abs=0.01)


def test_bad_crc_raises_sensor_error_not_a_reading():
    raw = b"\xbe\xef\x92\xbe\xef\x93"
    with pytest.raises(SensorError, match="CRC error in humidity"):
        chip.decode(raw)


@pytest.fixture
def setup():
    clock = VirtualClock()
    emulator = SHT3xEmulator(clock=clock.now)
    bus = EmulatedSMBus(1, {0x44: emulator}, sleep=clock.sleep)
    return clock, emulator, SHT3x(bus, 0x44, {}, sleep=clock.sleep)


def test_driver_reads_emulator(setup):
    clock, emulator, driver = setup
    emulator.override.update(temperature=19.5, humidity=72.25)
    reading = driver.read()
    assert reading == {"temperature": pytest.approx(19.5, abs=0.005),
                       "humidity": pytest.approx(72.25, abs=0.005)}  # fmt: skip
    assert clock.slept >= 0.0155


def test_read_without_waiting_is_nacked(setup):
    clock, emulator, driver = setup
    driver.sleep = lambda seconds: None  # a driver that forgot to wait
    with pytest.raises(OSError) as info:
        driver.read()
    assert info.value.errno == 121


def test_bad_crc_fault_is_sensor_error(setup):
    _, emulator, driver = setup
    emulator.fault = "bad_crc"
    with pytest.raises(SensorError, match="CRC"):
        driver.read()
    emulator.fault = None
    assert "humidity" in driver.read()


def test_absent_device(setup):
    _, emulator, driver = setup
    emulator.fault = "absent"
    with pytest.raises(OSError) as info:
        driver.read()
    assert info.value.errno == 121


def test_hang_fault_sleeps_on_each_access(setup):
    clock, emulator, driver = setup
    emulator.fault = "hang"
    emulator.hang_seconds = 2.0
    before = clock.now()
    driver.read()
    assert clock.now() - before >= 4.0  # command and result transactions both hung


def test_repeatability_options(setup):
    clock, emulator, _ = setup
    bus = EmulatedSMBus(1, {0x45: emulator}, sleep=clock.sleep)
    driver = SHT3x(bus, 0x45, {"repeatability": "low"}, sleep=clock.sleep)
    start = clock.slept
    assert "temperature" in driver.read()
    assert clock.slept - start == pytest.approx(0.0045)
    with pytest.raises(ValueError, match="repeatability"):
        SHT3x(bus, 0x44, {"repeatability": "ultra"})


def test_unknown_fault_name_rejected():
    with pytest.raises(ValueError, match="bad_crc"):
        SHT3xEmulator().fault = "melted"
