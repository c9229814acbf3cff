"""One writer per state directory: an exclusive ``flock`` on ``<state_dir>/lock``.

Two processes appending to and removing from one SQLite log lose and double
points without an error from either. The agent and ``--once`` take this lock
before they open the buffer; a second one is refused with one line naming the
pid that holds it. The lock goes with the process (kill -9 included): the
kernel drops it, so a stale lock file never blocks a restart. ``status`` only
reads and never takes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Optional

from ..errors import BufferError_

__all__ = ["LOCK_NAME", "StateLock", "lock_holder"]

LOCK_NAME = "lock"


def _read_pid(fd: int) -> Optional[int]:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode("ascii").strip() or "x")
    return None


def lock_holder(state_dir: str) -> Optional[int]:
    """The pid written in the lock file (it may be stale; the flock is the truth)."""
    try:
        fd = os.open(os.path.join(state_dir, LOCK_NAME), os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read_pid(fd)
    finally:
        os.close(fd)


class StateLock:
    """Held from ``acquire`` until ``release`` (or the process ends)."""

    def __init__(self, state_dir: str, fd: int) -> None:
        self.state_dir = state_dir
        self._fd: Optional[int] = fd

    @classmethod
    def acquire(cls, state_dir: str, setting: str = "agent.state_dir") -> StateLock:
        """Take the lock or raise ``BufferError_`` naming the pid that holds it
        (and ``setting``, the option that named the directory)."""
        path = os.path.join(state_dir, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise BufferError_(f"cannot open the lock file {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise BufferError_(
                f"{setting} {state_dir} is in use by another edge-agent ({who} holds "
                f"{path}); stop it first or give this one its own "
                f"{setting.rpartition('.')[2]}") from None
        # The pid is for the message above; a full disk must not stop the agent.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return cls(state_dir, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
