"""Sources under faults, with real threads, emulated chips and real pseudo-terminals.

Timing assertions are correctness checks ("not blocked", "on the grid") with
generous tolerances for a loaded CI machine, never speed checks.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

import edge_agent.sensors as sensors
from edge_agent.config.model import I2CSourceConfig, SerialSourceConfig
from edge_agent.destination import Destination
from edge_agent.sensors import pms5003
from edge_agent.sensors.emulated import (
    ADS1115Emulator,
    BH1750Emulator,
    BME280Emulator,
    EmulatedSMBus,
    Pms5003Emulator,
    PtySerialDevice,
    SHT3xEmulator,
)
from edge_agent.sources.i2c import I2CSource
from edge_agent.sources.schedule import Grid
from edge_agent.sources.serial import SerialSource
from tests.harness.sinks import MemorySink
from tests.harness.waits import wait_for

DEST = Destination("db")
INTERVAL = 0.2
TOLERANCE = 0.1  # "not blocked": a blocked poll is off by >= 0.2 s; load jitter stays below


def stamp_of(line: str) -> float:
    return int(line.rsplit(" ", 1)[1]) / 1e9


def fields_of(line: str) -> Dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split(" ")[1].split(","))


def i2c_source(bus: str, driver: str, address: int, sink: MemorySink, started: List[Any],
               interval: float = INTERVAL, **options: Any) -> I2CSource:
    config = I2CSourceConfig(name=f"{driver}-{bus}-{address:02x}", driver=driver, bus=bus,
                             address=address, interval=interval, measurement=driver,
                             tags={"bus": bus}, options=options)
    src = I2CSource(config, sink, DEST, {"agent": "test"}, round_interval=True)
    src.start()
    started.append(src)
    return src


# -- I2C: unplug / replug, bad CRC ----------------------------------------------


def test_unplug_and_replug_an_i2c_device(buses: Callable[..., str],
                                         sources: List[Any]) -> None:
    chip = SHT3xEmulator()
    bus = buses(x44=chip)
    sink = MemorySink()
    src = i2c_source(bus, "sht3x", 0x44, sink, sources)
    assert wait_for(lambda: len(sink.lines) >= 3)

    chip.fault = "absent"
    unplugged = time.time()
    assert wait_for(lambda: src.status.state == "error")
    message = src.status.last_error
    assert "no answer at address 0x44" in message and "errno 121" in message
    assert "\n" not in message
    at_error = len(sink.lines)
    assert wait_for(lambda: src.status.errors >= 3)  # the first failure and two retries
    attempts = [t for t in src.poll_times if t > unplugged]
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    # backoff: retries after 1 s, then 2 s, not every 0.2 s tick (a lower bound: load
    # can only make the gaps longer)
    assert len(gaps) >= 2 and min(gaps) >= 0.9, gaps
    assert len(sink.lines) == at_error  # no reading while absent
    assert src.status.state == "error" and src.status.errors >= 2

    chip.fault = None
    replugged = time.time()
    assert wait_for(lambda: src.status.state == "ok" and len(sink.lines) >= at_error + 3)
    resumed = [stamp_of(line) for line in sink.lines[at_error:]]
    assert all(t > replugged for t in resumed)
    grid = Grid(INTERVAL)
    assert max(grid.deviation(t) for t in resumed) < TOLERANCE


def test_a_bad_crc_is_an_error_never_a_reading(buses: Callable[..., str],
                                               sources: List[Any]) -> None:
    chip = SHT3xEmulator()
    bus = buses(x44=chip)
    sink = MemorySink()
    src = i2c_source(bus, "sht3x", 0x44, sink, sources)
    assert wait_for(lambda: len(sink.lines) >= 2)
    chip.fault = "bad_crc"
    assert wait_for(lambda: src.status.state == "error")
    assert "CRC" in src.status.last_error
    measured = chip.measurements
    at_error = len(sink.lines)
    # the chip is read (and fails its CRC) again and again ...
    assert wait_for(lambda: chip.measurements > measured + 2)
    assert len(sink.lines) == at_error  # ... but nothing became a point
    chip.fault = None
    assert wait_for(lambda: src.status.state == "ok" and len(sink.lines) > at_error)


# -- I2C: a hanging sensor -------------------------------------------------------


def test_a_hanging_sensor_does_not_move_the_others(buses: Callable[..., str],
                                                   sources: List[Any]) -> None:
    stuck = SHT3xEmulator()
    stuck.hang_seconds = 0.5  # two transactions per read: 1 s, five intervals
    stuck.fault = "hang"
    sink = MemorySink()
    hung = i2c_source(buses(x44=stuck), "sht3x", 0x44, MemorySink(), sources)
    others = [
        i2c_source(buses(x76=BME280Emulator()), "bme280", 0x76, sink, sources),
        i2c_source(buses(x44=SHT3xEmulator()), "sht3x", 0x44, sink, sources),
        i2c_source(buses(x23=BH1750Emulator()), "bh1750", 0x23, sink, sources, mode="low"),
    ]
    assert wait_for(lambda: hung.status.busy_since > 0, timeout=3.0)

    def lines_of(src: Any) -> List[str]:
        return [line for line in sink.snapshot() if line.startswith(src.config.driver)
                and f"bus={src.config.bus}" in line]

    # skipped and counted, not piled up, while the others go on
    assert wait_for(lambda: hung.status.overruns >= 3
                    and all(len(lines_of(src)) >= 10 for src in others), timeout=30)
    grid = Grid(INTERVAL)
    for src in others:
        mine = [stamp_of(line) for line in lines_of(src)]
        worst = max(grid.deviation(t) for t in mine)
        assert worst < TOLERANCE, (src.name, worst)
        ticks = [grid.tick_of(t) for t in mine]
        assert len(set(ticks)) == len(ticks)  # one reading per tick
        assert src.status.overruns == 0 and src.status.errors == 0


def test_a_sensor_hanging_on_a_shared_bus_costs_polls_not_the_schedule(
        buses: Callable[..., str], sources: List[Any]) -> None:
    stuck = SHT3xEmulator()
    stuck.hang_seconds = 0.4
    bus = buses(x44=stuck, x76=BME280Emulator())
    sink = MemorySink()
    healthy = i2c_source(bus, "bme280", 0x76, sink, sources)
    hanging = i2c_source(bus, "sht3x", 0x44, MemorySink(), sources)
    assert wait_for(lambda: len(sink.lines) >= 3)
    stuck.fault = "hang"
    hung_at = time.time()
    assert wait_for(lambda: "busy" in healthy.status.last_error, timeout=5.0)
    time.sleep(1.0)
    stuck.fault = None
    cleared = time.time()
    assert wait_for(lambda: healthy.status.state == "ok" and hanging.status.state != "error"
                    and any(stamp_of(line) > cleared + 0.5 for line in sink.lines))
    grid = Grid(INTERVAL)
    # the healthy device woke on every tick while the bus was held, and did not pile up
    woke = [t for t in healthy.poll_times if t > hung_at]
    assert max(grid.deviation(t) for t in woke) < TOLERANCE
    assert healthy.status.overruns == 0
    after = [stamp_of(line) for line in sink.lines if stamp_of(line) > cleared + 0.5]
    assert max(grid.deviation(t) for t in after) < TOLERANCE


# -- I2C: the per-bus lock -------------------------------------------------------


class Overlaps:
    """Tracks how many devices use the bus at once.

    A device uses the bus from the start of its read to its end, except while
    it waits for a conversion (the driver's ``sleep``): the chip converts on
    its own then, and the bus is free for the others.
    """

    def __init__(self) -> None:
        self.active = 0
        self.most = 0
        self.reads = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.active += 1
            self.most = max(self.most, self.active)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def wrap(self, cls: Any) -> Any:
        tracker = self

        class Tracked(cls):
            def __init__(self, bus: Any, address: int, options: Any,
                         sleep: Callable[[float], None] = time.sleep) -> None:
                def conversion_wait(seconds: float) -> None:
                    tracker.leave()
                    try:
                        sleep(seconds)
                    finally:
                        tracker.enter()

                super().__init__(bus, address, options, sleep=conversion_wait)

            def read(self) -> Any:
                tracker.enter()
                try:
                    time.sleep(0.02)  # a slower transaction widens any overlap
                    return super().read()
                finally:
                    tracker.leave()
                    with tracker._lock:
                        tracker.reads += 1

        return Tracked


CHIPS: Dict[int, Tuple[str, Any, Dict[str, Any]]] = {
    0x76: ("bme280", BME280Emulator, {}),
    0x44: ("sht3x", SHT3xEmulator, {}),
    0x23: ("bh1750", BH1750Emulator, {"mode": "low"}),
    0x48: ("ads1115", ADS1115Emulator, {"data_rate": 860}),
}


def test_devices_on_one_bus_are_serialised(buses: Callable[..., str], sources: List[Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    overlaps = Overlaps()
    for driver, _, _ in CHIPS.values():
        monkeypatch.setitem(sensors.I2C_DRIVERS, driver,
                            overlaps.wrap(sensors.I2C_DRIVERS[driver]))
    bus = buses(**{f"x{a:02x}": emu() for a, (_, emu, _) in CHIPS.items()})
    sink = MemorySink()
    started = [i2c_source(bus, d, a, sink, sources, **o) for a, (d, _, o) in CHIPS.items()]
    assert wait_for(lambda: all(s.status.points >= 5 for s in started))
    assert overlaps.most == 1 and overlaps.reads >= 20


def test_a_slow_conversion_does_not_hold_the_bus(buses: Callable[..., str],
                                                 sources: List[Any]) -> None:
    """A BH1750 converts for 180 ms; its neighbours on the bus, polled on the same
    ticks, still read every tick, because the bus is free during the conversion.
    (0.4 s ticks: a loaded test machine delaying a thread by 100 ms must not end
    the BH1750's own read past its next tick, which would be its overrun.)"""
    bus = buses(x23=BH1750Emulator(), x76=BME280Emulator(), x44=SHT3xEmulator())
    sink = MemorySink()
    started = [i2c_source(bus, "bh1750", 0x23, sink, sources, interval=0.4),
               i2c_source(bus, "bme280", 0x76, sink, sources, interval=0.4),
               i2c_source(bus, "sht3x", 0x44, sink, sources, interval=0.4)]
    assert wait_for(lambda: all(s.status.points >= 8 for s in started))
    for src in started:
        assert src.status.errors == 0, src.status.last_error
        assert src.status.overruns == 0


def test_the_overlap_check_sees_unlocked_reads(sources: List[Any]) -> None:
    """Control for the test above: without the bus lock, reads do overlap."""
    overlaps = Overlaps()
    bus = EmulatedSMBus("unlocked")
    for address, (_, emu, _) in CHIPS.items():
        bus.add(address, emu())
    sink = MemorySink()
    for address, (driver, _, options) in CHIPS.items():
        cls = overlaps.wrap(sensors.I2C_DRIVERS[driver])
        config = I2CSourceConfig(name=f"u{address}", driver=driver, bus="unlocked",
                                 address=address, interval=INTERVAL, options=options)
        def factory(c: Any = cls, a: int = address, o: Dict[str, Any] = options) -> Any:
            return c(bus, a, o)

        src = I2CSource(config, sink, DEST, {}, driver_factory=factory)
        src.start()
        sources.append(src)
    assert wait_for(lambda: overlaps.reads >= 20)
    assert overlaps.most > 1


# -- serial: a real pty ------------------------------------------------------------


class RecordingPms(Pms5003Emulator):
    """Remembers the values of every frame it sent."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.sent: List[Dict[str, int]] = []

    def frame(self, t: float) -> bytes:
        values = self.values(t)
        self.sent.append(values)
        return pms5003.encode(values)


def serial_source(port: str, sink: MemorySink, started: List[Any]) -> SerialSource:
    config = SerialSourceConfig(name="air", driver="pms5003", port=port, interval=1.0,
                                measurement="air", tags={"room": "lab"})
    src = SerialSource(config, sink, DEST, {"agent": "test"})
    src.start()
    started.append(src)
    return src


def as_values(line: str) -> Dict[str, int]:
    return {k: int(v.rstrip("i")) for k, v in fields_of(line).items()}


def test_garbage_between_pms5003_frames_on_a_pty(sources: List[Any]) -> None:
    emulator = RecordingPms(interval=0.1, garbage=1.0, seed=3)  # noise before every frame
    with PtySerialDevice(emulator) as device:
        sink = MemorySink()
        src = serial_source(device.path, sink, sources)
        assert wait_for(lambda: len(sink.lines) >= 3)
        bad = bytearray(pms5003.encode(emulator.values(0.0)))
        bad[-2] ^= 0x5A  # a frame whose checksum does not match
        for _ in range(3):
            device.inject(b"\x42\x4d\x00" + bytes(bad) + b"\x00\x42")
            time.sleep(0.15)
        assert wait_for(lambda: len(sink.lines) >= 15)
    assert emulator.garbage_bytes > 0
    readings = [as_values(line) for line in sink.lines]
    assert all(reading in emulator.sent for reading in readings)  # no garbage-made point
    assert src.status.errors >= 3 and "checksum" in src.status.last_error
    assert all(line.startswith("air,agent=test,room=lab ") for line in sink.lines)


def test_a_pty_that_vanishes_and_returns_is_reopened(tmp_path: Path,
                                                     sources: List[Any]) -> None:
    link = tmp_path / "ttyPMS"
    device = PtySerialDevice(RecordingPms(interval=0.1), link=str(link)).start()
    try:
        sink = MemorySink()
        src = serial_source(str(link), sink, sources)
        assert wait_for(lambda: len(sink.lines) >= 3)
        first_path = device.slave_name
        device.unplug()
        assert wait_for(lambda: src.status.state == "error")
        assert "reopening" in src.status.last_error or "cannot open" in src.status.last_error
        errors = src.status.errors
        assert wait_for(lambda: src.status.errors > errors)  # a reopen tried and failed
        count = len(sink.lines)
        device.replug()
        back = time.time()
        assert wait_for(lambda: src.status.state == "ok" and len(sink.lines) >= count + 3)
        assert any(stamp_of(line) > back for line in sink.lines[count:])
        assert device.slave_name and first_path  # a new pty behind the same link
    finally:
        device.unplug()


def test_emulated_url_through_the_serial_source(sources: List[Any]) -> None:
    sink = MemorySink()
    src = serial_source("emulated://pms5003?interval=0.1", sink, sources)
    assert wait_for(lambda: len(sink.lines) >= 5)
    assert set(fields_of(sink.lines[0])) == set(pms5003.FIELDS)
    once_sink = MemorySink()
    config = SerialSourceConfig(name="air1", driver="pms5003",
                                port="emulated://pms5003?interval=0.1")
    readings = SerialSource(config, once_sink, DEST, {}).read_once(3.0)
    assert len(readings) >= 1 and len(once_sink.lines) == len(readings)
    assert src.status.errors == 0
