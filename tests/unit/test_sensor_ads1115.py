"""ADS1115: config word, byte swap, volts, driver against its emulator."""

from __future__ import annotations

import pytest

from edge_agent.errors import SensorError
from edge_agent.sensors import ADS1115
from edge_agent.sensors import ads1115 as chip
from edge_agent.sensors._common import swap16, to_signed
from edge_agent.sensors.emulated import ADS1115Emulator, EmulatedSMBus, VirtualClock


def test_config_word():
    # OS | MUX AIN0 (100) | PGA ±4.096 (001) | single shot | 128 SPS (100) | comparator off
    assert chip.config_word(0) == 0xC383
    assert chip.config_word(3, 2.048, 860) == 0x8000 | 0x7000 | 0x0400 | 0x0100 | 0x00E0 | 3
    assert chip.config_word("0-1", 6.144, 8) == 0x8103


def test_byte_swap_and_sign():
    assert swap16(0xC383) == 0x83C3
    assert swap16(swap16(0x1234)) == 0x1234
    assert to_signed(0xFFFF, 16) == -1 and to_signed(0x7FFF, 16) == 32767


def test_decode_volts():
    assert chip.decode(b"\x40\x00") == pytest.approx(2.048)
    assert chip.decode(b"\x7f\xff", 0.256) == pytest.approx(0.256 * 32767 / 32768)
    assert chip.decode(b"\x80\x00") == pytest.approx(-4.096)


@pytest.fixture
def setup():
    clock = VirtualClock()
    emulator = ADS1115Emulator(clock=clock.now)
    bus = EmulatedSMBus(1, {0x48: emulator}, sleep=clock.sleep)
    return clock, emulator, bus


def test_driver_reads_each_channel(setup):
    clock, emulator, bus = setup
    emulator.override.update(ain0=1.0, ain1=2.0, ain2=0.1, ain3=3.0)
    driver = ADS1115(bus, 0x48, {"channels": [0, 1, 2, 3, "0-1"]}, sleep=clock.sleep)
    reading = driver.read()
    lsb = 4.096 / 32768
    assert reading == {
        "ain0": pytest.approx(1.0, abs=lsb),
        "ain1": pytest.approx(2.0, abs=lsb),
        "ain2": pytest.approx(0.1, abs=lsb),
        "ain3": pytest.approx(3.0, abs=lsb),
        "ain0_1": pytest.approx(-1.0, abs=lsb),
    }
    assert emulator.conversions == 5


def test_wire_bytes_are_big_endian(setup):
    clock, emulator, bus = setup
    driver = ADS1115(bus, 0x48, {"channels": [2], "full_scale": 0.256, "data_rate": 860},
                     sleep=clock.sleep)  # fmt: skip
    driver.read()
    # the config register as the chip stored it, OS back to 1 after the conversion
    assert emulator.registers[1] == chip.config_word(2, 0.256, 860)


def test_pga_clips_and_names(setup):
    clock, emulator, bus = setup
    emulator.override["ain0"] = 3.0
    driver = ADS1115(bus, 0x48, {"full_scale": 1.024, "fields": ["soil"]}, sleep=clock.sleep)
    assert driver.read() == {"soil": pytest.approx(1.024 * 32767 / 32768)}


def test_conversion_never_finishing_is_sensor_error(setup):
    clock, emulator, bus = setup
    driver = ADS1115(bus, 0x48, {}, sleep=lambda s: None)  # time never passes
    with pytest.raises(SensorError, match="did not finish"):
        driver.read()


@pytest.mark.parametrize("options,message", [
    ({"channels": [4]}, "channel 4"),
    ({"channels": []}, "channels"),
    ({"full_scale": 5}, "full_scale"),
    ({"data_rate": 100}, "data_rate"),
    ({"channels": [0, 1], "fields": ["a"]}, "fields"),
])  # fmt: skip
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        ADS1115(EmulatedSMBus(), 0x48, options)


def test_absent(setup):
    clock, emulator, bus = setup
    emulator.fault = "absent"
    with pytest.raises(OSError) as info:
        ADS1115(bus, 0x48, {}, sleep=clock.sleep).read()
    assert info.value.errno == 121
