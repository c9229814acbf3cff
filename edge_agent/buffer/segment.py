"""A segment: lines of line protocol for one destination, and its stored form.

A segment is a few hundred to a few thousand lines (joined by ``\\n``)
written in one transaction with its point count and the wall-clock time of
its oldest point. On disk it is one value: a small header (magic, count,
first_time, destination key length), the destination key, then the lines,
zlib-compressed (magic ``EAS2``) when they are at least ``COMPRESS_MIN`` bytes:
line protocol repeats its measurement and tag names, so a segment shrinks
7-9x, and what the SD card stores shrinks with it (bench/wear.py). Segments of
either magic are read back.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..destination import Destination

__all__ = ["BufferStats", "PAGE_SIZE", "ROW_OVERHEAD", "Segment", "decode_segment",
           "encode_segment", "stored_pages"]

# Counted per segment on top of its bytes: the SQLite row and index entries.
ROW_OVERHEAD = 96
# SQLite's page size (diskcache's default); a page keeps about 100 bytes for itself.
PAGE_SIZE = 4096
_PAGE_USABLE = PAGE_SIZE - 100

_MAGIC = b"EAS1"
_MAGIC_Z = b"EAS2"  # the same, the lines zlib-compressed
COMPRESS_MIN = 1024  # below this a segment is stored as it is (it fits in a page anyway)
_LEVEL = 6  # zlib default: a 60 s commit of 10 sensors fits one page (level 1: two)
_HEADER = struct.Struct("<4sIdH")  # magic, count, first_time, len(destination key)


@dataclass(frozen=True)
class Segment:
    """One committed group of lines for one destination."""

    dest: Destination
    count: int  # points (lines) in data
    data: bytes  # lines of line protocol joined by b"\n"
    first_time: float  # wall-clock seconds of the oldest point, for max_age
    packed: int = field(default=0, compare=False)  # length of its stored form, once known

    def lines(self) -> List[bytes]:
        return self.data.split(b"\n")

    def count_matches(self) -> bool:
        """The stored count is the number of lines (a damaged count would miscount)."""
        return self.data.count(b"\n") + 1 == self.count

    @property
    def stored_size(self) -> int:
        """Bytes of SQLite pages this segment fills: what counts against ``max_size``.

        Counted from its stored (possibly compressed) form, so the budget matches
        what the filesystem really holds.
        """
        return stored_pages(self.packed or len(encode_segment(self)))


def stored_pages(packed: int) -> int:
    """Bytes of SQLite pages a stored value of ``packed`` bytes fills.

    Rows share a page only while two or more fit; a larger row fills whole
    pages (its own, then overflow pages).
    """
    row = packed + ROW_OVERHEAD
    if row <= _PAGE_USABLE // 2:
        per_page = _PAGE_USABLE // row
        return -(-PAGE_SIZE // per_page)
    return -(-row // _PAGE_USABLE) * PAGE_SIZE


@dataclass(frozen=True)
class BufferStats:
    points: int
    segments: int
    bytes: int  # counted against max_size (segment bytes + per-row overhead)
    oldest: Optional[float]  # first_time of the head segment, None when empty

    def as_dict(self) -> Dict[str, Any]:
        """For status.json and ``edge-agent status``."""
        return {"points": self.points, "segments": self.segments, "bytes": self.bytes,
                "oldest": self.oldest}


def encode_segment(seg: Segment) -> bytes:
    key = seg.dest.key().encode("utf-8")
    if len(seg.data) >= COMPRESS_MIN:
        return (_HEADER.pack(_MAGIC_Z, seg.count, seg.first_time, len(key)) + key
                + zlib.compress(seg.data, _LEVEL))
    return _HEADER.pack(_MAGIC, seg.count, seg.first_time, len(key)) + key + seg.data


def decode_segment(value: Any, dest_of: Callable[[str], Destination],
                   recount: bool = False, verify: bool = True) -> Segment:
    """The segment stored in ``value``; ``ValueError`` when it is not one we wrote.

    ``dest_of`` turns a destination key into a Destination (the buffer caches them).
    A stored count that disagrees with the lines is an error (unless ``verify``
    is off: the caller checks ``count_matches`` itself), or with ``recount``
    (salvage) replaced by the number of lines.
    """
    if type(value) is not bytes or value[:4] not in (_MAGIC, _MAGIC_Z) \
            or len(value) < _HEADER.size:
        raise ValueError("not a segment")
    magic, count, first_time, klen = _HEADER.unpack_from(value)
    start = _HEADER.size + klen
    try:
        dest = dest_of(value[_HEADER.size:start].decode("utf-8"))
    except ValueError as exc:
        raise ValueError(f"bad destination: {exc}") from exc
    data = value[start:]
    if magic == _MAGIC_Z:
        try:
            data = zlib.decompress(data)
        except zlib.error as exc:
            raise ValueError(f"damaged compressed lines: {exc}") from exc
    if recount:
        count = data.count(b"\n") + 1
    seg = Segment(dest, count, data, first_time, len(value))
    # The count is the accounting unit: a damaged one must not count points twice.
    if verify and not recount and not seg.count_matches():
        raise ValueError(f"point count {count} does not match its lines")
    return seg
