"""A small persistent index of recently committed MQTT messages, for redeliveries.

Why: the bridge acks a QoS 1 message only after its points are durable in the
disk buffer. If the agent dies (or the connection drops) after the commit but
before the broker has our PUBACK, the broker sends the message again with the
DUP flag. A message with no timestamp of its own gets the receive time, so the
second copy would become a second point. This index remembers, per packet id
(mid), the digest of the message, the receive time its points were given and
whether the commit finished.

Keying: by mid, because a broker holds a packet id until it gets the PUBACK
and resends an unacked message under the same id. Only DUP messages are looked
up: a message the broker sends for the first time is new by definition, even
when it repeats an earlier payload on the same topic (a sensor sending ``21.5``
every minute must not lose points). A hit also needs the same digest
(blake2b of qos, topic and payload) and must lie within ``window`` received
messages of now: a broker that allocates ids in sequence (mosquitto does)
cannot reuse a mid until about 65k later messages, while a genuine redelivery
is at most two in-flight windows back (ReceiveMaximum, 1000 here; mosquitto's
max_inflight_messages, 20 by default, for 3.1.1 clients). The index holds at
most one row per mid (65535), so it is bounded by construction.

The order of steps, and what a crash (kill -9) at each point leaves:

1. ``record_pending`` (before ``sink.add``): the mid, digest and the receive
   time used for the lines, one SQLite transaction per group.
2. ``sink.add`` + ``sink.wait_durable`` -> True.
3. ``mark_committed`` for the group.
4. PUBACK.

* Crash before 1: nothing written, nothing acked. The broker redelivers (DUP),
  the index has no entry, the message is committed once. No loss, no duplicate.
* Crash between 1 and 2 (or during 2): the entry is pending. The redelivery
  hits it and is committed **with the original receive time**: if the first
  commit did reach the disk, the second one writes identical lines, which
  InfluxDB stores as the same point (a point is identified by measurement,
  tags and time). No loss, no second point (an extra identical line in the
  buffer at worst).
* Crash between 2 and 3: same as above (pending -> identical lines again).
* Crash between 3 and 4, or the PUBACK lost with the connection: the entry is
  committed; the redelivery is skipped and acked. No duplicate.

Writing the entry *before* the commit is what makes every window safe: writing
it after would leave a window (commit done, entry not yet written) that gives
a second point with a new receive time, and checking-then-skipping on a
pending entry would lose data. Residual cases, documented rather than hidden:

* SQLite runs in WAL mode with ``synchronous=NORMAL`` unless ``sync="full"``:
  a kill -9 loses nothing, a power cut may lose the last transactions of the
  index (then a redelivery is treated as new: at worst one extra point).
* A broker that reuses a freed mid at once (not mosquitto) together with a
  message lost in the very disconnect and identical in topic and payload to
  the previous message under that mid would be skipped. The window check
  excludes this for sequential brokers.
* The index is per client id and state directory: moving the state directory
  away resets it (then redeliveries of that moment are treated as new).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from array import array
from pathlib import Path
from typing import Iterable, List, NamedTuple, Optional, Tuple, Union

__all__ = ["DEFAULT_WINDOW", "DedupEntry", "DedupIndex", "index_path", "message_digest"]

# Half the packet-id space: a redelivery is far closer, a reused mid far older.
DEFAULT_WINDOW = 32_768


def message_digest(topic: bytes, payload: bytes, qos: int) -> bytes:
    """16-byte digest of what makes a delivery the same message."""
    h = hashlib.blake2b(digest_size=16)
    h.update(bytes((qos,)))
    h.update(len(topic).to_bytes(4, "big"))
    h.update(topic)
    h.update(payload)
    return h.digest()


MAX_MID = 65_535  # MQTT packet identifiers are 1..65535
MARKS_MAX = 4096  # committed marks held in memory before they are written on their own
DIGEST_SIZE = 16
_ABSENT, _PENDING, _COMMITTED = 0, 1, 2


class DedupEntry(NamedTuple):
    digest: bytes
    receive_ns: int
    seq: int
    committed: bool


class DedupIndex:
    """Per-mid index of recent messages, in SQLite at ``path``, mirrored in memory.

    Thread-safe; every method is one short transaction. ``seq`` counts QoS 1+
    messages received by the source and gives the window check its clock.
    """

    def __init__(self, path: Union[str, Path], window: int = DEFAULT_WINDOW,
                 sync: str = "normal") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.window = window
        self._lock = threading.Lock()
        self._marks: List[Tuple[int, bytes]] = []  # committed in memory, not yet on disk
        self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                   isolation_level=None)
        # SD cards: 1 KiB pages (for a new file) and no -shm wal-index (exclusive:
        # this source is the file's one user) cut what a transaction writes from
        # ~5 KB to ~2 KB, as for the disk buffer (buffer/logcache.py).
        self._db.execute("PRAGMA page_size=1024")
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (mid INTEGER PRIMARY KEY, digest BLOB NOT NULL,"
            " receive_ns INTEGER NOT NULL, seq INTEGER NOT NULL, committed INTEGER NOT NULL)"
        )
        # The in-memory mirror, indexed by mid: flat arrays (2.1 MiB for the whole
        # packet-id space) rather than a dict of tuples, which held up to 65535
        # entries at ~200 bytes each (measured with bench/mqtt.py under QoS 1:
        # agent VmHWM 56.4 -> 44 MiB).
        self._state = bytearray(MAX_MID + 1)
        self._digests = bytearray(DIGEST_SIZE * (MAX_MID + 1))
        self._receive_ns = array("q", bytes(8 * (MAX_MID + 1)))
        self._seqs = array("q", bytes(8 * (MAX_MID + 1)))
        self.seq = 0
        for mid, digest, receive_ns, seq, committed in self._db.execute(
                "SELECT mid, digest, receive_ns, seq, committed FROM seen"):
            if 0 <= mid <= MAX_MID and len(digest) == DIGEST_SIZE:
                self._put(mid, bytes(digest), receive_ns, seq, bool(committed))
                self.seq = max(self.seq, seq)

    def __len__(self) -> int:
        return len(self._state) - self._state.count(_ABSENT)

    def _put(self, mid: int, digest: bytes, receive_ns: int, seq: int, committed: bool) -> None:
        if len(digest) != DIGEST_SIZE:  # a slice assignment of another size would shift all
            raise ValueError(f"a dedup digest has {DIGEST_SIZE} bytes, not {len(digest)}")
        self._digests[mid * DIGEST_SIZE:(mid + 1) * DIGEST_SIZE] = digest
        self._receive_ns[mid] = receive_ns
        self._seqs[mid] = seq
        self._state[mid] = _COMMITTED if committed else _PENDING

    def _digest_is(self, mid: int, digest: bytes) -> bool:
        return self._digests[mid * DIGEST_SIZE:(mid + 1) * DIGEST_SIZE] == digest

    def next_seq(self) -> int:
        """Count one received QoS 1+ message and return its sequence number."""
        with self._lock:
            self.seq += 1
            return self.seq

    def lookup(self, mid: int, digest: bytes, seq: Optional[int] = None) -> Optional[DedupEntry]:
        """The entry when ``mid`` was recorded for the same digest within the window."""
        if not 0 <= mid <= MAX_MID or not self._state[mid] or not self._digest_is(mid, digest):
            return None
        now = self.seq if seq is None else seq
        if now - self._seqs[mid] > self.window:
            return None
        return DedupEntry(digest, self._receive_ns[mid], self._seqs[mid],
                          self._state[mid] == _COMMITTED)

    def record_pending(self, items: Iterable[Tuple[int, bytes, int, int]]) -> None:
        """Write ``(mid, digest, receive_ns, seq)`` rows before their lines are added."""
        rows = [(mid, digest, receive_ns, seq, 0) for mid, digest, receive_ns, seq in items]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                # Deferred marks first: a row re-recorded below is pending again.
                self._write_marks()
                self._db.executemany(
                    "INSERT OR REPLACE INTO seen (mid, digest, receive_ns, seq, committed)"
                    " VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
                self._marks = []
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            for mid, digest, receive_ns, seq, _ in rows:
                self._put(mid, digest, receive_ns, seq, False)

    def mark_committed(self, items: Iterable[Tuple[int, bytes]]) -> None:
        """Mark ``(mid, digest)`` rows committed (only if the row is still that message).

        At once in memory; on disk with the next ``record_pending`` transaction
        (or at close), which saves a write per message group (SD cards). A mark
        lost in a crash leaves the row pending: the redelivery is committed
        again with its original receive time, the same point (see above).
        """
        with self._lock:
            state = self._state
            rows = [(mid, digest) for mid, digest in items
                    if state[mid] == _PENDING and self._digest_is(mid, digest)]
            for mid, _ in rows:
                state[mid] = _COMMITTED
            self._marks.extend(rows)
            if len(self._marks) >= MARKS_MAX:
                self._commit_marks()

    def _write_marks(self) -> None:
        if self._marks:
            self._db.executemany(
                "UPDATE seen SET committed = 1 WHERE mid = ? AND digest = ?", self._marks)

    def _commit_marks(self) -> None:
        if not self._marks:
            return
        self._db.execute("BEGIN")
        try:
            self._write_marks()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._marks = []

    def newest_receive_ns(self) -> int:
        """The latest receive time recorded (0 when empty): moved times included."""
        with self._lock:
            return max(self._receive_ns) if len(self) else 0

    def close(self) -> None:
        with self._lock:
            try:
                self._commit_marks()
            finally:
                self._db.close()


def index_path(state_dir: Union[str, Path], client_id: str) -> Path:
    """Where a source keeps its index: one file per client id."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client_id) or "default"
    return Path(os.fspath(state_dir)) / f"mqtt-dedup-{safe}.sqlite"
