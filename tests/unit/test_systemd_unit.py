"""The shipped unit is hardened (systemd-analyze score) yet can still do its job."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edge-agent.service"


def _settings() -> dict:
    values: dict = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_security_score_at_most_1_5():
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze not found: sudo apt-get install -y systemd"
    out = subprocess.run(
        [tool, "security", "--offline=true", str(UNIT)],
        capture_output=True, text=True, check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= 1.5


def test_unit_keeps_what_the_agent_needs():
    s = _settings()
    assert s["Type"] == ["notify"] and s["WatchdogSec"]
    assert "char-i2c rw" in s["DeviceAllow"]
    assert any(v.startswith("char-tty") for v in s["DeviceAllow"])
    groups = " ".join(s["SupplementaryGroups"]).split()
    assert "i2c" in groups and "dialout" in groups
    assert s["StateDirectory"] == ["edge-agent"]
    # the counters' journal in RAM must outlive a crashed process until the restart
    assert (s["RuntimeDirectory"], s["RuntimeDirectoryPreserve"]) == (["edge-agent"], ["restart"])
    families = " ".join(s["RestrictAddressFamilies"]).split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families)
    assert "PrivateNetwork" not in s
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())  # well-formed sections
    assert parser.get("Install", "WantedBy") == "multi-user.target"


def test_the_state_dir_variable_the_unit_sets_is_the_one_the_agent_reads():
    from edge_agent.config import parse_config

    env = dict(v.split("=", 1) for v in _settings()["Environment"])
    assert env["EDGE_AGENT_STATE_DIR"] == "/var/lib/" + _settings()["StateDirectory"][0]
    config = parse_config("influx: {bucket: b}\n", env={"EDGE_AGENT_STATE_DIR": "/run/x"})
    assert config.agent.state_dir == "/run/x"
