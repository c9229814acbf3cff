"""kill -9 rounds against a real influxd, up and down: the counters add up exactly.

Each round starts the agent (three emulated I2C chips polled every 0.2 s) on
the same state_dir and kills it with SIGKILL at a moment of its own: while
delivering, while InfluxDB is down and the buffer grows, while the backlog
drains. Then one clean stop with InfluxDB up. Asserted exactly, not with <=:

    accepted = written + rejected + evicted + dropped_* + lost_corrupt + buffered

With ``buffer.hold: false`` (every reading committed within commit_interval)
InfluxDB holds exactly ``written`` distinct points: "written" is counted in
the transaction that removes the segments, so a batch InfluxDB took just
before a kill is sent again after the restart (an identical point overwrites
itself) and counted once. In the SD-card mode (the default) points go to
InfluxDB from memory: what a run held there when it was killed is counted
from the journal in RAM as lost_unsaved, or lost_in_flight when it was in a
request at that moment; InfluxDB may hold those, so it holds ``written``
points plus at most ``lost_in_flight``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.harness.agent import (
    AgentProcess,
    final_counters,
    identity,
    total_points,
    write_config,
)
from tests.harness.waits import wait_for as wait_until

I2C = ("climate", "humidity", "soil")


def counter(agent: AgentProcess, state: Path, name: str) -> int:
    return int(((agent.status(state) or {}).get("counters") or {}).get(name) or 0)


def buffered(agent: AgentProcess, state: Path) -> int:
    """Points on disk by the running agent's status; -1 before it wrote one."""
    status = agent.status(state)
    return -1 if status is None else int(status["buffer"]["points"])


@pytest.mark.parametrize("hold", [False, True], ids=["commit-every-reading", "sd-card-mode"])
def test_kill_9_rounds_keep_the_accounting_identity_exact(
    influx_factory: Callable[[], Any], agents: Callable[..., AgentProcess],  # noqa: F811
    tmp_path: Path, hold: bool,
) -> None:
    influx = influx_factory()
    influx.create_database("acct")
    state = tmp_path / "state"
    # batch_size 20: while InfluxDB is down points are committed once 20 wait
    config = write_config(tmp_path / "agent.yaml", state_dir=state, influx_url=influx.url,
                          db="acct", i2c=I2C, write="batch_size: 20",
                          extra=f"buffer: {{hold: {str(hold).lower()}}}")
    agent = agents(config)

    # Round 1: killed while delivering.
    agent.start()
    wait_until(lambda: counter(agent, state, "written") > 20, 60, "first deliveries")
    agent.kill()
    # Round 2: InfluxDB down, killed with a backlog in the buffer.
    influx.stop()
    agent.start()
    wait_until(lambda: counter(agent, state, "write_errors") > 0
               and buffered(agent, state) > 30, 60, "a backlog while InfluxDB is down")
    agent.kill()
    # Rounds 3 and 4: InfluxDB back, killed while the backlog drains and again at once.
    influx.start()
    agent.start()
    before = total_points(influx, "acct", I2C)
    wait_until(lambda: total_points(influx, "acct", I2C) > before, 60, "the drain to start")
    agent.kill()
    agent.start()
    wait_until(lambda: agent.status(state), 60, "the agent to start")
    agent.kill()
    # The last run: drain, then a clean stop.
    agent.start()
    wait_until(lambda: buffered(agent, state) >= 0, 60, "the agent to start")
    backlog = total_points(influx, "acct", I2C) + buffered(agent, state)
    wait_until(lambda: total_points(influx, "acct", I2C) > backlog, 90,
               "the backlog to drain")
    agent.send(signal.SIGTERM)
    assert agent.proc is not None and agent.proc.wait(60) == 0, agent.log()

    counters = final_counters(state)
    status_points = int(json.loads((state / "status.json").read_text())["buffer"]["points"])
    got = identity(counters, status_points)
    assert got["accepted"] > 0 and got["written"] > 0
    assert got["accepted"] == (got["written"] + got["rejected"] + got["evicted"]
                               + got["dropped"] + got["lost"] + got["buffered"]), got
    stored = total_points(influx, "acct", I2C)
    print(f"hold={hold}: influx {stored}, {got}")
    if hold:
        assert got["written"] <= stored <= got["written"] + got["lost_in_flight"], (stored, got)
    else:
        # (lost_unsaved: what waited the last commit_interval in memory before a kill)
        assert (stored, got["lost_in_flight"]) == (got["written"], 0), got
    assert "Traceback" not in agent.log()
