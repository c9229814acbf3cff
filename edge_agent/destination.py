"""Where a batch goes: bucket (or database), org and precision.

Segments in the disk buffer carry their destination, so one buffer can hold
writes for several buckets and precisions and the flusher never mixes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .lineproto import normalize_precision

__all__ = ["Destination"]


@dataclass(frozen=True)
class Destination:
    """``bucket`` is the v2 bucket, the v1 ``database`` or ``database/rp``, or the v3 database."""

    bucket: str
    org: str = ""
    precision: str = "ns"

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", normalize_precision(self.precision))

    def key(self) -> str:
        """A compact, stable text form for storage next to the data."""
        return json.dumps([self.bucket, self.org, self.precision], separators=(",", ":"))

    @classmethod
    def from_key(cls, key: str) -> Destination:
        bucket, org, precision = json.loads(key)
        return cls(bucket, org, precision)
