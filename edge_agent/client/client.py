"""``InfluxDBClient``: the seed's client, for writing (config from code, file or env).

    with InfluxDBClient(url="http://localhost:8086", token="my-token", org="my-org") as client:
        with client.write_api(write_options=SYNCHRONOUS) as write_api:
            write_api.write("my-bucket", record=Point("cpu").field("temp", 25.3))

Only the write side of the seed exists here; ``api="v1"`` or ``"v3"`` selects
InfluxDB 1.x's ``/write`` or 3.x's ``/api/v3/write_lp`` (default ``"v2"``).
"""

from __future__ import annotations

import configparser
import logging
import os
from typing import Any, Dict, Mapping, Optional

from ..delivery.outcome import Outcome
from ..delivery.transport import InfluxSettings, Transport
from ..errors import ConfigError
from ..options import PointSettings, WriteOptions
from .keywords import check_keywords

__all__ = ["InfluxDBClient"]

_TRUE = {"1", "true", "yes", "on"}
log = logging.getLogger("edge_agent.client")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


class InfluxDBClient:
    """Connection settings shared by the write APIs made from it."""

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        debug: Optional[bool] = None,
        timeout: int = 10_000,
        enable_gzip: bool = True,
        org: Optional[str] = None,
        default_tags: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        self.url = url
        self.org = org
        self.default_tags: Dict[str, Any] = dict(default_tags or {})
        self.debug = debug
        username = kwargs.get("username")
        password = kwargs.get("password")
        self.settings = InfluxSettings(
            url=url,
            api=kwargs.get("api", "v2"),
            token=token,
            org=org or "",
            username=username,
            password=password,
            gzip=enable_gzip,
            timeout=timeout / 1000.0,
            verify_ssl=_bool(kwargs.get("verify_ssl", True)),
            ssl_ca_cert=kwargs.get("ssl_ca_cert"),
            cert_file=kwargs.get("cert_file"),
            cert_key_file=kwargs.get("cert_key_file"),
            cert_key_password=kwargs.get("cert_key_password"),
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
        """Read ``[influx2]`` (url, org, token, timeout, verify_ssl, ssl_ca_cert, cert_file,
        cert_key_file, cert_key_password) and
        ``[tags]`` from an ini or toml-style file, or ``influx2:``/``tags:`` from YAML."""
        try:
            with open(config_file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"{config_file}: cannot read: {exc.strerror or exc}") from None
        if config_file.endswith((".yml", ".yaml")):
            import yaml

            data = yaml.safe_load(text) or {}
            section = dict(data.get("influx2") or {})
            tags = dict(data.get("tags") or {})
        else:
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read_string(text, source=config_file)
            except configparser.Error as exc:
                raise ConfigError(f"{config_file}: {str(exc).splitlines()[0]}") from None
            if not parser.has_section("influx2"):
                raise ConfigError(f"{config_file}: no [influx2] section (url, org, token)")
            section = {k: _unquote(v) for k, v in parser.items("influx2")}
            tags = ({k: _unquote(v) for k, v in parser.items("tags")}
                    if parser.has_section("tags") else {})
        if "url" not in section:
            raise ConfigError(f"{config_file}: [influx2] needs url")
        return cls._from_values(section, tags, debug, enable_gzip, kwargs)

    @classmethod
    def from_env_properties(cls, debug: Optional[bool] = None, enable_gzip: bool = True,
                            **kwargs: Any) -> InfluxDBClient:
        """``INFLUXDB_V2_URL/ORG/TOKEN/TIMEOUT/VERIFY_SSL/SSL_CA_CERT`` and
        ``INFLUXDB_V2_TAG_<NAME>`` default tags."""
        env = os.environ
        section = {key[len("INFLUXDB_V2_"):].lower(): value for key, value in env.items()
                   if key.startswith("INFLUXDB_V2_") and not key.startswith("INFLUXDB_V2_TAG_")}
        section.setdefault("url", "http://localhost:8086")
        tags = {key[len("INFLUXDB_V2_TAG_"):].lower(): value for key, value in env.items()
                if key.startswith("INFLUXDB_V2_TAG_")}
        return cls._from_values(section, tags, debug, enable_gzip, kwargs)

    @classmethod
    def _from_values(cls, section: Mapping[str, Any], tags: Mapping[str, Any],
                     debug: Optional[bool], enable_gzip: bool, kwargs: Dict[str, Any]
                     ) -> InfluxDBClient:
        options: Dict[str, Any] = dict(kwargs)
        if "verify_ssl" in section:
            options.setdefault("verify_ssl", _bool(section["verify_ssl"]))
        for key in ("ssl_ca_cert", "cert_file", "cert_key_file", "cert_key_password", "username",
                    "password", "api"):
            if section.get(key):
                options.setdefault(key, section[key])
        timeout = section.get("timeout")
        try:
            timeout_ms = int(float(timeout)) if timeout not in (None, "") else 10_000
        except ValueError:
            raise ConfigError(f"timeout {timeout!r} is not a number of milliseconds") from None
        return cls(url=str(section["url"]), token=section.get("token"), debug=debug,
                   timeout=timeout_ms, enable_gzip=enable_gzip, org=section.get("org"),
                   default_tags=dict(tags), **options)

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
