"""Emulated hardware: an SMBus with chip emulators, serial sensors, a pty helper.

The same emulators power the tests and the demo config, so the agent shows
real readings on a laptop with no sensor attached::

    from edge_agent.sensors.emulated import demo_bus
    bus = demo_bus()                     # BME280 0x76, SHT3x 0x44, BH1750 0x23, ADS1115 0x48
    BME280(bus, 0x76, {}).read()         # {'temperature': 21.3, 'pressure': 100812.5, ...}
"""

from __future__ import annotations

import time
from typing import Callable

from .ads1115 import ADS1115Emulator
from .bh1750 import BH1750Emulator
from .bme280 import BME280Emulator
from .bus import EmulatedDevice, EmulatedSMBus
from .clock import VirtualClock
from .pty_serial import PtySerialDevice
from .serial_devices import NmeaEmulator, Pms5003Emulator, SerialDeviceEmulator
from .sht3x import SHT3xEmulator

#: address -> emulator class of the demo bus
DEMO_DEVICES = {
    0x76: BME280Emulator,
    0x44: SHT3xEmulator,
    0x23: BH1750Emulator,
    0x48: ADS1115Emulator,
}


def demo_bus(
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> EmulatedSMBus:
    """An emulated bus with one of each supported chip at its default address."""
    bus = EmulatedSMBus("emulated", sleep=sleep)
    for address, factory in DEMO_DEVICES.items():
        bus.add(address, factory(clock=clock))
    return bus


__all__ = [
    "ADS1115Emulator",
    "BH1750Emulator",
    "BME280Emulator",
    "DEMO_DEVICES",
    "EmulatedDevice",
    "EmulatedSMBus",
    "NmeaEmulator",
    "Pms5003Emulator",
    "PtySerialDevice",
    "SHT3xEmulator",
    "SerialDeviceEmulator",
    "VirtualClock",
    "demo_bus",
]
