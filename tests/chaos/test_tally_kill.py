"""kill -9 of a process delivering from memory (SD-card mode): the journal keeps the count.

A real child process opens a disk buffer with its counters' journal, runs a
durable writer with ``hold`` (points wait in memory, as the agent's do) and
plays the flusher's part: a batch committed and delivered from disk, one
delivered straight from memory, one in a request when the kill comes, some
points only held, two failed attempts. Then SIGKILL. The next open joins the
journal to the last commit: every number comes out exactly, where the file
alone knows only what it committed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

from edge_agent.buffer.disklog import DiskBuffer
from edge_agent.buffer.tally import Tally
from tests.harness.agent import (
    AgentProcess,
    buffered_points,
    final_counters,
    identity,
    run,
    write_config,
)
from tests.harness.waits import wait_for

CHILD = textwrap.dedent("""
    import sys, time
    from edge_agent.buffer.disklog import DiskBuffer
    from edge_agent.buffer.durable import DurableWriter
    from edge_agent.buffer.tally import Tally
    from edge_agent.destination import Destination

    buf = DiskBuffer(sys.argv[1])
    buf.attach_tally(Tally(sys.argv[2]))
    writer = DurableWriter(buf, commit_interval=0.1, hold=60.0)
    dest = Destination("b")
    lines = lambda first, n: [f"m v={i}i {i}" for i in range(first, first + n)]

    writer.add(lines(0, 100), dest)
    assert writer.flush()                       # 100 committed ...
    ids = [i for i, _ in writer.head(1000, 1 << 20)]
    writer.remove(ids, count_as="written")      # ... and delivered from disk
    writer.add(lines(100, 30), dest)
    ids = [i for i, _ in writer.head(1000, 1 << 20)]
    assert all(i < 0 for i in ids)
    writer.remove(ids, count_as="written")      # 30 delivered from memory
    writer.add(lines(130, 15), dest)
    window = writer.head(1000, 1 << 20)         # 15 in a request now
    writer.add(lines(145, 10), dest)            # 10 only held
    buf.counters.add("write_errors", 2)
    buf.counters.set("last_error", "InfluxDB said 503")
    print(sum(s.count for _, s in window), flush=True)
    time.sleep(600)
""")


def kill_child(tmp_path: Path) -> int:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "buffer"),
                             str(tmp_path / "tally")], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None
    in_flight = int(proc.stdout.readline() or -1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return in_flight


def test_a_killed_run_is_counted_exactly_from_its_journal(tmp_path: Path, caplog) -> None:
    assert kill_child(tmp_path) == 15
    buf = DiskBuffer(tmp_path / "buffer")
    try:
        assert buf.attach_tally(Tally(str(tmp_path / "tally"))) == 25
        counters = buf.counters.snapshot()
        got = identity(counters, buf.stats().points)
    finally:
        buf.close()
    assert {k: got[k] for k in ("accepted", "written", "lost_unsaved", "lost_in_flight",
                                "buffered")} == {
        "accepted": 155, "written": 130, "lost_unsaved": 10, "lost_in_flight": 15,
        "buffered": 0}
    assert got["accepted"] == (got["written"] + got["rejected"] + got["evicted"]
                               + got["dropped"] + got["lost"] + got["buffered"]), got
    assert (counters["write_errors"], counters["last_error"]) == (2, "InfluxDB said 503")
    assert "held 25 points in memory" in caplog.text
    # The joined counts were committed: the next open (no kill between) finds them as is.
    again = DiskBuffer(tmp_path / "buffer")
    try:
        assert again.attach_tally(Tally(str(tmp_path / "tally"))) == 0
        assert again.counters.snapshot()["accepted"] == 155
    finally:
        again.close()


def test_without_the_journal_only_the_last_commit_is_known(tmp_path: Path, caplog) -> None:
    # What a power cut leaves (RAM gone): the file's own counts, and a warning.
    kill_child(tmp_path)
    os.unlink(tmp_path / "tally")
    buf = DiskBuffer(tmp_path / "buffer")
    try:
        assert buf.attach_tally(Tally(str(tmp_path / "tally"))) == 0
        counters = buf.counters.snapshot()
    finally:
        buf.close()
    assert (counters["accepted"], counters["written"], counters["write_errors"]) == (100, 100, 0)
    assert "counters since its last commit are gone" in caplog.text


def test_status_after_a_kill_shows_what_the_next_start_counts(
        fault_server: Any, agents: Callable[..., AgentProcess], tmp_path: Path) -> None:
    # The real agent in its default SD-card mode, InfluxDB up (the stand-in):
    # points go from memory to the server, then a kill -9 mid-stream.
    state = tmp_path / "state"
    config = write_config(tmp_path / "agent.yaml", state_dir=state, influx_url=fault_server.url,
                          db="tally", i2c=("climate", "humidity", "soil"), interval="100ms")
    agent = agents(config)
    agent.start()
    wait_for(lambda: int(((agent.status(state) or {}).get("counters") or {}).get("written")
                         or 0) > 30, 60, "deliveries from memory")
    agent.kill()
    shown = json.loads(run("status", "--json", "-c", str(config)).stdout)
    assert shown["live"] is False
    got = identity(shown["counters"], shown["buffer"]["points"])
    assert got["accepted"] == (got["written"] + got["rejected"] + got["evicted"]
                               + got["dropped"] + got["lost"] + got["buffered"]), got
    assert got["written"] > 30 and shown["unsaved"] == got["lost_unsaved"] + got["lost_in_flight"]
    received = len(set(fault_server.points))
    assert got["written"] <= received <= got["written"] + got["lost_in_flight"], (received, got)
    # The next run counts exactly that, and carries it on.
    agent.start()
    wait_for(lambda: agent.status(state), 60, "the agent to start again")
    assert agent.stop() == 0, agent.log()
    final = identity(final_counters(state), buffered_points(state))
    assert (final["lost_unsaved"], final["lost_in_flight"]) == (
        got["lost_unsaved"], got["lost_in_flight"])
    assert final["accepted"] == (final["written"] + final["rejected"] + final["evicted"]
                                 + final["dropped"] + final["lost"] + final["buffered"]), final
    assert "Traceback" not in agent.log()
