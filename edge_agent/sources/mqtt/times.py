"""A message's own timestamp -> ns: epoch numbers, ISO-8601, strptime, and time zones.

* A number (or numeric text) is an epoch in ``precision``: ``s``, ``ms``,
  ``us`` or ``ns``; ``auto`` picks by size (below 1e11 seconds, below 1e14
  milliseconds, below 1e17 microseconds, else nanoseconds: right for any
  time between 1973 and 5138). Decimals are exact, as written (no binary
  float rounding).
* Text that is not a number is ISO-8601 (``format: iso`` or unset) or read with
  a ``strptime`` pattern (``format: '%d.%m.%Y %H:%M:%S'``).
* A time without an offset (Tasmota's default ``Time``) is in ``timezone``
  (an IANA name such as ``Europe/Berlin``; UTC when unset). In the hour a
  clock is set back the first of the two readings is taken (``fold=0``); a
  time in the hour skipped in spring is read with the offset before the change.
  Epoch numbers are UTC whatever the zone.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Optional

from ...errors import ConfigError
from ...lineproto.timestamps import PRECISIONS, normalize_precision, time_to_ns
from .values import is_number, text_int

__all__ = ["TIME_FORMAT_ISO", "TimeError", "TimeReader", "load_zone"]

TIME_FORMAT_ISO = "iso"
_EPOCH = datetime(1970, 1, 1)
# An offset after the time of day: "...T19:34:28+02:00", "...:28Z", "... 19:34 -0500"
_HAS_OFFSET = re.compile(r"[T ]\d{2}:\d{2}[^+\-Zz]*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$")
_AUTO = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))


class TimeError(ValueError):
    """An unreadable timestamp; the message is rejected with this reason."""


def load_zone(name: str, fail: Callable[[str], Exception] = ConfigError) -> tzinfo:
    """The IANA zone ``name`` (``UTC`` included); ``fail(message)`` for an unknown one."""
    if name.upper() == "UTC":
        return timezone.utc
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # Python >= 3.9
    except ImportError:  # pragma: no cover - Python 3.8 is not supported
        raise fail("time zones need Python 3.9 or newer") from None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin "
                   "or America/New_York (see /usr/share/zoneinfo), or UTC") from None


class TimeReader:
    """Reads one subscription's timestamps (``key`` only names it in messages)."""

    def __init__(self, key: str, precision: str = "ns", fmt: Optional[str] = None,
                 zone: Optional[str] = None) -> None:
        self.key = key
        self.auto = str(precision).lower() == "auto"
        self.precision = "ns" if self.auto else normalize_precision(precision)
        if fmt is not None and fmt.lower() == TIME_FORMAT_ISO:
            fmt = TIME_FORMAT_ISO
        elif fmt is not None and "%" not in fmt:
            raise ConfigError(f"time format {fmt!r} is neither 'iso' nor a strptime pattern "
                              "such as '%Y-%m-%d %H:%M:%S'")
        self.format = fmt
        self.zone: Optional[tzinfo] = None
        if zone and zone.upper() != "UTC":
            self.zone = load_zone(zone)

    def _scale(self, magnitude: float) -> int:
        if not self.auto:
            return PRECISIONS[self.precision]
        for limit, unit in _AUTO:
            if abs(magnitude) < limit:
                return PRECISIONS[unit]
        return 1

    def read(self, raw: Any) -> int:
        """JSON value or kv text -> ns since the epoch; :class:`TimeError` if unreadable."""
        key = self.key
        if isinstance(raw, bool) or raw is None:
            raise TimeError(f"time {key!r} is {'null' if raw is None else 'a bool'}")
        if isinstance(raw, int):
            return raw * self._scale(raw)
        if isinstance(raw, float):
            if not math.isfinite(raw):
                raise TimeError(f"time {key!r} is not finite")
            # The decimal the device wrote (repr is the shortest round-trip text):
            # 1700000000.123 s is ...000123000000 ns, not the binary float's ...000122999808.
            written = Decimal(repr(raw)) * self._scale(raw)
            return int(written.to_integral_value(ROUND_HALF_EVEN))
        if not isinstance(raw, str):
            raise TimeError(f"time {key!r} is not a number or a string")
        text = raw.strip()
        fmt = self.format
        if fmt is None:
            exact = text_int(text)
            if exact is not None:
                return exact * self._scale(exact)
            if is_number(text):
                scale = self._scale(float(text))
                return int((Decimal(text) * scale).to_integral_value(ROUND_HALF_EVEN))
        if fmt is None or fmt == TIME_FORMAT_ISO:
            try:
                ns = time_to_ns(text)
            except (ValueError, TypeError) as exc:
                raise TimeError(f"time {key!r}: {exc}") from None
            if self.zone is not None and not _HAS_OFFSET.search(text):
                ns -= self._offset_ns(_EPOCH + timedelta(microseconds=ns // 1000))
            return ns
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            raise TimeError(f"time {key!r} = {text[:40]!r} does not match the format "
                            f"{fmt!r}") from None
        if moment.tzinfo is None and self.zone is not None:
            moment = moment.replace(tzinfo=self.zone)
        return time_to_ns(moment)

    def _offset_ns(self, local: datetime) -> int:
        assert self.zone is not None
        offset = self.zone.utcoffset(local) or timedelta(0)
        return int(offset.total_seconds()) * 1_000_000_000
