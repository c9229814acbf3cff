"""``edge_agent.cli.main`` in process: every error a user can cause is one line and an exit code.

Config errors exit 2, a state directory that cannot be used exits 1 (for
``run`` and ``--once``; ``--dry-run`` touches no state), never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, List

import pytest

from edge_agent.cli import main

EMULATED = ("sources:\n"
            "  - {name: climate, type: i2c, driver: bme280, bus: emulated, address: 0x76}\n")


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """main() configures the root logger; give pytest its handlers back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EDGE_AGENT_CONFIG", "INFLUX_URL", "JOURNAL_STREAM", "INVOCATION_ID",
                 "NOTIFY_SOCKET"):
        monkeypatch.delenv(name, raising=False)


def config_with_state(tmp_path: Path, state: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(f"agent: {{state_dir: '{state}'}}\n"
                    "influx: {url: 'http://127.0.0.1:9', api: v1, bucket: b}\n" + EMULATED)
    return path


def one_line(text: str) -> str:
    lines: List[str] = text.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in text
    return lines[0]


def test_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.yaml"
    assert main(["check-config", "-c", str(missing)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) == f"edge-agent: {missing}: cannot read: No such file or directory"


def test_config_path_from_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "from-env.yaml"
    monkeypatch.setenv("EDGE_AGENT_CONFIG", str(missing))
    assert main(["status"]) == 2
    assert str(missing) in one_line(capsys.readouterr().err)


def test_config_error_exits_2_with_position(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("influx: {bucket: b}\nwrite:\n  batch_size: -3\n")
    assert main(["--once", "-c", str(path)]) == 2
    assert one_line(capsys.readouterr().err).startswith(f"edge-agent: {path}:3:15: ")


def test_dry_run_needs_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dry-run"]) == 2
    assert one_line(capsys.readouterr().err) == "edge-agent: --dry-run works with --once"


@pytest.mark.parametrize("argv", [["--once"], ["run"]])
def test_state_dir_that_cannot_be_created_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: List[str],
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = config_with_state(tmp_path, blocker / "state")
    assert main([*argv, "-c", str(config)]) == 1
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith(f"edge-agent: cannot create agent.state_dir {blocker / 'state'}: ")
    assert "set agent.state_dir" in line
    assert captured.out == ""  # nothing was read or written before the check


def test_state_dir_that_is_a_file_is_one_line(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.write_text("")
    assert main(["--once", "-c", str(config_with_state(tmp_path, state))]) == 1
    assert "cannot create agent.state_dir" in one_line(capsys.readouterr().err)


def test_dry_run_does_not_need_a_state_dir(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "a-file" / "state"
    (tmp_path / "a-file").write_text("")
    assert main(["--once", "--dry-run", "-c", str(config_with_state(tmp_path, state))]) == 0
    out = capsys.readouterr().out
    assert "climate        ok" in out
    assert "line protocol (1 point(s), not written):" in out


def test_an_endless_config_file_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", "/dev/zero"]) == 2
    assert one_line(capsys.readouterr().err) == (
        "edge-agent: /dev/zero: cannot read: not a regular file (a character device); "
        "give the path of a YAML file")
