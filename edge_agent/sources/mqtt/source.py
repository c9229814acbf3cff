"""The MQTT bridge: subscriptions become lines, acked only after they are durable.

Threads and flow:

* paho's network thread (``loop_start``) only stamps the receive time and
  appends each message to a deque, so it is never blocked by parsing or by the
  disk. It is the bridge's bottleneck (one process, one GIL, a bare paho
  subscriber's whole budget spent on the same decoding), so :class:`_Client`
  makes it cheaper than stock paho: it reads the socket 64 KiB at a time
  (paho issues three ``recv`` calls and a ``select`` per packet, and each
  system call hands the GIL to the worker and waits to get it back), and it
  decodes QoS 0/1 PUBLISH packets itself, straight into the deque (no
  ``MQTTMessage``, no MQTT 5 ``Properties`` object, no callback locks).
* One worker drains the queue in groups, parses (``payloads``), checks DUP
  messages against the dedup index (``dedup``), hands the group's lines to
  ``sink.add`` and keeps the ticket. A group is acked (PUBACK, in receive
  order) only after ``sink.wait_durable(ticket)`` returned True. When no
  message arrived for ``ack_interval`` (5 ms) the worker asks the sink to seal
  now (``sink.flush()`` when it has one): with a full in-flight window the
  broker sends nothing more until we ack, so waiting for the writer's own
  commit interval would throttle throughput to one window per interval.
* In-flight window: for MQTT 5 we send ReceiveMaximum (1000 by default);
  mosquitto then keeps up to that many unacked QoS 1 messages in flight to
  us. MQTT 3.1.1 has no such property and mosquitto's ``max_inflight_messages``
  (default 20) applies: ack-after-commit then costs one commit per 20
  messages, still thousands per second with grouped commits.
* Backpressure: when ``wait_durable`` keeps returning False (disk full) the
  worker stops acking; the broker stops sending at the window and keeps the
  rest for us. QoS 0 messages beyond ``max_queue`` are dropped and counted
  (QoS 0 promises nothing more).
* Acks carry the connection generation they were received on: a mid is only
  meaningful on its own connection, so acks of an older connection are not
  sent (the broker redelivers those messages; the dedup index recognises
  them).
* Reconnect: forever, with a capped, jittered exponential backoff
  (:func:`backoff_delay`), subscribing every current subscription on every
  connect (also with a persistent session, and including those added by
  :meth:`MqttSource.update_subscriptions`). MQTT 5 subscribes with
  retainHandling 1 so a resubscribe does not replay retained messages as new
  points; MQTT 3.1.1 has no such option, so there a reconnect receives the
  retained messages again (with a new receive time).
* mosquitto's ``max_queued_messages`` (1000 by default) bounds what it keeps
  for us while we are offline or slow; beyond it the *broker* drops. Raise it
  on the broker for long outages.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from ...lineproto.encoder import LineEncoder
from ...retry import RetrySchedule
from ...throttle import LogThrottle
from .client import (
    DEFAULT_RECEIVE_MAXIMUM,
    DEFAULT_RECONNECT_MAX,
    _build_client,
    _protocol,
    backoff_delay,
    client_class,
)
from .dedup import DedupIndex, index_path, message_digest
from .payloads import MessageParser, Rejected, _opt
from .routes import SubscriptionStats, compile_parsers, route
from .tls import connect_failure, disconnect_reason

__all__ = ["MqttSource"]

log = logging.getLogger(__name__)

MAX_GROUP = 1000
GROUP_WAIT_BELOW = 100  # fewer messages queued than this: wait a moment for more
TOPIC_CACHE_MAX = 10_000  # topics remembered with their route; cleared when full



@dataclass
class _Group:
    ticket: Optional[int]
    acks: List[Tuple[int, int, int]]  # (mid, qos, generation)
    committed: List[Tuple[int, bytes]] = field(default_factory=list)


class MqttSource:
    """An MQTT subscription source that commits lines to ``sink`` before acking.

    ``config`` has the attributes of an ``mqtt`` source (url, client_id, ...,
    subscriptions); ``sink`` has ``add(lines, dest) -> ticket`` and
    ``wait_durable(ticket, timeout) -> bool`` (and optionally ``flush()``);
    ``state_dir`` holds the dedup index (no index when None: redeliveries
    then may become second points). ``default_tags`` are the agent's.
    """

    def __init__(self, config: Any, sink: Any, *, state_dir: Optional[str] = None,
                 default_tags: Optional[Dict[str, str]] = None, precision: str = "ns",
                 dest: Any = None, receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM,
                 ack_interval: float = 0.005, max_queue: int = 50_000,
                 log_interval: float = 60.0, clock: Callable[[], int] = time.time_ns,
                 rng: Optional[random.Random] = None) -> None:
        self.config = config
        self.sink = sink
        self.dest = dest
        self.name = str(_opt(config, "name", "mqtt"))
        self.client_id = str(_opt(config, "client_id", "") or f"edge-agent-{self.name}")
        self.qos = int(_opt(config, "qos", 1))
        self.persistent = not bool(_opt(config, "clean_session", False))
        self.reconnect_max = float(_opt(config, "reconnect_max", DEFAULT_RECONNECT_MAX))
        self.ack_interval = ack_interval
        self.max_queue = max_queue
        self.log_interval = log_interval
        self._clock = clock
        self._rng = rng or random.Random()
        self._encoder = LineEncoder(precision, default_tags)
        self._parsers = compile_parsers(config, list(_opt(config, "subscriptions", [])),
                                        self._encoder)
        self.stats: Dict[str, SubscriptionStats] = {
            p.template.template: SubscriptionStats() for p in self._parsers}
        # Opened by start(), not here: on a reload the new source is built while the
        # old one still runs and writes this index; loading it before the old one
        # stopped would miss its last rows, and redeliveries become second points.
        self._index_path = (index_path(state_dir, self.client_id)
                            if state_dir and self.qos > 0 else None)
        self._index: Optional[DedupIndex] = None
        # Filled by the network thread, emptied by the worker. deque.append and
        # popleft are atomic: no lock, and the Event is set only when the deque
        # goes from empty to non-empty (the worker clears it before draining).
        self._inbox: Deque[Tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        # raw topic -> (parser, captured) or None (unmatched), for the current parsers
        self._routes: Dict[bytes, Optional[Tuple[MessageParser, Dict[str, str]]]] = {}
        self._routes_for: Sequence[MessageParser] = ()
        self._pending: Deque[_Group] = deque()
        self._pending_msgs = 0
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = False
        self._attempt = 0
        self._stopping = False
        self._stop = threading.Event()
        self._stop_timeout = 10.0
        self._throttle = LogThrottle(log, log_interval)
        self._flushed_ticket: Optional[int] = None
        self._not_durable_since: Optional[float] = None
        self.counters: Dict[str, Any] = {
            "connects": 0, "disconnects": 0, "last_error": "", "messages_unmatched": 0,
            "qos0_dropped": 0, "stale_acks": 0, "acked": 0, "backpressure": False,
            "worker_errors": 0}
        self._client, self._connect = _build_client(
            config, self.client_id, self.persistent, manual_ack=True,
            receive_maximum=receive_maximum, client_class=client_class())
        self._client.publish_sink = self._enqueue
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._worker = threading.Thread(target=self._run, name=f"mqtt-{self.name}", daemon=True)

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Open the dedup index, start connecting (in the background) and processing."""
        if self._index_path is not None and self._index is None:
            self._index = DedupIndex(self._index_path)
        self._worker.start()
        self._connect()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and ack what was received (within ``timeout``), then disconnect."""
        self._stopping = True
        self._stop_timeout = timeout
        self._stop.set()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join(timeout + 1.0)
        self._client.disconnect()
        self._client.loop_stop()
        if self._index is not None:
            self._index.close()
            self._index = None

    @property
    def alive(self) -> bool:
        """The worker runs (the agent's watchdog checks it; a broker outage is not death)."""
        return self._worker.is_alive() or self._stopping

    @property
    def connected(self) -> bool:
        return self._connected

    def update_subscriptions(self, subscriptions: Sequence[Any]) -> None:
        """Replace the subscriptions (a config reload); subscribes new ones now and on reconnect."""
        parsers = compile_parsers(self.config, list(subscriptions), self._encoder)
        old = {p.filter for p in self._parsers}
        new = {p.filter for p in parsers}
        with self._lock:
            self._parsers = parsers
            for p in parsers:
                self.stats.setdefault(p.template.template, SubscriptionStats())
            connected = self._connected
        if connected:
            self._subscribe([p for p in parsers if p.filter not in old])
            gone = sorted(old - new)
            if gone:
                self._client.unsubscribe(gone)

    def status(self) -> Dict[str, Any]:
        """Connection state and counters, for ``edge-agent status``."""
        with self._lock:
            out = dict(self.counters)
            out.update(name=self.name, client_id=self.client_id, connected=self._connected,
                       unacked=self._pending_msgs, queued=len(self._inbox))
            out["subscriptions"] = {k: asdict(v) for k, v in self.stats.items()}
        return out

    # -- paho callbacks (network thread) ---------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.counters["last_error"] = f"connection refused: {reason}"
            log.warning("mqtt %s: broker refused the connection: %s", self.name, reason)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
            self._attempt = 0
            self.counters["connects"] += 1
        log.info("mqtt %s: connected (session present: %s)", self.name,
                 getattr(flags, "session_present", "?"))
        self._subscribe(self._parsers)

    def _subscribe(self, parsers: Sequence[MessageParser]) -> None:
        if not parsers:
            return
        if _protocol(self.config) == mqtt.MQTTv5:
            # retainHandling 1: retained messages only for a subscription the
            # session did not have, so a reconnect does not replay them as new points.
            topics: Any = [(p.filter, SubscribeOptions(qos=self.qos, retainHandling=1))
                           for p in parsers]
        else:
            topics = [(p.filter, self.qos) for p in parsers]
        self._client.subscribe(topics)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        for reason in reasons:
            if getattr(reason, "is_failure", False):
                self.counters["last_error"] = f"subscribe refused: {reason}"
                log.warning("mqtt %s: broker refused a subscription: %s", self.name, reason)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        with self._lock:
            self._generation += 1
            was = self._connected
            self._connected = False
            if was:
                self.counters["disconnects"] += 1
        if not self._stopping:
            self.counters["last_error"] = disconnect_reason(client, reason)
            self._schedule_reconnect()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.counters["last_error"] = connect_failure(client)
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        self._attempt += 1
        delay = backoff_delay(self._attempt, self.reconnect_max, self._rng)
        # paho waits min_delay on the next attempt after this call (floats work).
        setter: Any = self._client.reconnect_delay_set
        setter(delay, delay)
        if self._attempt in (1, 5) or self._attempt % 20 == 0:
            log.warning("mqtt %s: %s; reconnecting in %.1f s (attempt %d)", self.name,
                        self.counters["last_error"], delay, self._attempt)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # QoS 2 only: _Client hands QoS 0 and 1 to _enqueue directly (all QoS with
        # paho's stock client, the fallback of client_class()).
        self._enqueue(msg._topic, bytes(msg.payload), msg.qos, msg.mid, msg.dup)

    def _enqueue(self, topic: bytes, payload: bytes, qos: int, mid: int, dup: bool) -> None:
        if self._stopping:
            return  # not acked: the broker delivers it again after the restart
        inbox = self._inbox
        if qos == 0 and len(inbox) >= self.max_queue:
            self.counters["qos0_dropped"] += 1
            return
        inbox.append((topic, payload, qos, mid, dup, self._clock(), self._generation))
        if len(inbox) == 1:
            self._wake.set()

    # -- worker -----------------------------------------------------------------

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
        parsers = self._parsers
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
        for raw_topic, payload, qos, mid, dup, receive_ns, generation in msgs:
            if qos > 0:
                acks.append((mid, qos, generation))
            route = lookup(raw_topic)
            if route is None:
                self.counters["messages_unmatched"] += 1
                continue
            parser, captured = route
            topic = raw_topic.decode("utf-8")
            stats = self.stats[parser.template.template]
            stats.messages_received += 1
            digest = b""
            seq = 0
            if index is not None and qos > 0:
                seq = index.next_seq()
                digest = message_digest(raw_topic, payload, qos)
                hit = index.lookup(mid, digest, seq) if dup else None
                if hit is not None:
                    if hit.committed:
                        stats.duplicates_skipped += 1
                        continue
                    receive_ns = hit.receive_ns  # same time -> the same point again
            try:
                parsed = parser.parse(topic, payload, receive_ns, captured)
            except Rejected as exc:
                self._reject(stats, topic, exc.reason)
                continue
            lines.extend(parsed.lines)
            stats.points += len(parsed.lines)
            stats.count_drops(parsed)
            if digest:
                pending_rows.append((mid, digest, receive_ns, seq))
                committed.append((mid, digest))
        ok, ticket = True, None
        if pending_rows and index is not None:
            ok, _ = self._retry("write the dedup index", lambda: index.record_pending(pending_rows))
        if ok and lines:
            ok, ticket = self._retry("add to the buffer", lambda: self.sink.add(lines, self.dest))
        # A group that could not be added is never acked: the broker redelivers it.
        self._pending.append(_Group(ticket, acks if ok else [], committed if ok else []))
        self._pending_msgs += len(acks)

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
        while self._pending:
            group = self._pending[0]
            if group.ticket is not None and not self.sink.wait_durable(group.ticket, timeout):
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
                mark = functools.partial(self._index.mark_committed, group.committed)
                self._retry("update the dedup index", mark)
            self._ack(group.acks)
            timeout = 0.0

    def _ack(self, acks: List[Tuple[int, int, int]]) -> None:
        with self._lock:
            generation = self._generation
            connected = self._connected
            for mid, qos, gen in acks:
                if connected and gen == generation:
                    self._client.ack(mid, qos)
                    self.counters["acked"] += 1
                else:
                    self.counters["stale_acks"] += 1

    def _reject(self, stats: SubscriptionStats, topic: str, reason: str) -> None:
        stats.messages_rejected += 1
        stats.last_reject_reason = reason
        stats.last_reject_topic = topic
        self._throttle.warning(f"reject:{topic.split('/', 1)[0]}",
                               "mqtt %s: rejected a message on %r: %s", self.name, topic, reason)
