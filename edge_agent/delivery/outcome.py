"""What an InfluxDB answer means: the outcome vocabulary every stage shares.

``Outcome`` and ``WriteResult`` carry the answer to one request (DESIGN.md,
"Delivery rules"); ``server_message`` and ``parse_retry_after`` read the
server's reason and requested wait from an answer. No HTTP library here.
"""

from __future__ import annotations

import email.utils
import enum
import json
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Mapping, Optional

from ..errors import ErrorResponse, WriteError

__all__ = ["MAX_MESSAGE", "Outcome", "WriteResult", "classify", "parse_retry_after",
           "server_message", "truncate"]

MAX_MESSAGE = 1000  # characters of a server's reason kept in a result


class Outcome(enum.Enum):
    """What an answer means for the batch (DESIGN.md, "Delivery rules")."""

    OK = "ok"  # 2xx: written
    INVALID = "invalid"  # 400 / 422: some or all lines rejected
    AUTH = "auth"  # 401 / 403: bad credentials
    NOT_FOUND = "not_found"  # 404: no such bucket / database
    TOO_LARGE = "too_large"  # 413: split the batch
    THROTTLED = "throttled"  # 429 / 503: wait (Retry-After)
    TRANSIENT = "transient"  # other 5xx, no answer, anything unexpected: back off


_BY_STATUS = {
    400: Outcome.INVALID,
    422: Outcome.INVALID,
    401: Outcome.AUTH,
    403: Outcome.AUTH,
    404: Outcome.NOT_FOUND,
    413: Outcome.TOO_LARGE,
    429: Outcome.THROTTLED,
    503: Outcome.THROTTLED,
}


def classify(status: int) -> Outcome:
    """The outcome of an HTTP status; 0 means no answer arrived.

    Anything not named in the delivery rules (3xx, 408, other 4xx, 5xx) is
    TRANSIENT: the data is kept and the write retried with backoff.
    """
    if 200 <= status < 300:
        return Outcome.OK
    return _BY_STATUS.get(status, Outcome.TRANSIENT)


@dataclass(frozen=True)
class WriteResult:
    """The answer to one request.

    ``status`` is the HTTP status (0 = no answer), ``message`` the server's
    own reason (or what went wrong on the way; secrets redacted),
    ``retry_after`` the server's requested wait in seconds, ``latency`` the
    seconds from sending to the answer (or the failure); ``reason``,
    ``headers`` and ``body`` (truncated, redacted) of an answer for
    :class:`~edge_agent.errors.WriteError`'s ``response``. ``reached`` is False
    when the request cannot have reached InfluxDB (no connection was made, or
    plain HTTP went to its HTTPS port): the points are surely not stored.
    """

    status: int
    outcome: Outcome
    message: str = ""
    retry_after: Optional[float] = None
    latency: float = 0.0
    reason: str = field(default="", compare=False)
    headers: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    body: str = field(default="", compare=False, repr=False)
    reached: bool = field(default=True, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def error(self) -> WriteError:
        """This result as the typed error a synchronous write raises."""
        response = (ErrorResponse(self.status, self.reason, self.headers, self.body)
                    if self.status else None)
        return WriteError(self.message or self.outcome.value, self.status, self.retry_after,
                          response)


def parse_retry_after(value: Optional[str], now: float) -> Optional[float]:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date.

    ``now`` is the wall-clock time (``time.time()``) an HTTP-date is measured
    from. Unparseable values give None; dates in the past give 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # older Pythons return None instead of raising
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    if seconds != seconds or seconds == float("inf"):
        return None
    return max(0.0, seconds)


def server_message(body: bytes, reason: str = "", header_error: str = "") -> str:
    """The server's reason from an error body, not truncated and not redacted.

    2.x answers JSON ``{code, message}``, 1.x ``{"error": ...}`` (and the
    ``X-Influxdb-Error`` header), 3.x ``{"error", "data": [{line_number,
    error_message}, ...]}``; anything else is taken as plain text.
    """
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            main = parsed.get("message") or parsed.get("error")
            if isinstance(main, str) and main:
                text = main + _line_details(parsed.get("data"))
    return text or header_error.strip() or reason.strip()


def _line_details(data: Any) -> str:
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return ""
    parts = []
    for item in data:
        if isinstance(item, dict) and item.get("error_message"):
            number = item.get("line_number")
            prefix = f"line {number}: " if number is not None else ""
            parts.append(f"{prefix}{item['error_message']}")
    return (": " + "; ".join(parts)) if parts else ""


def truncate(text: str) -> str:
    if len(text) <= MAX_MESSAGE:
        return text
    return text[: MAX_MESSAGE - 1] + "…"
