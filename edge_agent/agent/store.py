"""Where the agent keeps its data in ``agent.state_dir``: the buffer and the dead letters.

One place for the paths and settings, shared by the agent, ``--once`` and ``status``.
"""

from __future__ import annotations

import os

from ..buffer.deadletter import DeadLetters
from ..buffer.disklog import DiskBuffer
from ..config import Config

__all__ = ["buffer_dir", "open_buffer", "open_dead_letters"]


def buffer_dir(config: Config) -> str:
    return os.path.join(config.agent.state_dir, "buffer")


def open_buffer(config: Config) -> DiskBuffer:
    """The disk buffer with the config's budget and sync level."""
    return DiskBuffer(buffer_dir(config), max_size=config.buffer.max_size,
                      max_age=config.buffer.max_age, sync=config.buffer.sync)


def open_dead_letters(config: Config) -> DeadLetters:
    return DeadLetters(os.path.join(config.agent.state_dir, "dead-letters.lp"),
                       max_bytes=config.buffer.dead_letter_max)
