"""``InfluxDBClient``: the seed's client, for writing (config from code, file or env).

    with InfluxDBClient(url="http://localhost:8086", token="my-token", org="my-org") as client:
        with client.write_api(write_options=SYNCHRONOUS) as write_api:
            write_api.write("my-bucket", record=Point("cpu").field("temp", 25.3))

Only the write side of the seed exists here; ``api="v1"`` or ``"v3"`` selects
InfluxDB 1.x's ``/write`` or 3.x's ``/api/v3/write_lp`` (default ``"v2"``).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Tuple

from ..delivery.outcome import Outcome
from ..delivery.transport import InfluxSettings, Transport
from ..errors import ConfigError
from ..options import PointSettings, WriteOptions
from .configuration import ApiClient, Configuration, env_settings, read_config_file
from .keywords import check_keywords

__all__ = ["InfluxDBClient"]

_TRUE = {"1", "true", "yes", "on"}
# Settings read from a file or the environment and handed on as keyword arguments.
_FILE_KEYS = ("ssl_ca_cert", "cert_file", "cert_key_file", "cert_key_password", "proxy",
              "username", "password", "api")


log = logging.getLogger("edge_agent.client")

def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _timeouts(timeout: Any) -> Tuple[float, Optional[float]]:
    """(read, connect) seconds from milliseconds, or a (connect, read) pair of them."""
    try:
        if isinstance(timeout, (tuple, list)):
            connect, read = timeout
            return float(read) / 1000.0, float(connect) / 1000.0
        return float(timeout) / 1000.0, None
    except (TypeError, ValueError):
        raise ConfigError(f"timeout {timeout!r} must be milliseconds, or a (connect, read) "
                          "pair of milliseconds") from None


class InfluxDBClient:
    """Connection settings shared by the write APIs made from it.

    ``url``, ``token``, ``org``, ``default_tags`` and ``api_client.configuration``
    (``conf``) read as in influxdb-client; ``api_client.user_agent`` may be set
    before making a write API.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        debug: Optional[bool] = None,
        timeout: Any = 10_000,
        enable_gzip: bool = True,
        org: Optional[str] = None,
        default_tags: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(url, str):
            raise ValueError('"url" attribute is not str instance')
        self.url = url
        self.token = token
        self.org = org
        self.default_tags: Optional[Dict[str, Any]] = (
            dict(default_tags) if default_tags is not None else None)
        self.debug = debug
        read, connect = _timeouts(timeout)
        verify_ssl = _bool(kwargs.get("verify_ssl", True))
        self.conf = Configuration(
            host=url[:-1] if url.endswith("/") else url, verify_ssl=verify_ssl,
            timeout=timeout, enable_gzip=enable_gzip, debug=debug,
            auth_basic=_bool(kwargs.get("auth_basic", False)),
            **{k: kwargs.get(k) for k in ("ssl_ca_cert", "cert_file", "cert_key_file",
                                          "cert_key_password", "ssl_context", "proxy",
                                          "proxy_headers", "connection_pool_maxsize",
                                          "username", "password")},
        )
        self.api_client = ApiClient(self.conf)
        extra: Dict[str, Any] = {"connect_timeout": connect} if connect is not None else {}
        self.settings = InfluxSettings(
            url=url,
            api=kwargs.get("api", "v2"),
            token=token,
            org=org or "",
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            gzip=enable_gzip,
            timeout=read,
            verify_ssl=verify_ssl,
            ssl_ca_cert=kwargs.get("ssl_ca_cert"),
            cert_file=kwargs.get("cert_file"),
            cert_key_file=kwargs.get("cert_key_file"),
            cert_key_password=kwargs.get("cert_key_password"),
            **extra,
        )
        check_keywords(kwargs)
        if not self.settings.verify_ssl:
            log.warning("InfluxDBClient(verify_ssl=False): the certificate of %s is not checked, "
                        "so anyone on the network path can pose as the server; give its CA "
                        "file as ssl_ca_cert instead", self.settings.url)
        self._apis: list = []

    def __repr__(self) -> str:
        return (f"InfluxDBClient(url={self.settings.url!r}, org={self.org!r}, "
                f"api={self.settings.api!r})")

    # -- configuration --------------------------------------------------------

    @classmethod
    def from_config_file(cls, config_file: str = "config.ini", debug: Optional[bool] = None,
                         enable_gzip: bool = True, **kwargs: Any) -> InfluxDBClient:
        """Read the settings from a file, as influxdb-client does.

        ini or toml: section ``config_name`` (default ``influx2``) with url, org,
        token, timeout, verify_ssl, ssl_ca_cert, cert_file, cert_key_file,
        cert_key_password, proxy, auth_basic..., and ``[tags]``. JSON: the same
        keys at the top level and ``"tags"``. YAML: ``influx2:`` and ``tags:``.
        """
        config_name = kwargs.pop("config_name", "influx2")
        section, tags = read_config_file(config_file, config_name)
        return cls._from_values(section, tags, debug, enable_gzip, kwargs)

    @classmethod
    def from_env_properties(cls, debug: Optional[bool] = None, enable_gzip: bool = True,
                            **kwargs: Any) -> InfluxDBClient:
        """``INFLUXDB_V2_URL/ORG/TOKEN/TIMEOUT/VERIFY_SSL/SSL_CA_CERT/CERT_FILE/
        CERT_KEY_FILE/CERT_KEY_PASSWORD/AUTH_BASIC`` and ``INFLUXDB_V2_TAG_<NAME>``."""
        section, tags = env_settings()
        return cls._from_values(section, tags, debug, enable_gzip, kwargs)

    @classmethod
    def _from_values(cls, section: Mapping[str, Any], tags: Mapping[str, Any],
                     debug: Optional[bool], enable_gzip: bool, kwargs: Dict[str, Any]
                     ) -> InfluxDBClient:
        options: Dict[str, Any] = dict(kwargs)
        for key in ("verify_ssl", "auth_basic"):
            if key in section:
                options.setdefault(key, _bool(section[key]))
        for key in _FILE_KEYS:
            if section.get(key):
                options.setdefault(key, section[key])
        if section.get("connection_pool_maxsize"):
            options.setdefault("connection_pool_maxsize",
                               int(section["connection_pool_maxsize"]))
        timeout = section.get("timeout")
        try:
            timeout_ms = int(float(timeout)) if timeout not in (None, "") else 10_000
        except ValueError:
            raise ConfigError(f"timeout {timeout!r} is not a number of milliseconds") from None
        token = section.get("token")
        return cls(url=str(section["url"]), token=None if token is None else str(token),
                   debug=debug, timeout=timeout_ms, enable_gzip=enable_gzip,
                   org=section.get("org"), default_tags=dict(tags) or None, **options)

    # -- APIs -------------------------------------------------------------------

    def write_api(self, write_options: Optional[WriteOptions] = None,
                  point_settings: Optional[PointSettings] = None, **kwargs: Any) -> Any:
        """A :class:`~edge_agent.write_api.WriteApi` (batching unless told otherwise)."""
        from .write_api import WriteApi

        api = WriteApi(self, write_options or WriteOptions(), point_settings or PointSettings(),
                       **kwargs)
        self._apis.append(api)
        return api

    def ping(self) -> bool:
        """``True`` when the server answers its ping endpoint."""
        transport = Transport(self.settings)
        try:
            return transport.ping().outcome is Outcome.OK
        finally:
            transport.close()

    def close(self) -> None:
        """Close every write API made from this client (delivering what is pending)."""
        while self._apis:
            self._apis.pop().close()

    def __enter__(self) -> InfluxDBClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
