"""The dead-letter file: lines InfluxDB rejected on their own, kept for a human.

Each entry is a one-line comment header, then the rejected lines as they were
sent, so the file can be fixed by hand and replayed (``#`` lines are comments
in line protocol)::

    # 2024-05-17T12:34:56Z bucket=sensors HTTP 400: partial write: unable to parse ...
    p,bad v= 3

At ``max_bytes`` (:class:`RotatingFile`) the file is renamed to ``<path>.1`` (replacing the previous
one) and a new file started, so the dead letters never take more than about
twice ``max_bytes`` of disk.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from typing import Callable, List, Sequence, Union

from ..destination import Destination

__all__ = ["DeadLetters", "RotatingFile"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024


class RotatingFile:
    """An append-only file kept under ``max_bytes``: the size budget of every kept-for-a-human file.

    An entry that would take the file past ``max_bytes`` first renames it to
    ``<path>.1`` (replacing the previous one), so the file and its one
    predecessor never take more than about twice ``max_bytes``. The dead
    letters and the MQTT rejected-messages file both use it.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1024")
        self.path = os.fspath(path)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)

    def append(self, entry: bytes, sync: bool = False) -> None:
        """Append ``entry`` (rotating first when it would pass the cap); ``sync``: fsync it."""
        with self._lock:
            try:
                size = os.path.getsize(self.path)
            except FileNotFoundError:
                size = 0
            if size and size + len(entry) > self.max_bytes:
                os.replace(self.path, self.path + ".1")
            with open(self.path, "ab") as f:
                f.write(entry)
                if sync:
                    f.flush()
                    os.fsync(f.fileno())

    def files(self) -> List[str]:
        """The files that exist, newest first."""
        return [p for p in (self.path, self.path + ".1") if os.path.exists(p)]


class DeadLetters:
    """Appends rejected lines with the server's reason; rotates at ``max_bytes``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._file = RotatingFile(path, max_bytes)
        self.path = self._file.path
        self.max_bytes = self._file.max_bytes
        self._clock = clock

    def add(
        self,
        dest: Destination,
        lines: Sequence[Union[str, bytes]],
        status: int,
        message: str,
    ) -> None:
        """Record ``lines`` that InfluxDB rejected with ``status`` and ``message``."""
        stamp = datetime.fromtimestamp(self._clock(), timezone.utc)
        when = stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{stamp.microsecond // 1000:03d}Z"
        reason = " ".join(str(message).split())  # one line, whatever the server sent
        header = f"# {when} bucket={dest.bucket} HTTP {status}: {reason}\n".encode()
        body = [line if isinstance(line, bytes) else line.encode("utf-8") for line in lines]
        self._file.append(self._fit(header, body))

    def _fit(self, header: bytes, body: List[bytes]) -> bytes:
        """The entry, cut short with a note if it alone would pass the cap."""
        entry = header + b"".join(line + b"\n" for line in body)
        if len(entry) <= self.max_bytes:
            return entry
        kept: List[bytes] = [header]
        size = len(header) + 100  # room for the note
        for i, line in enumerate(body):
            if size + len(line) + 1 > self.max_bytes:
                kept.append(f"# ... {len(body) - i} more lines not kept (file cap)\n".encode())
                break
            kept.append(line + b"\n")
            size += len(line) + 1
        return b"".join(kept)

    def files(self) -> List[str]:
        """The dead-letter files that exist, newest first."""
        return self._file.files()
