"""The producer side of the disk buffer: many small adds, few big commits.

Sources hand lines of line protocol to ``DurableWriter.add`` (in memory, cheap)
and get a *ticket*. ``wait_durable(ticket)`` returns once the points of that
ticket (and of every earlier one) are durable; the MQTT source acks messages
only then. A background thread commits what is pending to the disk buffer.

Two modes (DESIGN.md: "a point is durable once it is committed to disk or
acknowledged (2xx) by InfluxDB, whichever comes first"):

* ``hold=None`` (library, ``--once``): every point is committed within
  ``commit_interval`` seconds, or sooner once ``batch_size`` points wait; the
  flusher reads the disk buffer.
* ``hold=seconds`` (the agent): the writer is also the flusher's queue
  (``head``/``remove``), disk segments first, then what is still in memory.
  While InfluxDB keeps up, points go from memory to the server and never touch
  the disk (SD cards wear out). What is still undelivered when its deadline
  comes is committed: ``hold`` seconds after it was added for points nobody
  waits on (polled readings: kill -9 or a power cut loses at most that window,
  and only while the server does not take them), ``commit_interval`` after a
  producer asked to wait for it (``wait_durable``, ``hurry``: MQTT acks).
  Commits someone waits for are fsync'd whatever ``sync`` says (an ack is a
  promise to the broker). ``batch_size`` undelivered points commit at once.

If the disk refuses a commit (disk full, I/O error), the lines stay in memory
(and can still be delivered from there), the error is counted and logged
once, and ``wait_durable`` keeps waiting, which is the backpressure MQTT
needs: nothing is acked and nothing is dropped. Commits are retried every
second or so.
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
from .memlend import AckSink, Hot, Lender, fsync_wal

__all__ = ["AckSink", "DurableWriter"]

logger = logging.getLogger("edge_agent.buffer")

# A sealed segment is cut near this many bytes of text even below batch_size.
SEGMENT_BYTES = 1 << 20
RETRY_DELAY = 1.0  # seconds between commit attempts while the disk refuses them
COUNTERS_DELAY = 1.0  # persist counters changed outside segment commits this often
HELD_COUNTERS_DELAY = 300.0  # the same with ``hold``: they ride on commits in between


def _encode(lines: Sequence[str]) -> bytes:
    # A lone surrogate (from JSON "\\ud800", say) cannot be UTF-8: it becomes "?"
    # rather than failing the whole segment and every point sealed with it.
    return "\n".join(lines).encode("utf-8", "replace")


class _Pending:
    __slots__ = ("chars", "first_ticket", "first_time", "lines", "since")

    def __init__(self, first_time: float, ticket: int, since: float) -> None:
        self.lines: List[str] = []
        self.chars = 0
        self.first_time = first_time
        self.first_ticket = ticket
        self.since = since


class DurableWriter(Lender):
    """Accumulates lines per destination and commits them to the disk buffer.

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
        hold: Optional[float] = None,
    ) -> None:
        if commit_interval <= 0 or batch_size < 1 or max_pending < 1:
            raise ValueError("commit_interval, batch_size and max_pending must be positive")
        if hold is not None and hold < commit_interval:
            raise ValueError("hold must not be shorter than commit_interval")
        self.buffer = buffer
        self.commit_interval = float(commit_interval)
        self.hold = None if hold is None else float(hold)
        self.batch_size = int(batch_size)
        self.max_pending = int(max_pending)
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the sealing thread waits here
        self._done = threading.Condition(self._lock)  # wait_durable waits here
        self._pending: Dict[Destination, _Pending] = {}
        self._waiting = 0  # points added and not yet durable (pending + hot + unsealed)
        self._ticket = 0  # last ticket handed out
        self._durable = 0  # every ticket up to this one is durable
        self._waited = 0  # someone waits for the tickets up to this one
        self._within: Optional[float] = None  # ... and wants them durable within this (s)
        self._sleep_until: Optional[float] = None  # when the sealing thread wakes by itself
        self._seal_soon = False
        self._closed = False
        self._stopped = False  # closed and the last seal attempted
        self._seal_lock = threading.Lock()  # one sealer at a time keeps tickets in order
        self._retry_since: Optional[float] = None  # a refused commit is retried from then
        self._failures = 0  # consecutive refused commits
        Lender.__init__(self)
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
            self._ticket += 1
            p = self._pending.get(dest)
            if p is None:
                now = time.monotonic()
                p = self._pending[dest] = _Pending(self._clock(), self._ticket, now)
                self._poke(now + (self.hold or self.commit_interval))
            p.lines.extend(lines)
            p.chars += chars
            self._waiting += n
            self.buffer.counters.add_held(n)
            if not self._seal_soon and (
                self._waiting >= self.batch_size if self.hold is not None
                else len(p.lines) >= self.batch_size or p.chars >= SEGMENT_BYTES
            ):
                self._seal_soon = True
                self._wake.notify()
            return self._ticket

    def wait_durable(self, ticket: int, timeout: Optional[float] = None,
                     hurry: bool = True) -> bool:
        """Block until the points of ``ticket`` (and all earlier ones) are durable.

        Returns False if ``timeout`` seconds pass first, or if the writer was
        closed without committing them. With ``hurry`` (the default) waiting
        makes them durable within ``commit_interval``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if hurry and self._durable < ticket and ticket > self._waited:
                self._want(ticket, self.commit_interval)
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

    def hurry(self, within: Optional[float] = None) -> None:
        """Someone waits for everything added so far: make it durable within
        ``within`` seconds of its add (default and at least ``commit_interval``)."""
        within = self.commit_interval if within is None else max(within, self.commit_interval)
        with self._lock:
            if self._durable < self._ticket and (
                    self._ticket > self._waited or self._within is None or within < self._within):
                self._want(self._ticket, within)

    def _want(self, ticket: int, within: float) -> None:
        """Under the lock: tickets up to ``ticket`` have a waiter now."""
        if self._durable >= self._waited:  # earlier waiters are served: their window ends
            self._within = None
        self._within = within if self._within is None else min(within, self._within)
        self._waited = max(self._waited, min(ticket, self._ticket))
        due = self._next_due(time.monotonic())
        if due is not None:
            self._poke(due)

    def _poke(self, due: float) -> None:
        """Under the lock: wake the sealing thread if it would sleep past ``due``."""
        if self._sleep_until is None or due < self._sleep_until:
            self._sleep_until = due
            self._wake.notify()

    def for_acks(self, within: Optional[float] = None) -> AckSink:
        """The sink for a source that acks after ``wait_durable`` (MQTT)."""
        return AckSink(self, within)

    @property
    def alive(self) -> bool:
        """The sealing thread runs (the agent's watchdog checks it)."""
        return self._thread.is_alive() or self._closed

    @property
    def pending(self) -> int:
        """Points accepted and not yet durable (committed or delivered)."""
        return self._waiting

    @property
    def last_ticket(self) -> int:
        return self._ticket

    def flush(self) -> bool:
        """Commit everything pending now, in the caller's thread.

        Returns True when everything added before the call is durable.
        """
        target = self._ticket
        self._seal(fsync=self.hold is not None)
        return self._durable >= target

    def close(self) -> bool:
        """Commit everything pending and stop the thread (the buffer stays open).

        Returns False, after logging how many points were lost, if the disk
        refused the last commit.
        """
        with self._lock:
            if self._closed:
                return self._waiting == 0
            self._closed = True
            self._wake.notify()
        self._thread.join()
        self._seal(fsync=self.hold is not None)
        with self._lock:
            self._stopped = True
            self._done.notify_all()
            lost = self._waiting
        if lost:
            # Handed to us, never stored: accepted and dropped for a named reason.
            self.count_refused(lost, held=True)
            logger.error(
                "closing with %d points that the disk buffer refused (disk full?); they are "
                "lost, counted in dropped_disk_full", lost
            )
            return False
        return True

    def count_refused(self, points: int, held: bool = False) -> None:
        """Count points the disk refused that nobody will offer again (a polled reading);
        ``held``: points this writer held in memory (close), not refused at ``add``."""
        self.buffer.counters.apply({"accepted": points, "dropped_disk_full": points},
                                   -points if held else 0)

    def __enter__(self) -> DurableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sealing -----------------------------------------------------------------

    def _deadline(self, since: float, first_ticket: int) -> float:
        if self.hold is None:
            return since + self.commit_interval
        if first_ticket <= self._waited:
            return since + (self._within or self.commit_interval)
        return since + self.hold

    def _next_due(self, now: float) -> Optional[float]:
        """Under the lock: when the next commit is due, None when nothing waits."""
        if self._failures:
            return None if self._retry_since is None else self._retry_since + RETRY_DELAY
        if self._seal_soon:
            return now
        due = [self._deadline(p.since, p.first_ticket) for p in self._pending.values()]
        due.extend(self._deadline(h.since, h.first_ticket) for h in self._hot)
        return min(due) if due else None

    def _run(self) -> None:
        delay = COUNTERS_DELAY if self.hold is None else HELD_COUNTERS_DELAY
        last_counters = time.monotonic()
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    due = self._next_due(now)
                    seal = due is not None and now >= due
                    if seal or now - last_counters >= delay:
                        break
                    until = last_counters + delay
                    self._sleep_until = until if due is None else min(due, until)
                    self._wake.wait(self._sleep_until - now)
                self._sleep_until = None
                # A commit someone waits for (an MQTT ack) is fsync'd.
                fsync = self.hold is not None and any(
                    t <= self._waited for t in self._outstanding())
            if seal:
                try:
                    self._seal(fsync=fsync)
                except Exception as exc:  # a bug must not stop every source's commits
                    logger.error("sealing a segment failed unexpectedly (%s: %s); retrying",
                                 type(exc).__name__, exc)
                    with self._lock:
                        self._failures = max(self._failures, 1)
                        if self._retry_since is None:
                            self._retry_since = time.monotonic()
            if now - last_counters >= delay:
                last_counters = now
                with contextlib.suppress(Exception):  # they ride on the next commit then
                    self.buffer.persist_counters(delay)

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

    def _cut_pending(self) -> List[Hot]:
        """Under the lock: what is pending, as segments to lend or commit (in order)."""
        pending, self._pending = self._pending, {}
        out: List[Hot] = []
        for dest, p in pending.items():
            for seg in self._cut(dest, p):
                out.append(Hot(self._new_id(), seg, p.first_ticket, p.since))
        return out

    def _seal(self, fsync: bool = False) -> None:
        with self._seal_lock:
            with self._lock:
                hot = self._hot + self._cut_pending()
                self._hot = []
                self._seal_soon = False
                self._taken_for_commit(hot)
            if not hot:
                with self._lock:
                    self._mark_durable(0)
                return
            segments = [h.seg for h in hot]
            points = sum(s.count for s in segments)
            try:
                # "accepted" is committed with the segments it counts, never ahead of them.
                ids = self.buffer.append_many(segments, {"accepted": points, "held": -points})
                if fsync and self.buffer.sync != "full":
                    fsync_wal(self.buffer)
            except (BufferError_, OSError) as exc:
                with self._lock:  # still in memory, still deliverable from there
                    self._commit_refused()
                    if self._retry_since is None:
                        self._retry_since = time.monotonic()
                self._refused(exc)
                return
            with self._lock:
                self._retry_since = None
                drop = self._moved_to_disk(hot, ids)
                if self._failures:
                    logger.warning(
                        "disk buffer accepts writes again after %d refused commits; %d points "
                        "held in memory are stored", self._failures, points,
                    )
                    self._failures = 0
                self._mark_durable(points)
            if drop:
                with contextlib.suppress(BufferError_):  # delivered: a copy left is sent again
                    self.buffer.remove(drop)

    def _mark_durable(self, points: int) -> None:
        """Under the lock: ``points`` became durable; tickets below what is left are done."""
        self._waiting -= points
        left = self._outstanding()
        self._durable = max(self._durable, (min(left) - 1) if left else self._ticket)
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
