"""Each driver's emulator, through its source, into the real influxd; fields compared exactly."""

from __future__ import annotations

import os
import threading
import time
import tty
from typing import Any, Dict, List, Set, Tuple

import pytest

from edge_agent.config.model import I2CSourceConfig, SerialSourceConfig
from edge_agent.destination import Destination
from edge_agent.sensors.bme280 import CHIP_IDS_BMP280
from edge_agent.sensors.emulated import (
    ADS1115Emulator,
    BH1750Emulator,
    BME280Emulator,
    EmulatedSMBus,
    Pms5003Emulator,
    PtySerialDevice,
    SHT3xEmulator,
)
from edge_agent.sources.i2c import I2CSource, forget_bus, register_bus
from edge_agent.sources.serial import SerialSource
from tests.harness.servers import InfluxServer
from tests.harness.sinks import MemorySink

DEST = Destination("db")
TAGS = {"agent": "pi-test", "site": "greenhouse"}


def parse_value(text: str) -> Any:
    if text.startswith('"'):
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if text in ("true", "false"):
        return text == "true"
    if text.endswith("i"):
        return int(text[:-1])
    return float(text)


def parse_line(line: str) -> Tuple[str, Dict[str, str], Dict[str, Any], int]:
    """Our lines carry no escapes and no spaces in string fields (checked below)."""
    series, fields, stamp = line.split(" ")
    measurement, *tag_parts = series.split(",")
    tags = dict(part.split("=", 1) for part in tag_parts)
    values = {k: parse_value(v) for k, v in (kv.split("=", 1) for kv in fields.split(","))}
    return measurement, tags, values, int(stamp)


def roundtrip(influx: InfluxServer, db: str, lines: List[str]) -> None:
    """Write the lines to influxd, read them back, and compare every field and tag."""
    assert lines
    assert all("\\" not in line and line.count(" ") == 2 for line in lines)
    response = influx.write(db, "\n".join(lines))
    assert response.status_code == 204, response.text
    measurement = parse_line(lines[0])[0]
    rows = {row["time"]: row for row in influx.rows(db, f'SELECT * FROM "{measurement}"')}
    assert len(rows) == len(lines)
    for line in lines:
        _, tags, fields, stamp = parse_line(line)
        row = rows[stamp]
        for key, value in fields.items():
            assert row[key] == value and type(row[key]) in (type(value), int, float), (key, line)
            if isinstance(value, float):
                assert float(row[key]) == value
        for key, value in tags.items():
            assert row[key] == value


def poll_lines(bus: EmulatedSMBus, driver: str, address: int, options: Dict[str, Any],
               count: int = 3) -> List[str]:
    name = f"influx-{driver}-{address:02x}"
    register_bus(name, bus)
    try:
        sink = MemorySink()
        config = I2CSourceConfig(name=name, driver=driver, bus=name, address=address,
                                 interval=1.0, measurement=driver, tags={"room": "lab"},
                                 options=options)
        src = I2CSource(config, sink, DEST, TAGS)
        for _ in range(count):
            assert src.poll() is not None, src.status.last_error
            time.sleep(0.01)
        assert src.status.points == count
        return sink.lines
    finally:
        forget_bus(name)


I2C_CASES: Dict[str, Tuple[Any, Dict[str, Any], int, str, Set[str]]] = {
    "bme280": (BME280Emulator, {}, 0x76, "bme280", {"temperature", "pressure", "humidity"}),
    "bmp280": (lambda: BME280Emulator(chip_id=CHIP_IDS_BMP280[-1]), {"pressure_unit": "hPa"},
               0x77, "bmp280", {"temperature", "pressure"}),
    "sht3x": (SHT3xEmulator, {}, 0x44, "sht3x", {"temperature", "humidity"}),
    "bh1750": (BH1750Emulator, {"mode": "low"}, 0x23, "bh1750", {"lux"}),
    "ads1115": (ADS1115Emulator, {"channels": [0, 1, "2-3"]}, 0x48, "ads1115",
                {"ain0", "ain1", "ain2_3"}),
    # the generic driver reading the BME280's chip-id register
    "register": (BME280Emulator, {"register": 0xD0, "length": 1, "field": "chip_id"}, 0x76,
                 "register", {"chip_id"}),
}


