"""BME280/BMP280: datasheet vectors, calibration packing, driver against its emulator."""

from __future__ import annotations

import struct

import pytest

from edge_agent.errors import SensorError
from edge_agent.sensors import BME280, I2C_DRIVERS
from edge_agent.sensors import bme280 as chip
from edge_agent.sensors.emulated import BME280Emulator, EmulatedSMBus, VirtualClock
from edge_agent.sensors.emulated.bme280 import DATASHEET_CALIBRATION, encode_calibration

DATASHEET_TP = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)


def test_datasheet_worked_example():
    cal = chip.Calibration(*DATASHEET_TP)
    temperature, t_fine = chip.compensate_temperature(519888, cal)
    assert round(temperature, 2) == 25.08
    assert t_fine == 128422
    assert chip.compensate_pressure(415148, t_fine, cal) == pytest.approx(100653.27, abs=0.02)


def test_decode_of_datasheet_raw_bytes():
    cal = chip.Calibration(*DATASHEET_TP)
    adc_p, adc_t = 415148, 519888
    raw = bytes((adc_p >> 12, adc_p >> 4 & 0xFF, (adc_p & 0xF) << 4,
                 adc_t >> 12, adc_t >> 4 & 0xFF, (adc_t & 0xF) << 4))  # fmt: skip
    assert chip.split_raw(raw) == (adc_p, adc_t, None)
    reading = chip.decode(raw, cal)
    assert reading["temperature"] == 25.08
    assert reading["pressure"] == pytest.approx(100653.27, abs=0.02)
    assert "humidity" not in reading
    hpa = chip.decode(raw, cal, "hPa")
    assert hpa["pressure"] == pytest.approx(1006.5327, abs=0.0002)


def test_calibration_block_parsing_little_endian():
    block = struct.pack("<HhhHhhhhhhhh", *DATASHEET_TP) + b"\x00\x4b"
    cal = chip.parse_calibration(block)
    assert (cal.t1, cal.t2, cal.t3) == (27504, 26435, -1000)
    assert (cal.p1, cal.p2, cal.p9) == (36477, -10685, 6000)
    assert not cal.has_humidity
    # 27504 = 0x6B70 is stored low byte first
    assert block[:2] == b"\x70\x6b"


def test_humidity_calibration_nibble_packing():
    block_88 = struct.pack("<HhhHhhhhhhhh", *DATASHEET_TP) + b"\x00\x4b"  # H1 = 75 at 0xA1
    # 0xE1..0xE7: H2 = 362 (0x016A LE), H3 = 0, then H4 = 0x139 (313) and
    # H5 = 0x032 (50) sharing 0xE5: E4 = 0x13, E5 = 0x29 (H5 low nibble 2 high,
    # H4 low nibble 9 low), E6 = 0x03, H6 = 30.
    block_e1 = bytes((0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 0x1E))
    cal = chip.parse_calibration(block_88, block_e1)
    assert (cal.h1, cal.h2, cal.h3, cal.h4, cal.h5, cal.h6) == (75, 362, 0, 313, 50, 30)


def test_humidity_calibration_negative_values():
    block_88 = struct.pack("<HhhHhhhhhhhh", *DATASHEET_TP) + b"\x00\x4b"
    # H4 = int8(0xFF)*16 | 0x9 = -7; H5 = int8(0xFF)*16 | 0xB = -5; H2 = -2; H6 = -3
    block_e1 = bytes((0xFE, 0xFF, 0x00, 0xFF, 0xB9, 0xFF, 0xFD))
    cal = chip.parse_calibration(block_88, block_e1)
    assert (cal.h2, cal.h4, cal.h5, cal.h6) == (-2, -7, -5, -3)


def test_encode_calibration_round_trips():
    for cal in (DATASHEET_CALIBRATION, chip.Calibration(*DATASHEET_TP, h1=1, h2=-300, h3=7,
                                                        h4=-1000, h5=2047, h6=-128)):
        assert chip.parse_calibration(*encode_calibration(cal)) == cal


