"""Several I2C sources under one poller (one bus), on a fake clock: each keeps its own
grid, interval, jitter and backoff; the conversions of chips due together are waited
out in one sleep; a device that holds the bus costs the others lost polls, not overruns."""

from __future__ import annotations

import logging
from typing import Any, Dict, List

import pytest

from edge_agent.config.model import I2CSourceConfig
from edge_agent.destination import Destination
from edge_agent.sensors._common import Reading, Stepped, Steps
from edge_agent.sources.i2c import I2CSource
from edge_agent.sources.poller import COALESCE, BusPoller
from edge_agent.sources.schedule import Grid
from tests.harness.sinks import MemorySink
from tests.harness.waits import FakeClock

DEST = Destination("db")


class Chip(Stepped):
    """A driver in steps: command, a conversion wait, result. ``absent`` reads fail;
    ``hold`` seconds pass inside the command step (a device holding the bus)."""

    def __init__(self, clock: FakeClock, conversion: float, log: List[float]) -> None:
        self.clock = clock
        self.conversion = conversion
        self.log = log  # clock times the command was sent
        self.absent = False
        self.hold = 0.0
        self.ready_at = 0.0

    def steps(self) -> Steps:
        self.log.append(self.clock())
        if self.absent:
            raise OSError(121, "Remote I/O error")
        self.clock.advance(self.hold)
        self.ready_at = self.clock() + self.conversion
        yield self.conversion
        assert self.clock() >= self.ready_at, "read before the conversion was done"
        reading: Reading = {"v": 1}
        return reading


def source(name: str, clock: FakeClock, chip: Chip, sink: MemorySink, interval: float,
           **kw: Any) -> I2CSource:
    config = I2CSourceConfig(name=name, driver="sht3x", bus="b", address=0x44,
                             interval=interval, measurement=name)
    return I2CSource(config, sink, DEST, {}, clock=clock, driver_factory=lambda: chip, **kw)


