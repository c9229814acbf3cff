"""YAML text -> Config: the top-level sections, environment fallback, warnings."""

from __future__ import annotations

import logging
import os
import socket
import stat
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import ConfigError
from .model import DEFAULT_STATE_DIR, AgentConfig, BufferConfig, Config, InfluxConfig, WriteConfig
from .schema import Context, Section
from .sources import parse_sources
from .tls import influx_tls
from .yamlpos import load_yaml

__all__ = ["DEFAULT_PATH", "config_path_from", "load_config", "parse_config"]

DEFAULT_PATH = "/etc/edge-agent/config.yaml"
MAX_CONFIG_BYTES = 1024 * 1024  # a real config is a few KiB
STATE_DIR_ENV = "EDGE_AGENT_STATE_DIR"
log = logging.getLogger("edge_agent.config")

_TOP = ("agent", "tags", "influx", "write", "buffer", "sources")
_AGENT = ("name", "state_dir", "log_level", "interval", "round_interval", "collection_jitter",
          "internal_metrics")
_INFLUX = ("url", "api", "token", "org", "bucket", "username", "password", "precision", "gzip",
           "timeout", "verify_ssl", "ssl_ca_cert", "cert_file", "cert_key_file",
           "cert_key_password")
_WRITE = ("batch_size", "flush_interval", "jitter_interval", "retry_interval", "max_retries",
          "max_retry_delay", "max_retry_time", "exponential_base", "commit_interval",
          "max_batch_bytes")
_BUFFER = ("max_size", "max_age", "sync", "dead_letter_max", "hold")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_ENV_TAG = "INFLUXDB_V2_TAG_"


def config_path_from(args_path: Optional[str], env: Mapping[str, str] = os.environ) -> str:
    """The config file to use: ``-c PATH``, else ``$EDGE_AGENT_CONFIG``, else the default."""
    return args_path or env.get("EDGE_AGENT_CONFIG") or DEFAULT_PATH


