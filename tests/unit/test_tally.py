"""The counters' journal (buffer/tally.py): its file, and joining it to the last commit."""

from __future__ import annotations

from pathlib import Path

from edge_agent.buffer.tally import Tally, TallyState, reconcile


def test_the_journal_reads_back_from_another_mapping(tmp_path: Path) -> None:
    path = str(tmp_path / "tally")
    first = Tally(path)
    assert first.read() is None  # a new file holds no journal
    first.rewrite(7, 3, 5, 2, {"accepted": 10, "written": 4, "last_error": "x"})
    first.put("written", 6)
    first.put_held(9)
    first.put_flight(1)
    first.put_last("last_error", "InfluxDB said no")
    first.put_last("last_success", 1234.5)
    first.put("not-a-journal-name", 1)  # kept only in memory
    state = Tally(path).read()  # what a new process finds after a kill
    assert state is not None
    assert (state.epoch, state.gen, state.held, state.flight) == (7, 3, 9, 1)
    assert (state.counts["accepted"], state.counts["written"]) == (10, 6)
    assert (state.last_error, state.last_success) == ("InfluxDB said no", 1234.5)


def test_a_rewrite_flips_to_the_other_slot_whole(tmp_path: Path) -> None:
    tally = Tally(str(tmp_path / "tally"))
    tally.rewrite(1, 1, 0, 0, {"accepted": 1})
    tally.rewrite(1, 2, 3, 0, {"accepted": 5, "written": 2})
    state = tally.read()
    assert state is not None and (state.gen, state.held, state.counts["accepted"],
                                  state.counts["written"], state.last_error) == (2, 3, 5, 2, None)


def _journal(gen: int, held: int, flight: int = 0, epoch: int = 9, **counts: int) -> TallyState:
    return TallyState(epoch, gen, held, flight, dict(counts), None, None)


def test_a_journal_that_noted_the_last_commit_is_the_truth() -> None:
    stored = {"accepted": 10, "written": 10, "future_name": 3}
    found = reconcile(stored, 5, {"accepted": 2}, _journal(5, 4, 1, accepted=12, written=15), 9)
    assert found is not None
    values, held, flight = found
    assert (values["accepted"], values["written"], values["future_name"]) == (12, 15, 3)
    assert (held, flight) == (4, 1)


def test_a_journal_one_commit_behind_gets_that_commits_delta() -> None:
    # The run died after commit 6 landed and before it noted it: the journal
    # has everything but that commit's own counts.
    found = reconcile({"accepted": 12}, 6, {"accepted": 3, "evicted": 1, "held": -3},
                      _journal(5, 7, accepted=9, evicted=0, written=20), 9)
    assert found is not None
    values, held, flight = found
    assert (values["accepted"], values["evicted"], values["written"], held, flight) == (
        12, 1, 20, 4, 0)


def test_a_journal_of_another_buffer_or_too_old_is_not_used() -> None:
    assert reconcile({}, 5, {}, _journal(5, 1, epoch=8), 9) is None
    assert reconcile({}, 5, {}, _journal(3, 1), 9) is None
    assert reconcile({}, 5, {}, None, 9) is None