def drive(sources: List[I2CSource], clock: FakeClock, until: float) -> List[float]:
    """Poll ``sources`` under one poller on the fake clock; the waits it asked for."""
    waits: List[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        clock.advance(seconds)
        return clock.t >= until

    BusPoller("b", clock, clock).run(sources, wait)
    return waits


def stamps(sink: MemorySink, name: str) -> List[float]:
    return [int(line.rsplit(" ", 1)[1]) / 1e9 for line in sink.lines if line.startswith(name)]


def chips(clock: FakeClock, *conversions: float) -> List[Chip]:
    return [Chip(clock, c, []) for c in conversions]


def test_two_sources_on_one_bus_keep_their_own_intervals_and_grid() -> None:
    clock = FakeClock(1000.05)
    fast, slow = chips(clock, 0.0155, 0.18)
    sink = MemorySink()
    a = source("fast", clock, fast, sink, 0.5)
    b = source("slow", clock, slow, sink, 2.0)
    drive([a, b], clock, until=1010.3)
    assert stamps(sink, "fast") == pytest.approx([1000.5 + 0.5 * k for k in range(20)])
    assert stamps(sink, "slow") == pytest.approx([1002.0, 1004.0, 1006.0, 1008.0, 1010.0])
    for src in (a, b):
        assert (src.status.errors, src.status.overruns) == (0, 0)


def test_without_round_interval_each_grid_starts_at_its_source_start() -> None:
    clock = FakeClock(1000.3)
    one, two = chips(clock, 0.01, 0.01)
    sink = MemorySink()
    a = source("a", clock, one, sink, 1.0, round_interval=False)
    b = source("b", clock, two, sink, 1.0, round_interval=True)
    drive([a, b], clock, until=1005.5)
    assert one.log == pytest.approx([1001.3, 1002.3, 1003.3, 1004.3, 1005.3])
    assert two.log == pytest.approx([1001.0, 1002.0, 1003.0, 1004.0, 1005.0])


def test_conversions_due_together_are_waited_out_in_one_sleep() -> None:
    clock = FakeClock(1000.5)
    made = chips(clock, 0.0155, 0.010, 0.030, 0.180)
    sink = MemorySink()
    started = [source(f"s{i}", clock, chip, sink, 1.0) for i, chip in enumerate(made)]
    waits = drive(started, clock, until=1010.5)
    assert all(len(stamps(sink, f"s{i}")) == 10 for i in range(4))
    # per second: the sleep to the tick, one for the three short conversions
    # (within COALESCE of each other), one for the 180 ms one: not one per chip
    assert len(waits) == 3 * 10 + 1
    short = [w for w in waits if 0 < w < 0.1]
    assert short == pytest.approx([0.030] * 10)  # ends with the longest of the three
    assert max(c.conversion for c in made[:3]) - min(c.conversion for c in made[:3]) <= COALESCE
    for src in started:
        assert (src.status.errors, src.status.overruns) == (0, 0)
        grid = Grid(1.0)
        assert max(grid.deviation(t) for t in stamps(sink, src.name)) < 1e-6


def test_one_failing_chip_backs_off_without_delaying_the_other() -> None:
    clock = FakeClock(1000.3)
    bad, good = chips(clock, 0.0155, 0.0155)
    sink = MemorySink()
    failing = source("bad", clock, bad, sink, 0.5)
    healthy = source("good", clock, good, sink, 0.5)
    bad.absent = True
    waits = drive([failing, healthy], clock, until=1016.2)
    # the failing chip is tried at 1000.5, then after 1, 2, 4, 8 s (on its grid) ...
    assert bad.log == pytest.approx([1000.5, 1001.5, 1003.5, 1007.5, 1015.5])
    assert failing.status.state == "error" and failing.status.errors == 5
    assert "errno 121" in failing.status.last_error
    # ... while the other reads every tick of its own, on time
    assert stamps(sink, "good") == pytest.approx([1000.5 + 0.5 * k for k in range(32)])
    assert (healthy.status.errors, healthy.status.overruns) == (0, 0)
    assert stamps(sink, "bad") == []
    assert max(waits) <= 0.5  # woken by the healthy one's ticks, not more often


def test_a_chip_holding_the_bus_costs_the_other_polls_not_its_grid(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1000.3)
    holder, other = chips(clock, 0.0155, 0.0155)
    sink = MemorySink()
    stuck = source("stuck", clock, holder, sink, 1.0)
    healthy = source("healthy", clock, other, sink, 0.2)
    holder.hold = 0.5  # each of its reads holds the bus for 0.5 s

    with caplog.at_level(logging.WARNING, "edge_agent.source"):
        drive([stuck, healthy], clock, until=1004.9)
    mine = stamps(sink, "healthy")
    grid = Grid(0.2)
    assert max(grid.deviation(t) for t in mine) < 0.2 * 0.25 + 1e-6
    assert len({grid.tick_of(t) for t in mine}) == len(mine)  # one reading per tick
    # every second the stuck chip holds the bus through two of the other's ticks:
    # lost polls, counted, not blamed on the healthy device (no backoff, no overrun)
    assert healthy.status.overruns == 0 and healthy.backoff.failures == 0
    assert healthy.status.errors >= 8 and "busy" in healthy.status.last_error
    assert len(mine) + healthy.status.errors == pytest.approx(23, abs=1)
    assert stuck.status.overruns == 0 and len(stamps(sink, "stuck")) == 4


def test_a_slow_read_is_its_own_overrun_only() -> None:
    clock = FakeClock(1000.3)
    slow, other = chips(clock, 2.5, 0.01)  # the slow chip converts for 2.5 intervals
    sink = MemorySink()
    late = source("late", clock, slow, sink, 1.0)
    prompt = source("prompt", clock, other, sink, 1.0)
    drive([late, prompt], clock, until=1008.5)
    assert slow.log == pytest.approx([1001.0, 1004.0, 1007.0])
    assert late.status.overruns == 4
    # the bus is free during a conversion: the other chip reads every tick
    assert stamps(sink, "prompt") == pytest.approx([float(t) for t in range(1001, 1009)])
    assert (prompt.status.errors, prompt.status.overruns) == (0, 0)


def test_each_source_keeps_its_own_jitter() -> None:
    clock = FakeClock(1000.0)
    calm, jumpy = chips(clock, 0.01, 0.01)
    sink = MemorySink()
    steady = source("steady", clock, calm, sink, 1.0)
    jittered = source("jittered", clock, jumpy, sink, 1.0, jitter=0.4)
    drive([steady, jittered], clock, until=1100.5)
    assert calm.log == pytest.approx([float(t) for t in range(1001, 1101)])
    offsets = [t - round(t) for t in jumpy.log]
    assert len(offsets) == 100 and all(0.0 <= off < 0.4 for off in offsets)
    assert max(offsets) > 0.3
    assert jittered.status.overruns == 0


def test_a_bug_in_one_source_pauses_it_not_the_bus() -> None:
    clock = FakeClock(1000.3)
    good = Chip(clock, 0.01, [])
    sink = MemorySink()

    class Broken:
        def read(self) -> Dict[str, Any]:
            raise RuntimeError("a bug")

    config = I2CSourceConfig(name="broken", driver="sht3x", bus="b", address=0x45,
                             interval=1.0)
    broken = I2CSource(config, sink, DEST, {}, clock=clock, driver_factory=Broken)
    healthy = source("healthy", clock, good, sink, 1.0)
    drive([broken, healthy], clock, until=1012.5)
    assert broken.status.state == "error"
    assert broken.status.last_error == "unexpected error: RuntimeError: a bug"
    assert 2 <= broken.status.errors <= 3  # once per BUG_PAUSE, not every tick
    assert stamps(sink, "healthy") == pytest.approx([float(t) for t in range(1001, 1013)])


def test_a_clock_stepped_back_during_a_conversion_neither_stalls_the_read_nor_the_grid(
        caplog: pytest.LogCaptureFixture) -> None:
    wall, mono = FakeClock(1000.3), FakeClock(50.0)
    chip = Chip(mono, 0.2, [])  # the chip converts on its own (monotonic) time
    sink = MemorySink()
    src = source("a", wall, chip, sink, 1.0)
    stepped: List[float] = []
    waits: List[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        wall.advance(seconds)
        mono.advance(seconds)
        if chip.log and not stepped:  # NTP corrects a clock an hour ahead mid-conversion
            wall.advance(-3600.0)
            stepped.append(wall.t)
        return bool(stepped) and wall.t >= stepped[0] + 4.0

    with caplog.at_level(logging.WARNING, "edge_agent.source"):
        BusPoller("b", wall, mono).run([src], wait)
    got = stamps(sink, "a")
    assert got[0] == pytest.approx(1001.0)  # the read under way finished after its 0.2 s
    after = got[1:]
    assert len(after) >= 3 and after[0] - stepped[0] <= 1.0
    assert all(t == pytest.approx(round(t)) for t in after)  # the corrected clock's grid
    assert max(waits) <= 1.0
    assert any("stepped back" in r.getMessage() for r in caplog.records)


def test_sources_that_lose_polls_to_slow_bus_mates_take_turns() -> None:
    """Drivers with only a blocking read() (no steps) hold the bus through their
    conversion: at one tick only the first reads on time, and the one that waited
    longest goes first at the next, so none of them is starved."""
    clock = FakeClock(1000.3)
    sink = MemorySink()
    made: List[I2CSource] = []

    class Blocking:
        def read(self) -> Dict[str, Any]:
            clock.advance(0.08)  # 40% of the interval, longer than START_PATIENCE of it
            return {"v": 1}

    for i in range(3):
        config = I2CSourceConfig(name=f"b{i}", driver="sht3x", bus="b", address=0x44,
                                 interval=0.2, measurement=f"b{i}")
        made.append(I2CSource(config, sink, DEST, {}, clock=clock, driver_factory=Blocking))
    drive(made, clock, until=1000.3 + 30)
    counts = [len(stamps(sink, src.name)) for src in made]
    assert sum(counts) == 150  # one read per tick, 150 ticks
    assert min(counts) >= 45, counts  # taking turns, about a third each
    for src in made:
        assert src.status.overruns == 0 and "busy" in src.status.last_error
        assert src.status.errors + len(stamps(sink, src.name)) == 150
