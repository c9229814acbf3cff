"""The delivery loop: buffer segments -> InfluxDB, with the DESIGN.md rules.

A batch is a run of head segments for one destination (at most batch_size
points and max_batch_bytes). It leaves the buffer only when its outcome is
final: written (2xx), or its invalid lines isolated by bisection and
dead-lettered with the server's message. 413 splits the batch in halves.
Auth errors, missing buckets, throttling and transient failures keep the data
and wait on the :class:`~edge_agent.retry.RetrySchedule`.

A backlog drains back to back, paced by :class:`~edge_agent.delivery.pacing.
DrainPace` (AIMD): a rising latency or a 429/503 slows the batches down, so a
fleet of agents draining together shares the server. In durable mode a
429/503 *with* Retry-After (>= 1 s) is the server scheduling us: the wait is the
Retry-After (spread by up to 25 % so agents told the same do not return in
step) or the pace's pause if longer, and it does not escalate the
exponential schedule; without Retry-After the schedule applies as for any
failure.

In durable mode (agent, ``buffer_dir``) retries never drop data:
``max_retries`` / ``max_retry_time`` end one delivery *attempt*, and the next
starts after a delay in the band below ``max_retry_delay``. In memory mode
(the seed's batching writer) an exhausted batch is dropped and handed to the
error callback.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Protocol, Sequence, Tuple

from ..destination import Destination
from ..retry import MAX_RETRY_AFTER, RetrySchedule
from .outcome import Outcome, WriteResult
from .pacing import DrainPace

__all__ = ["Flusher", "Step", "Callbacks"]

log = logging.getLogger("edge_agent.flusher")


class _Segment(Protocol):
    dest: Destination
    count: int
    data: bytes


class SegmentQueue(Protocol):
    """What the flusher needs of a buffer (DiskBuffer and MemoryBuffer)."""

    counters: Any

    def head(self, max_points: int, max_bytes: int) -> Sequence[Tuple[int, Any]]: ...

    def remove(self, ids: Sequence[int], count_as: Optional[str] = None,
               rejected: int = 0) -> int: ...

    def __len__(self) -> int: ...  # segments waiting


class _Transport(Protocol):
    def write(self, dest: Destination, body: bytes) -> WriteResult: ...


class _DeadLetters(Protocol):
    def add(self, dest: Destination, lines: Sequence[str], status: int, message: str) -> None: ...


@dataclass
class Callbacks:
    """The seed's callbacks: ``(conf, data)`` and ``(conf, data, exception)``.

    ``conf`` is ``(bucket, org, precision)``; ``data`` the batch as text.
    """

    success: Optional[Callable[..., Any]] = None
    error: Optional[Callable[..., Any]] = None
    retry: Optional[Callable[..., Any]] = None


@dataclass(frozen=True)
class Step:
    """What one delivery step did: ``sent`` points written, ``rejected`` dead-lettered,
    ``dropped`` given up (memory mode), and ``wait`` seconds before the next step."""

    kind: str  # "empty" | "written" | "retry" | "dropped"
    sent: int = 0
    rejected: int = 0
    dropped: int = 0
    wait: float = 0.0
    result: Optional[WriteResult] = None


class _Interrupted(Exception):
    """A failure that is not about the lines themselves: stop bisecting, keep the data."""

    def __init__(self, result: WriteResult) -> None:
        super().__init__(result.message)
        self.result = result


_SPLIT = frozenset({Outcome.INVALID, Outcome.TOO_LARGE})
RETRY_AFTER_SPREAD = 0.25  # a Retry-After is waited as RA * [1, 1.25)
#: a shorter Retry-After (0, a date in the past) schedules nothing: the backoff applies
MIN_SCHEDULED_RETRY_AFTER = 1.0


class Flusher:
    """Delivers batches from ``queue`` through ``transport``; run it in its thread with start()."""

    def __init__(
        self,
        queue: SegmentQueue,
        transport: _Transport,
        options: Any,
        dead_letters: Optional[_DeadLetters] = None,
        *,
        durable: bool = True,
        callbacks: Optional[Callbacks] = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Optional[random.Random] = None,
        route: Optional[Callable[[Destination], Destination]] = None,
    ) -> None:
        self.queue = queue
        # The agent sends every segment to the configured bucket (a segment
        # buffered under an old, mistyped bucket must not block the queue).
        self.route = route
        self.transport = transport
        self.options = options
        self.dead_letters = dead_letters
        self.durable = durable
        self.callbacks = callbacks or Callbacks()
        self.clock = clock
        self.rng = rng or random.Random()
        self._schedule = RetrySchedule.from_options(options)
        self._pace = DrainPace(min_rate=1.0 / self._schedule.max_retry_delay)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        # One step at a time: the thread, flush() and close() may all deliver.
        self._step_lock = threading.Lock()
        self._last_send = clock()
        self._full = False  # set by notify(full=True), cleared once the queue is empty
        self.last_result: Optional[WriteResult] = None

    # -- thread -------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edge-agent-flusher",
                                            daemon=True)
            self._thread.start()

    def notify(self, full: bool = False) -> None:
        """New data is in the buffer (a producer sealed a segment). ``full``: a
        batch_size worth arrived, so everything queued goes now (the seed's
        batching), not at the next flush_interval."""
        if full:
            self._full = True
        self._wake.set()

    def stop(self, timeout: Optional[float] = None) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        interval = self.options.flush_interval / 1000.0
        while not self._stopping.is_set():
            try:
                step = self.step(wait_for_full=True)
            except Exception as exc:  # a bug must not kill delivery; the data stays
                log.error("delivery step failed unexpectedly, retrying: %s", exc)
                step = Step("retry", wait=interval)
            if step.kind in ("written", "dropped") and step.wait == 0:
                continue
            if step.kind in ("retry", "written"):
                # New data (notify) must not cut a backoff or a drain pause short:
                # only stop() may.
                self._stopping.wait(step.wait)
                self._wake.clear()
                continue
            self._wake.wait(step.wait or interval)
            self._wake.clear()

    # -- one step -----------------------------------------------------------

    def step(self, wait_for_full: bool = False) -> Step:
        """Deliver one batch if there is one; never sleeps.

        With ``wait_for_full`` a batch smaller than batch_size waits until
        flush_interval has passed since the last send (the seed's batching).
        """
        with self._step_lock:
            return self._step(wait_for_full)

    def _step(self, wait_for_full: bool) -> Step:
        opts = self.options
        batch = self.queue.head(opts.batch_size, opts.max_batch_bytes)
        if not batch:
            self._full = False
            return Step("empty")
        points = sum(seg.count for _, seg in batch)
        now = self.clock()
        # A batch is full at batch_size points, or when more segments wait behind
        # it (the next one did not fit): a backlog never waits for flush_interval.
        if (wait_for_full and not self._full and points < opts.batch_size
                and len(self.queue) <= len(batch)):
            due = self._last_send + opts.flush_interval / 1000.0
            if now < due and self._schedule.attempt == 0:
                return Step("empty", wait=due - now)
        if self._schedule.attempt == 0 and opts.jitter_interval:
            pause = self._schedule.jitter(self.rng)
            if pause > 0 and not self._stopping.is_set():
                self._stopping.wait(pause)
        dest = batch[0][1].dest
        if self.route is not None:
            dest = self.route(dest)
        ids = [seg_id for seg_id, _ in batch]
        body = b"\n".join(seg.data for _, seg in batch)
        self._last_send = now
        try:
            written, rejected = self._send(dest, body, None)
        except _Interrupted as stop:
            return self._failed(dest, ids, body, points, stop.result)
        self._delivered(dest, ids, body, written, rejected)
        latency = self.last_result.latency if self.last_result is not None else 0.0
        self._pace = self._pace.written(latency)
        pause = self._pace.pause(self.rng, latency) if len(self.queue) else 0.0
        return Step("written", sent=written, rejected=len(rejected), wait=pause)

    def _send(self, dest: Destination, body: bytes, lines: Optional[List[bytes]]
              ) -> Tuple[int, List[Tuple[bytes, WriteResult]]]:
        """Write ``body``; on 400/422/413 isolate the rejected lines by halves."""
        result = self.transport.write(dest, body)
        self.last_result = result
        if result.outcome is Outcome.OK:
            return (len(lines) if lines is not None else body.count(b"\n") + 1), []
        if result.outcome not in _SPLIT:
            raise _Interrupted(result)
        if lines is None:
            lines = body.split(b"\n")
        if len(lines) == 1:
            return 0, [(lines[0], result)]
        mid = len(lines) // 2
        w1, r1 = self._send(dest, b"\n".join(lines[:mid]), lines[:mid])
        w2, r2 = self._send(dest, b"\n".join(lines[mid:]), lines[mid:])
        return w1 + w2, r1 + r2

    # -- outcomes -----------------------------------------------------------

    def _delivered(self, dest: Destination, ids: List[int], body: bytes, written: int,
                   rejected: List[Tuple[bytes, WriteResult]]) -> None:
        if rejected:
            by_reason: dict = {}
            for line, result in rejected:
                by_reason.setdefault((result.status, result.message), []).append(
                    line.decode("utf-8", "replace"))
            for (status, message), lines in by_reason.items():
                if self.dead_letters is not None:
                    self.dead_letters.add(dest, lines, status, message)
                log.warning("InfluxDB rejected %d line(s) for %s (HTTP %s: %s); moved to the "
                            "dead-letter file", len(lines), dest.bucket, status, message)
            if self.callbacks.error is not None:
                bad = "\n".join(line.decode("utf-8", "replace") for line, _ in rejected)
                first = rejected[0][1]
                self._call(self.callbacks.error, dest, bad, first.error())
        # "written" and "rejected" are counted in the transaction that removes the
        # segments: a kill -9 can neither count them twice nor lose them. A segment
        # evicted by the budget while it was in flight stays counted as evicted.
        removed = self.queue.remove(ids, count_as="written", rejected=len(rejected))
        written = max(0, removed - len(rejected))
        if self._schedule.attempt:
            log.info("InfluxDB writes succeed again (%s)", dest.bucket)
        self._schedule = self._schedule.reset()
        if written and self.callbacks.success is not None:
            if rejected:
                dropped = {line for line, _ in rejected}
                body = b"\n".join(ln for ln in body.split(b"\n") if ln not in dropped)
            self._call(self.callbacks.success, dest, body.decode("utf-8", "replace"))

    def _failed(self, dest: Destination, ids: List[int], body: bytes, points: int,
                result: WriteResult) -> Step:
        counters = self.queue.counters
        now = self.clock()
        if result.status or not result.reached:
            # An answer, or no connection: InfluxDB did not take these points. (A
            # timeout or a reset leaves them "in flight": the server may hold them.)
            counters.set_flight(0)
        counters.add("write_errors", 1)
        counters.set("last_error", f"{_describe(result)}")
        error = result.error()
        if result.outcome is Outcome.THROTTLED:
            self._pace = self._pace.throttled(result.latency, result.retry_after)
            if self.durable and (result.retry_after or 0.0) >= MIN_SCHEDULED_RETRY_AFTER:
                return self._throttled(dest, body, points, result)
        if self._schedule.exhausted(now):
            if not self.durable:
                self.queue.remove(ids)
                counters.add("dropped", points)
                log.error("gave up on %d point(s) for %s after %d retries: %s", points,
                          dest.bucket, self._schedule.attempt, _describe(result))
                self._schedule = self._schedule.reset()
                if self.callbacks.error is not None:
                    self._call(self.callbacks.error, dest, body.decode("utf-8", "replace"), error)
                return Step("dropped", dropped=points, result=result)
            wait = self._schedule.cap_delay(self.rng)
            log.error("delivery attempt ended after %d retries (%s); %d point(s) kept on "
                      "disk, next attempt in %.1fs", self._schedule.attempt,
                      _describe(result), points, wait)
            self._schedule = self._schedule.reset()
            return Step("retry", wait=wait, result=result)
        wait, self._schedule = self._schedule.next(now, self.rng, result.retry_after)
        counters.add("retries", 1)
        log.error("%s; %d point(s) kept, retry %d in %.1fs", _describe(result), points,
                  self._schedule.attempt, wait)
        if self.callbacks.retry is not None:
            self._call(self.callbacks.retry, dest, body.decode("utf-8", "replace"), error)
        return Step("retry", wait=wait, result=result)

    def _throttled(self, dest: Destination, body: bytes, points: int,
                   result: WriteResult) -> Step:
        """A 429/503 with Retry-After in durable mode: wait what the server asked
        (spread), or the slowed pace if longer; the schedule does not escalate."""
        assert result.retry_after is not None
        asked = min(result.retry_after * (1.0 + RETRY_AFTER_SPREAD * self.rng.random()),
                    MAX_RETRY_AFTER)
        wait = max(asked, self._pace.pause(self.rng, result.latency))
        self.queue.counters.add("retries", 1)
        log.warning("%s; %d point(s) kept, next batch in %.1fs", _describe(result), points, wait)
        if self.callbacks.retry is not None:
            self._call(self.callbacks.retry, dest, body.decode("utf-8", "replace"),
                       result.error())
        return Step("retry", wait=wait, result=result)

    def _call(self, fn: Callable[..., Any], dest: Destination, *args: Any) -> None:
        try:
            fn((dest.bucket, dest.org, dest.precision), *args)
        except Exception as exc:  # a user's callback must not stop delivery
            log.warning("write callback %r raised: %s", getattr(fn, "__name__", fn), exc)

    # -- draining -----------------------------------------------------------

    def drain(self, timeout: float, give_up_on_failure: bool = False) -> bool:
        """Deliver until the buffer is empty; ``False`` if time ran out first.

        With ``give_up_on_failure`` (shutdown, ``--once``: someone is waiting)
        it stops at the first failure instead of sleeping through the backoff,
        unless the server asked for a pause (429/503 with Retry-After) that fits
        in ``timeout``. The data stays in the buffer either way.
        """
        deadline = self.clock() + timeout
        while True:
            step = self.step()
            if step.kind == "empty":
                return True
            if step.kind == "retry" and give_up_on_failure and (
                    step.result is None or step.result.outcome is not Outcome.THROTTLED):
                return False
            if step.wait:
                if self.clock() + step.wait > deadline:
                    return False
                time.sleep(step.wait)


def _describe(result: WriteResult) -> str:
    hints = {
        Outcome.AUTH: "InfluxDB refused the credentials: check the token (or user/password)",
        Outcome.NOT_FOUND: "InfluxDB answered 404: check the bucket/database and org",
        Outcome.THROTTLED: "InfluxDB asked us to slow down",
    }
    hint = hints.get(result.outcome)
    detail = f"HTTP {result.status}: {result.message}" if result.status else result.message
    return f"{hint} ({detail})" if hint else detail
