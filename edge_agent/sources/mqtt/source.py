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
* One worker (:mod:`.worker`) drains the queue in groups, routes, parses,
  commits the group's lines (``sink.add``) and rejected messages (the
  rejected-messages file, :mod:`.ledger`), and acks (PUBACK, in receive
  order) only after ``sink.wait_durable(ticket)`` returned True. When no
  message arrived for ``ack_interval`` (5 ms) the worker asks the sink to seal
  now (``sink.flush()`` when it has one): with a full in-flight window the
  broker sends nothing more until we ack, so waiting for the writer's own
  commit interval would throttle throughput to one window per interval.
* Overlapping subscriptions: each message is stored once, by its most
  specific subscription (:mod:`.routes`); with MQTT 5 each filter has its own
  Subscription Identifier and the copies for the others are skipped
  (:mod:`.overlaps`).
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

import logging
import random
import threading
import time
from collections import deque
from dataclasses import asdict
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import paho.mqtt.client as mqtt

from ...buffer.deadletter import DEFAULT_MAX_BYTES
from ...lineproto.encoder import LineEncoder
from ...throttle import LogThrottle
from .client import (
    DEFAULT_RECEIVE_MAXIMUM,
    DEFAULT_RECONNECT_MAX,
    _build_client,
    _protocol,
    backoff_delay,
    client_class,
)
from .collisions import make_guard
from .dedup import DedupIndex, index_path
from .ledger import Ledger
from .overlaps import Overlaps, broker_filters
from .payloads import MessageParser, _opt
from .routes import compile_parsers
from .tls import connect_failure, disconnect_reason
from .worker import Worker, _Group

__all__ = ["MqttSource"]

log = logging.getLogger(__name__)


