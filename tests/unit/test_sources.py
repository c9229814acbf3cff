"""I2C and serial sources with a list sink and a fake clock: lines, tags, stamps, status."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Union

import pytest
from serial import SerialException

from edge_agent.config.model import I2CSourceConfig, SerialSourceConfig
from edge_agent.destination import Destination
from edge_agent.errors import SensorError
from edge_agent.sensors import pms5003
from edge_agent.sensors.emulated import EmulatedSMBus, SHT3xEmulator
from edge_agent.sources.i2c import MAX_WAIT, I2CSource, bus_key, forget_bus, register_bus
from edge_agent.sources.serial import SerialSource
from tests.harness.sinks import MemorySink
from tests.harness.waits import FakeClock

DEST = Destination("db")
DEFAULT_TAGS = {"agent": "pi1", "site": "default"}


Step = Union[Dict[str, Any], BaseException, Callable[[], Dict[str, Any]]]


class ScriptedDriver:
    """Returns ``default`` unless ``script`` (call number -> step) says otherwise."""

    def __init__(self, script: Dict[int, Step], calls: List[float], clock: FakeClock,
                 default: Optional[Dict[str, Any]] = None) -> None:
        self.script = script
        self.calls = calls
        self.clock = clock
        self.default = default or {"temperature": 21.5, "humidity": 40}

    def read(self) -> Dict[str, Any]:
        self.calls.append(self.clock())
        step = self.script.get(len(self.calls), self.default)
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step()
        return dict(step)


def i2c_config(**kw: Any) -> I2CSourceConfig:
    base: Dict[str, Any] = dict(name="climate", driver="sht3x", bus="test", address=0x44,
                                interval=1.0, measurement="climate",
                                tags={"room": "lab", "site": "greenhouse"})
    base.update(kw)
    return I2CSourceConfig(**base)


def make_i2c(clock: FakeClock, script: Optional[Dict[int, Step]] = None, *,
             jitter: float = 0.0, sink: Optional[MemorySink] = None,
             dest: Destination = DEST, **config: Any) -> tuple:
    calls: List[float] = []
    made: List[ScriptedDriver] = []

    def factory() -> ScriptedDriver:
        made.append(ScriptedDriver(script or {}, calls, clock))
        return made[-1]

    sink = sink or MemorySink()
    src = I2CSource(i2c_config(**config), sink, dest, DEFAULT_TAGS, round_interval=True,
                    jitter=jitter, clock=clock, driver_factory=factory)
    return src, sink, calls, made


def drive(src: Any, clock: FakeClock, until: float,
          hook: Optional[Callable[[float], None]] = None) -> List[float]:
    """Run the source's loop on the fake clock until ``until``; the waits it asked for."""
    waits: List[float] = []

    def wait(timeout: float) -> bool:
        waits.append(timeout)
        clock.advance(timeout)
        if hook:
            hook(timeout)
        return clock.t >= until

    src._wait = wait
    src.run()
    return waits


def stamps(lines: List[str]) -> List[int]:
    return [int(line.rsplit(" ", 1)[1]) for line in lines]


# -- lines, tags, timestamps ---------------------------------------------------


def test_a_poll_becomes_one_line_with_tags_and_the_sample_time() -> None:
    clock = FakeClock(1_700_000_000.25)
    src, sink, _, _ = make_i2c(clock)
    assert src.poll() == {"temperature": 21.5, "humidity": 40}
    # default tags merged with the source's; the source's "site" wins over the default
    assert sink.lines == [
        "climate,agent=pi1,room=lab,site=greenhouse humidity=40i,temperature=21.5 "
        "1700000000250000000"
    ]
    status = src.status
    assert (status.state, status.reads, status.points, status.errors) == ("ok", 1, 1, 0)
    assert status.last_time == pytest.approx(1_700_000_000.25)
    assert status.last_reading == {"temperature": 21.5, "humidity": 40}


def test_the_line_is_written_in_the_destination_precision() -> None:
    clock = FakeClock(1_700_000_000.75)
    src, sink, _, _ = make_i2c(clock, dest=Destination("db", precision="s"))
    src.poll()
    assert stamps(sink.lines) == [1_700_000_000]


