"""DeadLetters: header with the server's reason, lines as sent, bounded by rotation."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from edge_agent.buffer.deadletter import DeadLetters
from edge_agent.destination import Destination

T = datetime(2024, 5, 17, 12, 34, 56, 250000, tzinfo=timezone.utc).timestamp()


def test_entry_format(tmp_path: Path):
    dl = DeadLetters(tmp_path / "dl" / "dead.lp", clock=lambda: T)
    dl.add(Destination("sensors", "org"), ["p,bad v= 3", b"q v=x"], 400,
           "partial write: unable to parse 'p,bad v= 3':\nmissing tag value dropped=0")
    text = (tmp_path / "dl" / "dead.lp").read_text()
    assert text == (
        "# 2024-05-17T12:34:56.250Z bucket=sensors HTTP 400: partial write: unable to parse "
        "'p,bad v= 3': missing tag value dropped=0\n"
        "p,bad v= 3\nq v=x\n"
    )


def test_entries_append(tmp_path: Path):
    dl = DeadLetters(tmp_path / "dead.lp", clock=lambda: T)
    dl.add(Destination("a"), ["a v=1"], 400, "one")
    dl.add(Destination("b"), ["b v=1"], 422, "two")
    lines = (tmp_path / "dead.lp").read_text().splitlines()
    assert lines[1] == "a v=1" and lines[3] == "b v=1"
    assert lines[2].endswith("bucket=b HTTP 422: two")


def test_rotation_bounds_disk(tmp_path: Path):
    path = tmp_path / "dead.lp"
    dl = DeadLetters(path, max_bytes=4096, clock=lambda: T)
    for i in range(500):
        dl.add(Destination("a"), [f"m v={i} {i:020d}"], 400, "bad")
        assert path.stat().st_size <= 4096
    assert dl.files() == [str(path), str(path) + ".1"]
    assert (tmp_path / "dead.lp.1").stat().st_size <= 4096
    assert "m v=499 " in path.read_text()  # the newest is kept
    assert len(list(tmp_path.iterdir())) == 2


def test_oversize_entry_cut_with_a_note(tmp_path: Path):
    path = tmp_path / "dead.lp"
    dl = DeadLetters(path, max_bytes=2048, clock=lambda: T)
    dl.add(Destination("a"), [f"m v={i}" for i in range(1000)], 400, "bad")
    text = path.read_text()
    assert len(text) <= 2048
    assert text.startswith("# ") and "more lines not kept" in text
