"""Sensor drivers (I2C) and frame parsers (serial), plus emulated hardware.

The registries, name -> class (the only list of drivers: config validation
reads it too). Each class declares its options once in ``OPTIONS``
(:class:`Option`: name, kind, default, accepted values, doc):

- :data:`I2C_DRIVERS`: ``cls(bus, address, options, sleep=time.sleep)`` with
  ``read() -> dict`` of fields; ``bus`` has smbus2's method names.
- :data:`SERIAL_PARSERS`: ``cls(options)`` with ``feed(bytes) -> list[dict]``,
  ``startup()`` / ``request()`` (bytes to write to the port), and the
  ``errors`` / ``last_error`` counters.

Importing this package also registers the ``emulated://`` pyserial URLs
(``serial.serial_for_url("emulated://pms5003")``). Drivers import smbus2
only when they talk to a bus, and nothing here opens a device.
"""

from __future__ import annotations

from typing import Any

from ._common import Option, OptionError, describe_options
from .ads1115 import ADS1115
from .bh1750 import BH1750
from .bme280 import BME280
from .json_lines import JSONLines
from .kv_lines import KVLines
from .nmea import NMEA
from .pms5003 import PMS5003
from .regex_lines import RegexLines
from .register import Register
from .sht3x import SHT3x

I2C_DRIVERS: dict[str, Any] = {
    "bme280": BME280,
    "bmp280": BME280,  # same driver: the chip id tells them apart
    "sht3x": SHT3x,
    "sht31": SHT3x,
    "bh1750": BH1750,
    "ads1115": ADS1115,
    "register": Register,
}

SERIAL_PARSERS: dict[str, Any] = {
    "pms5003": PMS5003,
    "nmea": NMEA,
    "json": JSONLines,
    "kv": KVLines,
    "regex": RegexLines,
}

URL_HANDLER_PACKAGE = "edge_agent.sensors.urlhandler"


def register_url_handlers() -> bool:
    """Let pyserial open ``emulated://`` URLs; False when pyserial is not installed."""
    try:
        import serial
    except ImportError:  # pragma: no cover - pyserial is a runtime dependency
        return False
    if URL_HANDLER_PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(URL_HANDLER_PACKAGE)
    return True


register_url_handlers()

__all__ = [
    "ADS1115",
    "BH1750",
    "BME280",
    "I2C_DRIVERS",
    "JSONLines",
    "KVLines",
    "NMEA",
    "Option",
    "OptionError",
    "PMS5003",
    "RegexLines",
    "Register",
    "SERIAL_PARSERS",
    "SHT3x",
    "describe_options",
    "register_url_handlers",
]