def test_reading_tags_win_and_the_reading_is_not_changed() -> None:
    clock = FakeClock(10.0)
    src, sink, _, _ = make_i2c(clock)
    reading = {"pm2_5": 7, "_tags": {"room": "attic"}}
    src.emit([reading], 5)
    assert reading == {"pm2_5": 7, "_tags": {"room": "attic"}}
    assert sink.lines == ["climate,agent=pi1,room=attic,site=greenhouse pm2_5=7i 5"]
    assert src.status.last_reading == {"pm2_5": 7}


def test_the_loop_polls_exactly_on_the_grid() -> None:
    clock = FakeClock(1000.3)
    src, sink, calls, _ = make_i2c(clock)
    drive(src, clock, until=1010.5)
    assert calls == [float(t) for t in range(1001, 1011)]
    assert stamps(sink.lines) == [t * 10**9 for t in range(1001, 1011)]
    assert (src.status.reads, src.status.points, src.status.overruns) == (10, 10, 0)


def test_an_overrun_skips_counts_and_keeps_the_grid(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1000.3)

    def slow() -> Dict[str, Any]:
        clock.advance(2.5)  # the third read takes 2.5 intervals
        return {"temperature": 20.0}

    src, sink, calls, _ = make_i2c(clock, {3: slow})
    with caplog.at_level(logging.WARNING, "edge_agent.source"):
        drive(src, clock, until=1008.5)
    assert calls == [1001.0, 1002.0, 1003.0, 1006.0, 1007.0, 1008.0]
    assert src.status.overruns == 2
    assert any("skipped 2 poll(s)" in r.getMessage() for r in caplog.records)


def test_a_slow_sensor_at_a_short_interval_logs_overruns_once_a_minute(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1000.3)

    def slow() -> Dict[str, Any]:
        clock.advance(0.3)  # every read takes 0.3 s at a 0.2 s interval
        return {"temperature": 20.0}

    script: Dict[int, Step] = {n: slow for n in range(1, 2000)}
    src, _, _, _ = make_i2c(clock, script, interval=0.2)
    with caplog.at_level(logging.WARNING, "edge_agent.source"):
        drive(src, clock, until=1000.3 + 150)
    overruns = [r.getMessage() for r in caplog.records if "longer than" in r.getMessage()]
    assert src.status.overruns > 300  # every read overran, and each is counted
    assert len(overruns) == 3, overruns  # at 0 s, 60 s and 120 s: not 5 a second
    assert "more in the last 60 s)" in overruns[1]


def test_a_flapping_sensor_logs_its_errors_once_a_minute(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1000.3)
    absent = OSError(121, "Remote I/O error")
    script: Dict[int, Step] = {n: absent for n in range(1, 3000, 2)}  # every other read fails
    src, sink, _, _ = make_i2c(clock, script, interval=0.2)
    with caplog.at_level(logging.INFO, "edge_agent.source"):
        drive(src, clock, until=1000.3 + 150)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    again = [r.getMessage() for r in caplog.records if "reading again" in r.getMessage()]
    assert src.status.errors > 50 and sink.lines  # it really flapped, and each is counted
    assert len(errors) == 3 and len(again) == 3, (errors, again)  # at 0, 60 and 120 s
    assert "more in the last 60 s)" in errors[1]


def test_jitter_delays_each_poll_within_its_bound() -> None:
    clock = FakeClock(1000.0)
    src, _, calls, _ = make_i2c(clock, jitter=0.4)
    drive(src, clock, until=1200.5)
    offsets = [t - round(t) for t in calls]
    assert len(calls) == 200
    assert all(0.0 <= off < 0.4 for off in offsets)
    assert max(offsets) > 0.3  # really jittered
    assert src.status.overruns == 0


def test_a_failing_device_backs_off_on_the_grid_and_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1000.3)
    absent = OSError(121, "Remote I/O error")
    src, sink, calls, made = make_i2c(clock, {2: absent, 3: absent, 4: absent, 5: absent})
    states: List[str] = []
    with caplog.at_level(logging.INFO, "edge_agent.source"):
        drive(src, clock, until=1019.5, hook=lambda _: states.append(src.status.state))
    # fails at 1002; retries after 1, 2, 4, 8 s, counted from the scheduled tick
    assert calls == [1001.0, 1002.0, 1003.0, 1005.0, 1009.0, 1017.0, 1018.0, 1019.0]
    assert len(made) == 5  # the driver is set up again after each failure
    assert "error" in states and src.status.state == "ok"
    assert src.status.errors == 4
    message = src.status.last_error
    assert "0x44" in message and "errno 121" in message and "\n" not in message
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # one log line per change of state, not per failure
    assert any("reading again" in r.getMessage() for r in caplog.records)
    assert len(sink.lines) == 4


