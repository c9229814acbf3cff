"""``edge-agent status`` right after a kill -9: a process not yet reaped is not running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from edge_agent.agent.commands import _pid_alive
from tests.harness.waits import wait_for


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        return handle.read().rpartition(")")[2].split()[0]


def test_a_killed_process_not_yet_reaped_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _pid_alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        wait_for(lambda: _state(child.pid) == "Z", 10, "the child to be a zombie")
        assert not _pid_alive(child.pid)  # its parent (this test) has not reaped it
    finally:
        child.wait()
    assert not _pid_alive(child.pid)
