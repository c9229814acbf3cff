"""Config values: defaults, interpolation, env fallback, sources, redaction, shipped files."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import yaml

from edge_agent.config import (
    Config,
    I2CSourceConfig,
    MqttSourceConfig,
    SerialSourceConfig,
    config_path_from,
    load_config,
    parse_config,
)
from edge_agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BASE = "influx:\n  bucket: b\n"


def parse(text: str, env: Optional[Dict[str, str]] = None) -> Config:
    return parse_config(text, "edge.yaml", env={} if env is None else env)


def test_defaults() -> None:
    config = parse(BASE)
    agent = config.agent
    assert agent.name == socket.gethostname()
    assert (agent.state_dir, agent.log_level, agent.interval) == (
        "/var/lib/edge-agent",
        "info",
        10.0,
    )
    assert (agent.round_interval, agent.collection_jitter, agent.internal_metrics) == (
        True,
        0.0,
        60.0,
    )
    assert config.tags == {"host": socket.gethostname()}
    influx = config.influx
    assert (influx.url, influx.api, influx.token, influx.org, influx.bucket) == (
        "http://localhost:8086",
        "v2",
        None,
        "",
        "b",
    )
    assert (influx.precision, influx.gzip, influx.timeout, influx.verify_ssl) == (
        "ns",
        True,
        10.0,
        True,
    )
    assert config.write_options() == {
        "batch_size": 1000,
        "flush_interval": 1000,
        "jitter_interval": 0,
        "retry_interval": 5000,
        "max_retries": 5,
        "max_retry_delay": 125000,
        "max_retry_time": 180000,
        "exponential_base": 2,
        "commit_interval": 100,
        "max_batch_bytes": 8 * 1024 * 1024,
        "buffer_dir": "/var/lib/edge-agent/buffer",
        "max_size": 256 * 1024 * 1024,
        "max_age": 7 * 86400.0,
        "sync": "normal",
    }
    assert config.buffer.dead_letter_max == 10 * 1024 * 1024
    assert config.sources == ()
    assert config.warnings == ()


def test_write_plain_numbers_are_ms_and_durations_are_accepted() -> None:
    config = parse(
        BASE + "write:\n  flush_interval: 5s\n  retry_interval: 250\n"
        "  max_retry_delay: 2m\n  commit_interval: 50ms\n  exponential_base: 1.5\n"
    )
    assert config.write.flush_interval == 5000
    assert config.write.retry_interval == 250
    assert config.write.max_retry_delay == 120_000
    assert config.write.commit_interval == 50
    assert config.write.exponential_base == 1.5


def test_plain_numbers_elsewhere_are_seconds() -> None:
    config = parse(
        BASE + "  timeout: 3\nagent:\n  interval: 2\n  internal_metrics: 0\n"
        "buffer:\n  max_age: 3600\n  max_size: 1024\n"
    )
    assert config.influx.timeout == 3.0
    assert config.agent.interval == 2.0
    assert config.agent.internal_metrics == 0.0  # off
    assert config.buffer.max_age == 3600.0
    assert config.buffer.max_size == 1024


def test_host_tag_comes_from_the_agent_name_unless_set() -> None:
    assert parse(BASE + "agent: {name: pi}\ntags: {site: gh}\n").tags == {
        "site": "gh",
        "host": "pi",
    }
    assert parse(BASE + "agent: {name: pi}\ntags: {host: other}\n").tags == {"host": "other"}


def test_tag_values_keep_their_text() -> None:
    assert parse(BASE + "tags: {floor: 02, on: yes, name: pi}\n").tags["floor"] == "02"


class TestInterpolation:
    def test_typed_after_interpolation(self) -> None:
        config = parse(
            "influx:\n  bucket: b\n  gzip: ${GZIP:-false}\n"
            "write:\n  batch_size: ${BATCH:-500}\n  max_retries: ${RETRIES}\n",
            env={"RETRIES": "7"},
        )
        assert config.write.batch_size == 500
        assert config.write.max_retries == 7
        assert config.influx.gzip is False

    def test_defaults_apply_to_unset_and_empty(self) -> None:
        text = "influx:\n  bucket: ${BUCKET:-fallback}\n"
        assert parse(text).influx.bucket == "fallback"
        assert parse(text, env={"BUCKET": ""}).influx.bucket == "fallback"
        assert parse(text, env={"BUCKET": "real"}).influx.bucket == "real"

    def test_inside_strings_keys_and_lists(self) -> None:
        config = parse(
            "influx:\n  bucket: ${DB}/${RP:-autogen}\n  url: http://${HOST}:8086\n"
            "tags:\n  ${TAG:-zone}: z${N}\n",
            env={"DB": "db", "HOST": "h", "N": "1"},
        )
        assert config.influx.bucket == "db/autogen"
        assert config.influx.url == "http://h:8086"
        assert config.tags["zone"] == "z1"

    def test_quoted_values_stay_strings(self) -> None:
        config = parse(BASE + "agent:\n  name: '${N}'\n", env={"N": "123"})
        assert config.agent.name == "123"

    def test_dollar_dollar_is_a_literal(self) -> None:
        config = parse(BASE + "agent:\n  name: a$${HOME}b\n", env={"HOME": "x"})
        assert config.agent.name == "a${HOME}b"

    def test_empty_default_gives_nothing(self) -> None:
        assert parse(BASE + "  token: ${T:-}\n").influx.token is None

    def test_undefined_is_an_error(self) -> None:
        expected = r"^edge.yaml:3:10: undefined environment variable \$\{T\}"
        with pytest.raises(ConfigError, match=expected):
            parse(BASE + "  token: ${T}\n")


class TestEnvFallback:
    ENV = {
        "INFLUXDB_V2_URL": "https://env:8086",
        "INFLUXDB_V2_ORG": "env-org",
        "INFLUXDB_V2_TOKEN": "env-token",
        "INFLUXDB_V2_TIMEOUT": "2500",
        "INFLUXDB_V2_VERIFY_SSL": "False",
        "INFLUXDB_V2_SSL_CA_CERT": "/ca.pem",
        "INFLUXDB_V2_TAG_Location": "Attic",
        "INFLUXDB_V2_TAG_HOST": "from-env",
    }

    def test_missing_settings_come_from_the_environment(self) -> None:
        config = parse(BASE, env=self.ENV)
        influx = config.influx
        assert (influx.url, influx.org, influx.token) == (
            "https://env:8086",
            "env-org",
            "env-token",
        )
        assert (influx.timeout, influx.verify_ssl, influx.ssl_ca_cert) == (2.5, False, "/ca.pem")
        assert config.tags == {"location": "Attic", "host": "from-env"}

    def test_file_values_win(self, pki: Any) -> None:
        text = (
            "influx:\n  bucket: b\n  url: http://file:8086\n  org: o\n  token: t\n"
            f"  timeout: 1s\n  verify_ssl: true\n  ssl_ca_cert: {pki.ca_cert}\n"
            "tags: {location: cellar}\nagent: {name: pi}\n"
        )
        config = parse(text, env=self.ENV)
        influx = config.influx
        assert (influx.url, influx.org, influx.token) == ("http://file:8086", "o", "t")
        assert (influx.timeout, influx.verify_ssl, influx.ssl_ca_cert) == (
            1.0, True, str(pki.ca_cert))
        assert config.tags == {"location": "cellar", "host": "from-env"}

    def test_bucket_from_the_environment(self) -> None:
        assert parse("", env={"INFLUXDB_V2_BUCKET": "eb"}).influx.bucket == "eb"


def test_i2c_source() -> None:
    config = parse(
        BASE + "agent: {interval: 5s}\nsources:\n"
        "  - {name: c, type: i2c, driver: BME280, bus: 1, address: 0x76}\n"
        "  - {name: d, type: i2c, driver: register, bus: /dev/i2c-3, address: '0x40',\n"
        "     interval: 1s, measurement: m, tags: {k: v}, enabled: false,\n"
        "     options: {register: 0xFA, length: 2, scale: 0.5}}\n"
        "  - {name: e, type: i2c, driver: sht3x, bus: emulated, address: 68}\n"
    )
    c, d, e = config.sources
    assert c == I2CSourceConfig(
        name="c", driver="bme280", bus=1, address=0x76, interval=5.0, measurement="bme280"
    )
    assert d == I2CSourceConfig(
        name="d",
        driver="register",
        bus="/dev/i2c-3",
        address=0x40,
        interval=1.0,
        measurement="m",
        tags={"k": "v"},
        enabled=False,
        options={"register": 0xFA, "length": 2, "scale": 0.5},
    )
    assert isinstance(e, I2CSourceConfig)
    assert (e.bus, e.address, e.type) == ("emulated", 0x44, "i2c")


def test_serial_source() -> None:
    config = parse(
        BASE + "sources:\n"
        "  - {name: a, type: serial, driver: pms5003, port: /dev/serial0}\n"
        "  - {name: b, type: serial, driver: regex, port: 'socket://h:7000',\n"
        "     baudrate: 115200, bytesize: 7, parity: even, stopbits: 1.5,\n"
        "     timeout: 250ms, options: {pattern: 'T=(?P<t>\\S+)'}}\n"
    )
    a, b = config.sources
    assert isinstance(b, SerialSourceConfig)
    assert a == SerialSourceConfig(
        name="a", driver="pms5003", port="/dev/serial0", measurement="pms5003"
    )
    assert (b.port, b.baudrate, b.bytesize, b.parity, b.stopbits, b.timeout) == (
        "socket://h:7000",
        115200,
        7,
        "E",
        1.5,
        0.25,
    )
    assert b.options == {"pattern": "T=(?P<t>\\S+)"}


def test_mqtt_source_defaults_and_subscriptions() -> None:
    config = parse(
        BASE
        + """\
