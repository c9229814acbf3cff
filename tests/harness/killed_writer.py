"""A process to kill -9: numbered points in, "highest durable number" lines out.

The chaos tests run a script that builds a DurableWriter (and maybe a Flusher)
and hands it to :func:`feed_numbered`; :func:`run_killed` starts such a script,
lets it live for a while and SIGKILLs it. Whatever it printed is a promise: every
number up to the highest printed was durable (its ticket passed ``wait_durable``).
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

__all__ = ["feed_numbered", "run_killed"]


def feed_numbered(writer: Any, dest: Any, start: int, seed: int, line: Callable[[int], str],
                  max_batch: int, pause: float,
                  after_add: Optional[Callable[[], None]] = None) -> NoReturn:
    """Add points ``start, start+1, ...`` (``line(n)``) in random batches of 1 to
    ``max_batch``, forever; print the highest number known durable as it grows."""
    latest: Tuple[int, int] = (0, start - 1)  # (ticket, highest number in it)
    rng = random.Random(seed)

    def report() -> None:
        while True:
            ticket, last = latest
            if ticket and writer.wait_durable(ticket):
                print(last, flush=True)
            time.sleep(0.003)

    threading.Thread(target=report, daemon=True).start()
    n = start
    while True:
        k = rng.randint(1, max_batch)
        latest = (writer.add([line(i) for i in range(n, n + k)], dest), n + k - 1)
        if after_add is not None:
            after_add()
        n += k
        time.sleep(pause)


def run_killed(argv: List[str], env: Dict[str, str], cwd: Path, lifetime: float,
               what: str = "writer") -> int:
    """Start ``argv``, wait for its first report, let it run ``lifetime`` s more,
    SIGKILL it; the highest number it reported durable."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, cwd=cwd, text=True)
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline()
        assert first, f"{what} died before reporting anything"
        time.sleep(lifetime)  # the moment of the kill is the point of the test
    finally:
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait()
    return max(int(x) for x in (first + rest).split())
