"""``edge-agent --once`` for MQTT: collect for a few seconds with a separate, clean session."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

import paho.mqtt.client as mqtt

from ...lineproto.encoder import LineEncoder
from .client import DEFAULT_RECEIVE_MAXIMUM, _build_client, _protocol
from .overlaps import Overlaps, broker_filters
from .payloads import Rejected, _opt
from .routes import SubscriptionStats, compile_parsers, route
from .tls import connect_failure, disconnect_reason

__all__ = ["OnceResult", "collect_once"]


@dataclass(frozen=True)
class OnceResult:
    """What :func:`collect_once` saw: lines, per-subscription counters, errors."""

    lines: List[str]
    subscriptions: Dict[str, Dict[str, Any]]
    connected: bool
    error: str = ""


def collect_once(config: Any, wait: float, *, default_tags: Optional[Dict[str, str]] = None,
                 precision: str = "ns", clock: Callable[[], int] = time.time_ns) -> OnceResult:
    """``edge-agent --once``: collect for ``wait`` seconds with a separate, clean session.

    The client id gets a ``-once-<pid>`` suffix and a clean session, so the
    running agent's persistent session (and its queued messages) is untouched.
    """
    encoder = LineEncoder(precision, default_tags)
    parsers = compile_parsers(config, list(_opt(config, "subscriptions", [])), encoder)
    stats = {p.template.template: SubscriptionStats() for p in parsers}
    lines: List[str] = []
    lock = threading.Lock()
    state: Dict[str, Any] = {"connected": False, "error": ""}
    base = str(_opt(config, "client_id", "") or f"edge-agent-{_opt(config, 'name', 'mqtt')}")
    client, connect = _build_client(config, f"{base}-once-{os.getpid()}", persistent=False,
                                    manual_ack=False, receive_maximum=DEFAULT_RECEIVE_MAXIMUM)
    qos = int(_opt(config, "qos", 1))
    v5 = _protocol(config) == mqtt.MQTTv5
    overlaps = Overlaps(p.filter for p in parsers)

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            state["error"] = f"connection refused: {reason}"
            return
        state["connected"] = True
        overlaps.subscribe(c, broker_filters((p.filter for p in parsers), v5), qos, v5)

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        now = clock()
        try:
            topic = msg._topic.decode("utf-8")
        except UnicodeDecodeError:
            return
        parser, captured = route(parsers, topic)
        if parser is None:
            return
        ids = getattr(msg.properties, "SubscriptionIdentifier", None) if msg.properties else None
        st = stats[parser.template.template]
        if overlaps.other_copy(parser.filter, tuple(ids or ())):
            with lock:
                st.overlap_copies += 1  # stored from the copy of this subscription
            return
        with lock:
            st.messages_received += 1
            try:
                parsed = parser.parse(topic, bytes(msg.payload), now, captured)
            except Rejected as exc:
                st.messages_rejected += 1
                st.last_reject_reason, st.last_reject_topic = exc.reason, topic
                return
            lines.extend(parsed.lines)
            st.points += len(parsed.lines)
            st.count_drops(parsed)

    def on_connect_fail(c: mqtt.Client, u: Any) -> None:
        state["error"] = connect_failure(c)

    def on_disconnect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if not state["connected"] and not state["error"]:
            state["error"] = disconnect_reason(c, reason)

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_connect_fail = on_connect_fail
    client.on_disconnect = on_disconnect
    connect()
    try:
        time.sleep(max(wait, 0.0))
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        return OnceResult(list(lines), {k: asdict(v) for k, v in stats.items()},
                          bool(state["connected"]), str(state["error"]))
