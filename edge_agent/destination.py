"""Where a batch goes: bucket (or database), org and precision.

Segments in the disk buffer carry their destination, so one buffer can hold
writes for several buckets and precisions and the flusher never mixes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from .lineproto.timestamps import normalize_precision

__all__ = ["Destination", "retarget_to"]


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


def retarget_to(current: Destination) -> Callable[[Destination], Destination]:
    """A route that sends every segment to ``current``'s bucket and org.

    The precision stays the segment's own: its lines' timestamps were written in it.
    """

    def route(dest: Destination) -> Destination:
        if dest.bucket == current.bucket and dest.org == current.org:
            return dest
        return Destination(current.bucket, current.org, dest.precision)

    return route