def test_measurement_time_matches_datasheet_formula():
    # 9.1: 1.25 + 2.3*1 + (2.3*1 + 0.575) + (2.3*1 + 0.575) = 9.3 ms at x1
    assert chip.measurement_time(1, 1, 1) == pytest.approx(0.0093)
    assert chip.measurement_time(16, 16, 0) == pytest.approx((1.25 + 36.8 + 36.8 + 0.575) / 1000)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def make(clock: VirtualClock, chip_id: int = 0x60, options: dict | None = None):
    emulator = BME280Emulator(clock=clock.now, chip_id=chip_id)
    bus = EmulatedSMBus(1, {0x76: emulator}, sleep=clock.sleep)
    return emulator, BME280(bus, 0x76, options or {}, sleep=clock.sleep)


def test_driver_reads_emulated_bme280(clock):
    emulator, driver = make(clock)
    emulator.override.update(temperature=23.456, pressure=98765.4, humidity=61.2)
    reading = driver.read()
    assert driver.chip == "bme280"
    assert set(reading) == {"temperature", "pressure", "humidity"}
    assert reading["temperature"] == pytest.approx(23.456, abs=0.01)
    assert reading["pressure"] == pytest.approx(98765.4, abs=0.5)
    assert reading["humidity"] == pytest.approx(61.2, abs=0.05)
    # the driver waited for the forced conversion instead of racing it
    assert clock.slept >= chip.measurement_time(1, 1, 1)


def test_values_vary_slowly_over_time(clock):
    _, driver = make(clock)
    first = driver.read()
    clock.advance(60)
    second = driver.read()
    assert first != second
    assert abs(first["temperature"] - second["temperature"]) < 1.0
    assert 15 < second["temperature"] < 30 and 95000 < second["pressure"] < 105000


def test_bmp280_has_no_humidity_and_hpa_option(clock):
    emulator, driver = make(clock, chip_id=0x58, options={"pressure_unit": "hPa"})
    emulator.override.update(temperature=10.0, pressure=101325.0)
    reading = driver.read()
    assert driver.chip == "bmp280"
    assert set(reading) == {"temperature", "pressure"}
    assert reading["pressure"] == pytest.approx(1013.25, abs=0.01)
    assert I2C_DRIVERS["bmp280"] is BME280


def test_calibration_read_once(clock):
    emulator, driver = make(clock)
    driver.read()
    after_first = emulator.transactions
    driver.read()
    # second read: ctrl_hum, ctrl_meas, status, data = 4 write/read pairs at most
    assert emulator.transactions - after_first <= 7


def test_waits_while_measuring_bit_set(clock):
    emulator, driver = make(clock, options={"oversampling": 16})
    reading = driver.read()
    assert emulator.measurements == 1 and "humidity" in reading
    assert clock.slept >= chip.measurement_time(16, 16, 16)


def test_wrong_chip_id_is_a_sensor_error(clock):
    emulator, driver = make(clock)
    emulator.regs[chip.REG_CHIP_ID] = 0x61
    with pytest.raises(SensorError, match="chip id 0x61"):
        driver.read()


def test_absent_device_raises_errno_121_and_recovers(clock):
    emulator, driver = make(clock)
    driver.read()
    emulator.fault = "absent"
    with pytest.raises(OSError) as info:
        driver.read()
    assert info.value.errno == 121
    assert driver.calibration is None  # re-detected when the device comes back
    emulator.fault = None
    assert "temperature" in driver.read()


def test_stuck_device_repeats_its_value(clock):
    emulator, driver = make(clock)
    emulator.fault = "stuck"
    first = driver.read()
    clock.advance(600)
    assert driver.read() == first


@pytest.mark.parametrize("options,message", [
    ({"pressure_unit": "bar"}, "pressure_unit"),
    ({"oversampling": 3}, "oversampling"),
    ({"oversampling": True}, "oversampling"),
    ({"iir": 2}, "unknown option"),
])  # fmt: skip
def test_bad_options_are_clear_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        BME280(EmulatedSMBus(), 0x76, options)


def test_bad_address_is_a_value_error():
    with pytest.raises(ValueError, match="0x40 is not one of 0x76, 0x77"):
        BME280(EmulatedSMBus(), 0x40, {})
