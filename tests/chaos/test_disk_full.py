"""A full disk, on a real 3 MiB tmpfs: the buffer fits, keeps delivering, counts everything.

The agent's state_dir sits on a tmpfs this test mounts (``mount -t tmpfs -o
size=3m``; CI runs as root, elsewhere the test skips and prints why), with
``buffer.max_size: 64MiB`` that cannot fit, and most of the filesystem taken
by another file (logs, say). InfluxDB is down: the buffer fills to what the
filesystem holds and evicts (counted) instead of failing. Then the other file
takes every last block: the agent keeps collecting, never exits. InfluxDB
comes back: what is stored is delivered and removed on the full disk, the
counters add up exactly and InfluxDB holds exactly ``written`` points. Then
the agent starts and ``status`` works on the still-full disk.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import pytest

from tests.harness.agent import (
    AgentProcess,
    identity,
    run,
    total_points,
    write_config,
)
from tests.harness.waits import wait_for as wait_until

I2C = ("climate", "humidity", "soil")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs mounted for this test, or a skip that says why."""
    where = tmp_path / "fs"
    where.mkdir()
    reason = ""
    if os.geteuid() != 0:
        reason = "mounting a tmpfs needs root (CI runs as root)"
    else:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode:
            reason = f"cannot mount a tmpfs: {done.stderr.strip()}"
    if reason:
        print(f"SKIPPED disk-full test: {reason}", file=sys.stderr)
        pytest.skip(reason)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(path: Path, leave: int = 0) -> None:
    """Grow ``path`` until the filesystem has ``leave`` bytes left (or none)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            st = os.statvfs(path)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                return
            os.write(fd, b"\0" * min(free - leave, 1 << 16))
    except OSError:
        return
    finally:
        os.close(fd)


def counters(agent: AgentProcess, state: Path) -> Dict[str, Any]:
    return dict((agent.status(state) or {}).get("counters") or {})


def test_full_disk_never_stops_delivery_and_every_point_is_counted(
    small_fs: Path, influx_factory: Callable[[], Any],
    agents: Callable[..., AgentProcess],  # noqa: F811
    tmp_path: Path,
) -> None:
    influx = influx_factory()
    influx.create_database("full")
    influx.stop()  # down from the start
    state = small_fs / "state"
    config = write_config(tmp_path / "agent.yaml", state_dir=state, influx_url=influx.url,
                          db="full", i2c=I2C, interval="20ms", write="batch_size: 100",
                          extra="buffer: {max_size: 64MiB}\n")
    # Segments are stored compressed: leave the buffer little room, so that the
    # readings of a minute or two fill it.
    fill(small_fs / "other-files", leave=640 << 10)
    agent = agents(config).start()
    wait_until(lambda: "but the filesystem has room for" in agent.log(), 30,
               "the warning that max_size cannot fit")
    assert len(re.findall("but the filesystem has room for", agent.log())) == 1

    # InfluxDB down: the buffer fills to what the filesystem holds, then evicts.
    wait_until(lambda: int(counters(agent, state).get("evicted") or 0) > 0, 120,
               "the buffer to reach the filesystem's room and evict")
    # Another file takes every last block.
    fill(small_fs / "other-files")
    evicted = int(counters(agent, state).get("evicted") or 0)
    accepted = int(counters(agent, state).get("accepted") or 0)
    wait_until(lambda: int(counters(agent, state).get("accepted") or 0) > accepted
               and int(counters(agent, state).get("evicted") or 0) > evicted, 60,
               "collection to go on on the full disk (evicting the oldest)")
    assert agent.proc is not None and agent.proc.poll() is None, agent.log()

    # InfluxDB back: what is stored is delivered and removed on the full disk.
    influx.start()
    wait_until(lambda: int(counters(agent, state).get("written") or 0) > 0
               and total_points(influx, "full", I2C) > 0, 60, "delivery on the full disk")
    stored = int((agent.status(state) or {}).get("buffer", {}).get("points") or 0)
    wait_until(lambda: int(counters(agent, state).get("written") or 0) > stored, 60,
               "the stored backlog to drain")
    assert agent.proc.poll() is None, agent.log()
    agent.send(signal.SIGTERM)
    assert agent.proc.wait(60) == 0, agent.log()

    # status works on the full disk and reads the counters the agent left.
    status = run("status", "-c", str(config))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("agent: not running\n"), status.stdout
    data = json.loads(run("status", "--json", "-c", str(config)).stdout)
    got = identity(data["counters"], data["buffer"]["points"])
    assert got["accepted"] == (got["written"] + got["rejected"] + got["evicted"]
                               + got["dropped"] + got["lost"] + got["buffered"]), got
    assert total_points(influx, "full", I2C) == got["written"], got
    assert got["evicted"] > 0 and got["written"] > 0
    assert "remove failed" not in agent.log(), agent.log()

    # The next start works on the still-full disk (no crash loop) and stops cleanly.
    again = agents(config).start()
    wait_until(lambda: again.status(state), 60, "the agent to start on the full disk")
    assert again.stop() == 0, again.log()
    assert "Traceback" not in agent.log() + again.log()


def test_buffer_on_a_full_tmpfs_evicts_removes_and_reopens_exactly(small_fs: Path) -> None:
    """The DiskBuffer alone, step by step: no InfluxDB, every count asserted."""
    from edge_agent.buffer.disklog import DiskBuffer
    from edge_agent.buffer.segment import Segment
    from edge_agent.destination import Destination

    dest = Destination("full")
    directory = small_fs / "state" / "buffer"
    directory.parent.mkdir()
    now = 1_700_000_000.0

    def segment(i: int) -> Segment:
        # 50 BME280 readings (fields as in the Bosch datasheet: temperature, humidity).
        # Values with all their digits: segments are stored compressed, and readings
        # repeated to the last digit would take almost no room.
        rng = random.Random(i)
        data = b"\n".join(b"bme280,host=pi temperature=%r,humidity=%r %d" % (
            rng.uniform(15, 30), rng.uniform(20, 90), i * 50 + j) for j in range(50))
        return Segment(dest, 50, data, now)

    FIRST, TOTAL = 1600, 1800
    buf = DiskBuffer(directory, max_size=64 << 20, clock=lambda: now)
    assert buf.total_budget < 3 << 20  # the filesystem's room, not max_size
    for i in range(FIRST):  # 2 KiB or so each, compressed: past the 3 MiB filesystem's room
        buf.append_many([segment(i)], {"accepted": 50})
    assert buf.counters.get("evicted") > 0  # the budget held before the disk was full
    fill(small_fs / "other-files")
    for i in range(FIRST, TOTAL):  # a full disk: still stored, the oldest evicted for room
        buf.append_many([segment(i)], {"accepted": 50})
    head = buf.head(5000, 1 << 24)
    assert buf.remove([k for k, _ in head], count_as="written", rejected=1) == 5000
    buf.close()
    assert os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize < 1 << 20

    buf = DiskBuffer(directory, max_size=64 << 20, clock=lambda: now)  # reopens on it
    c = buf.counters.snapshot()
    assert c["accepted"] == TOTAL * 50
    assert (c["written"], c["rejected"]) == (4999, 1)
    assert c["accepted"] == c["written"] + c["rejected"] + c["evicted"] + buf.stats().points
    buf.close()