class MqttSource(Worker):
    """An MQTT subscription source that commits lines to ``sink`` before acking.

    ``config`` has the attributes of an ``mqtt`` source (url, client_id, ...,
    subscriptions); ``sink`` has ``add(lines, dest) -> ticket`` and
    ``wait_durable(ticket, timeout) -> bool`` (and optionally ``flush()``);
    ``state_dir`` holds the dedup index, the persistent counters and the
    rejected-messages file (``rejected_max`` bytes, the dead letters' budget);
    without it redeliveries may become second points and rejected messages are
    only counted. ``default_tags`` are the agent's.
    """

    def __init__(self, config: Any, sink: Any, *, state_dir: Optional[str] = None,
                 default_tags: Optional[Dict[str, str]] = None, precision: str = "ns",
                 dest: Any = None, receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM,
                 ack_interval: float = 0.005, max_queue: int = 50_000,
                 log_interval: float = 60.0, clock: Callable[[], int] = time.time_ns,
                 rng: Optional[random.Random] = None,
                 rejected_max: int = DEFAULT_MAX_BYTES) -> None:
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
        self._active: List[MessageParser] = list(self._parsers)  # minus refused filters
        self._suback_wait: Dict[int, str] = {}  # SUBSCRIBE mid -> filter, until its SUBACK
        self._overlaps = Overlaps(p.filter for p in self._parsers)
        self._v5 = _protocol(config) == mqtt.MQTTv5
        self._guard = make_guard(self._encoder.precision)
        self.ledger = Ledger(self.name, state_dir, rejected_max, load=False)  # read at start
        self.stats = self.ledger.stats
        for p in self._parsers:
            self.ledger.sub(p.template.template)
        self._unsubscribing: Dict[int, List[str]] = {}  # UNSUBSCRIBE mid -> stale filters
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
            "connects": 0, "disconnects": 0, "last_error": "", "stale_acks": 0, "acked": 0,
            "backpressure": False, "worker_errors": 0}
        self._client, self._connect = _build_client(
            config, self.client_id, self.persistent, manual_ack=True,
            receive_maximum=receive_maximum, client_class=client_class())
        self._client.publish_sink = self._enqueue
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_unsubscribe = self._on_unsubscribe
        self._worker = threading.Thread(target=self._run, name=f"mqtt-{self.name}", daemon=True)

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Open the dedup index, start connecting (in the background) and processing."""
        if self._index_path is not None and self._index is None:
            self._index = DedupIndex(self._index_path)
        self.ledger.open()
        self.ledger.subscribed(self._broker_filters(self._parsers))
        if self._guard is not None and self._index is not None:  # see collisions.py
            self._guard.floor = self._index.newest_receive_ns() // self._guard.unit
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
        lost = sum(1 for m in self._inbox if m[2] == 0)  # QoS 1 is redelivered; 0 is gone
        if lost:
            self.ledger.source["qos0_dropped"] += lost
            log.warning("mqtt %s: %d QoS 0 message(s) received but not processed before the "
                        "stop timeout: dropped (counted in qos0_dropped)", self.name, lost)
        self._throttle.report_held(f"mqtt {self.name}", due_only=False)
        self.ledger.checkpoint(force=True)
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
        old = set(self._broker_filters(self._parsers))
        new = set(self._broker_filters(parsers))
        with self._lock:
            self._parsers = parsers
            self._active = list(parsers)
            self._overlaps.update(p.filter for p in parsers)
            for p in parsers:
                self.ledger.sub(p.template.template)
            connected = self._connected
            self.ledger.subscribed(sorted(new))  # the removed ones become stale
        if connected:
            self._subscribe(sorted(new - old))
            gone = sorted(old - new)
            if gone:
                _, mid = self._client.unsubscribe(gone)
                self._unsubscribing[mid] = gone

    def status(self) -> Dict[str, Any]:
        """Connection state and counters, for ``edge-agent status``."""
        with self._lock:
            out = dict(self.counters)
            out.update(self.ledger.source)
            out.update(name=self.name, client_id=self.client_id, connected=self._connected,
                       unacked=self._pending_msgs, queued=len(self._inbox),
                       last_unmatched=self.ledger.last_unmatched,
                       rejected_files=self.ledger.files(),
                       refused=self._refused_filters())
            out["subscriptions"] = {k: asdict(v) for k, v in self.stats.items()}
        return out

    def metrics(self) -> List[Tuple[Dict[str, str], Dict[str, Any]]]:
        """``(tags, fields)`` per subscription and for the source, for the internal metrics."""
        with self._lock:
            rows: List[Tuple[Dict[str, str], Dict[str, Any]]] = [
                ({"source": self.name, "subscription": k},
                 {n: v for n, v in asdict(s).items() if isinstance(v, int)})
                for k, s in self.stats.items()]
            rows.append(({"source": self.name}, dict(
                self.ledger.source, acked=self.counters["acked"],
                connected=self._connected)))
        return rows

    def _refused_filters(self) -> List[str]:
        active = {p.filter for p in self._active}
        return [p.filter for p in self._parsers if p.filter not in active]

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
        self._subscribe(self._broker_filters(self._parsers))
        stale = list(self.ledger.stale_filters)
        if stale:  # removed from the config since the session subscribed them
            log.info("mqtt %s: unsubscribing %s (no longer in the config)", self.name,
                     ", ".join(repr(f) for f in stale))
            _, mid = self._client.unsubscribe(stale)
            self._unsubscribing[mid] = stale

    def _broker_filters(self, parsers: Sequence[MessageParser]) -> List[str]:
        return broker_filters((p.filter for p in parsers), self._v5)

    def _subscribe(self, filters: List[str]) -> None:
        with self._lock:  # a new SUBSCRIBE: its filters are given another chance
            active = set(filters) | {p.filter for p in self._active}
            self._active = [p for p in self._parsers if p.filter in active]
        for flt, mid in self._overlaps.subscribe(self._client, filters, self.qos, self._v5):
            self._suback_wait[mid] = flt

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        flt = self._suback_wait.pop(mid, None)
        for reason in reasons:
            if getattr(reason, "is_failure", False):
                self.counters["last_error"] = f"subscribe refused: {reason}"
                log.warning("mqtt %s: broker refused the subscription %r: %s", self.name,
                            flt or "?", reason)
                if flt is not None:  # route its topics to the next most specific one
                    with self._lock:
                        self._active = [p for p in self._active if p.filter != flt]

    def _on_unsubscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                        properties: Any) -> None:
        done = self._unsubscribing.pop(mid, None)
        if done:
            self.ledger.unsubscribed(done)

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
        ids = getattr(msg.properties, "SubscriptionIdentifier", None) if msg.properties else None
        self._enqueue(msg._topic, bytes(msg.payload), msg.qos, msg.mid, msg.dup,
                      tuple(ids or ()))

    def _enqueue(self, topic: bytes, payload: bytes, qos: int, mid: int, dup: bool,
                 ids: Tuple[int, ...] = ()) -> None:
        if self._stopping:
            if qos == 0:  # QoS 1 is not acked: the broker delivers it again after the restart
                self.ledger.source["qos0_dropped"] += 1
            return
        inbox = self._inbox
        if qos == 0 and len(inbox) >= self.max_queue:
            self.ledger.source["qos0_dropped"] += 1
            return
        inbox.append((topic, payload, qos, mid, dup, self._clock(), self._generation, ids))
        if len(inbox) == 1:
            self._wake.set()
