"""``InfluxDBClientAsync``: the seed's asyncio client, for writing.

    async with InfluxDBClientAsync(url="http://localhost:8086", token="t", org="o") as client:
        await client.write_api().write(bucket="b", record=Point("m").field("v", 1))

Each write is one HTTP request run on a worker thread (``asyncio.to_thread``),
so the event loop never blocks; a failure raises :class:`WriteError`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from ..options import SYNCHRONOUS, PointSettings
from .client import InfluxDBClient

__all__ = ["InfluxDBClientAsync", "WriteApiAsync"]


class WriteApiAsync:
    """``await write(...)`` returns ``True`` once InfluxDB accepted the records."""

    def __init__(self, client: InfluxDBClient, point_settings: Optional[PointSettings]) -> None:
        self._api = client.write_api(write_options=SYNCHRONOUS, point_settings=point_settings)

    async def write(self, bucket: str, org: Optional[str] = None, record: Any = None,
                    write_precision: Any = "ns", **kwargs: Any) -> bool:
        await asyncio.to_thread(self._api.write, bucket, org, record, write_precision, **kwargs)
        return True


class InfluxDBClientAsync:
    """Async twin of :class:`InfluxDBClient` (same arguments)."""

    def __init__(self, url: str, token: Optional[str] = None, org: Optional[str] = None,
                 **kwargs: Any) -> None:
        self._client = InfluxDBClient(url=url, token=token, org=org, **kwargs)

    @classmethod
    def from_config_file(cls, config_file: str = "config.ini", **kwargs: Any
                         ) -> InfluxDBClientAsync:
        obj = cls.__new__(cls)
        obj._client = InfluxDBClient.from_config_file(config_file, **kwargs)
        return obj

    @classmethod
    def from_env_properties(cls, **kwargs: Any) -> InfluxDBClientAsync:
        obj = cls.__new__(cls)
        obj._client = InfluxDBClient.from_env_properties(**kwargs)
        return obj

    _SHARED = frozenset({"url", "token", "org", "default_tags", "api_client", "conf"})

    def __getattr__(self, name: str) -> Any:
        # url, token, org, default_tags, api_client.configuration read as on the sync client
        if name in InfluxDBClientAsync._SHARED:
            return getattr(self.__dict__["_client"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def write_api(self, point_settings: Optional[PointSettings] = None) -> WriteApiAsync:
        return WriteApiAsync(self._client, point_settings)

    async def ping(self) -> bool:
        return await asyncio.to_thread(self._client.ping)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def __aenter__(self) -> InfluxDBClientAsync:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