def load_config(path: str, env: Optional[Mapping[str, str]] = None) -> Config:
    """Read and validate the config file at ``path``; raises ConfigError.

    Warnings (a secret in a file other users can read) are logged on the
    ``edge_agent.config`` logger and kept in ``Config.warnings``.
    """
    data, mode = _read_bounded(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: cannot read: not UTF-8 text "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    config = parse_config(text, path, os.environ if env is None else env, file_mode=mode)
    for warning in config.warnings:
        log.warning("%s", warning)
    return config


def _read_bounded(path: str) -> Tuple[bytes, int]:
    """The file's bytes and st_mode; only a regular file of at most MAX_CONFIG_BYTES
    (``-c /dev/zero`` would read forever, a FIFO would block the open)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError(f"{path}: cannot read: not a regular file ({_kind(info.st_mode)}); "
                          "give the path of a YAML file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_CONFIG_BYTES + 1)  # the file may grow after fstat
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if max(info.st_size, len(data)) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: cannot read: {max(info.st_size, len(data))} bytes is more "
                          f"than a config file may have ({MAX_CONFIG_BYTES // 1024} KiB)")
    return data, info.st_mode


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a file"


def parse_config(
    text: str,
    path: str = "<string>",
    env: Mapping[str, str] = os.environ,
    *,
    file_mode: Optional[int] = None,
) -> Config:
    """Validate config ``text``; ``path`` is only used in messages.

    ``file_mode`` (st_mode of the file) enables the world-readable-secret warning.
    """
    ctx = Context(path)
    tree = load_yaml(text.lstrip("\ufeff"), path, env)
    ctx.hide_secrets(tree)
    top = Section(ctx, tree, "", _TOP)
    agent = _agent(top.section("agent", _AGENT), env)
    influx = _influx(top.section("influx", _INFLUX), env, path)
    write = _write(top.section("write", _WRITE))
    buffer = _buffer(top.section("buffer", _BUFFER))
    tags: Dict[str, str] = {
        key[len(_ENV_TAG):].lower(): value
        for key, value in env.items()
        if key.startswith(_ENV_TAG) and len(key) > len(_ENV_TAG)
    }
    tags.update(top.string_map("tags"))
    tags.setdefault("host", agent.name)
    sources = parse_sources(ctx, top, agent.name, agent.interval)
    config = Config(
        agent=agent, influx=influx, tags=tags, write=write, buffer=buffer, sources=sources,
        warnings=tuple(ctx.warnings + _warnings(ctx, path, file_mode)
                       + _precision_warnings(influx, sources)),
        path=path,
    )
    _check_ranges(top, config)
    return config


def _check_ranges(top: Section, config: Config) -> None:
    """The write and buffer settings as the writer will take them (zero intervals, ...)."""
    from ..options import WriteOptions

    try:
        WriteOptions(**config.write_options())
    except ValueError as exc:
        message = str(exc)
        section = "buffer" if any(k in message for k in ("max_size", "max_age", "sync")) \
            else "write"
        raise top.fail(section, message) from None
    if config.buffer.dead_letter_max < 1024:
        raise top.fail("buffer", f"dead_letter_max must be at least 1KiB, got "
                                 f"{config.buffer.dead_letter_max}")


def _warnings(ctx: Context, path: str, file_mode: Optional[int]) -> List[str]:
    if file_mode is None or not file_mode & 0o004:
        return []
    return [
        f"{path}:{mark.line}:{mark.col}: {key} is written in a file other users can read "
        f"(mode {file_mode & 0o777:o}); run 'chmod 600 {path}' or use ${{VAR}} "
        "interpolation from the environment"
        for key, mark in ctx.literal_secrets
    ]


def _precision_warnings(influx: InfluxConfig, sources: Any) -> List[str]:
    """A coarse precision with an MQTT source: points of one series in one unit collide."""
    if influx.precision != "s":
        return []
    return [
        f"influx.precision: s with the MQTT source {source.name!r}: messages of one series less "
        "than a second apart share a timestamp and would overwrite each other in InfluxDB; "
        "the bridge moves them up to 10 s apart and rejects the rest (see the README, "
        "'Timestamp collisions'); use precision ms (or finer)"
        for source in sources if getattr(source, "type", "") == "mqtt" and source.enabled
    ]


def _agent(section: Section, env: Mapping[str, str]) -> AgentConfig:
    name = section.string("name", "") or socket.gethostname() or "edge-agent"
    # agent.state_dir in the file, else $EDGE_AGENT_STATE_DIR (the systemd unit sets it
    # to its StateDirectory=), else the default: the file is the explicit choice.
    state_dir = section.string("state_dir", "") or env.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
    return AgentConfig(
        name=name,
        state_dir=os.path.expanduser(state_dir),
        log_level=section.choice("log_level", LOG_LEVELS, "info", what="log level",
                                 aliases={"warn": "warning"}),
        interval=section.duration("interval", 10.0, positive=True),
        round_interval=section.boolean("round_interval", True),
        collection_jitter=section.duration("collection_jitter", 0.0),
        internal_metrics=section.duration("internal_metrics", 60.0),
    )


def _env_error(path: str, name: str, message: str) -> ConfigError:
    # The value is not repeated: the environment is where secrets live.
    return ConfigError(f"{path}: environment variable {name} (value not shown): {message}")


def _influx(section: Section, env: Mapping[str, str], path: str) -> InfluxConfig:
    url = section.string("url", "") or env.get("INFLUXDB_V2_URL") or "http://localhost:8086"
    if not url.lower().startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        if section.has("url"):
            raise section.fail("url", f"bad InfluxDB URL {url!r}; use http://host:8086 or https://...")
        raise _env_error(path, "INFLUXDB_V2_URL", "use http://host:8086 or https://...")
    bucket = section.string("bucket", "") or env.get("INFLUXDB_V2_BUCKET")
    if not bucket:
        raise section.ctx.error(
            section.key_mark("bucket"),
            "influx: missing required key 'bucket' (the v2 bucket, the v1 database or "
            "database/retention_policy, or the v3 database)",
        )
    timeout = section.duration("timeout", -1.0, positive=True)
    if timeout < 0:
        raw = env.get("INFLUXDB_V2_TIMEOUT")
        try:
            timeout = int(raw) / 1000.0 if raw else 10.0  # the seed's variable is in ms
        except ValueError:
            raise _env_error(path, "INFLUXDB_V2_TIMEOUT", "must be whole milliseconds") from None
    verify_ssl = section.boolean("verify_ssl", True)
    if not section.has("verify_ssl") and "INFLUXDB_V2_VERIFY_SSL" in env:
        verify_ssl = env["INFLUXDB_V2_VERIFY_SSL"].strip().lower() in ("yes", "true")
    tls = influx_tls(section, env, url, verify_ssl)
    return InfluxConfig(
        url=url.rstrip("/"),
        api=section.choice("api", ("v1", "v2", "v3"), "v2", what="InfluxDB API",
                           aliases={"1": "v1", "2": "v2", "3": "v3"}),
        token=section.string("token", "", secret=True) or env.get("INFLUXDB_V2_TOKEN") or None,
        org=section.string("org", "") or env.get("INFLUXDB_V2_ORG") or "",
        bucket=bucket,
        username=section.string("username", None),
        password=section.string("password", None, secret=True),
        precision=section.choice("precision", ("ns", "us", "ms", "s"), "ns", what="precision"),
        gzip=section.boolean("gzip", True),
        timeout=timeout,
        verify_ssl=verify_ssl,
        **tls,
    )


def _write(section: Section) -> WriteConfig:
    return WriteConfig(
        batch_size=section.integer("batch_size", 1000, minimum=1),
        flush_interval=section.millis("flush_interval", 1000),
        jitter_interval=section.millis("jitter_interval", 0),
        retry_interval=section.millis("retry_interval", 5000),
        max_retries=section.integer("max_retries", 5, minimum=0),
        max_retry_delay=section.millis("max_retry_delay", 125_000),
        max_retry_time=section.millis("max_retry_time", 180_000),
        exponential_base=section.number("exponential_base", 2, minimum=1),
        commit_interval=section.millis("commit_interval", 100),
        max_batch_bytes=section.size("max_batch_bytes", 8 * 1024 * 1024),
    )


def _buffer(section: Section) -> BufferConfig:
    return BufferConfig(
        max_size=section.size("max_size", 256 * 1024 * 1024),
        max_age=section.duration("max_age", 7 * 86400.0, positive=True),
        sync=section.choice("sync", ("normal", "full"), "normal", what="sync mode"),
        dead_letter_max=section.size("dead_letter_max", 10 * 1024 * 1024),
        hold=section.boolean("hold", True),
    )
