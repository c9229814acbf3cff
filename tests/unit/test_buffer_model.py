"""DiskBuffer against a plain in-memory model (the Vector disk-buffer approach).

The model is a list of segments with the buffer's budget rule spelled out:
after each append, evict from the head while over ``max_size`` (never the last
segment) or while the head is older than ``max_age``. Any sequence of appends,
head windows, removals, evictions and reopenings must agree with it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from typing import List

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from edge_agent.buffer.disklog import BufferStats, DiskBuffer, Segment, reserved_bytes
from edge_agent.destination import Destination

DESTS = [Destination("a"), Destination("b", "o", "s")]
MAX_SIZE = reserved_bytes(200_000) + 1000
# What segments may fill: max_size less the WAL, -shm and SQLite's own pages.
DATA_BUDGET = MAX_SIZE - reserved_bytes(MAX_SIZE)
MAX_AGE = 100.0


@dataclass
class Entry:
    id: int
    seg: Segment


class Clock:
    now = 10_000.0

    def __call__(self) -> float:
        return self.now


class BufferModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="bufmodel-")
        self.clock = Clock()
        self.buf = self._open()
        self.model: List[Entry] = []
        self.last_id = 0
        self.n = 0
        self.evicted = 0
        self.written = 0

    def _open(self) -> DiskBuffer:
        return DiskBuffer(self.dir + "/buf", max_size=MAX_SIZE, max_age=MAX_AGE, clock=self.clock)

    def _model_evict(self) -> int:
        gone = 0
        while self.model:
            size = sum(e.seg.stored_size for e in self.model)
            head = self.model[0].seg
            if (size > DATA_BUDGET and len(self.model) > 1) or (
                head.first_time < self.clock.now - MAX_AGE
            ):
                gone += self.model.pop(0).seg.count
            else:
                break
        self.evicted += gone
        return gone

    @rule(d=st.sampled_from(DESTS), count=st.integers(1, 40), age=st.floats(0, 120))
    def append(self, d: Destination, count: int, age: float) -> None:
        data = b"\n".join(b"m v=%di" % (self.n + i) for i in range(count))
        self.n += count
        seg = Segment(d, count, data, self.clock.now - age)
        new_id = self.buf.append(d, data, count, seg.first_time)
        assert new_id > self.last_id
        self.last_id = new_id
        self.model.append(Entry(new_id, seg))
        self._model_evict()

    @rule(max_points=st.integers(1, 100), max_bytes=st.integers(1, 1000))
    def head(self, max_points: int, max_bytes: int) -> None:
        expected: List[Entry] = []
        points = size = 0
        for e in self.model:
            if expected and (
                e.seg.dest != expected[0].seg.dest
                or points + e.seg.count > max_points
                or size + len(e.seg.data) > max_bytes
            ):
                break
            expected.append(e)
            points += e.seg.count
            size += len(e.seg.data)
        got = self.buf.head(max_points, max_bytes)
        assert [(i, s) for i, s in got] == [(e.id, e.seg) for e in expected]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        ids = [e.id for e in self.model]
        chosen = data.draw(st.lists(st.sampled_from(ids), max_size=4, unique=True))
        stale = data.draw(st.booleans())
        if stale:
            chosen.append(self.last_id + 1000)  # never existed: ignored
        expected = sum(e.seg.count for e in self.model if e.id in chosen)
        assert self.buf.remove(chosen, count_as="written") == expected
        self.written += expected
        self.model = [e for e in self.model if e.id not in chosen]

    @rule(dt=st.floats(0, 80))
    def advance_and_evict(self, dt: float) -> None:
        self.clock.now += dt
        expected = self._model_evict()
        assert self.buf.evict_expired() == expected

    @rule()
    def reopen(self) -> None:
        self.buf.close()
        self.buf = self._open()

    @rule()
    def crash_and_reopen(self) -> None:
        self.buf._cache.close()  # no clean close, no final bookkeeping write
        self.buf = self._open()

    @invariant()
    def stats_agree(self) -> None:
        expected = BufferStats(
            points=sum(e.seg.count for e in self.model),
            segments=len(self.model),
            bytes=sum(e.seg.stored_size for e in self.model),
            oldest=self.model[0].seg.first_time if self.model else None,
        )
        assert self.buf.stats() == expected
        snap = self.buf.counters.snapshot()
        assert snap["evicted"] == self.evicted and snap["written"] == self.written

    def teardown(self) -> None:
        self.buf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


BufferModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestBufferModel = BufferModel.TestCase
