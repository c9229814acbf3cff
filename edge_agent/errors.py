"""One small exception tree: every error a user can cause is one of these."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional


class EdgeAgentError(Exception):
    """Base of every error edge-agent raises on purpose."""


class ConfigError(EdgeAgentError):
    """The configuration is wrong; the message says where and what to do."""


class SensorError(EdgeAgentError):
    """A sensor or its bus failed to give a valid reading."""


class BufferError_(EdgeAgentError):
    """The disk buffer could not accept or return data."""


class ErrorResponse:
    """The HTTP answer behind a :class:`WriteError`, shaped like the one
    influxdb-client's ``InfluxDBError.response`` carries: ``status``, ``reason``,
    ``headers`` (case-insensitive), ``data`` (the body, as text) and
    ``getheader(name)`` / ``getheaders()``."""

    __slots__ = ("status", "reason", "headers", "data")

    def __init__(self, status: int, reason: str = "", headers: Optional[Mapping[str, str]] = None,
                 data: str = "") -> None:
        self.status = status
        self.reason = reason
        self.headers: Mapping[str, str] = _Headers(headers or {})
        self.data = data

    def getheaders(self) -> Mapping[str, str]:
        return self.headers

    def getheader(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.headers.get(name, default)

    def __repr__(self) -> str:
        return f"ErrorResponse(status={self.status}, reason={self.reason!r})"


class _Headers(Dict[str, str]):
    """A header dict looked up case-insensitively (as HTTP headers are)."""

    def __init__(self, items: Mapping[str, str]) -> None:
        super().__init__(items)
        self._lower = {k.lower(): v for k, v in items.items()}

    def __getitem__(self, key: str) -> str:
        return self._lower[key.lower()]

    def get(self, key: str, default: Any = None) -> Any:
        return self._lower.get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lower


class WriteError(EdgeAgentError):
    """InfluxDB did not accept a write (influxdb-client's ``InfluxDBError``).

    ``status`` is the HTTP status (0 when no answer arrived), ``message`` the
    server's own reason, ``retry_after`` the server's requested wait in seconds.
    As in influxdb-client, ``response`` is the answer (``None`` when there was
    none) with ``status`` and ``headers``; ``headers``, ``reason`` and ``body``
    are also on the error itself, as on its ``ApiException``.
    """

    def __init__(
        self,
        message: str,
        status: int = 0,
        retry_after: Optional[float] = None,
        response: Optional[ErrorResponse] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.response = response
        self.headers: Optional[Mapping[str, str]] = response.headers if response else None
        self.reason: Optional[str] = response.reason if response else None
        self.body: Optional[str] = response.data if response else None

    def __str__(self) -> str:
        if self.status:
            return f"HTTP {self.status}: {self.message}"
        return self.message


# The seed's names for a failed write, kept so ported code catches it.
InfluxDBError = WriteError
ApiException = WriteError
