"""Reading line protocol: split a line into series, fields and timestamp (escapes honoured).

Used where lines arrive as line protocol (an MQTT payload in the ``influx`` format):
the series is re-encoded with more tags, the fields pass through as written.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

__all__ = ["split_fields", "split_line", "split_unescaped", "unescape"]


def split_unescaped(text: str, sep: str) -> List[str]:
    """``text`` split at each ``sep`` that no backslash escapes."""
    out: List[str] = []
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == sep:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out


def unescape(text: str) -> str:
    """A measurement, tag key or tag value with its backslash escapes removed."""
    return re.sub(r"\\([,= \\])", r"\1", text)


def split_line(line: str) -> Tuple[str, str, Optional[str]]:
    """``(series, fields, timestamp or None)`` of one line; ``ValueError`` on an open quote."""
    i = 0
    n = len(line)
    while i < n and line[i] != " ":
        i += 2 if line[i] == "\\" else 1
    series, rest = line[:i], line[i + 1:]
    j = 0
    quoted = False
    while j < len(rest):
        c = rest[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == " " and not quoted:
            break
        j += 1
    fields, stamp = rest[:j], rest[j + 1:].strip()
    if quoted:
        raise ValueError("line protocol string field is not closed")
    return series, fields, (stamp or None)


def split_fields(text: str) -> List[Tuple[str, str]]:
    """``[(key, value text)]`` of a line's field set (commas in quoted strings kept)."""
    out: List[Tuple[str, str]] = []
    start, i, quoted, n = 0, 0, False, len(text)
    while i <= n:
        c = text[i] if i < n else ","
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            pair = text[start:i]
            j = 0
            while j < len(pair) and pair[j] != "=":
                j += 2 if pair[j] == "\\" else 1
            out.append((pair[:j], pair[j + 1:]))
            start = i + 1
        i += 1
    return out
