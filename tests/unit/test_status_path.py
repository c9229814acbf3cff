"""status.json is rewritten every 2 s: it goes to RAM-backed storage, found via a symlink."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Tuple

from edge_agent.agent.runtime import STATUS_FILE, status_path


def dirs(tmp_path: Path, monkeypatch) -> Tuple[Path, Path]:
    """A runtime directory (as systemd's RuntimeDirectory= sets it) and a state_dir."""
    runtime, state = tmp_path / "run", tmp_path / "state"
    runtime.mkdir()
    state.mkdir()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime))
    return runtime, state


def test_status_file_lives_in_the_runtime_directory(tmp_path: Path, monkeypatch):
    runtime, state = dirs(tmp_path, monkeypatch)
    target = Path(status_path(str(state)))
    assert target.parent.parent == runtime and target.name == STATUS_FILE
    assert (target.parent.stat().st_mode & 0o777) == 0o700
    target.write_text(json.dumps({"pid": 1}))
    link = state / STATUS_FILE
    assert link.is_symlink() and json.loads(link.read_text()) == {"pid": 1}  # readers unchanged
    assert status_path(str(state)) == str(target)  # the next start reuses it


def test_a_runtime_directory_open_to_others_is_not_used(tmp_path: Path, monkeypatch):
    runtime, state = dirs(tmp_path, monkeypatch)
    private = Path(status_path(str(state))).parent
    os.unlink(state / STATUS_FILE)
    private.chmod(0o777)  # someone could swap the file under us
    assert status_path(str(state)) == str(state / STATUS_FILE)
    assert not (state / STATUS_FILE).exists()


def test_without_a_runtime_directory_it_stays_in_state_dir(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "missing"))
    assert status_path(str(tmp_path)) == str(tmp_path / STATUS_FILE)