agent: {name: greenhouse}
sources:
  - name: bridge
    type: mqtt
    url: mqtt://localhost:1884
    subscriptions:
      - topic: sensors/{room}/{device}/{field}
        format: value
        measurement: climate
        tags: {source: mqtt}
      - topic: zigbee2mqtt/{device}
        format: json
        fields: {temperature: temperature, link: linkquality, t2: a.b.c}
        types: {link: int}
        time: {key: ts, precision: ms}
      - topic: 'raw/+/#'
        format: influx
"""
    )
    (bridge,) = config.sources
    assert isinstance(bridge, MqttSourceConfig)
    assert (bridge.client_id, bridge.protocol, bridge.qos, bridge.clean_session) == (
        "edge-agent-greenhouse",
        "5",
        1,
        False,
    )
    assert (bridge.session_expiry, bridge.max_payload, bridge.reconnect_max) == (
        7 * 86400.0,
        256 * 1024,
        30.0,
    )
    assert (bridge.host, bridge.port, bridge.tls) == ("localhost", 1884, None)
    value, js, raw = bridge.subscriptions
    assert value.filter == "sensors/+/+/+"
    assert value.captures == {"room": 1, "device": 2, "field": 3}
    assert (value.format, value.measurement, value.tags, value.field) == (
        "value",
        "climate",
        {"source": "mqtt"},
        None,
    )
    assert js.filter == "zigbee2mqtt/+"
    assert js.measurement == "mqtt"  # the source's measurement, whose default is "mqtt"
    assert js.fields == {"temperature": "temperature", "link": "linkquality", "t2": "a.b.c"}
    assert js.types == {"link": "int"}
    assert js.time is not None and (js.time.key, js.time.precision, js.time.format) == (
        "ts",
        "ms",
        None,
    )
    assert (raw.filter, raw.captures, raw.levels) == ("raw/+/#", {}, ("raw", "+", "#"))


def test_mqtt_tls_and_protocol() -> None:
    config = parse(
        BASE
        + """\
