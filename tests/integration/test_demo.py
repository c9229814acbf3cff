"""The README's first command: the demo runs the real job end to end, from a fresh clone.

It starts its own influxd, runs the real agent on the emulated hardware, stops
influxd midway and starts it again, then reads everything back. Here it runs
shortened (the default is about a minute).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip(f"no git checkout at {ROOT}: cannot make a fresh clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    return clone


def test_demo_delivers_every_point_across_an_outage(fresh_clone: Path) -> None:
    folder = fresh_clone / ".demo"
    run = subprocess.run(
        [sys.executable, "scripts/demo.py", "--seconds", "16", "--outage", "6",
         "--folder", str(folder)],
        cwd=fresh_clone, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((folder / "summary.json").read_text())
    stored = sum(summary["stored"].values())
    # Every accepted point is in InfluxDB, read back by query, and nothing is left over.
    assert summary["accepted"] > 0
    assert stored == summary["accepted"] == summary["written"]
    assert (summary["rejected"], summary["evicted"], summary["dropped_invalid"],
            summary["buffered"]) == (0, 0, 0, 0)
    # The outage was real: points waited on disk while influxd was stopped.
    assert summary["outage_seconds"] >= 5
    assert summary["outage_backlog_max"] > 0
    # Every source was read, and the report says so in words a newcomer reads.
    assert set(summary["read"]) == {"climate", "humidity", "light", "soil", "air", "gps"}
    assert all(n > 0 for n in summary["read"].values()), summary["read"]
    assert "every accepted point is in InfluxDB, nothing lost" in run.stdout
    assert "bme280.temperature read back from InfluxDB" in run.stdout
    # Nothing is left running: the agent's pid is gone.
    leftover = subprocess.run(["pgrep", "-f", str(fresh_clone)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", leftover.stdout
