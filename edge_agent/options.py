"""Write options: how points are batched, flushed, retried and buffered.

The names, order and defaults of the first eleven fields are the InfluxDB
client's (``WriteOptions(write_type=..., batch_size=..., ...)``), so code
written for it ports with its import lines changed. Times are milliseconds,
as there; the durable-buffer additions after them say their unit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, Optional

__all__ = [
    "ASYNCHRONOUS",
    "SYNCHRONOUS",
    "PointSettings",
    "WriteOptions",
    "WriteType",
]

MiB = 1024 * 1024
SYNC_MODES = ("normal", "full")


class WriteType(Enum):
    """How ``write_api().write()`` delivers: in background batches, in a thread, or now."""

    batching = 1
    asynchronous = 2
    synchronous = 3


def _write_type(value: Any) -> WriteType:
    if isinstance(value, WriteType):
        return value
    if isinstance(value, str):
        try:
            return WriteType[value.strip().lower()]
        except KeyError:
            pass
    names = ", ".join(t.name for t in WriteType)
    raise ValueError(f"write_type {value!r} is not one of {names}")


def _number(options: WriteOptions, name: str, minimum: float, *, integer: bool = False,
            strict: bool = False) -> None:
    value = getattr(options, name)
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if integer and not isinstance(value, int):
        if not value.is_integer():
            raise ValueError(f"{name} must be {kind}, got {value!r}")
        object.__setattr__(options, name, int(value))  # 1000.0 from a config file
    if value != value or (strict and value <= minimum) or value < minimum:
        relation = "greater than" if strict else "at least"
        raise ValueError(f"{name} must be {relation} {minimum:g}, got {value!r}")


@dataclass(frozen=True)
class WriteOptions:
    """Write configuration (batching, flush and retry times in milliseconds).

    The seed's fields: ``write_type`` (batching, asynchronous, synchronous),
    ``batch_size`` points per batch, ``flush_interval`` at most this long
    between flushes, ``jitter_interval`` random delay before each batch,
    ``retry_interval`` first retry delay, ``max_retries`` (0 = no retry),
    ``max_retry_delay`` cap of one delay, ``max_retry_time`` total retry time
    since the first failure (0 = no retry), ``exponential_base`` growth of the
    delay, ``max_close_wait`` how long ``close()`` delivers pending data,
    ``write_scheduler`` (accepted and ignored).

    Ours: ``buffer_dir`` puts a disk buffer under the batching writer (None =
    memory only, as the seed); ``commit_interval`` (ms) how often accepted
    points are committed to disk; ``max_batch_bytes`` cap of one request body
    (uncompressed); ``max_size`` (bytes) and ``max_age`` (seconds) the disk
    budget; ``sync`` "normal" (survives a crash) or "full" (survives power loss).
    """

    write_type: WriteType = WriteType.batching
    batch_size: int = 1_000
    flush_interval: float = 1_000
    jitter_interval: float = 0
    retry_interval: float = 5_000
    max_retries: int = 5
    max_retry_delay: float = 125_000
    max_retry_time: float = 180_000
    exponential_base: float = 2
    max_close_wait: float = 300_000
    write_scheduler: Any = field(default=None, compare=False, repr=False)
    buffer_dir: Optional[str] = None
    commit_interval: float = 100
    max_batch_bytes: int = 8 * MiB
    max_size: int = 256 * MiB
    max_age: float = 7 * 24 * 3600
    sync: str = "normal"

    def __post_init__(self) -> None:
        object.__setattr__(self, "write_type", _write_type(self.write_type))
        _number(self, "batch_size", 1, integer=True)
        _number(self, "flush_interval", 0, strict=True)
        _number(self, "jitter_interval", 0)
        _number(self, "retry_interval", 0, strict=True)
        _number(self, "max_retries", 0, integer=True)
        _number(self, "max_retry_delay", 0, strict=True)
        _number(self, "max_retry_time", 0)
        _number(self, "exponential_base", 1)
        _number(self, "max_close_wait", 0)
        _number(self, "commit_interval", 0, strict=True)
        _number(self, "max_batch_bytes", 1, integer=True)
        _number(self, "max_size", 1, integer=True)
        _number(self, "max_age", 0, strict=True)
        if self.buffer_dir is not None:
            if not isinstance(self.buffer_dir, (str, os.PathLike)) or not str(self.buffer_dir):
                raise ValueError(f"buffer_dir must be a directory path, got {self.buffer_dir!r}")
            object.__setattr__(self, "buffer_dir", os.fspath(self.buffer_dir))
        sync = self.sync.strip().lower() if isinstance(self.sync, str) else self.sync
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, got {self.sync!r}")
        object.__setattr__(self, "sync", sync)

    def to_retry_strategy(self, **kwargs: Any) -> Any:
        """influxdb-client's urllib3 strategy for these options (a
        :class:`~edge_agent.writes_retry.WritesRetry`, times in seconds);
        ``retry_callback`` is called with each retryable error."""
        from .writes_retry import WritesRetry

        return WritesRetry(
            total=self.max_retries, retry_interval=self.retry_interval / 1_000,
            jitter_interval=self.jitter_interval / 1_000,
            max_retry_delay=self.max_retry_delay / 1_000,
            max_retry_time=self.max_retry_time / 1_000,
            exponential_base=self.exponential_base,
            retry_callback=kwargs.get("retry_callback"), allowed_methods=["POST"])

    @property
    def durable(self) -> bool:
        """True when batches are kept in a disk buffer (``buffer_dir`` set)."""
        return self.buffer_dir is not None


SYNCHRONOUS = WriteOptions(write_type=WriteType.synchronous)
ASYNCHRONOUS = WriteOptions(write_type=WriteType.asynchronous)


class PointSettings:
    """Default tags added to every point a write API writes.

    A value written ``${env.NAME}`` is read from the environment variable NAME
    (as the seed does); an unset variable gives no tag.
    """

    def __init__(self, **default_tags: Any) -> None:
        self.defaultTags: Dict[str, Any] = {}
        for key, value in default_tags.items():
            self.add_default_tag(key, value)

    @staticmethod
    def _get_value(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("${env.") and value.endswith("}"):
            return os.environ.get(value[6:-1])
        return value

    def add_default_tag(self, key: str, value: Any) -> None:
        """Add a default tag ``key=value``; ``${env.NAME}`` reads the environment."""
        self.defaultTags[key] = self._get_value(value)

    @property
    def default_tags(self) -> Dict[str, Any]:
        """The tags to add, without the ones whose environment variable is unset."""
        return {k: v for k, v in self.defaultTags.items() if v is not None}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PointSettings) and other.defaultTags == self.defaultTags

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PointSettings({self.defaultTags!r})"
