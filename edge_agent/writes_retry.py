"""``WritesRetry``: influxdb-client's urllib3 retry strategy, on this project's schedule.

``WriteOptions(...).to_retry_strategy()`` returns one, as in influxdb-client,
for code that hands it to urllib3 or reads its settings. Its delays come from
:class:`~edge_agent.retry.RetrySchedule` (the one backoff of the project): the
k-th retry waits a random time in ``[retry_interval * base**(k-1),
retry_interval * base**k)``, capped at ``max_retry_delay``; a Retry-After
header is honoured (plus jitter); retries stop after ``total`` or after
``max_retry_time`` seconds (``MaxRetryError``). Times are seconds here, as in
the reference's class. The write APIs themselves retry with the flusher, not
with this object.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any, Callable, Optional

from urllib3 import Retry
from urllib3.exceptions import MaxRetryError, ResponseError

from .errors import ErrorResponse, InfluxDBError
from .retry import RetrySchedule

__all__ = ["WritesRetry"]

log = logging.getLogger("edge_agent.writes_retry")


def _error(response: Any) -> InfluxDBError:
    """The reference's ``InfluxDBError(response=...)`` for a urllib3 response."""
    raw = response.data or b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    message = ""
    if text:
        try:
            message = str(json.loads(text)["message"])
        except (ValueError, KeyError, TypeError):
            message = text
    headers = dict(response.headers or {})
    for key in ("X-Platform-Error-Code", "X-Influx-Error", "X-InfluxDb-Error"):
        if not message and response.headers.get(key):
            message = response.headers.get(key)
    message = message or response.reason or f"HTTP {response.status}"
    retry_after = response.headers.get("Retry-After")
    try:
        seconds: Optional[float] = float(retry_after) if retry_after is not None else None
    except ValueError:
        seconds = None
    return InfluxDBError(message, response.status, seconds,
                         ErrorResponse(response.status, response.reason or "", headers, text))


class WritesRetry(Retry):
    """influxdb-client's ``WritesRetry`` (arguments in seconds), see the module doc."""

    def __init__(self, jitter_interval: float = 0, max_retry_delay: float = 125,
                 exponential_base: float = 2, max_retry_time: float = 180, total: int = 5,
                 retry_interval: float = 5,
                 retry_callback: Optional[Callable[[Exception], Any]] = None,
                 **kw: Any) -> None:
        super().__init__(total=total, **kw)
        self.jitter_interval = jitter_interval
        self.retry_interval = retry_interval
        self.max_retry_delay = max_retry_delay
        self.max_retry_time = max_retry_time
        self.exponential_base = exponential_base
        self.retry_timeout = datetime.now() + timedelta(seconds=max_retry_time)
        self.retry_callback = retry_callback

    def new(self, **kw: Any) -> WritesRetry:
        for name in ("jitter_interval", "retry_interval", "max_retry_delay", "max_retry_time",
                     "exponential_base", "retry_callback"):
            kw.setdefault(name, getattr(self, name))
        new = super().new(**kw)
        new.retry_timeout = self.retry_timeout
        return new

    def schedule(self) -> RetrySchedule:
        """The same policy as the project's schedule value."""
        return RetrySchedule(
            retry_interval=float(self.retry_interval),
            exponential_base=float(self.exponential_base),
            max_retry_delay=float(self.max_retry_delay), max_retries=int(self.total or 0),
            max_retry_time=float(self.max_retry_time), jitter_interval=float(self.jitter_interval))

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        """Every answer from 429 up is retried (no Retry-After needed), as in the reference."""
        if not self._is_method_retryable(method):
            return False
        return bool(self.total) and status_code >= 429

    def get_backoff_time(self) -> float:
        errors = len(list(takewhile(lambda x: x.redirect_location is None,
                                    reversed(self.history))))
        if errors == 0:
            return 0.0
        low, high = self.schedule().delay_range(errors)
        return low + (high - low) * random.random()

    def get_retry_after(self, response: Any) -> Optional[float]:
        retry_after = super().get_retry_after(response)
        if retry_after:
            retry_after += self.jitter_interval * random.random()
        return retry_after

    def increment(self, method: Optional[str] = None, url: Optional[str] = None,
                  response: Any = None, error: Optional[Exception] = None, _pool: Any = None,
                  _stacktrace: Any = None) -> WritesRetry:
        if self.retry_timeout < datetime.now():
            raise MaxRetryError(_pool, url or "", error or ResponseError("max_retry_time exceeded"))
        new_retry = super().increment(method, url, response, error, _pool, _stacktrace)
        parsed: Any
        if response is not None:
            parsed = _error(response)
        elif error is not None:
            parsed = error
        else:
            parsed = f"Failed request to: {url}"
        if self.retry_callback is not None:
            self.retry_callback(parsed)
        log.warning("The retriable error occurred during request. Reason: '%s'.", parsed)
        return new_retry
