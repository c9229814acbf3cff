"""edge-agent: sensor and MQTT readings to InfluxDB, durably buffered on disk.

The write path is also a library with the InfluxDB client's shape::

    from edge_agent import InfluxDBClient, Point, WriteOptions, SYNCHRONOUS

Heavy modules (requests, diskcache, pandas) load on first use, so
``import edge_agent`` stays fast on a Pi.
"""

from __future__ import annotations

import importlib
from typing import Any

from .client.point import Point, WritePrecision
from .errors import (
    ApiException,
    ConfigError,
    EdgeAgentError,
    InfluxDBError,
    SensorError,
    WriteError,
)

__version__ = "0.1.0"

# name -> module that defines it; imported lazily by __getattr__ below.
_LAZY = {
    "InfluxDBClient": "edge_agent.client.client",
    "InfluxDBClientAsync": "edge_agent.client.client_async",
    "WriteApi": "edge_agent.client.write_api",
    "WriteOptions": "edge_agent.options",
    "WriteType": "edge_agent.options",
    "SYNCHRONOUS": "edge_agent.options",
    "ASYNCHRONOUS": "edge_agent.options",
    "PointSettings": "edge_agent.options",
    "RetrySchedule": "edge_agent.retry",
    "WritesRetry": "edge_agent.writes_retry",
    "Serializer": "edge_agent.client.records",
}

__all__ = [
    "ApiException",
    "ConfigError",
    "EdgeAgentError",
    "InfluxDBError",
    "Point",
    "SensorError",
    "WriteError",
    "WritePrecision",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edge_agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
