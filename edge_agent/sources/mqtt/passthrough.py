"""The ``influx`` format: line protocol from the broker, relayed with the agent's tags.

Each line's measurement and tag set are parsed (escapes honoured) and
re-encoded with the default, source and subscription tags and the topic's
captures merged under the line's own tags; the field set is passed through as
written (InfluxDB validates it: a bad line goes to the dead-letter file, not
back to the broker). A line without a timestamp gets the receive time, each
one unit of the write precision after the one before (lines of one series at
one instant would be one point in InfluxDB).
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

from ...lineproto.encoder import LineEncoder
from ...lineproto.parse import split_line, split_unescaped, unescape
from ...lineproto.timestamps import PRECISIONS

__all__ = ["relay_lines"]

_INTEGER = re.compile(r"^-?\d+$")


def relay_lines(text: str, tags: Dict[str, str], receive_ns: int, encoder: LineEncoder,
                scale: int) -> Tuple[Tuple[str, ...], bool]:
    """The lines of a payload and whether each carried its own time (``scale``: ns per unit).

    Raises ValueError with a one-line reason for a line that is not line protocol.
    """
    lines: List[str] = []
    own_time = True
    untimed = 0
    target = PRECISIONS[encoder.precision]
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        series, fields, stamp = split_line(line)
        parts = split_unescaped(series, ",")
        if not parts[0] or not fields or "=" not in fields:
            raise ValueError(f"line protocol {line[:60]!r} has no measurement or fields")
        merged = dict(tags)
        for pair in parts[1:]:
            kv = split_unescaped(pair, "=")
            if len(kv) != 2 or not kv[0] or not kv[1]:
                raise ValueError(f"line protocol tag {pair[:40]!r} is not key=value")
            merged[unescape(kv[0])] = unescape(kv[1])
        head = encoder.series_key(unescape(parts[0]), merged)
        if stamp is None:
            ns, own_time = receive_ns + untimed * target, False
            untimed += 1
        elif _INTEGER.match(stamp):
            ns = int(stamp) * scale
        else:
            raise ValueError(f"line protocol timestamp {stamp[:30]!r} is not an integer")
        lines.append(f"{head} {fields} {ns // target}")
    if not lines:
        raise ValueError("payload is empty")
    return tuple(lines), own_time
