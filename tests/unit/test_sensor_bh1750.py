"""BH1750: lux formula, driver against its emulator, MTreg and modes."""

from __future__ import annotations

import pytest

from edge_agent.sensors import BH1750
from edge_agent.sensors import bh1750 as chip
from edge_agent.sensors.emulated import BH1750Emulator, EmulatedSMBus, VirtualClock


def test_lux_formula():
    # datasheet example: 0x83 0x90 = 33680 counts -> 28067 lx
    assert chip.decode(b"\x83\x90") == {"lux": pytest.approx(28066.67, abs=0.01)}
    assert chip.decode(b"\x00\x0c") == {"lux": 10.0}
    assert chip.decode(b"\x00\x0c", "high2") == {"lux": 5.0}


@pytest.fixture
def setup():
    clock = VirtualClock()
    emulator = BH1750Emulator(clock=clock.now)
    bus = EmulatedSMBus(1, {0x23: emulator}, sleep=clock.sleep)
    return clock, emulator, bus


def test_driver_reads_emulator(setup):
    clock, emulator, bus = setup
    emulator.override["lux"] = 250.0
    reading = BH1750(bus, 0x23, {}, sleep=clock.sleep).read()
    assert reading["lux"] == pytest.approx(250.0, abs=0.5)
    assert clock.slept >= 0.18
    assert not emulator.powered  # one-time mode powers the chip down


def test_reading_too_early_gives_stale_value(setup):
    clock, emulator, bus = setup
    emulator.override["lux"] = 100.0
    hasty = BH1750(bus, 0x23, {}, sleep=lambda s: None)
    assert hasty.read() == {"lux": 0.0}  # the data register still holds the reset value


def test_mtreg_and_modes(setup):
    clock, emulator, bus = setup
    emulator.override["lux"] = 1000.0
    for options in ({"mtreg": 138}, {"mtreg": 31}, {"mode": "high2"}, {"mode": "low"}):
        reading = BH1750(bus, 0x23, options, sleep=clock.sleep).read()
        assert reading["lux"] == pytest.approx(1000.0, rel=0.03), options
    assert emulator.mtreg == 69  # the last driver used the default
    with pytest.raises(ValueError, match="mtreg"):
        BH1750(bus, 0x23, {"mtreg": 300})


def test_absent_device(setup):
    clock, emulator, bus = setup
    emulator.fault = "absent"
    with pytest.raises(OSError) as info:
        BH1750(bus, 0x23, {}, sleep=clock.sleep).read()
    assert info.value.errno == 121
