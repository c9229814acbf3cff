"""The agent starts on a damaged buffer: it salvages, delivers, counts, and never loops.

Run 1 collects from three emulated I2C chips while InfluxDB is unreachable and
stops cleanly with a backlog. 16 KiB of garbage then land in the middle of the
SQLite file. Run 2 (InfluxDB reachable) starts, logs one CRITICAL line with
the numbers, delivers every salvaged point and counts what could not be read
in ``lost_corrupt``: accepted = written + ... + lost_corrupt + buffered exactly,
and InfluxDB holds exactly ``written`` points. Run 3 starts without a second
salvage.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, Callable

from tests.harness.agent import (
    AgentProcess,
    final_counters,
    identity,
    total_points,
    write_config,
)
from tests.harness.waits import wait_for as wait_until

I2C = ("climate", "humidity", "soil")
SALVAGED = re.compile(r"DISK BUFFER CORRUPT: .* salvaged (\d+) points in (\d+) segments.*"
                      r" (\d+) points could not be read")


def test_agent_salvages_a_damaged_buffer_and_delivers_it(
    influx: Any, influx_db: str, agents: Callable[..., AgentProcess],  # noqa: F811
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    offline = write_config(tmp_path / "offline.yaml", state_dir=state,
                           influx_url="http://127.0.0.1:9", db=influx_db, i2c=I2C,
                           interval="20ms")
    online = write_config(tmp_path / "online.yaml", state_dir=state, influx_url=influx.url,
                          db=influx_db, i2c=I2C, interval="20ms")
    first = agents(offline).start()
    wait_until(lambda: ((first.status(state) or {}).get("buffer") or {}).get("points", 0)
               > 2000, 120, "a backlog of 2000 points")
    assert first.stop() == 0, first.log()
    before = json.loads((state / "status.json").read_text())
    assert before["counters"]["written"] == 0

    db = state / "buffer" / "cache.db"
    with open(db, "r+b") as handle:
        handle.seek(db.stat().st_size // 2 // 4096 * 4096 + 1000)
        handle.write(random.Random(5).randbytes(16 * 1024))

    second = agents(online).start()
    match = wait_until(lambda: SALVAGED.search(second.log()), 60, "the salvage's CRITICAL line")
    salvaged, lost = int(match.group(1)), int(match.group(3))
    assert salvaged > 0 and lost > 0, match.group(0)
    wait_until(lambda: total_points(influx, influx_db, I2C) > salvaged, 90,
               "the salvaged points in InfluxDB")
    assert second.stop() == 0, second.log()
    assert len(re.findall("CRITICAL", second.log())) == 1

    counters = final_counters(state)
    status = json.loads((state / "status.json").read_text())
    got = identity(counters, int(status["buffer"]["points"]))
    assert got["lost_corrupt"] == lost
    assert got["accepted"] == (got["written"] + got["rejected"] + got["evicted"]
                               + got["dropped"] + got["lost"] + got["buffered"]), got
    assert total_points(influx, influx_db, I2C) == got["written"], got

    third = agents(online).start()
    wait_until(lambda: third.status(state), 60, "the third start")
    assert third.stop() == 0, third.log()
    assert "CORRUPT" not in third.log()
    assert len(list(tmp_path.glob("state/buffer.corrupt-*"))) == 1
