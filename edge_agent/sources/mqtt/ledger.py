"""The MQTT source's own bookkeeping: per-subscription counters that survive restarts.

Every message that does not become points is counted here, per subscription
(``messages_rejected``; a message no subscription matches in the source's
``unmatched``), with the last reason, topic and time, and kept in the
rejected-messages file (:mod:`.rejected`) before it is acknowledged.

Two files in ``state_dir`` per source (``name`` made file-safe):

* ``mqtt-<name>-counters.json``: a checkpoint of every counter, written
  (tmp file, fsync, rename) at most every :data:`CHECKPOINT_EVERY` seconds
  when something changed, and on stop.
* ``mqtt-<name>-rejected.jsonl``: the rejected messages; each entry carries
  the count it brought its subscription to (``n``). On start the counters take
  the larger of checkpoint and journal, so a kill -9 between an append and the
  next checkpoint loses no rejection count. The other counters (received,
  points, ...) may lag by up to one checkpoint interval after a kill -9.

Without a ``state_dir`` (``--once``, library use) the counters live in memory
and rejected messages are only counted.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, fields
from typing import Any, Callable, Dict, List, Optional

from ...buffer.deadletter import DEFAULT_MAX_BYTES
from .rejected import RejectedFile, rejected_entry
from .routes import SubscriptionStats

__all__ = ["CHECKPOINT_EVERY", "Ledger", "SOURCE_COUNTS", "safe_name"]

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 5.0  # seconds; the rejection counts are exact anyway (the journal)
SOURCE_COUNTS = ("messages_unmatched", "qos0_dropped", "duplicates_skipped")
_STAT_NAMES = {f.name for f in fields(SubscriptionStats)}
UNMATCHED_REASON = "no subscription matches this topic"


def safe_name(text: str) -> str:
    """``text`` as one file-name component (letters, digits, ``-_.``; others ``_``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "default"


class Ledger:
    """Counters per subscription template and per source; the rejected-messages file."""

    def __init__(self, name: str, state_dir: Optional[str] = None,
                 rejected_max: int = DEFAULT_MAX_BYTES,
                 clock: Callable[[], float] = time.time, load: bool = True) -> None:
        """``load``: read the files now; else at :meth:`open` (a source reads them when it
        starts, after the source it replaces on a reload has written its last counts)."""
        self.name = name
        self._clock = clock
        self.stats: Dict[str, SubscriptionStats] = {}
        self.source: Dict[str, int] = {k: 0 for k in SOURCE_COUNTS}
        self.last_unmatched = ""
        # The filters the persistent session holds at the broker: those subscribed
        # now, and removed ones not yet unsubscribed (the broker would keep
        # sending their messages after a config change).
        self.filters: List[str] = []
        self.stale_filters: List[str] = []
        self._pending: List[Dict[str, Any]] = []
        self._last_checkpoint = clock()
        self._write_lock = threading.Lock()  # the worker and the network thread both write
        self.path: Optional[str] = None
        self.rejected: Optional[RejectedFile] = None
        if state_dir:
            base = os.path.join(os.fspath(state_dir), f"mqtt-{safe_name(name)}")
            self.path = base + "-counters.json"
            self.rejected = RejectedFile(base + "-rejected.jsonl", rejected_max)
        self._loaded = False
        if load:
            self.open()

    # -- counting ---------------------------------------------------------------

    def sub(self, template: str) -> SubscriptionStats:
        stats = self.stats.get(template)
        if stats is None:
            stats = self.stats[template] = SubscriptionStats()
        return stats

    def reject(self, template: Optional[str], topic: bytes, payload: bytes, qos: int,
               mid: int, digest: bytes, reason: str) -> None:
        """Count one message that did not become points and queue its entry for :meth:`commit`."""
        when = self._clock()
        if template is None:
            self.source["messages_unmatched"] += 1
            self.last_unmatched = topic.decode("utf-8", "replace")
            n = self.source["messages_unmatched"]
        else:
            stats = self.sub(template)
            stats.messages_rejected += 1
            stats.last_reject_reason = reason
            stats.last_reject_topic = topic.decode("utf-8", "replace")
            stats.last_reject_time = when
            n = stats.messages_rejected
        if self.rejected is not None:
            self._pending.append(rejected_entry(
                when=when, source=self.name, subscription=template, topic=topic,
                payload=payload, qos=qos, mid=mid, digest=digest, reason=reason, n=n))

    def commit(self) -> None:
        """Write the queued rejected messages to disk (fsync'd): before their acks."""
        if self._pending and self.rejected is not None:
            self.rejected.add(self._pending)
        self._pending = []

    def kept(self, mid: int, digest: bytes) -> bool:
        """The rejected file already holds this message (a redelivery of it after a crash)."""
        return self.rejected is not None and self.rejected.holds(mid, digest)

    # -- persistence --------------------------------------------------------------

    def snapshot(self) -> Dict[str, Any]:
        return {"source": self.name, "time": self._clock(), "counts": dict(self.source),
                "last_unmatched": self.last_unmatched, "filters": self.filters,
                "stale_filters": self.stale_filters,
                "subscriptions": {k: asdict(v) for k, v in self.stats.items()}}

    def checkpoint(self, force: bool = False) -> None:
        """Write the counters file if due (or ``force``); errors are logged, not raised."""
        now = self._clock()
        if self.path is None or (not force and now - self._last_checkpoint < CHECKPOINT_EVERY):
            return
        self._last_checkpoint = now
        tmp = self.path + ".tmp"
        with self._write_lock:
            try:
                with open(tmp, "w", encoding="utf-8") as handle:
                    json.dump(self.snapshot(), handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("mqtt %s: cannot write %s: %s", self.name, self.path, exc)

    def subscribed(self, filters: List[str]) -> None:
        """``filters`` are now the session's; earlier ones not among them become stale."""
        current = sorted(set(filters))
        self.stale_filters = sorted((set(self.filters) | set(self.stale_filters)) - set(current))
        self.filters = current
        self.checkpoint(force=True)

    def unsubscribed(self, filters: List[str]) -> None:
        self.stale_filters = sorted(set(self.stale_filters) - set(filters))
        self.checkpoint(force=True)

    def open(self) -> None:
        """Read the counters file and the rejected file's journal (once)."""
        if self._loaded or self.path is None:
            return
        self._loaded = True
        self._load()

    def _load(self) -> None:
        assert self.path is not None and self.rejected is not None
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            subs = dict(data.get("subscriptions", {}))
            counts = dict(data.get("counts", {}))
        except FileNotFoundError:
            subs, counts, data = {}, {}, {}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("mqtt %s: counters file %s unreadable (%s); starting from the "
                        "rejected-messages file", self.name, self.path, exc)
            subs, counts, data = {}, {}, {}
        for template, values in subs.items():
            if isinstance(values, dict):
                known = {k: v for k, v in values.items() if k in _STAT_NAMES}
                try:
                    self.stats[str(template)] = SubscriptionStats(**known)
                except TypeError:
                    continue
        for key in SOURCE_COUNTS:
            value = counts.get(key, 0)
            self.source[key] = int(value) if isinstance(value, int) else 0
        self.last_unmatched = str(data.get("last_unmatched", "") or "")
        for key in ("filters", "stale_filters"):
            value = data.get(key)
            if isinstance(value, list):
                setattr(self, key, [str(f) for f in value])
        scan = self.rejected.scan()
        for template, n in scan.counts.items():
            last = scan.last[template]
            if not template:
                if n > self.source["messages_unmatched"]:
                    self.source["messages_unmatched"] = n
                    self.last_unmatched = str(last.get("topic", ""))
                continue
            stats = self.sub(template)
            if n > stats.messages_rejected:
                stats.messages_rejected = n
                stats.last_reject_reason = str(last.get("reason", ""))
                stats.last_reject_topic = str(last.get("topic", ""))
                stats.last_reject_time = _parse_time(str(last.get("time", "")))

    def files(self) -> List[str]:
        return self.rejected.files() if self.rejected is not None else []

    def where(self) -> str:
        """Where rejected messages go, for a log line."""
        return (f"kept in {self.rejected.path}" if self.rejected is not None
                else "counted only: no state_dir")


def _parse_time(text: str) -> float:
    from datetime import datetime, timezone

    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=timezone.utc).timestamp()
    except ValueError:
        return 0.0


def offline_sources(state_dir: str) -> List[Dict[str, Any]]:
    """What ``status`` shows of each MQTT source when no agent runs: its persistent counters."""
    out: List[Dict[str, Any]] = []
    try:
        names = sorted(os.listdir(state_dir))
    except OSError:
        return out
    for entry in names:
        if not (entry.startswith("mqtt-") and entry.endswith("-counters.json")):
            continue
        try:
            with open(os.path.join(state_dir, entry), encoding="utf-8") as handle:
                name = str(json.load(handle).get("source", ""))
        except (OSError, ValueError, AttributeError):
            continue
        if not name or f"mqtt-{safe_name(name)}-counters.json" != entry:
            continue
        ledger = Ledger(name, state_dir)
        out.append(dict(ledger.source, name=name, state="stopped",
                        last_unmatched=ledger.last_unmatched, rejected_files=ledger.files(),
                        subscriptions={k: asdict(v) for k, v in ledger.stats.items()}))
    return out


def status_lines(src: Dict[str, Any]) -> List[str]:
    """The MQTT lines of ``edge-agent status`` for one source's status (``[]`` if not MQTT).

    Short lines, details indented below what they explain (the status fits 80 columns).
    """
    subs = src.get("subscriptions")
    if not isinstance(subs, dict):
        return []
    out: List[str] = []
    rejected = sum(int(v.get("messages_rejected", 0)) for v in subs.values())
    unmatched = int(src.get("messages_unmatched", 0))
    head = f"mqtt {src.get('name')}: {rejected} rejected, {unmatched} unmatched"
    if unmatched and src.get("last_unmatched"):
        head += f" (last on {src['last_unmatched']!r})"
    out.append(head + f", {int(src.get('qos0_dropped', 0))} QoS 0 dropped")
    files = src.get("rejected_files") or []
    if files:
        out.append(f"  rejected messages in {files[0]}")
    for flt in src.get("refused") or []:
        out.append(f"subscription {flt!r}: refused by the broker")
    for template, v in subs.items():
        line = (f"subscription {template!r}: {int(v.get('messages_received', 0))} received, "
                f"{int(v.get('points', 0))} points, {int(v.get('messages_rejected', 0))} rejected")
        out.append(line)
        extras = [f"{int(v[key])} {what}" for key, what in (
            ("overlap_copies", "overlap copies skipped"),
            ("duplicates_skipped", "redeliveries skipped"),
            ("timestamps_shifted", "timestamps shifted"),
            ("fields_dropped", "fields dropped")) if v.get(key)]
        if extras:
            out.append("  " + ", ".join(extras))
        if v.get("messages_rejected") and v.get("last_reject_reason"):
            when = float(v.get("last_reject_time") or 0)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else "?"
            out.append(f"  last rejected {stamp} on {v.get('last_reject_topic', '')!r}:")
            out.append(f"    {v['last_reject_reason']}")
    return out
