"""The typed configuration: frozen dataclasses, one per section.

Units: agent/buffer/source durations are float seconds; ``write:`` durations
are int milliseconds (the seed's WriteOptions names and units); sizes are
int bytes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

from ..destination import Destination
from .units import format_duration, format_size

__all__ = [
    "AgentConfig",
    "BufferConfig",
    "Config",
    "I2CSourceConfig",
    "InfluxConfig",
    "MqttSourceConfig",
    "SerialSourceConfig",
    "SourceConfig",
    "Subscription",
    "TimeSpec",
    "TlsConfig",
    "WriteConfig",
]

REDACTED = "***"
DEFAULT_STATE_DIR = "/var/lib/edge-agent"  # the systemd unit's StateDirectory=
SECRET_KEY = re.compile(r"pass|token|secret|api_?key|credential|private", re.IGNORECASE)


@dataclass(frozen=True)
class AgentConfig:
    name: str
    state_dir: str = DEFAULT_STATE_DIR
    log_level: str = "info"
    interval: float = 10.0
    round_interval: bool = True
    collection_jitter: float = 0.0
    internal_metrics: float = 60.0  # seconds; 0 = off


@dataclass(frozen=True)
class InfluxConfig:
    """Where and how to write; ``bucket`` is the v2 bucket, v1 db[/rp] or v3 database."""

    url: str = "http://localhost:8086"
    api: str = "v2"
    token: Optional[str] = field(default=None, repr=False)
    org: str = ""
    bucket: str = ""
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    precision: str = "ns"
    gzip: bool = True
    timeout: float = 10.0
    verify_ssl: bool = True
    ssl_ca_cert: Optional[str] = None
    cert_file: Optional[str] = None
    cert_key_file: Optional[str] = None
    cert_key_password: Optional[str] = field(default=None, repr=False)

    def destination(self) -> Destination:
        return Destination(self.bucket, self.org, self.precision)

    def settings(self) -> Dict[str, Any]:
        """Keyword arguments for ``edge_agent.delivery.transport.InfluxSettings``."""
        return {
            "url": self.url, "api": self.api, "token": self.token, "org": self.org,
            "username": self.username, "password": self.password, "gzip": self.gzip,
            "timeout": self.timeout, "verify_ssl": self.verify_ssl,
            "ssl_ca_cert": self.ssl_ca_cert, "cert_file": self.cert_file,
            "cert_key_file": self.cert_key_file, "cert_key_password": self.cert_key_password,
            "setting_prefix": "influx.",
        }


@dataclass(frozen=True)
class WriteConfig:
    """Batching and retry, in the seed's WriteOptions names; durations in ms."""

    batch_size: int = 1000
    flush_interval: int = 1000
    jitter_interval: int = 0
    retry_interval: int = 5000
    max_retries: int = 5
    max_retry_delay: int = 125_000
    max_retry_time: int = 180_000
    exponential_base: float = 2
    commit_interval: int = 100
    max_batch_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class BufferConfig:
    max_size: int = 256 * 1024 * 1024
    max_age: float = 7 * 86400.0
    sync: str = "normal"
    dead_letter_max: int = 10 * 1024 * 1024
    # SD-card mode (the default): deliver from memory, commit what is undelivered
    # after HOLD (README "SD cards"); false commits every reading within commit_interval.
    hold: bool = True


@dataclass(frozen=True)
class I2CSourceConfig:
    """``bus`` is a bus number, a device path (/dev/i2c-1) or "emulated"."""

    name: str
    driver: str
    bus: Union[int, str]
    address: int
    interval: float = 10.0
    measurement: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    type: str = field(default="i2c", init=False)


@dataclass(frozen=True)
class SerialSourceConfig:
    """``port`` is any pyserial URL; ``bytesize``/``parity``/``stopbits`` None = pyserial's."""

    name: str
    driver: str
    port: str
    baudrate: int = 9600
    bytesize: Optional[int] = None
    parity: Optional[str] = None  # N, E, O, M, S
    stopbits: Optional[float] = None  # 1, 1.5, 2
    timeout: float = 1.0
    interval: float = 10.0
    measurement: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    type: str = field(default="serial", init=False)


@dataclass(frozen=True)
class TimeSpec:
    """Where a message carries its own timestamp; ``format`` is iso or a strptime format;
    ``precision`` of epoch numbers: ns, us, ms, s or auto."""

    key: str
    precision: str = "s"
    format: Optional[str] = None