@pytest.mark.parametrize("case", sorted(I2C_CASES))
def test_i2c_driver_end_to_end(case: str, influx: InfluxServer, influx_db: str) -> None:
    emulator, options, address, driver, fields = I2C_CASES[case]
    bus = EmulatedSMBus(case)
    bus.add(address, emulator())
    lines = poll_lines(bus, driver, address, options)
    assert {k for line in lines for k in parse_line(line)[2]} == fields
    assert all(",agent=pi-test,room=lab,site=greenhouse " in line for line in lines)
    if case == "register":
        assert all(parse_line(line)[2]["chip_id"] == 0x60 for line in lines)
    roundtrip(influx, influx_db, lines)


def serial_lines(port: str, driver: str, options: Dict[str, Any], count: int) -> List[str]:
    sink = MemorySink()
    config = SerialSourceConfig(name=f"influx-{driver}", driver=driver, port=port,
                                measurement=driver, tags={"room": "lab"}, options=options)
    src = SerialSource(config, sink, DEST, TAGS)
    src.start()
    try:
        deadline = time.monotonic() + 10.0
        while len(sink.lines) < count and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        src.stop()
    assert len(sink.lines) >= count, src.status.last_error
    return sink.lines


def test_pms5003_on_a_pty_end_to_end(influx: InfluxServer, influx_db: str) -> None:
    with PtySerialDevice(Pms5003Emulator(interval=0.1, garbage=0.3, seed=5)) as device:
        lines = serial_lines(device.path, "pms5003", {}, 4)
    assert all(parse_line(line)[2]["pm2_5"] >= 1 for line in lines)
    roundtrip(influx, influx_db, lines)


def test_nmea_through_the_emulated_url_end_to_end(influx: InfluxServer, influx_db: str) -> None:
    lines = serial_lines("emulated://nmea?interval=0.1", "nmea", {}, 4)
    fields = parse_line(lines[0])[2]
    assert abs(fields["latitude"] - 48.1173) < 0.01 and abs(fields["longitude"] - 11.5167) < 0.01
    roundtrip(influx, influx_db, lines)


LINE_CASES = {
    "json": ({}, b'{"temperature": 21.5, "humidity": 40, "ok": true, "id": "a1"}\n',
             {"temperature": 21.5, "humidity": 40, "ok": True, "id": "a1"}),
    "kv": ({}, b"temp=21.25 hum=40 door=closed\n", {"temp": 21.25, "hum": 40, "door": "closed"}),
    "regex": ({"pattern": r"T=(?P<temperature>[-\d.]+)C H=(?P<humidity>\d+)%"},
              b"T=-3.5C H=81%\n", {"temperature": -3.5, "humidity": 81}),
}


@pytest.mark.parametrize("driver", sorted(LINE_CASES))
def test_line_parsers_on_a_pty_end_to_end(driver: str, influx: InfluxServer,
                                          influx_db: str) -> None:
    options, payload, expected = LINE_CASES[driver]
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def device() -> None:  # a line every 50 ms; pyserial drops what came before it opened
        while not stop.is_set():
            os.write(master, b"\n" + payload[:-1])
            stop.wait(0.05)

    writer = threading.Thread(target=device, daemon=True)
    writer.start()
    try:
        lines = serial_lines(os.ttyname(slave), driver, options, 3)
    finally:
        stop.set()
        writer.join()
        os.close(master)
        os.close(slave)
    for line in lines:
        values = parse_line(line)[2]
        assert values == expected, line
    roundtrip(influx, influx_db, lines)