sources:
  - name: b
    type: mqtt
    url: mqtts://broker
    protocol: 3.1.1
    client_id: fixed
    password: ${PW}
    tls: {ca_cert: /ca.pem, verify: false}
    subscriptions: [{topic: a, format: value, field: temp}]
""",
        env={"PW": "pw"},
    )
    (b,) = config.sources
    assert isinstance(b, MqttSourceConfig)
    assert (b.protocol, b.client_id, b.password, b.port) == ("3.1.1", "fixed", "pw", 8883)
    assert b.tls is not None and (b.tls.ca_cert, b.tls.verify) == ("/ca.pem", False)
    assert b.subscriptions[0].field == "temp"
    assert "pw" not in repr(b)


def test_sources_inherit_the_agent_interval_and_yaml_merge_keys_work() -> None:
    config = parse(
        BASE + "agent: {interval: 3s}\n"
        "sources:\n"
        "  - &base {name: a, type: i2c, driver: bh1750, bus: emulated, address: 0x23}\n"
        "  - {<<: *base, name: b, address: 0x5c, interval: 1m}\n"
    )
    assert [(s.name, s.interval) for s in config.sources] == [("a", 3.0), ("b", 60.0)]


def test_redacted_hides_secrets_and_round_trips() -> None:
    config = parse(
        BASE + "  token: s3cret\n  username: u\n  password: pw\n"
        "  url: http://u:pw@influx:8086\n"
        "sources:\n  - name: m\n    type: mqtt\n    url: mqtt://me:hunter2@broker\n"
        "    password: hunter2\n"
        "    subscriptions: [{topic: 'a/{field}', format: value}]\n"
        "  - {name: r, type: serial, driver: json, port: /dev/x,\n"
        "     options: {separator: .}}\n"
    )
    redacted = config.redacted()
    dumped = yaml.safe_dump(redacted)
    for secret in ("s3cret", "hunter2", "pw@", ": pw", ": k\n"):
        assert secret not in dumped
    assert redacted["influx"]["token"] == "***"
    assert redacted["influx"]["password"] == "***"
    assert redacted["influx"]["username"] == "u"
    assert redacted["influx"]["url"] == "http://u:***@influx:8086"
    assert redacted["sources"][0]["url"] == "mqtt://me:***@broker"
    assert redacted["sources"][1]["options"] == {"separator": "."}  # drivers have no secrets
    again = parse(dumped)
    assert again.write == config.write and again.buffer == config.buffer
    assert again.agent == config.agent and again.tags == config.tags
    assert [s.name for s in again.sources] == ["m", "r"]


@pytest.mark.parametrize("name", ["example-pi.yaml", "demo.yaml"])
def test_shipped_configs_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("INFLUX", "MQTT_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INFLUX_TOKEN", "t")
    config = load_config(str(ROOT / "config" / name))
    assert config.sources


def test_demo_config_uses_only_emulated_hardware() -> None:
    config = parse((ROOT / "config" / "demo.yaml").read_text())
    assert config.agent.interval == 2.0 and config.agent.state_dir == "./state"
    assert config.influx.url == "http://localhost:8086"
    drivers = {(s.type, getattr(s, "driver", "")) for s in config.sources}
    assert {
        ("i2c", "bme280"),
        ("i2c", "sht3x"),
        ("i2c", "bh1750"),
        ("i2c", "ads1115"),
        ("serial", "pms5003"),
        ("serial", "nmea"),
    } <= drivers
    for source in config.sources:
        assert getattr(source, "bus", "emulated") == "emulated"
        assert getattr(source, "port", "emulated://").startswith("emulated://")


def test_example_pi_config() -> None:
    config = parse((ROOT / "config" / "example-pi.yaml").read_text(), env={"INFLUX_TOKEN": "t"})
    climate, air, zigbee = config.sources
    assert isinstance(climate, I2CSourceConfig) and (climate.bus, climate.address) == (1, 0x76)
    assert isinstance(air, SerialSourceConfig) and air.port == "/dev/serial0"
    assert isinstance(zigbee, MqttSourceConfig)
    assert zigbee.subscriptions[0].filter == "zigbee2mqtt/+"


def test_example_pi_precision_loses_no_mqtt_message() -> None:
    config = parse((ROOT / "config" / "example-pi.yaml").read_text(), env={"INFLUX_TOKEN": "t"})
    assert config.influx.precision == "ms" and config.warnings == ()


MQTT_SOURCE = """sources:
  - name: z2m
    type: mqtt
    url: mqtt://localhost:1883
    subscriptions: [{topic: 'zigbee2mqtt/{device}', format: json}]
