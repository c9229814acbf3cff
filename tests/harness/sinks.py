"""The source -> sink contract in memory (``add`` and ``wait_durable``), for source tests."""

from __future__ import annotations

import threading
import time
from typing import Any, List, Optional, Sequence

__all__ = ["MemorySink"]


class MemorySink:
    """Keeps every line; ``durable`` cleared = the disk never confirms (nothing is acked).

    ``delay`` slows each ``add`` (a slow disk); ``flushes`` counts ``flush()`` calls.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.lines: List[str] = []
        self.lock = threading.Lock()
        self.durable = threading.Event()
        self.durable.set()
        self.delay = delay
        self.tickets = 0
        self.flushes = 0

    def add(self, lines: Sequence[str], dest: Any = None) -> int:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.lines.extend(lines)
            self.tickets += 1
            return self.tickets

    def wait_durable(self, ticket: int, timeout: Optional[float] = None) -> bool:
        return self.durable.wait(timeout) if timeout else self.durable.is_set()

    def flush(self) -> None:
        self.flushes += 1

    def snapshot(self) -> List[str]:
        with self.lock:
            return list(self.lines)