def test_a_sensor_error_is_an_error_never_a_reading() -> None:
    clock = FakeClock(50.0)
    bad_crc = SensorError("sht3x: CRC error in temperature word 6666: got 0x12, expected 0x13")
    src, sink, _, _ = make_i2c(clock, {1: bad_crc})
    assert src.poll() is None
    assert sink.lines == []
    assert src.status.state == "error"
    assert src.status.last_error.startswith("sht3x: CRC error")
    assert src.poll() is not None
    assert src.status.state == "ok" and len(sink.lines) == 1


def test_a_clock_stepped_back_realigns_instead_of_waiting() -> None:
    clock = FakeClock(1000.3)
    src, _, calls, _ = make_i2c(clock)
    stepped: List[float] = []
    waits: List[float] = []

    def wait(timeout: float) -> bool:
        waits.append(timeout)
        clock.advance(timeout)
        if clock.t > 1005.5 and not stepped:
            stepped.append(clock.t - 3600.0)
            clock.advance(-3600.0)  # NTP corrects a clock that ran an hour ahead
        return bool(stepped) and clock.t >= stepped[0] + 4.0

    src._wait = wait
    src.run()
    assert max(waits) <= MAX_WAIT  # never sat out the hour
    assert calls[:5] == [1001.0, 1002.0, 1003.0, 1004.0, 1005.0]
    after = calls[5:]
    assert len(after) >= 3 and after[0] - stepped[0] <= 1.0
    assert all(t == round(t) for t in after)  # on the grid of the corrected clock


def test_busy_since_is_set_during_a_read() -> None:
    clock = FakeClock(10.0)
    seen: List[float] = []
    src: Any = None

    def look() -> Dict[str, Any]:
        seen.append(src.status.busy_since)
        return {"v": 1}

    src, _, _, _ = make_i2c(clock, {1: look})
    src.poll()
    assert seen == [10.0] and src.status.busy_since == 0.0
    assert "busy_since" in src.status.as_dict()


# -- the shared bus --------------------------------------------------------------


def test_bus_specs_of_one_bus_share_a_key() -> None:
    assert bus_key(1) == bus_key("1") == bus_key("/dev/i2c-1") == "/dev/i2c-1"
    assert bus_key("emulated") == "emulated"


def test_a_busy_bus_skips_the_poll_without_blaming_the_device() -> None:
    bus = EmulatedSMBus("unit-busy")
    bus.add(0x44, SHT3xEmulator())
    lock = register_bus("unit-busy", bus)
    try:
        src = I2CSource(i2c_config(bus="unit-busy", interval=0.1), MemorySink(), DEST,
                        DEFAULT_TAGS)
        assert src.poll() is not None  # the real SHT3x driver on the registered bus
        with lock:
            assert src.poll() is None
        assert "busy" in src.status.last_error and "unit-busy" in src.status.last_error
        assert src.backoff.failures == 0  # not the device's fault
        assert src.poll() is not None
    finally:
        forget_bus("unit-busy")


# -- serial ---------------------------------------------------------------------


def frame(pm25: int) -> bytes:
    return pms5003.encode({"pm1_0": 1, "pm2_5": pm25, "pm10": pm25 + 3})


class FakePort:
    def __init__(self, chunks: List[Union[bytes, BaseException]],
                 on_empty: Callable[[], None]) -> None:
        self.chunks = chunks
        self.on_empty = on_empty
        self.written: List[bytes] = []
        self.closed = False
        self.in_waiting = 0

    def read(self, size: int = 1) -> bytes:
        if not self.chunks:
            self.on_empty()
            return b""
        chunk = self.chunks.pop(0)
        if isinstance(chunk, BaseException):
            raise chunk
        return chunk

    def write(self, data: bytes) -> int:
        self.written.append(bytes(data))
        return len(data)

    def close(self) -> None:
        self.closed = True


