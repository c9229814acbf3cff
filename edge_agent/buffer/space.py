"""The buffer's room on the real filesystem: statvfs, a reserve file, disk-full errors.

``max_size`` is what the user allows; the filesystem may hold less (a 3 MiB
partition, a card shared with logs). The buffer keeps its directory within
what the filesystem can still give it, minus ``HEADROOM`` for SQLite's own
growth, so it evicts (counted) before the disk is full.

A full disk must never stop the buffer from *removing* what was delivered,
from opening at the next start, or from writing its counters: SQLite needs a
few pages of WAL for any of these. ``<buffer>.reserve`` is a file of
``RESERVE_BYTES`` allocated while there is room; when a write fails for want
of space it is deleted and the write tried once more. It is made again when
the filesystem has room for it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from typing import Tuple

__all__ = ["HEADROOM", "RESERVE_BYTES", "Space", "fit", "is_disk_full"]

logger = logging.getLogger("edge_agent.buffer")

RESERVE_BYTES = 256 * 1024
HEADROOM = 128 * 1024
_FILES = ("cache.db", "cache.db-wal", "cache.db-shm")


def is_disk_full(exc: BaseException) -> bool:
    """SQLite or the OS said there is no room (not damage, not a lock)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.Error) and "full" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _allocated(path: str) -> int:
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


class Space:
    """What the buffer directory may grow to, and the reserve file beside it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.reserve_path = directory.rstrip(os.sep) + ".reserve"

    def free(self) -> int:
        """Bytes an unprivileged writer can still allocate on the filesystem."""
        st = os.statvfs(self.directory)
        return st.f_bavail * st.f_frsize

    def used(self) -> int:
        """Bytes the buffer's SQLite files occupy now."""
        return sum(_allocated(os.path.join(self.directory, name)) for name in _FILES)

    def room(self) -> int:
        """The most the buffer directory may occupy: what it has plus what is free,
        less the headroom and, while it is missing, the reserve file."""
        missing = 0 if os.path.exists(self.reserve_path) else RESERVE_BYTES
        return max(self.used() + self.free() - HEADROOM - missing, 0)

    def ensure_reserve(self) -> bool:
        """Allocate the reserve file when missing and there is room; True when it exists."""
        if os.path.exists(self.reserve_path):
            return True
        try:
            if self.free() < RESERVE_BYTES + HEADROOM:
                return False
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return False
        try:
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                os.write(fd, bytes(RESERVE_BYTES))  # filesystems without fallocate
            os.fsync(fd)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.reserve_path)
            return False
        os.close(fd)
        return True

    def release_reserve(self) -> bool:
        """Delete the reserve file (a write failed for want of space); True if there was one."""
        try:
            os.unlink(self.reserve_path)
        except OSError:
            return False
        logger.warning("disk buffer %s: the filesystem is full; released the %d KiB reserve "
                       "so the buffer can keep deleting delivered data and counting",
                       self.directory, RESERVE_BYTES // 1024)
        return True


def fit(directory: str, max_size: int) -> Tuple[Space, int]:
    """The buffer's space and its size budget: ``max_size``, or less when the
    filesystem cannot hold it (warned: once per open, i.e. once at start)."""
    os.makedirs(directory, exist_ok=True)
    space = Space(directory)
    space.ensure_reserve()
    room = space.room()
    if room < max_size:
        logger.warning(
            "disk buffer %s: buffer.max_size is %d bytes but the filesystem has room "
            "for %d; the buffer keeps at most that much (oldest data evicted first)",
            directory, max_size, room)
    return space, min(max_size, room)
