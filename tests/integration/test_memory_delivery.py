"""The agent's path with ``hold``: DurableWriter as the flusher's queue, real HTTP.

Writer -> Flusher -> Transport -> the tests' InfluxDB stand-in (FaultServer),
on a real DiskBuffer: while the server answers 204 nothing is appended to the
buffer; while it answers 503 the points are committed at their deadline and
delivered from disk once it answers again; the counters add up exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from edge_agent.buffer.disklog import DiskBuffer
from edge_agent.buffer.durable import DurableWriter
from edge_agent.delivery.flusher import Flusher
from edge_agent.delivery.transport import InfluxSettings, Transport
from edge_agent.destination import Destination
from edge_agent.options import WriteOptions
from tests.harness.fault_server import Answer, FaultServer
from tests.unit.test_durable import Refusing

DEST = Destination("b", org="o")
# Shape of the agent's BME280 readings (edge_agent.sensors.bme280: temperature,
# humidity, pressure fields; the source adds host and sensor tags).
LINE = "climate,host=pi01,sensor=bme280 temperature=21.53,humidity=45.2,pressure=1013.2 {}"


def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def setup(tmp_path: Path, server: FaultServer, hold: float):
    buf = DiskBuffer(tmp_path / "buf")
    appends = Refusing(buf)
    appends.on = False  # only counts
    writer = DurableWriter(buf, commit_interval=0.05, batch_size=1000, hold=hold)
    options = WriteOptions(batch_size=1000, flush_interval=50, retry_interval=100,
                           max_retry_delay=300, commit_interval=50)
    transport = Transport(InfluxSettings(url=server.url, api="v2", token="t", org="o"))
    flusher = Flusher(writer, transport, options, durable=True)
    flusher.start()
    return buf, appends, writer, flusher, transport


def test_points_the_server_takes_never_reach_the_buffer(tmp_path: Path):
    with FaultServer() as server:
        buf, appends, writer, flusher, transport = setup(tmp_path, server, hold=30.0)
        base = time.time_ns()
        tickets = [writer.add([LINE.format(base + i)], DEST) for i in range(50)]
        wait_for(lambda: len(server.points) == 50)
        assert writer.wait_durable(tickets[-1], timeout=5, hurry=False)
        flusher.stop()
        assert writer.close()
        assert appends.calls == 0 and buf.stats().points == 0
        counters = buf.counters.snapshot()
        assert counters["accepted"] == counters["written"] == 50
        transport.close()
        buf.close()
    reopened = DiskBuffer(tmp_path / "buf")  # and they were stored with the shutdown
    assert reopened.counters.get("accepted") == reopened.counters.get("written") == 50
    reopened.close()


def test_an_outage_commits_at_the_deadline_then_delivers_from_disk(tmp_path: Path):
    with FaultServer() as server:
        server.script(*[Answer(status=503) for _ in range(10_000)])
        buf, appends, writer, flusher, transport = setup(tmp_path, server, hold=0.3)
        base = time.time_ns()
        for i in range(20):
            writer.add([LINE.format(base + i)], DEST)
        wait_for(lambda: buf.stats().points == 20)  # the deadline committed them
        assert appends.calls >= 1 and not server.points
        with server._lock:
            server._script.clear()  # InfluxDB is back
        wait_for(lambda: len(server.points) == 20)
        wait_for(lambda: buf.stats().points == 0)
        flusher.stop()
        assert writer.close()
        counters = buf.counters.snapshot()
        assert counters["accepted"] == counters["written"] == 20
        assert sorted(server.points) == sorted(LINE.format(base + i) for i in range(20))
        transport.close()
        buf.close()


def test_a_refused_request_is_not_left_in_flight(tmp_path: Path):
    # What a kill would count as "lost_in_flight" (InfluxDB may hold it) is only
    # a request without an answer; one InfluxDB answered 503 is merely unsaved.
    from edge_agent.buffer.tally import Tally

    with FaultServer() as server:
        server.script(Answer(status=503))
        buf = DiskBuffer(tmp_path / "buf")
        tally = Tally(str(tmp_path / "tally"))
        buf.attach_tally(tally)
        writer = DurableWriter(buf, commit_interval=0.05, batch_size=1000, hold=30.0)
        options = WriteOptions(flush_interval=50, retry_interval=60_000,
                               max_retry_delay=60_000)  # no retry during the test
        transport = Transport(InfluxSettings(url=server.url, api="v2", token="t", org="o"))
        flusher = Flusher(writer, transport, options, durable=True)
        flusher.start()
        writer.add([LINE.format(time.time_ns())], DEST)
        wait_for(lambda: bool(buf.counters.get("write_errors")))
        state = tally.read()
        assert state is not None and (state.held, state.flight) == (1, 0)
        assert len(server.requests) == 1
        flusher.stop()
        writer.close()
        transport.close()
        buf.close()
