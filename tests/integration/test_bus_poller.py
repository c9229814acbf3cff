"""The shared I2C poller with real threads and emulated chips: one thread per bus,
prompt stops (also while a bus-mate hangs), and a bus polled again after a reload.

Timing assertions are "not blocked" checks with wide margins, never speed checks.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any, Callable, List

import pytest

from edge_agent.config.model import I2CSourceConfig
from edge_agent.destination import Destination
from edge_agent.sensors.emulated import BH1750Emulator, BME280Emulator, SHT3xEmulator
from edge_agent.sources import poller
from edge_agent.sources.i2c import I2CSource
from edge_agent.sources.poller import MAX_WAIT
from edge_agent.sources.schedule import Grid
from tests.harness.sinks import MemorySink
from tests.harness.waits import wait_for

DEST = Destination("db")
_names = itertools.count()


def start(bus: str, driver: str, address: int, sink: MemorySink, started: List[I2CSource],
          interval: float = 0.2, **options: Any) -> I2CSource:
    config = I2CSourceConfig(name=f"{driver}-{bus}-{address:02x}-{next(_names)}",
                             driver=driver, bus=bus, address=address, interval=interval,
                             measurement=driver, tags={"bus": bus}, options=options)
    src = I2CSource(config, sink, DEST, {}, round_interval=True)
    src.start()
    started.append(src)
    return src


def poller_threads(bus: str) -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"i2c-{bus}"]


def test_one_thread_per_bus_polls_all_its_sources(buses: Callable[..., str],
                                                  sources: List[I2CSource]) -> None:
    one = buses(x76=BME280Emulator(), x44=SHT3xEmulator(), x23=BH1750Emulator())
    two = buses(x44=SHT3xEmulator())
    sink = MemorySink()
    on_one = [start(one, "bme280", 0x76, sink, sources),
              start(one, "sht3x", 0x44, sink, sources),
              start(one, "bh1750", 0x23, sink, sources, interval=0.4, mode="low")]
    on_two = start(two, "sht3x", 0x44, sink, sources, interval=0.3)
    assert wait_for(lambda: all(s.status.points >= 5 for s in [*on_one, on_two]))
    assert len(poller_threads(one)) == 1 and len(poller_threads(two)) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("source-")]
    assert all(s.alive for s in [*on_one, on_two])
    for src in [*on_one, on_two]:
        mine = [int(line.rsplit(" ", 1)[1]) / 1e9 for line in sink.snapshot()
                if f"bus={src.config.bus}" in line and line.startswith(src.config.driver)]
        grid = Grid(src.interval)
        assert max(grid.deviation(t) for t in mine) < 0.1, src.name
        assert src.status.errors == 0 and src.status.overruns == 0, src.status.last_error


def test_stop_is_prompt_and_the_last_stop_ends_the_thread(buses: Callable[..., str],
                                                         sources: List[I2CSource]) -> None:
    bus = buses(x76=BME280Emulator(), x44=SHT3xEmulator())
    sink = MemorySink()
    # a long interval: the poller sleeps MAX_WAIT at a time between ticks
    first = start(bus, "bme280", 0x76, sink, sources, interval=60.0)
    second = start(bus, "sht3x", 0x44, sink, sources, interval=60.0)
    assert wait_for(lambda: first.alive and second.alive)
    began = time.monotonic()
    first.stop()
    assert time.monotonic() - began < MAX_WAIT / 2  # not waited out
    assert first.status.state == "stopped" and not first.alive
    assert second.alive and len(poller_threads(bus)) == 1
    began = time.monotonic()
    second.stop()
    assert time.monotonic() - began < MAX_WAIT / 2
    assert wait_for(lambda: not poller_threads(bus), what="the poller thread to end")
    assert bus not in poller._POLLERS


def test_stop_is_not_held_up_by_a_bus_mate_that_hangs(
        buses: Callable[..., str], sources: List[I2CSource],
        caplog: pytest.LogCaptureFixture) -> None:
    stuck = SHT3xEmulator()
    stuck.hang_seconds = 3.0
    bus = buses(x44=stuck, x76=BME280Emulator())
    sink = MemorySink()
    healthy = start(bus, "bme280", 0x76, sink, sources)
    hanging = start(bus, "sht3x", 0x44, MemorySink(), sources)
    assert wait_for(lambda: len(sink.lines) >= 3)
    stuck.fault = "hang"
    assert wait_for(lambda: hanging.status.busy_since > 0, timeout=5.0)
    began = time.monotonic()
    healthy.stop()  # its own read is not under way: it leaves at once
    assert time.monotonic() - began < 1.5
    with caplog.at_level(logging.WARNING, "edge_agent.source"):
        hanging.stop(timeout=0.2)  # inside a 3 s transaction: not waited for
    assert any("still inside a device read" in r.getMessage() for r in caplog.records)
    assert hanging.status.state == "stopped"
    stuck.fault = None
    assert wait_for(lambda: not poller_threads(bus), what="the poller to end after the hang")


def test_a_bus_is_polled_again_after_its_sources_are_replaced(
        buses: Callable[..., str], sources: List[I2CSource]) -> None:
    """What a reload does: every old source stops, then the new ones start."""
    bus = buses(x76=BME280Emulator(), x44=SHT3xEmulator())
    old_sink, new_sink = MemorySink(), MemorySink()
    old = [start(bus, "bme280", 0x76, old_sink, sources),
           start(bus, "sht3x", 0x44, old_sink, sources)]
    assert wait_for(lambda: all(s.status.points >= 2 for s in old))
    for src in old:
        src.stop()
    count = len(old_sink.lines)
    new = [start(bus, "bme280", 0x76, new_sink, sources, interval=0.3),
           start(bus, "sht3x", 0x44, new_sink, sources, interval=0.3)]
    assert wait_for(lambda: all(s.status.points >= 3 for s in new))
    assert len(old_sink.lines) == count  # the old ones polled no more
    assert len(poller_threads(bus)) == 1
    assert all(s.status.errors == 0 for s in new)