"""


def test_coarse_precision_with_an_mqtt_source_warns() -> None:
    coarse = parse("influx:\n  bucket: b\n  precision: s\n" + MQTT_SOURCE)
    (warning,) = coarse.warnings
    assert warning.startswith("influx.precision: s with the MQTT source 'z2m': messages of one "
                              "series less than a second apart share a timestamp")
    assert warning.endswith("use precision ms (or finer)")
    assert parse("influx:\n  bucket: b\n  precision: ms\n" + MQTT_SOURCE).warnings == ()
    assert parse("influx:\n  bucket: b\n  precision: s\n").warnings == ()  # no MQTT source


class TestPermissionWarning:
    def write(self, tmp_path: Path, text: str, mode: int) -> Path:
        path = tmp_path / "c.yaml"
        path.write_text(text)
        path.chmod(mode)
        return path

    def test_literal_token_in_world_readable_file(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = self.write(tmp_path, BASE + "  token: s3cret\n", 0o644)
        with caplog.at_level(logging.WARNING, logger="edge_agent.config"):
            config = load_config(str(path), env={})
        assert config.warnings == (
            f"{path}:3:10: influx.token is written in a file other users can read (mode 644); "
            f"run 'chmod 600 {path}' or use ${{VAR}} interpolation from the environment",
        )
        assert caplog.messages == list(config.warnings)
        assert "s3cret" not in caplog.text

    def test_private_file_or_interpolated_secret_is_fine(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, BASE + "  token: s3cret\n", 0o600)
        assert load_config(str(path), env={}).warnings == ()
        path = self.write(tmp_path, BASE + "  token: ${T}\n", 0o644)
        assert load_config(str(path), env={"T": "x"}).warnings == ()

    def test_mqtt_password_too(self, tmp_path: Path) -> None:
        path = self.write(
            tmp_path,
            BASE + "sources:\n  - name: m\n    type: mqtt\n"
            "    url: mqtt://b\n    password: pw\n"
            "    subscriptions: [{topic: t, format: json}]\n",
            0o604,
        )
        (warning,) = load_config(str(path), env={}).warnings
        assert warning.startswith(f"{path}:7:15: sources[0].password is written in a file")


def test_config_path_lookup_order() -> None:
    assert config_path_from("/x.yaml", {"EDGE_AGENT_CONFIG": "/env.yaml"}) == "/x.yaml"
    assert config_path_from(None, {"EDGE_AGENT_CONFIG": "/env.yaml"}) == "/env.yaml"
    assert config_path_from(None, {}) == "/etc/edge-agent/config.yaml"


def test_state_dir_precedence_config_then_environment_then_default() -> None:
    env = {"EDGE_AGENT_STATE_DIR": "/srv/edge"}
    assert parse_config("influx: {bucket: b}\n", env=env).agent.state_dir == "/srv/edge"
    assert parse_config("agent: {state_dir: /data/ea}\ninflux: {bucket: b}\n",
                        env=env).agent.state_dir == "/data/ea"
    assert parse_config("influx: {bucket: b}\n", env={}).agent.state_dir == "/var/lib/edge-agent"
    assert parse_config("influx: {bucket: b}\n",
                        env={"EDGE_AGENT_STATE_DIR": ""}).agent.state_dir == "/var/lib/edge-agent"
