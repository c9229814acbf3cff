"""kill -9 a writer at random moments: every point it reported durable survives, once.

The writer (this file run as a script) appends numbered points through
DurableWriter and prints the highest number whose ticket ``wait_durable``
confirmed. The test SIGKILLs it at seeded random moments, reopens the buffer
and checks that it opens cleanly (nothing moved aside), that every reported
point is there, and that no point is there twice.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import List, Set

from tests.harness.killed_writer import feed_numbered, run_killed

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 8
SEED = 20240517


def writer(directory: str, start: int, sync: str) -> None:
    from edge_agent.buffer.disklog import DiskBuffer
    from edge_agent.buffer.durable import DurableWriter
    from edge_agent.destination import Destination

    buf = DiskBuffer(directory, sync=sync)
    w = DurableWriter(buf, commit_interval=0.02, batch_size=300)
    feed_numbered(w, Destination("chaos"), start, start, lambda i: f"chaos,w=1 v={i}i {i}",
                  max_batch=60, pause=0.0005)


def read_points(directory: Path) -> List[int]:
    from edge_agent.buffer.disklog import DiskBuffer

    buf = DiskBuffer(directory)
    try:
        out: List[int] = []
        for _, seg in buf.head(10**12, 1 << 40):
            assert seg.count == len(seg.lines())
            out.extend(int(line.rsplit(b" ", 1)[1]) for line in seg.lines())
        assert buf.stats().points == len(out)
        return out
    finally:
        buf.close()


def test_kill_9_keeps_every_durable_point_once(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    directory = tmp_path / "buf"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    must_have: Set[int] = set()
    start = 0
    deadline = time.monotonic() + 60
    for rnd in range(ROUNDS):
        sync = "full" if rnd % 3 == 2 else "normal"
        reported = run_killed([sys.executable, __file__, str(directory), str(start), sync],
                              env, ROOT, lifetime=rng.uniform(0.02, 0.8))
        must_have.update(range(start, reported + 1))

        points = read_points(directory)
        assert len(points) == len(set(points)), f"round {rnd}: duplicated points"
        missing = must_have - set(points)
        assert not missing, f"round {rnd}: {len(missing)} durable points lost, e.g. {min(missing)}"
        siblings = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
        assert siblings == [], f"round {rnd}: buffer was moved aside"
        start = max(points) + 1
        assert time.monotonic() < deadline, "chaos rounds took too long"
    assert len(must_have) > ROUNDS * 10


if __name__ == "__main__":
    writer(sys.argv[1], int(sys.argv[2]), sys.argv[3])
