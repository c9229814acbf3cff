"""One small exception tree: every error a user can cause is one of these."""

from __future__ import annotations

from typing import Optional


class EdgeAgentError(Exception):
    """Base of every error edge-agent raises on purpose."""


class ConfigError(EdgeAgentError):
    """The configuration is wrong; the message says where and what to do."""


class SensorError(EdgeAgentError):
    """A sensor or its bus failed to give a valid reading."""


class BufferError_(EdgeAgentError):
    """The disk buffer could not accept or return data."""


class WriteError(EdgeAgentError):
    """InfluxDB did not accept a write.

    ``status`` is the HTTP status (0 when no answer arrived), ``message`` the
    server's own reason, ``retry_after`` the server's requested wait in seconds.
    """

    def __init__(
        self,
        message: str,
        status: int = 0,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.status:
            return f"HTTP {self.status}: {self.message}"
        return self.message


# The seed's name for a failed write, kept so ported code catches it.
InfluxDBError = WriteError
