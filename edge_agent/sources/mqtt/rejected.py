"""The rejected-messages file: every MQTT message that did not become points, kept for a human.

One JSON object per line (a payload may hold newlines, quotes or bytes that
are not UTF-8), appended before the message is acknowledged to the broker::

    {"time": "2026-12-01T22:05:46.123Z", "source": "bridge",
     "subscription": "zigbee2mqtt/{device}", "topic": "zigbee2mqtt/Kitchen",
     "qos": 1, "reason": "invalid JSON: Expecting value at line 1 col 1",
     "n": 17, "bytes": 5, "payload": "oops!", "mid": 42, "id": "9f0c..."}

* ``subscription`` is the topic template whose rules refused it, or ``null``
  for a message no subscription matches (``reason`` says so).
* ``payload`` is the text (the first :data:`PAYLOAD_KEEP` bytes, ``truncated``
  set when cut); a payload that is not UTF-8 is kept as ``payload_base64``.
* ``n`` is the subscription's rejected count including this message (for
  unmatched messages: the source's unmatched count). The file is the journal
  of these counters: the counters file is a checkpoint written about once a
  second, and on start the counters take the larger of the two, so a kill -9
  between the append and the checkpoint loses no count.
* ``mid`` and ``id`` (a digest of qos, topic and payload) let a restarted
  agent recognise the broker's redelivery of a message it had already kept
  here but not yet acknowledged (see :mod:`.dedup`), so no message is kept twice.

The size budget is the dead letters' (:class:`RotatingFile`: at
``buffer.dead_letter_max`` the file becomes ``<path>.1``).
"""

from __future__ import annotations

import base64
import json
import os
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

from ...buffer.deadletter import DEFAULT_MAX_BYTES, RotatingFile

__all__ = ["PAYLOAD_KEEP", "RejectedFile", "RejectedScan", "rejected_entry"]

PAYLOAD_KEEP = 4096  # bytes of a rejected payload kept in the file
RECENT_KEEP = 8192  # (mid, digest) pairs remembered for redeliveries (> 2 in-flight windows)


def iso_time(seconds: float) -> str:
    """UTC, millisecond precision: ``2026-12-01T22:05:46.123Z``."""
    stamp = datetime.fromtimestamp(seconds, timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{stamp.microsecond // 1000:03d}Z"


def rejected_entry(*, when: float, source: str, subscription: Optional[str], topic: bytes,
                   payload: bytes, qos: int, mid: int, digest: bytes, reason: str, n: int,
                   keep: int = PAYLOAD_KEEP) -> Dict[str, Any]:
    """The JSON object of one rejected message."""
    entry: Dict[str, Any] = {
        "time": iso_time(when), "source": source, "subscription": subscription,
        "topic": topic.decode("utf-8", "replace"), "qos": qos,
        "reason": " ".join(reason.split()), "n": n, "bytes": len(payload)}
    kept = payload[:keep]
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        entry["payload_base64"] = base64.b64encode(kept).decode("ascii")
    else:
        entry["payload"] = text if len(payload) <= keep else kept.decode("utf-8", "ignore")
    if len(payload) > keep:
        entry["truncated"] = True
    if qos and digest:
        entry["mid"] = mid
        entry["id"] = digest.hex()
    return entry


@dataclass
class RejectedScan:
    """What the file says on start: the counters' journal and recent redeliverable messages."""

    counts: Dict[str, int] = field(default_factory=dict)  # subscription ("" = unmatched) -> n
    last: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # the entry with that n
    recent: Set[Tuple[int, bytes]] = field(default_factory=set)  # (mid, digest)


class RejectedFile:
    """Appends rejected messages (JSON lines) under the dead letters' size budget."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._file = RotatingFile(path, max_bytes)
        self.path = self._file.path
        self._recent: Deque[Tuple[int, bytes]] = deque(maxlen=RECENT_KEEP)
        self._recent_set: Set[Tuple[int, bytes]] = set()

    def add(self, entries: List[Dict[str, Any]], sync: bool = True) -> None:
        """Append ``entries`` in one write; ``sync``: on disk before this returns.

        An acknowledgement is a promise to the broker, so by default the entries
        are fsync'd (one fsync per group of messages, only when it had rejections).
        """
        if not entries:
            return
        data = "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n"
                       for e in entries).encode("utf-8")
        if len(data) > self._file.max_bytes:  # a group larger than the cap: one at a time
            for e in entries:
                self._file.append(
                    (json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n")
                    .encode("utf-8"), sync)
        else:
            self._file.append(data, sync)
        for e in entries:
            if "id" in e:
                self._remember((int(e["mid"]), bytes.fromhex(e["id"])))

    def _remember(self, key: Tuple[int, bytes]) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(key)
        self._recent_set.add(key)

    def holds(self, mid: int, digest: bytes) -> bool:
        """True when a recent entry is this message (a redelivery after a crash)."""
        return (mid, digest) in self._recent_set

    def files(self) -> List[str]:
        return self._file.files()

    def scan(self) -> RejectedScan:
        """Read both files (oldest first): the highest ``n`` per subscription, recent ids.

        Lines that are not entries (a torn last line after a power cut) are skipped.
        """
        out = RejectedScan()
        for path in reversed(self.files()):
            try:
                with open(path, "rb") as handle:
                    raw_lines = handle.read().splitlines()
            except OSError:
                continue
            for raw in raw_lines:
                try:
                    entry = json.loads(raw)
                    sub = entry.get("subscription") or ""
                    n = int(entry.get("n", 0))
                except (ValueError, TypeError, AttributeError):
                    continue
                if n >= out.counts.get(sub, 0):
                    out.counts[sub] = n
                    out.last[sub] = entry
                if "id" in entry and "mid" in entry:
                    try:
                        self._remember((int(entry["mid"]), bytes.fromhex(entry["id"])))
                    except (ValueError, TypeError):
                        continue
        out.recent = set(self._recent_set)
        return out
