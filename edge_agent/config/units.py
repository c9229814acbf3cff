"""Durations and sizes as people write them in a config file.

Durations: ``250ms``, ``10s``, ``5m``, ``2h``, ``7d``, combinations such as
``1h30m``, and plain numbers in a caller-chosen unit (milliseconds in the
``write:`` section, as in the seed's WriteOptions; seconds everywhere else).
Sizes: ``256MiB``, ``1GB``, ``512KiB``, ``1024`` (bytes). Binary units
(KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (KB, MB, GB, TB) of 1000.

Parsers raise ``ValueError`` with a sentence for the user; the config layer
adds the file position.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["format_duration", "format_size", "parse_duration", "parse_size"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)", re.IGNORECASE)

_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)

_PLAIN_NAMES = {"s": "seconds", "ms": "milliseconds"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _duration_help(plain_unit: str) -> str:
    return (
        "use a number with a unit ms, s, m, h or d (e.g. 250ms, 10s, 5m, 2h, 7d); "
        f"a plain number is {_PLAIN_NAMES[plain_unit]}"
    )


def parse_duration(value: Any, plain_unit: str = "s") -> float:
    """Return ``value`` in seconds; plain numbers are in ``plain_unit`` ("s" or "ms")."""
    if plain_unit not in _PLAIN_NAMES:
        raise ValueError(f"plain_unit must be 's' or 'ms', not {plain_unit!r}")
    if _is_number(value):
        seconds = float(value) * _DURATION_UNITS[plain_unit]
    elif isinstance(value, str):
        seconds = _parse_duration_text(value, plain_unit)
    else:
        raise ValueError(f"bad duration {_show(value)}: {_duration_help(plain_unit)}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"bad duration {_show(value)}: must be zero or more")
    return seconds


def _parse_duration_text(text: str, plain_unit: str) -> float:
    stripped = text.strip()
    try:
        return float(stripped) * _DURATION_UNITS[plain_unit]
    except ValueError:
        pass
    total = 0.0
    pos = 0
    while pos < len(stripped):
        match = _DURATION_PART.match(stripped, pos)
        if not match:
            raise ValueError(f"bad duration {text!r}: {_duration_help(plain_unit)}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        pos = match.end()
    if not stripped:
        raise ValueError(f"bad duration {text!r}: {_duration_help(plain_unit)}")
    return total


def parse_size(value: Any) -> int:
    """Return ``value`` in bytes: ``256MiB``, ``1GB``, ``512KiB`` or a plain byte count."""
    help_text = "use bytes or a number with a unit B, KB, MB, GB, KiB, MiB, GiB (e.g. 256MiB, 1GB)"
    if _is_number(value):
        number = float(value)
        factor = 1
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value)
        unit = match.group(2).lower() if match else ""
        if not match or (unit and unit not in _SIZE_UNITS):
            raise ValueError(f"bad size {value!r}: {help_text}")
        number = float(match.group(1))
        factor = _SIZE_UNITS.get(unit, 1)
    else:
        raise ValueError(f"bad size {_show(value)}: {help_text}")
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise ValueError(f"bad size {_show(value)}: must be zero or more")
    return int(round(number * factor))


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds``: ``250ms``, ``10s``, ``5m``, ``7d``."""
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6:
        return f"{seconds}s"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms" if millis else "0s"


def format_size(size: int) -> str:
    """The shortest exact spelling of ``size`` bytes: ``256MiB``, ``1GB``, ``1000``."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024),
                         ("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _show(value: Any) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
