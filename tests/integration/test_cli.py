"""``edge-agent`` as a user runs it: subprocesses of the installed console script.

--version, check-config (secrets redacted), --once (--dry-run; against the real
influxd; with InfluxDB down and the backlog delivered later; with a wrong
database) and ``status`` with and without a running agent.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any, Callable, List

import yaml

import edge_agent
from tests.harness.agent import (
    AgentProcess,
    run,
    wait_until,
    write_config,
)
from tests.harness.servers import free_port

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo.yaml"
TOKEN = "tok-7f3e9c1d5b2a-do-not-print"


def once_config(path: Path, state: Path, url: str, db: str) -> Path:
    """Two emulated I2C chips (fast to read) and a v1 InfluxDB."""
    return write_config(path, state_dir=state, influx_url=url, db=db, i2c=["climate", "soil"])


def report_value(stdout: str, label: str) -> str:
    """The text after ``label`` on its report line."""
    for line in stdout.splitlines():
        if line.strip().startswith(label):
            return line.strip()[len(label):].strip()
    raise AssertionError(f"no {label!r} line in:\n{stdout}")


# -- version and check-config --------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"edge-agent {edge_agent.__version__}"


def test_check_config_prints_effective_config_with_token_redacted(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("influx:\n  url: http://influx.lan:8086\n  api: v2\n  org: home\n"
                      f"  bucket: sensors\n  token: {TOKEN}\nsources: []\n")
    config.chmod(0o600)
    result = run("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert result.stdout.startswith(f"# {config}: valid\n")
    effective = yaml.safe_load(result.stdout)
    assert effective["influx"]["token"] == "***"
    assert effective["influx"]["url"] == "http://influx.lan:8086"
    assert effective["influx"]["bucket"] == "sensors"
    assert effective["write"]["batch_size"] == 1000  # defaults filled in
    assert effective["agent"]["round_interval"] is True
    assert result.stderr == ""


def test_check_config_token_from_env_and_world_readable_warning(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("influx:\n  bucket: sensors\n  token: ${MY_TOKEN}\n"
                      f"  password: {TOKEN}x\n")
    config.chmod(0o644)
    result = run("check-config", "-c", str(config),
                 env={"MY_TOKEN": TOKEN, "INFLUXDB_V2_URL": "http://envhost:8086"})
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["influx"]["token"] == "***"
    assert effective["influx"]["password"] == "***"
    assert effective["influx"]["url"] == "http://envhost:8086"  # the seed's env fallback
    # A literal secret in a file others can read: one warning line naming where.
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1, warnings
    assert f"WARNING edge_agent.config: {config}:4:13: influx.password is written in a file" \
        in warnings[0]
    assert "chmod 600" in warnings[0]


# -- every config error: exit 2, one line path:LINE:COL, no traceback ---------------------

_HEAD = "influx: {bucket: b}\n"
CONFIG_ERRORS = [
    # (config text, where the error points: (line, the text at that column), words)
    ("agent:\n  nmae: x\n", (2, "nmae"), ["unknown key 'nmae'", "did you mean 'name'"]),
    ("agent:\n  interval: 10 parsecs\n", (2, "10 parsecs"),
     ["bad duration '10 parsecs'", "10s"]),
    ("influx: {bucket: '${NOT_SET_ANYWHERE}'}\n", (1, "${"),
     ["undefined environment variable ${NOT_SET_ANYWHERE}"]),
    (_HEAD + "sources:\n  - {name: a, type: i2c, driver: bme999, bus: 1, address: 0x76}\n",
     (3, "bme999"), ["unknown i2c driver 'bme999'", "bme280"]),
    (_HEAD + "sources:\n  - {name: a, type: i2c, driver: bme280, bus: 1, address: 0x76}\n"
     "  - {name: a, type: i2c, driver: sht3x, bus: 1, address: 0x44}\n",
     (4, "a, type"), ["duplicate source name 'a'", "line 3"]),
    (_HEAD + "agent:\n  round_interval: maybe\n", (3, "maybe"), ["round_interval"]),
    (_HEAD + "write: {batch_size: lots}\n", (2, "lots"), ["batch_size"]),
    (_HEAD + "sources:\n  - {name: a, type: zigbee}\n", (3, "zigbee"),
     ["unknown source type 'zigbee'", "i2c, serial, mqtt"]),
    ("agent: [\n", (2, ""), ["YAML syntax error"]),
]


def test_every_config_error_is_one_line_with_position_and_exit_2(tmp_path: Path) -> None:
    failures: List[str] = []
    for number, (text, (line, at), words) in enumerate(CONFIG_ERRORS):
        config = tmp_path / f"bad{number}.yaml"
        config.write_text(text)
        col = (text.splitlines() + [""])[line - 1].index(at) + 1
        for args in (["check-config"], ["--once", "--dry-run"], []):
            result = run(*args, "-c", str(config))
            err = result.stderr
            problems = []
            if result.returncode != 2:
                problems.append(f"exit {result.returncode}")
            if "Traceback" in err or len(err.strip().splitlines()) != 1:
                problems.append("not exactly one line")
            if not err.startswith(f"edge-agent: {config}:{line}:{col}: "):
                problems.append(f"position is not {line}:{col}")
            problems += [f"no {w!r}" for w in words if w not in err]
            if problems:
                failures.append(f"{text!r} {args}: {problems}: {err!r}")
    assert not failures, "\n".join(failures)


def test_missing_config_file_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    for env, args in (({}, ["-c", str(missing)]),
                      ({"EDGE_AGENT_CONFIG": str(missing)}, [])):
        for command in (["check-config"], ["status"], ["--once"], []):
            result = run(*command, *args, env=env)
            assert result.returncode == 2, result
            assert result.stderr.strip().splitlines() == [
                f"edge-agent: {missing}: cannot read: No such file or directory"], result
            assert result.stdout == ""


def test_dry_run_without_once_is_a_usage_error(tmp_path: Path) -> None:
    result = run("--dry-run", "-c", str(tmp_path / "x.yaml"))
    assert result.returncode == 2
    assert "--dry-run works with --once" in result.stderr


# -- --once --dry-run ---------------------------------------------------------------------


def test_once_dry_run_demo_prints_every_source_and_touches_nothing(
    tmp_path: Path, fault_server: Any,
) -> None:
    # demo.yaml's state_dir is ./state: relative to this working directory.
    result = run("--once", "--dry-run", "-c", str(DEMO), cwd=tmp_path,
                 env={"INFLUX_URL": fault_server.url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "state").exists()
    assert list(tmp_path.iterdir()) == []
    assert fault_server.requests == []  # no network either
    out = result.stdout
    for name in ("climate", "humidity", "light", "soil", "air", "gps"):
        assert re.search(rf"^  {name} +ok ", out, re.M), out
    lines = out.split("not written):\n", 1)[1].splitlines()
    measurements = {ln.split(",", 1)[0] for ln in lines}
    assert measurements == {"bme280", "sht3x", "bh1750", "ads1115", "pms5003", "nmea"}
    for line in lines:
        assert re.fullmatch(r"[a-z0-9]+,host=demo,site=demo \S+=\S+ \d{19}", line), line


# -- --once against InfluxDB ---------------------------------------------------------------


def test_once_writes_points_and_reports(influx: Any, influx_db: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = once_config(tmp_path / "agent.yaml", state, influx.url, influx_db)
    result = run("--once", "-c", str(config))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert report_value(out, "reachable").startswith("yes")
    assert "1.6.7" in report_value(out, "reachable")  # the server's version
    assert report_value(out, "authorised") == "yes"
    assert report_value(out, "written") == "2 point(s) (incl. backlog)"
    assert report_value(out, "buffer:").startswith("0 point(s)")
    rows = influx.rows(influx_db, 'SELECT * FROM "climate"')
    assert len(rows) == 1 and len(influx.rows(influx_db, 'SELECT * FROM "soil"')) == 1
    # The reading shown is the one written.
    shown = re.search(r"temperature=(\S+)", out)
    assert shown and f"{rows[0]['temperature']:.4g}" == shown.group(1)
    assert rows[0]["site"] == "test" and rows[0]["host"] == "e2e"


def test_once_with_influx_down_keeps_points_then_delivers_backlog(
    influx: Any, influx_db: str, tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    down = f"http://127.0.0.1:{free_port()}"
    config = once_config(tmp_path / "agent.yaml", state, down, influx_db)
    result = run("--once", "-c", str(config))
    out = result.stdout
    assert result.returncode == 1, out
    assert report_value(out, "reachable").startswith("NO: cannot reach")
    assert "connection refused" in report_value(out, "reachable")
    assert report_value(out, "authorised") != "yes"
    assert report_value(out, "written").startswith("0 of 2 point(s); kept for later")
    assert report_value(out, "buffer:").startswith("2 point(s)")
    assert "Traceback" not in result.stderr

    status = run("status", "-c", str(config))  # not running: read from the buffer itself
    assert status.returncode == 0
    assert "agent: not running" in status.stdout
    assert report_value(status.stdout, "buffer:").startswith("2 points (")

    once_config(tmp_path / "agent.yaml", state, influx.url, influx_db)
    result = run("--once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert report_value(result.stdout, "written") == "4 point(s) (incl. backlog)"
    assert report_value(result.stdout, "buffer:").startswith("0 point(s)")
    times = [r["time"] for r in influx.rows(influx_db, 'SELECT * FROM "climate"')]
    assert len(times) == len(set(times)) == 2


def test_once_with_wrong_database_fails_clearly_and_keeps_points(
    influx: Any, tmp_path: Path,
) -> None:
    config = once_config(tmp_path / "agent.yaml", tmp_path / "state", influx.url,
                         "no_such_db")
    result = run("--once", "-c", str(config))
    out = result.stdout
    assert result.returncode == 1, out
    assert report_value(out, "reachable").startswith("yes")
    written = report_value(out, "written")
    assert written.startswith("0 of 2 point(s); kept for later")
    assert 'database not found: "no_such_db"' in written
    assert report_value(out, "buffer:").startswith("2 point(s)")
    assert "Traceback" not in result.stderr

    # The user fixes the database name: the points buffered under the wrong
    # one go to the configured database, and nothing is stuck behind them.
    influx.create_database("fixed_db")
    config = once_config(tmp_path / "agent.yaml", tmp_path / "state", influx.url, "fixed_db")
    result = run("--once", "-c", str(config))
    assert result.returncode == 0, result.stdout
    assert report_value(result.stdout, "written").startswith("4 point(s)")
    assert report_value(result.stdout, "buffer:").startswith("0 point(s)")
    assert sum(len(influx.rows("fixed_db", f'SELECT * FROM "{m}"'))
               for m in ("climate", "soil")) == 4


# -- status ---------------------------------------------------------------------------------


def test_status_not_running_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = once_config(tmp_path / "agent.yaml", state, "http://127.0.0.1:9", "db")
    result = run("status", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        "agent: not running", "buffer: empty (everything accepted has been delivered)",
        "http://127.0.0.1:9: last success never"]
    as_json = json.loads(run("status", "--json", "-c", str(config)).stdout)
    assert (as_json["live"], as_json["buffer"]["points"]) == (False, 0)
    assert not state.exists()


def test_status_while_running_then_stopped(
    influx: Any, influx_db: str, tmp_path: Path,
    agents: Callable[..., AgentProcess],  # noqa: F811
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "agent.yaml", state_dir=state, influx_url=influx.url,
                          db=influx_db, i2c=["climate"])
    agent = agents(config).start()

    def written() -> bool:
        data = agent.status(state)
        return bool(data and (data["counters"].get("written") or 0) > 0)

    wait_until(written, 30, "the running agent's status to show written points")
    result = run("status", "-c", str(config))
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert out.startswith(f"agent: running, pid {agent.pid}, up ")
    assert all(len(line) <= 80 for line in out.splitlines()), out
    counters = report_value(out, "counters:")
    accepted = int(re.search(r"accepted (\d+)", counters).group(1))  # type: ignore[union-attr]
    assert accepted > 0
    assert re.search(r"^http://127\.0\.0\.1:\d+: last success \d+ s ago$", out, re.M), out
    assert re.search(r"^  climate +ok +last reading \d+ s ago, \d+ points, 0 errors$", out,
                     re.M), out
    as_json = json.loads(run("status", "--json", "-c", str(config)).stdout)
    assert as_json["live"] is True and as_json["pid"] == agent.pid
    assert as_json["counters"]["written"] > 0
    assert [s["name"] for s in as_json["sources"]] == ["climate"]

    # A technician's --once beside the running agent writes directly and leaves
    # the agent's buffer (one writer per SQLite log) alone.
    before = influx.count(influx_db, "soil", "ain0")
    once = run("--once", "-c", str(write_config(
        tmp_path / "once.yaml", state_dir=state, influx_url=influx.url, db=influx_db,
        i2c=["soil"])))
    assert once.returncode == 0, once.stdout + once.stderr
    assert report_value(once.stdout, "written").startswith("1 point(s) directly")
    assert f"in use by the running agent (pid {agent.pid})" in once.stdout
    assert influx.count(influx_db, "soil", "ain0") == before + 1

    agent.send(signal.SIGTERM)
    assert agent.proc is not None and agent.proc.wait(60) == 0
    result = run("status", "-c", str(config))
    assert result.stdout.startswith("agent: not running\n")
    assert report_value(result.stdout, "buffer:").startswith("empty")
