"""The MQTT source's worker thread: drain the inbox, parse, commit, then ack.

One worker drains the queue in groups and, per message: routes it to the most
specific subscription (:mod:`.routes`), skips the copies the broker sent for
the other overlapping ones (:mod:`.overlaps`), checks DUP messages against
the dedup index (:mod:`.dedup`), parses it (:mod:`.payloads`) and keeps the
points of a series apart (:mod:`.collisions`). A message that does not become
points is counted and kept in the rejected-messages file (:mod:`.ledger`).
The group's rejected messages are on disk and its lines handed to
``sink.add`` before anything is acked; the acks (PUBACK, in receive order)
follow only once ``sink.wait_durable(ticket)`` returned True.

Every message of a group is thus acked only once it is in the buffer or in
the rejected file: after a kill -9 the broker redelivers the rest, and the
dedup index with the rejected file's recent ids recognise what was already
kept, so each message ends up in exactly one of the two.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ...retry import RetrySchedule
from ...throttle import LogThrottle
from .collisions import CollisionGuard
from .dedup import DedupIndex, message_digest
from .ledger import Ledger
from .overlaps import Overlaps
from .payloads import MessageParser, Rejected
from .routes import route

log = logging.getLogger("edge_agent.sources.mqtt.source")

MAX_GROUP = 1000
GROUP_WAIT_BELOW = 100  # fewer messages queued than this: wait a moment for more
TOPIC_CACHE_MAX = 10_000  # topics remembered with their route; cleared when full
_UNMATCHED = "no subscription matches this topic"


@dataclass
class _Group:
    ticket: Optional[int]
    acks: List[Tuple[int, int, int]]  # (mid, qos, generation)
    committed: List[Tuple[int, bytes]] = field(default_factory=list)


class Worker:
    """The worker half of :class:`~.source.MqttSource` (its attributes are set there)."""

    # Set by MqttSource.__init__; declared for the type checker.
    _inbox: Any
    _wake: Any
    _stop: Any
    _pending: Any
    _pending_msgs: int
    _stop_timeout: float
    _routes: Dict[bytes, Optional[Tuple[MessageParser, Dict[str, str]]]]
    _routes_for: Any
    _active: List[MessageParser]
    _lock: Any
    _flushed_ticket: Optional[int]
    _not_durable_since: Optional[float]
    _throttle: LogThrottle
    ack_interval: float
    name: str
    sink: Any
    dest: Any
    counters: Dict[str, Any]
    ledger: Ledger
    _index: Optional[DedupIndex]
    _overlaps: Overlaps
    _guard: Optional[CollisionGuard]
    _generation: int
    _connected: bool
    _client: Any

    def _run(self) -> None:
        while True:
            try:
                self._work()
                return
            except Exception as exc:  # a bug must not end the bridge: the watchdog would
                # The messages of the batch that failed stay unacked; the broker sends
                # them again on the next connection and the dedup index sorts them out.
                self.counters["worker_errors"] += 1
                self.counters["last_error"] = f"unexpected error: {type(exc).__name__}: {exc}"
                self._throttle.log(logging.ERROR, "worker", "mqtt %s: unexpected error in the "
                                   "worker: %s: %s; carrying on", self.name,
                                   type(exc).__name__, exc)
                log.debug("mqtt %s: traceback", self.name, exc_info=True)
                if self._stop.wait(0.5):
                    return

    def _work(self) -> None:
        deadline: Optional[float] = None
        while True:
            if self._stop.is_set() and deadline is None:
                deadline = time.monotonic() + self._stop_timeout
            msgs = self._drain(self.ack_interval if self._pending or deadline else 0.25)
            if msgs:
                self._process(msgs)
            elif self._pending:
                self._flush_sink()
            self._settle(0.0 if msgs else 0.02)
            self.ledger.checkpoint()
            self._throttle.report_held(f"mqtt {self.name}")
            if deadline is not None and not self._inbox and (
                    not self._pending or time.monotonic() > deadline):
                return

    def _drain(self, timeout: float) -> List[Tuple[Any, ...]]:
        if self._pending_msgs > 20_000:  # stalled sink: let the window fill up
            time.sleep(timeout)
            return []
        inbox = self._inbox
        self._wake.clear()  # before looking: an append from now on sets it again
        if not inbox and (not self._wake.wait(timeout) or not inbox):
            return []
        if len(inbox) < GROUP_WAIT_BELOW:
            # Let a group build up: woken per message, this thread would take the
            # GIL from paho's network thread for every message (measured: the
            # bridge then received at half the rate of a bare paho subscriber).
            time.sleep(self.ack_interval / 2)
        popleft = inbox.popleft
        out = []
        for _ in range(min(len(inbox), MAX_GROUP)):
            out.append(popleft())
        return out

    def _lookup(self, raw_topic: bytes
                ) -> Optional[Tuple[MessageParser, Dict[str, str]]]:
        """The parser and captures of a topic (cached: a sensor repeats its topic)."""
        parsers = self._active
        routes = self._routes
        if self._routes_for is not parsers or len(routes) >= TOPIC_CACHE_MAX:
            routes.clear()
            self._routes_for = parsers
        try:
            return routes[raw_topic]
        except KeyError:
            pass
        try:
            parser, captured = route(parsers, raw_topic.decode("utf-8"))
        except UnicodeDecodeError:
            parser, captured = None, None
        found = None if parser is None or captured is None else (parser, captured)
        routes[raw_topic] = found
        return found

    def _process(self, msgs: List[Tuple[Any, ...]]) -> None:
        lines: List[str] = []
        acks: List[Tuple[int, int, int]] = []
        pending_rows: List[Tuple[int, bytes, int, int]] = []
        committed: List[Tuple[int, bytes]] = []
        lookup = self._lookup
        index = self._index
        ledger = self.ledger
        overlaps = self._overlaps
        guard = self._guard
        for raw_topic, payload, qos, mid, dup, receive_ns, generation, ids in msgs:
            if qos > 0:
                acks.append((mid, qos, generation))
            found = lookup(raw_topic)
            stats = None
            if found is not None:
                parser, captured = found
                stats = ledger.sub(parser.template.template)
                if ids and overlaps.other_copy(parser.filter, ids):
                    stats.overlap_copies += 1  # the chosen subscription's copy is stored
                    continue
            digest = b""
            seq = 0
            redelivered = False
            if index is not None and qos > 0:
                seq = index.next_seq()
                digest = message_digest(raw_topic, payload, qos)
                hit = index.lookup(mid, digest, seq) if dup else None
                # Already kept: committed points, or in the rejected file (those are
                # not in the index: their time must not be reused, see collisions.py).
                if (hit is not None and hit.committed) or (dup and ledger.kept(mid, digest)):
                    if stats is None:
                        ledger.source["duplicates_skipped"] += 1
                    else:
                        stats.duplicates_skipped += 1
                    continue
                if hit is not None:
                    receive_ns = hit.receive_ns  # same time -> the same point again
                    redelivered = True
            out: Sequence[str] = ()
            if found is None:
                self._reject(None, raw_topic, payload, qos, mid, digest, _UNMATCHED)
            else:
                assert stats is not None
                stats.messages_received += 1
                topic = raw_topic.decode("utf-8")
                try:
                    parsed = parser.parse(topic, payload, receive_ns, captured)
                except Rejected as exc:
                    self._reject(parser, raw_topic, payload, qos, mid, digest, exc.reason)
                else:
                    out = parsed.lines
                    if guard is not None:
                        place = guard.place(out, parsed.own_time, redelivered)
                        if place.clash:
                            self._reject(parser, raw_topic, payload, qos, mid, digest,
                                         place.clash)
                            out = ()
                        elif place.shift:
                            out = place.lines
                            receive_ns += place.shift * guard.unit
                            stats.timestamps_shifted += 1
                    lines.extend(out)
                    stats.points += len(out)
                    stats.count_drops(parsed)
            if digest and out:  # a rejected message is recorded by the rejected file
                pending_rows.append((mid, digest, receive_ns, seq))
                committed.append((mid, digest))
        ok, ticket = True, None
        if pending_rows and index is not None:
            ok, _ = self._retry("write the dedup index", lambda: index.record_pending(pending_rows))
        if ok:
            ok, _ = self._retry("write the rejected-messages file", ledger.commit)
        if ok and lines:
            ok, ticket = self._retry("add to the buffer",
                                     lambda: self.sink.add(lines, self.dest))
        # A group that could not be added is never acked: the broker redelivers it
        # (QoS 1; its QoS 0 messages are gone, and counted).
        if not ok:
            ledger.source["qos0_dropped"] += len(msgs) - len(acks)
        self._pending.append(_Group(ticket, acks if ok else [], committed if ok else []))
        self._pending_msgs += len(acks)

    def _reject(self, parser: Optional[MessageParser], raw_topic: bytes, payload: bytes,
                qos: int, mid: int, digest: bytes, reason: str) -> None:
        template = None if parser is None else parser.template.template
        self.ledger.reject(template, raw_topic, payload, qos, mid, digest, reason)
        topic = raw_topic.decode("utf-8", "replace")
        self._throttle.warning(f"reject:{template}", "mqtt %s: rejected a message on %r: %s (%s)",
                               self.name, topic, reason, self.ledger.where())

    def _retry(self, what: str, fn: Callable[[], Any]) -> Tuple[bool, Any]:
        """Run ``fn`` until it works; ``(False, None)`` only when stopping."""
        backoff, failures = RetrySchedule(retry_interval=0.1, max_retry_delay=5.0), 0
        while True:
            try:
                return True, fn()
            except Exception as exc:  # a full disk, a closed buffer: keep the messages unacked
                self.counters["last_error"] = f"cannot {what}: {exc}"
                self._throttle.warning("sink", "mqtt %s: cannot %s: %s; not acking, retrying",
                                       self.name, what, exc)
                if self._stop.is_set():
                    return False, None
                failures += 1
                time.sleep(backoff.nominal(failures))

    def _flush_sink(self) -> None:
        last = self._pending[-1].ticket
        if last is None or last == self._flushed_ticket:
            return
        flush = getattr(self.sink, "flush", None)
        if flush is not None:
            flush()
        self._flushed_ticket = last

    def _settle(self, timeout: float) -> None:
        sink = self.sink
        while self._pending:
            group = self._pending[0]
            if group.ticket is not None and not sink.wait_durable(group.ticket, timeout):
                now = time.monotonic()
                if self._not_durable_since is None:
                    self._not_durable_since = now
                elif now - self._not_durable_since > 5.0:
                    self.counters["backpressure"] = True
                    self._throttle.warning(
                        "durable", "mqtt %s: the disk buffer has not committed for %.0f s; "
                        "holding acks (the broker keeps the messages)",
                        self.name, now - self._not_durable_since)
                return
            self._not_durable_since = None
            self.counters["backpressure"] = False
            self._pending.popleft()
            self._pending_msgs -= len(group.acks)
            if group.committed and self._index is not None:
                mark = functools.partial(self._index.mark_committed,
                                         group.committed)
                self._retry("update the dedup index", mark)
            self._ack(group.acks)
            timeout = 0.0

    def _ack(self, acks: List[Tuple[int, int, int]]) -> None:
        with self._lock:
            generation = self._generation
            connected = self._connected
            client = self._client
            counters = self.counters
            for mid, qos, gen in acks:
                if connected and gen == generation:
                    client.ack(mid, qos)
                    counters["acked"] += 1
                else:
                    counters["stale_acks"] += 1