def serial_config(**kw: Any) -> SerialSourceConfig:
    base: Dict[str, Any] = dict(name="air", driver="pms5003", port="/dev/ttyFAKE",
                                interval=1.0, measurement="air", tags={"room": "lab"})
    base.update(kw)
    return SerialSourceConfig(**base)


def pm25_of(line: str) -> int:
    fields = dict(kv.split("=") for kv in line.split(" ")[1].split(","))
    return int(fields["pm2_5"].rstrip("i"))


def test_serial_frames_become_points_and_garbage_does_not() -> None:
    sink = MemorySink()
    bad = bytearray(frame(99))
    bad[-1] ^= 0xFF  # wrong checksum
    stream = (b"\x00\xffjunk" + frame(11) + b"\x42\x42\x13" + bytes(bad)
              + frame(12) + b"\x42")
    src: Any = None
    ports = [FakePort([stream[:20], stream[20:45], stream[45:], frame(13)],
                      lambda: src._stop.set())]
    src = SerialSource(serial_config(), sink, DEST, DEFAULT_TAGS, opener=lambda c: ports.pop(0))
    src.run()
    assert [pm25_of(line) for line in sink.lines] == [11, 12, 13]
    assert all(line.startswith("air,agent=pi1,room=lab,site=default ") for line in sink.lines)
    times = stamps(sink.lines)
    assert times == sorted(times) and len(set(times)) == 3
    assert src.status.errors == 1 and "checksum" in src.status.last_error
    assert src.status.points == 3 and src.status.state == "ok"


def test_a_vanished_port_is_reopened_with_backoff() -> None:
    sink = MemorySink()
    clock = FakeClock(100.0)
    src: Any = None
    gone = SerialException("device reports readiness to read but returned no data")
    opened: List[int] = []

    def opener(config: Any) -> FakePort:
        opened.append(1)
        if len(opened) == 1:
            return FakePort([frame(1), gone], lambda: None)
        if len(opened) == 2:
            raise FileNotFoundError(2, "No such file or directory", "/dev/ttyFAKE")
        return FakePort([frame(2), frame(3)], lambda: src._stop.set())

    src = SerialSource(serial_config(), sink, DEST, DEFAULT_TAGS, clock=clock, opener=opener)
    waits: List[float] = []
    errors: List[str] = []

    def wait(timeout: float) -> bool:
        waits.append(timeout)
        errors.append(src.status.last_error)
        clock.advance(timeout)
        return src._stop.is_set()

    src._wait = wait
    src.run()
    assert [pm25_of(line) for line in sink.lines] == [1, 2, 3]
    assert len(opened) == 3
    assert waits == [1.0, 2.0]  # the port's own backoff
    assert "reopening" in errors[0]
    assert errors[1].startswith("cannot open /dev/ttyFAKE")
    assert src.status.state == "ok" and src.status.errors == 2


def test_read_once_asks_a_passive_sensor_and_closes_the_port() -> None:
    sink = MemorySink()
    port = FakePort([b"", frame(5)], lambda: None)
    src = SerialSource(serial_config(options={"mode": "passive"}), sink, DEST, DEFAULT_TAGS,
                       opener=lambda c: port)
    readings = src.read_once(2.0)
    assert [r["pm2_5"] for r in readings] == [5]
    assert len(sink.lines) == 1 and port.closed
    assert port.written == [pms5003.command(pms5003.CMD_MODE, pms5003.MODE_PASSIVE),
                            pms5003.command(pms5003.CMD_READ)]


def test_read_once_reports_a_silent_port() -> None:
    clock = FakeClock(0.0)
    port = FakePort([], lambda: clock.advance(0.5))
    src = SerialSource(serial_config(), MemorySink(), DEST, DEFAULT_TAGS, clock=clock,
                       opener=lambda c: port)
    assert src.read_once(2.0) == []
    assert src.status.last_error == "no valid frame from /dev/ttyFAKE within 2s"
    assert port.closed


def test_a_stopped_source_reports_stopped() -> None:
    clock = FakeClock(0.0)
    started = threading.Event()
    src = SerialSource(serial_config(), MemorySink(), DEST, DEFAULT_TAGS, clock=clock,
                       opener=lambda c: FakePort([], started.set))
    src.start()
    assert started.wait(5.0)
    assert src.alive
    src.stop()
    assert not src.alive and src.status.state == "stopped"
