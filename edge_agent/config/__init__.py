"""The agent's configuration: one YAML file -> typed, validated ``Config``.

    config = load_config(config_path_from(args.config, os.environ))

Every mistake raises ``ConfigError`` with one line
``path/to/config.yaml:LINE:COL: what is wrong, and the accepted values``.
``${VAR}`` / ``${VAR:-default}`` are expanded in every scalar before typing;
missing influx settings fall back to the seed's ``INFLUXDB_V2_*`` variables.

Units: durations accept ``250ms``, ``10s``, ``5m``, ``2h``, ``7d``; a plain
number is milliseconds in ``write:`` (as in the seed's WriteOptions) and
seconds everywhere else. Sizes accept ``256MiB``, ``1GB`` or a byte count.
"""

from __future__ import annotations

from .loader import DEFAULT_PATH, LOG_LEVELS, config_path_from, load_config, parse_config
from .model import (
    AgentConfig,
    BufferConfig,
    Config,
    I2CSourceConfig,
    InfluxConfig,
    MqttSourceConfig,
    SerialSourceConfig,
    SourceConfig,
    Subscription,
    TimeSpec,
    TlsConfig,
    WriteConfig,
)
from .sources import FORMATS, I2C_DRIVERS, SERIAL_DRIVERS, SOURCE_TYPES, parse_topic

__all__ = [
    "DEFAULT_PATH",
    "FORMATS",
    "I2C_DRIVERS",
    "LOG_LEVELS",
    "SERIAL_DRIVERS",
    "SOURCE_TYPES",
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
    "config_path_from",
    "load_config",
    "parse_config",
    "parse_topic",
]
