"""The producer side of the disk buffer: many small adds, few big commits.

Sources hand lines of line protocol to ``DurableWriter.add`` (in memory, cheap)
and get a *ticket*. A background thread seals what is pending into segments
every ``commit_interval`` seconds, or sooner once ``batch_size`` points wait for
one destination, so at most that window is at risk on kill -9.
``wait_durable(ticket)`` returns once the points of that ticket are committed;
the MQTT source acks messages only then.

If the disk refuses a commit (disk full, I/O error), the lines stay in memory,
the error is counted and logged once, and ``wait_durable`` keeps waiting (or
returns False at its timeout), which is the backpressure MQTT needs: nothing
is acked and nothing is dropped. Commits are retried every second or so.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

from ..destination import Destination
from ..errors import BufferError_
from .disklog import DiskBuffer, Segment

__all__ = ["DurableWriter"]

logger = logging.getLogger("edge_agent.buffer")

# A sealed segment is cut near this many bytes of text even below batch_size.
SEGMENT_BYTES = 1 << 20
RETRY_DELAY = 1.0  # seconds between commit attempts while the disk refuses them
COUNTERS_DELAY = 1.0  # persist counters changed outside segment commits this often


def _encode(lines: Sequence[str]) -> bytes:
    # A lone surrogate (from JSON "\\ud800", say) cannot be UTF-8: it becomes "?"
    # rather than failing the whole segment and every point sealed with it.
    return "\n".join(lines).encode("utf-8", "replace")


class _Pending:
    __slots__ = ("chars", "first_time", "lines")

    def __init__(self, first_time: float) -> None:
        self.lines: List[str] = []
        self.chars = 0
        self.first_time = first_time


class DurableWriter:
    """Accumulates lines per destination and seals them into the disk buffer.

    ``clock`` gives the wall-clock time recorded as a segment's ``first_time``
    (the buffer's ``max_age`` is measured against it). Thread-safe for any
    number of producers.
    """

    def __init__(
        self,
        buffer: DiskBuffer,
        commit_interval: float = 0.1,
        batch_size: int = 1000,
        clock: Callable[[], float] = time.time,
        max_pending: int = 20_000,
    ) -> None:
        if commit_interval <= 0 or batch_size < 1 or max_pending < 1:
            raise ValueError("commit_interval, batch_size and max_pending must be positive")
        self.buffer = buffer
        self.commit_interval = float(commit_interval)
        self.batch_size = int(batch_size)
        self.max_pending = int(max_pending)
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the sealing thread waits here
        self._done = threading.Condition(self._lock)  # wait_durable waits here
        self._pending: Dict[Destination, _Pending] = {}
        self._waiting = 0  # points added and not yet committed (pending + unsealed)
        self._accepted = 0  # points added since the last seal, for the counter
        self._ticket = 0  # last ticket handed out
        self._durable = 0  # every ticket up to this one is committed
        self._since: Optional[float] = None  # monotonic time the oldest pending add came
        self._seal_soon = False
        self._closed = False
        self._stopped = False  # closed and the last seal attempted
        self._seal_lock = threading.Lock()  # one sealer at a time keeps tickets in order
        self._unsealed: List[Segment] = []  # cut but refused by the disk; retried first
        self._unsealed_accepted = 0  # points of those, counted as accepted when committed
        self._failures = 0  # consecutive refused commits
        self._thread = threading.Thread(target=self._run, name="edge-agent-durable", daemon=True)
        self._thread.start()

    # -- producers -------------------------------------------------------------

    def add(self, lines: Sequence[str], dest: Destination) -> int:
        """Queue lines (no newlines inside, empty lines skipped); returns a ticket.

        With ``max_pending`` points already waiting for the disk, blocks until
        the sealer catches up. Raises ``BufferError_`` when the writer is closed,
        or when ``max_pending`` points wait because the disk refuses commits.
        """
        if "" in lines:
            lines = [line for line in lines if line]
        n = len(lines)
        chars = sum(map(len, lines))
        with self._lock:
            if self._closed:
                raise BufferError_("the durable writer is closed")
            if n == 0:
                return self._ticket
            while self._waiting >= self.max_pending:
                # A producer faster than the disk waits for the sealer; one that
                # would wait for a disk refusing writes is told so instead.
                if self._failures or self._closed:
                    raise BufferError_(
                        f"the disk buffer is refusing writes and {self._waiting} points "
                        "already wait in memory; not accepting more until it recovers"
                    )
                self._seal_soon = True
                self._wake.notify()
                self._done.wait(1.0)
            p = self._pending.get(dest)
            if p is None:
                p = self._pending[dest] = _Pending(self._clock())
            p.lines.extend(lines)
            p.chars += chars
            self._waiting += n
            self._accepted += n
            self._ticket += 1
            if self._since is None:
                self._since = time.monotonic()
                self._wake.notify()
            elif not self._seal_soon and (
                len(p.lines) >= self.batch_size or p.chars >= SEGMENT_BYTES
            ):
                self._seal_soon = True
                self._wake.notify()
            return self._ticket

    def wait_durable(self, ticket: int, timeout: Optional[float] = None) -> bool:
        """Block until the points of ``ticket`` (and all earlier ones) are committed.

        Returns False if ``timeout`` seconds pass first, or if the writer was
        closed without committing them.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._durable < ticket:
                if self._stopped:
                    return False
                if deadline is None:
                    self._done.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._done.wait(remaining)
            return True

    @property
    def alive(self) -> bool:
        """The sealing thread runs (the agent's watchdog checks it)."""
        return self._thread.is_alive() or self._closed

    @property
    def pending(self) -> int:
        """Points accepted and not yet committed to disk."""
        return self._waiting

    @property
    def last_ticket(self) -> int:
        return self._ticket

    def flush(self) -> bool:
        """Seal everything pending now, in the caller's thread.

        Returns True when everything added before the call is committed.
        """
        target = self._ticket
        self._seal()
        return self._durable >= target

    def close(self) -> bool:
        """Seal everything pending and stop the thread (the buffer stays open).

        Returns False, after logging how many points were lost, if the disk
        refused the last commit.
        """
        with self._lock:
            if self._closed:
                return self._waiting == 0
            self._closed = True
            self._wake.notify()
        self._thread.join()
        self._seal()
        with self._lock:
            self._stopped = True
            self._done.notify_all()
            lost = self._waiting
        if lost:
            # Handed to us, never stored: accepted and dropped for a named reason.
            self.count_refused(lost)
            self._unsealed_accepted = 0
            logger.error(
                "closing with %d points that the disk buffer refused (disk full?); they are "
                "lost, counted in dropped_disk_full", lost
            )
            return False
        return True

    def count_refused(self, points: int) -> None:
        """Count points the disk refused that nobody will offer again (a polled reading)."""
        self.buffer.counters.add("accepted", points)
        self.buffer.counters.add("dropped_disk_full", points)

    def __enter__(self) -> DurableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sealing -----------------------------------------------------------------

    def _due(self, now: float) -> Optional[float]:
        """Under the lock: when the next seal is due, None when nothing waits."""
        if self._failures:
            return None if self._since is None else self._since + RETRY_DELAY
        if self._seal_soon:
            return now
        return None if self._since is None else self._since + self.commit_interval

    def _run(self) -> None:
        last_counters = time.monotonic()
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    due = self._due(now)
                    seal = due is not None and now >= due
                    if seal or now - last_counters >= COUNTERS_DELAY:
                        break
                    until = last_counters + COUNTERS_DELAY
                    self._wake.wait((until if due is None else min(due, until)) - now)
            if seal:
                try:
                    self._seal()
                except Exception as exc:  # a bug must not stop every source's commits
                    logger.error("sealing a segment failed unexpectedly (%s: %s); retrying",
                                 type(exc).__name__, exc)
                    with self._lock:
                        if self._since is None:
                            self._since = time.monotonic()
            if now - last_counters >= COUNTERS_DELAY:
                last_counters = now
                with contextlib.suppress(Exception):  # they ride on the next commit then
                    self.buffer.persist_counters(COUNTERS_DELAY)

    def _cut(self, dest: Destination, p: _Pending) -> List[Segment]:
        lines, size = p.lines, self.batch_size
        if len(lines) <= size and p.chars <= SEGMENT_BYTES:
            data = _encode(lines)
            return [Segment(dest, len(lines), data, p.first_time)]
        out: List[Segment] = []
        start = chars = 0
        for i, line in enumerate(lines):
            chars += len(line) + 1
            if i + 1 - start >= size or chars >= SEGMENT_BYTES or i + 1 == len(lines):
                data = _encode(lines[start : i + 1])
                out.append(Segment(dest, i + 1 - start, data, p.first_time))
                start, chars = i + 1, 0
        return out

    def _seal(self) -> None:
        with self._seal_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                upto, accepted = self._ticket, self._accepted
                self._accepted = 0
                self._since = None
                self._seal_soon = False
            # "accepted" is committed with the segments it counts, never ahead of them.
            self._unsealed_accepted += accepted
            segments = self._unsealed
            for dest, p in pending.items():
                segments.extend(self._cut(dest, p))
            if not segments:
                with self._lock:
                    self._mark_durable(upto, 0)
                return
            try:
                self.buffer.append_many(segments, {"accepted": self._unsealed_accepted})
            except (BufferError_, OSError) as exc:
                self._unsealed = segments
                self._refused(exc)
                with self._lock:
                    if self._since is None:
                        self._since = time.monotonic()  # retry timer
                return
            self._unsealed = []
            self._unsealed_accepted = 0
            if self._failures:
                logger.warning(
                    "disk buffer accepts writes again after %d refused commits; %d points "
                    "held in memory are stored", self._failures, sum(s.count for s in segments),
                )
                self._failures = 0
            with self._lock:
                self._mark_durable(upto, sum(s.count for s in segments))

    def _mark_durable(self, upto: int, points: int) -> None:
        self._durable = max(self._durable, upto)
        self._waiting -= points
        self._done.notify_all()

    def _refused(self, exc: BaseException) -> None:
        self._failures += 1
        counters = self.buffer.counters
        counters.add("buffer_errors")
        counters.set("last_error", f"disk buffer: {exc}")
        with self._lock:
            self._done.notify_all()  # producers blocked on max_pending get their error
        if self._failures == 1:
            logger.error(
                "disk buffer refused a commit (%s); keeping %d points in memory and retrying; "
                "nothing is acknowledged until it recovers", exc, self._waiting,
            )