@dataclass(frozen=True)
class Subscription:
    """One topic template.

    ``levels`` is the template split on "/"; ``filter`` is the MQTT topic
    filter to subscribe to (every ``{name}`` capture becomes ``+``);
    ``captures`` maps a capture name to its level index ("field" and
    "measurement" included).
    """

    topic: str
    format: str
    measurement: str
    filter: str = ""
    levels: Tuple[str, ...] = ()
    captures: Mapping[str, int] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)
    time: Optional[TimeSpec] = None
    preset: Optional[str] = None
    timezone: Optional[str] = None
    booleans: Mapping[str, bool] = field(default_factory=dict)
    skip: Tuple[str, ...] = ()
    tag_keys: Tuple[str, ...] = ()
    where: Mapping[str, Any] = field(default_factory=dict)
    decode: Tuple[str, ...] = ()
    field: Optional[str] = None  # last: the name shadows dataclasses.field in this body


@dataclass(frozen=True)
class TlsConfig:
    ca_cert: Optional[str] = None
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    verify: bool = True
    keyfile_password: Optional[str] = field(default=None, repr=False)


@dataclass(frozen=True)
class MqttSourceConfig:
    """An MQTT bridge; ``protocol`` is "5" or "3.1.1"; ``tls`` is set for mqtts:// URLs."""

    name: str
    url: str
    subscriptions: Tuple[Subscription, ...] = ()
    client_id: str = ""
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    protocol: str = "5"
    qos: int = 1
    clean_session: bool = False
    session_expiry: float = 7 * 86400.0
    keepalive: float = 60.0
    tls: Optional[TlsConfig] = None
    max_payload: int = 256 * 1024
    reconnect_max: float = 30.0
    interval: float = 10.0
    measurement: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    type: str = field(default="mqtt", init=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        return port if port is not None else (8883 if self.tls is not None else 1883)


SourceConfig = Union[I2CSourceConfig, SerialSourceConfig, MqttSourceConfig]


@dataclass(frozen=True)
class Config:
    """The whole validated config; ``tags`` are the effective default tags (incl. host)."""

    agent: AgentConfig
    influx: InfluxConfig
    tags: Mapping[str, str] = field(default_factory=dict)
    write: WriteConfig = field(default_factory=WriteConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    sources: Tuple[SourceConfig, ...] = ()
    warnings: Tuple[str, ...] = ()
    path: str = "<string>"

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def write_options(self) -> Dict[str, Any]:
        """Keyword arguments for ``edge_agent.options.WriteOptions`` (ms, bytes, seconds).

        ``buffer_dir`` is ``<state_dir>/buffer``; max_age is in seconds.
        """
        options: Dict[str, Any] = {f.name: getattr(self.write, f.name) for f in fields(self.write)}
        options.update(
            buffer_dir=os.path.join(self.agent.state_dir, "buffer"),
            max_size=self.buffer.max_size,
            max_age=self.buffer.max_age,
            sync=self.buffer.sync,
        )
        return options

    def redacted(self) -> Dict[str, Any]:
        """The effective config as plain values, secrets replaced by "***".

        Durations and sizes are spelled as in a config file (10s, 256MiB),
        so the result can be dumped as YAML for ``edge-agent check-config``.
        """
        agent = _plain(self.agent)
        for key in ("interval", "collection_jitter", "internal_metrics"):
            agent[key] = format_duration(agent[key])
        influx = _plain(self.influx)
        influx["timeout"] = format_duration(influx["timeout"])
        buffer = _plain(self.buffer)
        buffer["max_age"] = format_duration(buffer["max_age"])
        for key in ("max_size", "dead_letter_max"):
            buffer[key] = format_size(buffer[key])
        write = _plain(self.write)
        write["max_batch_bytes"] = format_size(write["max_batch_bytes"])
        return {
            "agent": agent,
            "tags": dict(self.tags),
            "influx": influx,
            "write": write,
            "buffer": buffer,
            "sources": [_source_plain(source) for source in self.sources],
        }


def _source_plain(source: SourceConfig) -> Dict[str, Any]:
    data = _plain(source)
    order = ["name", "type"]
    result = {key: data.pop(key) for key in order}
    result.update(data)
    for key in ("interval", "timeout", "session_expiry", "keepalive", "reconnect_max"):
        if isinstance(result.get(key), float):
            result[key] = format_duration(result[key])
    if isinstance(source, I2CSourceConfig):
        result["address"] = f"0x{source.address:02x}"
    if "max_payload" in result:
        result["max_payload"] = format_size(result["max_payload"])
    for sub in result.get("subscriptions", []):
        for key in ("filter", "levels", "captures"):
            sub.pop(key, None)
        for key in [key for key, value in sub.items()
                    if value is None or value == {} or value == []]:
            del sub[key]
    return result


def _plain(value: Any, key: str = "") -> Any:
    """Dataclasses/mappings/tuples to dicts/lists, secret-ish values redacted."""
    if key and SECRET_KEY.search(key) and value is not None and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, str) and "://" in value:
        return _redact_url(value)
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name), f.name) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username}:{REDACTED}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return url
