"""Repeated log lines, rate-limited per key with a count of what was held back.

A slow sensor at a short interval, a broker rejecting every message, a disk
that stays full: each would otherwise log the same line several times a second.
:class:`LogThrottle` logs the first line of a key at once, then at most one per
``interval``; the line that ends a quiet period says how many were held back
("... (37 more in the last 60 s)"). Ground floor: sources and the agent share it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List

__all__ = ["DEFAULT_INTERVAL", "LogThrottle"]

DEFAULT_INTERVAL = 60.0  # seconds between two lines of one key


class LogThrottle:
    """Per-key rate limit in front of ``logger`` (thread-safe; ``clock`` is monotonic)."""

    def __init__(self, logger: logging.Logger, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: Dict[str, List[float]] = {}  # key -> [time of the last line, held back]

    def log(self, level: int, key: str, fmt: str, *args: Any) -> bool:
        """Log ``fmt % args`` unless ``key`` logged less than ``interval`` ago; True if logged."""
        now = self.clock()
        with self._lock:
            entry = self._keys.get(key)
            if entry is not None and now - entry[0] < self.interval:
                entry[1] += 1
                return False
            held = int(entry[1]) if entry is not None else 0
            since = now - entry[0] if entry is not None else 0.0
            self._keys[key] = [now, 0]
        if held:
            fmt += f" ({held} more in the last {since:.0f} s)"
        self.logger.log(level, fmt, *args)
        return True

    def warning(self, key: str, fmt: str, *args: Any) -> bool:
        return self.log(logging.WARNING, key, fmt, *args)

    def error(self, key: str, fmt: str, *args: Any) -> bool:
        return self.log(logging.ERROR, key, fmt, *args)

    def report_held(self, what: str, due_only: bool = True, level: int = logging.WARNING) -> int:
        """Say how many lines each key held back: once its interval is over (or now, at
        stop), so a burst that ends is still counted in the log. Returns the lines said.

        ``what`` names the speaker (``"mqtt bridge"``); the key's next line logs at once.
        """
        now = self.clock()
        said = []
        with self._lock:
            for key, entry in sorted(self._keys.items()):
                if entry[1] and (not due_only or now - entry[0] >= self.interval):
                    said.append((key, int(entry[1]), now - entry[0]))
                    self._keys[key] = [now - self.interval, 0]
        for key, held, since in said:
            self.logger.log(level, "%s: %d more line(s) like the last %r one suppressed in the "
                            "last %.0f s", what, held, key, since)
        return len(said)

    def held(self, key: str) -> int:
        """Lines of ``key`` held back since its last line."""
        with self._lock:
            entry = self._keys.get(key)
            return int(entry[1]) if entry else 0
