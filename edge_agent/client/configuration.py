"""What a client was configured with, readable where influxdb-client users read it.

``client.api_client.configuration`` (also ``client.conf``) holds the settings
under the reference's names: ``host``, ``verify_ssl``, ``ssl_ca_cert``,
``cert_file``, ``cert_key_file``, ``cert_key_password``, ``ssl_context``,
``proxy``, ``proxy_headers``, ``connection_pool_maxsize``, ``timeout`` (ms, as
given), ``enable_gzip``, ``username``, ``password``, ``auth_basic``, ``debug``.
``client.api_client.user_agent`` is the User-Agent header the write APIs made
afterwards send.

Configuration files (``from_config_file``) are read here too: ini and toml
(section ``config_name``, default ``influx2``, plus ``[tags]``), JSON (the keys
at the top level, as the reference reads them, plus ``"tags"``) and YAML.
"""

from __future__ import annotations

import configparser
import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from ..delivery.transport import USER_AGENT
from ..errors import ConfigError

__all__ = ["ApiClient", "Configuration", "USER_AGENT", "read_config_file"]

# (name, default) of every setting kept, in the reference's order.
_SETTINGS: Tuple[Tuple[str, Any], ...] = (
    ("host", ""), ("verify_ssl", True), ("ssl_ca_cert", None), ("cert_file", None),
    ("cert_key_file", None), ("cert_key_password", None), ("ssl_context", None),
    ("proxy", None), ("proxy_headers", None), ("connection_pool_maxsize", None),
    ("timeout", 10_000), ("enable_gzip", True), ("username", None), ("password", None),
    ("auth_basic", False), ("debug", None),
)
_SECRET = frozenset({"password", "cert_key_password"})


class Configuration:
    """The client's settings under influxdb-client's names (see the module doc)."""

    host: str
    verify_ssl: bool
    ssl_ca_cert: Optional[str]
    cert_file: Optional[str]
    cert_key_file: Optional[str]
    cert_key_password: Any
    ssl_context: Any
    proxy: Optional[str]
    proxy_headers: Optional[Mapping[str, str]]
    connection_pool_maxsize: Optional[int]
    timeout: Any
    enable_gzip: bool
    username: Optional[str]
    password: Optional[str]
    auth_basic: bool
    debug: Optional[bool]

    def __init__(self, **settings: Any) -> None:
        for name, default in _SETTINGS:
            setattr(self, name, settings.get(name, default))

    def __repr__(self) -> str:
        shown = []
        for name, _ in _SETTINGS:
            value = getattr(self, name)
            shown.append(f"{name}={'***' if name in _SECRET and value else repr(value)}")
        return f"Configuration({', '.join(shown)})"


class ApiClient:
    """``client.api_client``: its ``configuration`` and ``user_agent``."""

    def __init__(self, configuration: Configuration) -> None:
        self.configuration = configuration
        self.default_headers: Dict[str, str] = {"User-Agent": USER_AGENT}

    @property
    def user_agent(self) -> str:
        return self.default_headers["User-Agent"]

    @user_agent.setter
    def user_agent(self, value: str) -> None:
        self.default_headers["User-Agent"] = value

    def set_default_header(self, name: str, value: str) -> None:
        self.default_headers[name] = value


# --------------------------------------------------------------------------- files


def _unquote(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _looks_like_json(path: str, text: str) -> bool:
    return path.endswith(".json") or text.lstrip().startswith("{")


def read_config_file(path: str, config_name: str = "influx2"
                     ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(settings, default tags)`` from an ini, toml, JSON or YAML file."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.endswith((".yml", ".yaml")):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        section, tags = _from_mapping(path, data, config_name, nested_only=True)
    elif _looks_like_json(path, text):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
        section, tags = _from_mapping(path, data, config_name, nested_only=False)
    else:
        section, tags = _from_ini(path, text, config_name)
    if not section.get("url"):
        raise ConfigError(f"{path}: [{config_name}] needs url")
    return section, tags


def _from_mapping(path: str, data: Any, config_name: str, nested_only: bool
                  ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top")
    nested = data.get(config_name)
    if isinstance(nested, dict):
        section = dict(nested)
    elif nested_only:
        raise ConfigError(f"{path}: no {config_name}: section (url, org, token)")
    else:  # the reference's JSON: the settings at the top level
        section = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tags = data.get("tags") or {}
    if not isinstance(tags, dict):
        raise ConfigError(f"{path}: tags must be a mapping of tag names to values")
    return section, dict(tags)


def _from_ini(path: str, text: str, config_name: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise ConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
    if not parser.has_section(config_name):
        found = ", ".join(parser.sections()) or "none"
        raise ConfigError(f"{path}: no [{config_name}] section (url, org, token); "
                          f"sections found: {found}")
    section = {k: _unquote(v) for k, v in parser.items(config_name)}
    tags = ({k: _unquote(v) for k, v in parser.items("tags")}
            if parser.has_section("tags") else {})
    return section, tags


def env_settings() -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``INFLUXDB_V2_*`` settings and ``INFLUXDB_V2_TAG_<NAME>`` default tags."""
    env = os.environ
    section = {key[len("INFLUXDB_V2_"):].lower(): value for key, value in env.items()
               if key.startswith("INFLUXDB_V2_") and not key.startswith("INFLUXDB_V2_TAG_")}
    section.setdefault("url", "http://localhost:8086")
    tags = {key[len("INFLUXDB_V2_TAG_"):].lower(): value for key, value in env.items()
            if key.startswith("INFLUXDB_V2_TAG_")}
    return section, tags
