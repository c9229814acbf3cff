"""Where the agent keeps its data in ``agent.state_dir``: the buffer and the dead letters.

One place for the paths and settings, shared by the agent, ``--once`` and ``status``.
Whoever opens the buffer for writing holds the state directory's lock
(:mod:`edge_agent.buffer.lock`) until the buffer is closed, and notes its
counters in the journal in RAM (:mod:`edge_agent.buffer.tally`, found by
:mod:`.runtime`); ``status`` reads without either (``read_buffer_state``).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from ..buffer.deadletter import DeadLetters
from ..buffer.disklog import DiskBuffer
from ..buffer.lock import StateLock
from ..config import Config
from .runtime import open_tally

__all__ = ["buffer_dir", "open_buffer", "open_dead_letters", "read_buffer_state"]


def buffer_dir(config: Config) -> str:
    return os.path.join(config.agent.state_dir, "buffer")


def open_buffer(config: Config) -> DiskBuffer:
    """The disk buffer with the config's budget and sync level, this process its only writer.

    Raises ``BufferError_`` (one line naming the pid) when another process holds
    the state directory.
    """
    os.makedirs(config.agent.state_dir, exist_ok=True)
    lock = StateLock.acquire(config.agent.state_dir)
    try:
        buffer = DiskBuffer(buffer_dir(config), max_size=config.buffer.max_size,
                            max_age=config.buffer.max_age, sync=config.buffer.sync, lock=lock)
    except BaseException:
        lock.release()
        raise
    tally = open_tally(config.agent.state_dir)
    if tally is not None:
        buffer.attach_tally(tally)
        buffer.persist_counters(0.0)  # what the journal recovered, on disk too
    return buffer


def read_buffer_state(config: Config) -> Optional[Dict[str, Any]]:
    """The stopped buffer's totals and counters, read without writing anything.

    After a kill the counters are those the journal in RAM adds to the last
    commit (what the next start will count), ``"unsaved"`` the points the dead
    run held in memory.
    """
    from ..buffer.recovery import peek_meta
    from ..buffer.tally import Tally, join_record
    from .runtime import tally_path

    meta = peek_meta(buffer_dir(config))
    path = tally_path(config.agent.state_dir)
    if meta is not None and path is not None:
        found = join_record(meta, Tally.peek(path))
        if found is not None:
            meta["counters"], meta["unsaved"], _ = found
    return meta


def open_dead_letters(config: Config) -> DeadLetters:
    return DeadLetters(os.path.join(config.agent.state_dir, "dead-letters.lp"),
                       max_bytes=config.buffer.dead_letter_max)
