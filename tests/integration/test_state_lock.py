"""One writer per state_dir: a second agent (or --once, or a stray writer) is refused.

Two real processes on one state directory lost and doubled points without an
error (issue 10). Now the first holds an flock on ``<state_dir>/lock``; the
second gets one line naming the pid that holds it and exit code 1.
``status`` reads beside a running agent and after it, taking no lock and
writing nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

from tests.harness.agent import (
    AgentProcess,
    run,
    write_config,
)
from tests.harness.waits import wait_for as wait_until

HOLDER = textwrap.dedent("""
    import sys, time
    from edge_agent.buffer.lock import StateLock
    lock = StateLock.acquire(sys.argv[1])
    print("held", flush=True)
    time.sleep(600)
""")


def snapshot(root: Path) -> Dict[str, Tuple[int, int]]:
    """(size, mtime_ns) of every file under root: what 'writes nothing' compares."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def test_second_agent_on_one_state_dir_is_refused_naming_the_pid(
    influx: Any, influx_db: str, tmp_path: Path,
    agents: Callable[..., AgentProcess],  # noqa: F811
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "agent.yaml", state_dir=state, influx_url=influx.url,
                          db=influx_db, i2c=["climate"])
    first = agents(config).start()
    wait_until(lambda: first.status(state), 30, "the first agent's status file")

    second = run("-c", str(config), timeout=60)
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0], second.stderr
    assert "in use by another edge-agent" in lines[0]
    assert "Traceback" not in second.stdout + second.stderr

    # status beside the running agent: it reads, the agent keeps its lock.
    status = run("status", "-c", str(config))
    assert status.returncode == 0 and status.stdout.startswith(
        f"agent: running, pid {first.pid}, "), status.stdout + status.stderr
    assert first.proc is not None and first.proc.poll() is None

    first.send(signal.SIGTERM)
    assert first.proc.wait(60) == 0, first.log()
    # The lock went with the process: the next start takes it.
    again = agents(config).start()
    wait_until(lambda: again.status(state), 30, "the restarted agent's status file")
    assert again.stop() == 0, again.log()


def test_once_and_agent_refused_while_a_stray_process_holds_the_state_dir(
    tmp_path: Path, agents: Callable[..., AgentProcess],  # noqa: F811
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = write_config(tmp_path / "agent.yaml", state_dir=state,
                          influx_url="http://127.0.0.1:9", db="db", i2c=["climate"])
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        for args in (("--once", "-c", str(config)), ("-c", str(config))):
            result = run(*args, timeout=60)
            assert result.returncode == 1, result.stdout + result.stderr
            errors = result.stderr.strip().splitlines()
            assert len(errors) == 1 and f"pid {holder.pid}" in errors[0], result.stderr
        assert not (state / "buffer").exists(), "a refused process opened the buffer"
    finally:
        holder.kill()
        holder.wait()
    # kill -9 of the holder released it: no stale lock blocks the next run.
    result = run("--once", "-c", str(config), timeout=120)
    assert "in use by another" not in result.stderr, result.stderr


def test_status_of_a_stopped_agent_reads_without_writing(
    influx: Any, influx_db: str, tmp_path: Path,
    agents: Callable[..., AgentProcess],  # noqa: F811
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "agent.yaml", state_dir=state,
                          influx_url="http://127.0.0.1:9", db="db", i2c=["climate"],
                          write="batch_size: 5")  # undelivered points committed soon
    agent = agents(config).start()

    def buffered() -> bool:
        data = agent.status(state)
        return bool(data and data["buffer"]["points"] > 0)

    wait_until(buffered, 30, "points in the buffer (InfluxDB is unreachable)")
    agent.kill()  # the hardest case: WAL and -shm left behind
    before = snapshot(state)
    result = run("status", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("agent: not running\n")
    points = int(result.stdout.split("buffer: ", 1)[1].split(" ", 1)[0])
    assert points > 0
    assert snapshot(state) == before, "status wrote to the state directory"


LIBRARY = textwrap.dedent("""
    import sys, time
    from edge_agent import InfluxDBClient, WriteOptions
    from edge_agent.errors import EdgeAgentError
    client = InfluxDBClient(url="http://127.0.0.1:9", token="t", org="o")
    try:
        api = client.write_api(write_options=WriteOptions(buffer_dir=sys.argv[1]))
    except EdgeAgentError as exc:
        print("refused:", exc, flush=True)
        sys.exit(1)
    api.write("b", record="m v=1i 1")
    print("held", flush=True)
    time.sleep(600)
""")


def test_the_library_on_a_state_dir_in_use_is_refused_and_holds_its_own(
    tmp_path: Path, agents: Callable[..., AgentProcess],  # noqa: F811
) -> None:
    # influxdb-client code given the agent's state_dir as buffer_dir, or two
    # scripts on one buffer_dir: one writer, the other told who holds it.
    state = tmp_path / "state"
    config = write_config(tmp_path / "agent.yaml", state_dir=state,
                          influx_url="http://127.0.0.1:9", db="db", i2c=["climate"])
    agent = agents(config).start()
    wait_until(lambda: agent.status(state), 30, "the agent's status file")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    refused = subprocess.run([sys.executable, "-c", LIBRARY, str(state)], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout.startswith(f"refused: buffer_dir {state} is in use by another "
                                     f"edge-agent (pid {agent.pid} holds "), refused.stdout
    assert agent.stop() == 0, agent.log()

    own = tmp_path / "lib"
    first = subprocess.Popen([sys.executable, "-c", LIBRARY, str(own)], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline() == "held\n"
        second = subprocess.run([sys.executable, "-c", LIBRARY, str(own)], env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and f"(pid {first.pid} holds " in second.stdout, \
            second.stdout + second.stderr
    finally:
        first.kill()
        first.wait()
