"""Overlapping subscriptions: one message stored once, by its most specific subscription.

MQTT 5 section 3.3.4: when a message matches several of a client's
subscriptions the server "MAY deliver further copies of the message, one for
each additional matching subscription"; each copy then carries the
Subscription Identifier of its subscription (one copy for several must carry
all of theirs). mosquitto 2.0 sends MQTT 5 clients one copy per matching
subscription, and MQTT 3.1.1 clients a single copy (tested in
tests/integration/test_mqtt_overlaps.py).

So with MQTT 5 every filter is subscribed in its own SUBSCRIBE with its own
identifier (:func:`subscription_ids`: derived from the filter text, so it is
the same after a restart, when the broker still holds messages queued for the
persistent session). :meth:`Overlaps.other_copy` tells a copy delivered for a
less specific subscription (skipped, counted as ``overlap_copies``) from the
copy of the chosen one (:mod:`.routes` decides which that is). A message that
carries no identifier, or one that no current filter has (queued under an
earlier config), is stored: never dropped on a guess.

MQTT 3.1.1 has no identifiers. There the bridge does not subscribe a filter
that another of its filters covers (``a/+/t`` under ``a/#``: :func:`covers`);
the broker then has no overlapping subscriptions to copy for, and the worker
routes the messages locally to the most specific subscription as always.
Filters that overlap only partly (``a/+/t`` and ``a/b/+``) are both
subscribed; for those the bridge relies on the broker sending one copy
(mosquitto does; the 3.1.1 spec allows either, section 3.3.5).
"""

from __future__ import annotations

import zlib
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

__all__ = ["MAX_SUBSCRIPTION_ID", "Overlaps", "broker_filters", "covers", "subscription_ids"]

MAX_SUBSCRIPTION_ID = 268_435_455  # a variable byte integer of four bytes (MQTT 5 3.8.2.1.2)


def covers(outer: str, inner: str) -> bool:
    """True when every topic that filter ``inner`` matches also matches filter ``outer``."""
    a, b = outer.split("/"), inner.split("/")
    if b[0].startswith("$") and a[0] in ("+", "#"):
        return False  # wildcards never match a first level starting with $ (MQTT 4.7.2)
    for i, level in enumerate(a):
        if level == "#":
            return True
        if i >= len(b) or b[i] == "#":
            return False
        if level == "+":
            continue
        if b[i] == "+" or b[i] != level:
            return False
    return len(a) == len(b)


def broker_filters(filters: Iterable[str], v5: bool) -> List[str]:
    """The filters to SUBSCRIBE: all with MQTT 5, the uncovered ones with MQTT 3.1.1."""
    unique = sorted(set(filters))
    if v5:
        return unique
    return [f for f in unique if not any(g != f and covers(g, f) for g in unique)]


def subscription_ids(filters: Iterable[str]) -> Dict[str, int]:
    """A stable identifier per filter: crc32 of its text, the next free one on a clash."""
    out: Dict[str, int] = {}
    used = set()
    for flt in sorted(set(filters)):
        sid = zlib.crc32(flt.encode("utf-8")) % MAX_SUBSCRIPTION_ID + 1
        while sid in used:
            sid = sid % MAX_SUBSCRIPTION_ID + 1
        used.add(sid)
        out[flt] = sid
    return out


class Overlaps:
    """The identifiers of the current filters, and the copy test of the worker."""

    def __init__(self, filters: Iterable[str] = ()) -> None:
        self.ids: Dict[str, int] = {}
        self._known: frozenset = frozenset()
        self.update(filters)

    def update(self, filters: Iterable[str]) -> None:
        self.ids = subscription_ids(filters)
        self._known = frozenset(self.ids.values())

    def other_copy(self, chosen_filter: str, ids: Tuple[int, ...]) -> bool:
        """True for a copy the broker sent only for other (known) subscriptions."""
        if not ids:
            return False
        sid = self.ids.get(chosen_filter)
        if sid is None or sid in ids:
            return False
        return all(i in self._known for i in ids)

    def subscribe(self, client: Any, filters: Sequence[str], qos: int, v5: bool
                  ) -> List[Tuple[str, int]]:
        """SUBSCRIBE ``filters``; ``[(filter, mid)]`` of the MQTT 5 SUBSCRIBE packets sent.

        MQTT 5: one SUBSCRIBE per filter (an identifier applies to a whole
        packet), with retainHandling 1: retained messages only for a
        subscription the session did not have, so a reconnect does not replay
        them as new points. MQTT 3.1.1: one SUBSCRIBE for all.
        """
        if not filters:
            return []
        if not v5:
            client.subscribe([(f, qos) for f in filters])
            return []
        sent = []
        for flt in filters:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = self.ids[flt]
            _, mid = client.subscribe(flt, options=SubscribeOptions(qos=qos, retainHandling=1),
                                      properties=props)
            sent.append((flt, mid))
        return sent
