"""Every mistake a user can make: the exact one-line message with file:LINE:COL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from tests.harness.configs import BASE
from tests.harness.configs import config_error as error

I2C = "sources:\n  - name: a\n    type: i2c\n    driver: bme280\n    bus: 1\n    address: 0x76\n"
MQTT = "sources:\n  - name: m\n    type: mqtt\n    url: mqtt://broker\n    subscriptions:\n"


def test_unknown_key_with_did_you_mean() -> None:
    assert error(BASE + "agent:\n  name: x\n  intervall: 10s\n") == (
        "conf/edge.yaml:5:3: unknown key 'intervall' in agent (did you mean 'interval'?); "
        "accepted keys: name, state_dir, log_level, interval, round_interval, "
        "collection_jitter, internal_metrics"
    )


def test_unknown_top_level_key() -> None:
    assert error(BASE + "sorces: []\n") == (
        "conf/edge.yaml:3:1: unknown key 'sorces' at the top level (did you mean 'sources'?); "
        "accepted keys: agent, tags, influx, write, buffer, sources"
    )


def test_unknown_key_without_a_close_match_lists_the_accepted_keys() -> None:
    assert error(BASE + "buffer:\n  zzz: 1\n") == (
        "conf/edge.yaml:4:3: unknown key 'zzz' in buffer; "
        "accepted keys: max_size, max_age, sync, dead_letter_max, hold"
    )


def test_key_of_another_source_type() -> None:
    assert error(BASE + I2C + "    port: /dev/ttyUSB0\n") == (
        "conf/edge.yaml:9:5: key 'port' does not apply here ('port' is for serial sources, "
        "this one is i2c); accepted keys in sources[0]: name, type, interval, measurement, "
        "tags, enabled, driver, bus, address, options"
    )


def test_unknown_key_in_a_source() -> None:
    assert error(BASE + I2C + "    adress: 0x77\n").startswith(
        "conf/edge.yaml:9:5: unknown key 'adress' in sources[0] (did you mean 'address'?); "
    )


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("agent:\n  round_interval: maybe\n",
         "conf/edge.yaml:4:19: agent.round_interval: must be true or false, got 'maybe'"),
        ("write:\n  batch_size: lots\n",
         "conf/edge.yaml:4:15: write.batch_size: must be an integer, got 'lots'"),
        ("write:\n  batch_size: 0\n",
         "conf/edge.yaml:4:15: write.batch_size: must be 1 or more, got 0"),
        ("write:\n  batch_size: true\n",
         "conf/edge.yaml:4:15: write.batch_size: must be an integer, got true"),
        ("write:\n  exponential_base: [2]\n",
         "conf/edge.yaml:4:21: write.exponential_base: must be a number, got a list"),
        ("agent: [a, b]\n",
         "conf/edge.yaml:3:8: agent must be a mapping of keys, got a list"),
        ("sources:\n  name: a\n",
         "conf/edge.yaml:4:3: sources: must be a list (entries starting with '- '), "
         "got a mapping"),
        ("tags:\n  room: {a: 1}\n",
         "conf/edge.yaml:4:9: tags.room: must be a string, number or true/false, got a mapping"),
        ("agent:\n  name: [x]\n",
         "conf/edge.yaml:4:9: agent.name: must be a string, got a list"),
    ],
)
def test_wrong_types(snippet: str, message: str) -> None:
    assert error(BASE + snippet) == message


def test_top_level_must_be_a_mapping() -> None:
    assert error("- a\n- b\n") == (
        "conf/edge.yaml:1:1: the file must be a mapping of keys, got a list"
    )


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("agent:\n  interval: 10 sec\n",
         "conf/edge.yaml:4:13: agent.interval: bad duration '10 sec': use a number with a unit "
         "ms, s, m, h or d (e.g. 250ms, 10s, 5m, 2h, 7d); a plain number is seconds"),
        ("write:\n  flush_interval: soon\n",
         "conf/edge.yaml:4:19: write.flush_interval: bad duration 'soon': use a number with a "
         "unit ms, s, m, h or d (e.g. 250ms, 10s, 5m, 2h, 7d); a plain number is milliseconds"),
        ("agent:\n  interval: 0s\n",
         "conf/edge.yaml:4:13: agent.interval: must be more than zero, got '0s'"),
        ("buffer:\n  max_size: 256M\n",
         "conf/edge.yaml:4:13: buffer.max_size: bad size '256M': use bytes or a number with a "
         "unit B, KB, MB, GB, KiB, MiB, GiB (e.g. 256MiB, 1GB)"),
    ],
)
def test_bad_durations_and_sizes(snippet: str, message: str) -> None:
    assert error(BASE + snippet) == message


def test_unknown_i2c_driver_lists_the_drivers() -> None:
    assert error(BASE + I2C.replace("bme280", "bme208")) == (
        "conf/edge.yaml:6:13: sources[0].driver: unknown i2c driver 'bme208' "
        "(did you mean 'bme280'?); accepted: bme280, bmp280, sht3x, sht31, bh1750, ads1115, "
        "register"
    )


def test_unknown_serial_driver_lists_the_drivers() -> None:
    text = BASE + "sources:\n  - {name: s, type: serial, driver: pms7003, port: /dev/ttyS0}\n"
    assert error(text) == (
        "conf/edge.yaml:4:37: sources[0].driver: unknown serial driver 'pms7003' "
        "(did you mean 'pms5003'?); accepted: pms5003, nmea, json, kv, regex"
    )


def test_missing_driver() -> None:
    assert error(BASE + "sources:\n  - {name: s, type: serial, port: /dev/ttyS0}\n") == (
        "conf/edge.yaml:4:5: sources[0]: missing required key 'driver' "
        "(one of pms5003, nmea, json, kv, regex)"
    )


def test_unknown_source_type() -> None:
    assert error(BASE + "sources:\n  - name: a\n    type: spi\n") == (
        "conf/edge.yaml:5:11: sources[0].type: unknown source type 'spi'; "
        "accepted: i2c, serial, mqtt"
    )


def test_missing_source_type() -> None:
    assert error(BASE + "sources:\n  - name: a\n") == (
        "conf/edge.yaml:4:5: sources[0]: missing required key 'type' (one of i2c, serial, mqtt)"
    )


def test_duplicate_source_name_points_at_the_second() -> None:
    text = BASE + I2C + "  - name: a\n    type: serial\n    driver: nmea\n    port: /dev/ttyS0\n"
    assert error(text) == (
        "conf/edge.yaml:9:11: sources[1].name: duplicate source name 'a' (first used at "
        "line 4); each source needs a unique name"
    )


def test_duplicate_mapping_key() -> None:
    assert error(BASE + "agent:\n  name: a\n  name: b\n") == (
        "conf/edge.yaml:5:3: duplicate key 'name' (first at line 4); "
        "each key may appear once per mapping"
    )


def test_undefined_variable_points_at_the_reference() -> None:
    assert error(BASE + "  token: Token ${INFLUX_TOKEN}\n") == (
        "conf/edge.yaml:3:16: undefined environment variable ${INFLUX_TOKEN}: "
        "set INFLUX_TOKEN or give a default with ${INFLUX_TOKEN:-value}"
    )


def test_bad_variable_reference() -> None:
    assert error(BASE + "agent:\n  name: x-${1A}\n") == (
        "conf/edge.yaml:4:11: bad variable reference '${1A}': write ${NAME} or "
        "${NAME:-default} (NAME: letters, digits, _), or $${ for a literal ${"
    )


def test_yaml_syntax_error_uses_the_marker_position() -> None:
    assert error("agent:\n  name: x\n   interval: 2\n") == (
        "conf/edge.yaml:3:12: YAML syntax error: mapping values are not allowed here"
    )


def test_tab_indentation() -> None:
    assert error("agent:\n\tname: x\n") == (
        "conf/edge.yaml:2:1: YAML syntax error: found character '\\t' that cannot start "
        "any token (indent with spaces, not tabs)"
    )


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("  api: v4\n", "conf/edge.yaml:3:8: influx.api: unknown InfluxDB API 'v4'; "
         "accepted: v1, v2, v3"),
        ("  precision: sec\n", "conf/edge.yaml:3:14: influx.precision: unknown precision "
         "'sec'; accepted: ns, us, ms, s"),
        ("buffer: {sync: always}\n", "conf/edge.yaml:3:16: buffer.sync: unknown sync mode "
         "'always'; accepted: normal, full"),
        ("agent: {log_level: loud}\n", "conf/edge.yaml:3:20: agent.log_level: unknown log "
         "level 'loud'; accepted: debug, info, warning, error, critical"),
    ],
)
def test_bad_enum_values(snippet: str, message: str) -> None:
    assert error(BASE + snippet) == message


def test_bad_subscription_format() -> None:
    assert error(BASE + MQTT + "      - topic: a/b\n        format: xml\n") == (
        "conf/edge.yaml:9:17: sources[0].subscriptions[0].format: unknown format 'xml'; "
        "accepted: value, json, auto, influx, kv"
    )


def test_bad_mqtt_protocol() -> None:
    text = BASE + MQTT.replace("    subscriptions:", "    protocol: 4\n    subscriptions:")
    assert error(text + "      - {topic: a/b, format: json}\n") == (
        "conf/edge.yaml:7:15: sources[0].protocol: unknown MQTT protocol version '4'; "
        "accepted: 5, 3.1.1"
    )


def test_bad_mqtt_url() -> None:
    text = BASE + MQTT.replace("mqtt://broker", "http://broker")
    assert error(text + "      - {topic: a/b, format: json}\n") == (
        "conf/edge.yaml:6:10: sources[0].url: bad broker URL 'http://broker'; use "
        "mqtt://host[:port] or mqtts://host[:port] for TLS"
    )


@pytest.mark.parametrize(
    ("topic", "col", "problem"),
    [
        ("a/x{room}/b", 16, "level 'x{room}' of 'a/x{room}/b': a capture must fill a whole "
         "level, as in sensors/{room}/temperature (names: letters, digits, _)"),
        ("a/{field}s", 16, "level '{field}s' of 'a/{field}s': a capture must fill a whole "
         "level, as in sensors/{room}/temperature (names: letters, digits, _)"),
        ("a/#/b", 16, "'#' must be the last level of 'a/#/b'"),
        ("a/b+/c", 16, "level 'b+' of 'a/b+/c': + and # must fill a whole level"),
        ("{room}/{room}", 16, "capture {room} appears twice in '{room}/{room}'; each name once"),
    ],
)
def test_bad_topic_templates(topic: str, col: int, problem: str) -> None:
    text = BASE + MQTT + f"      - topic: '{topic}'\n        format: value\n"
    assert error(text) == f"conf/edge.yaml:8:{col}: sources[0].subscriptions[0].topic: {problem}"


def test_option_that_does_not_fit_the_format() -> None:
    text = BASE + MQTT + "      - topic: a/b\n        format: influx\n        fields: {t: a.t}\n"
    assert error(text) == (
        "conf/edge.yaml:10:17: sources[0].subscriptions[0].fields: applies only to format "
        "json or auto, this subscription has format influx"
    )


def test_unknown_value_type() -> None:
    text = BASE + MQTT + "      - topic: a/b\n        format: json\n        types: {n: integer}\n"
    assert error(text) == (
        "conf/edge.yaml:10:20: sources[0].subscriptions[0].types.n: unknown type 'integer'; "
        "accepted: int, float, str, bool"
    )


def test_missing_bucket() -> None:
    assert error("agent: {name: x}\n") == (
        "conf/edge.yaml:1:1: influx: missing required key 'bucket' (the v2 bucket, the v1 "
        "database or database/retention_policy, or the v3 database)"
    )


def test_i2c_address_and_bus() -> None:
    assert error(BASE + I2C.replace("0x76", "0x99")) == (
        "conf/edge.yaml:8:14: sources[0].address: 0x99 is not a 7-bit device address; use "
        "0x03 to 0x77 (as `i2cdetect -y 1` shows it, e.g. 0x76)"
    )
    assert error(BASE + I2C.replace("bus: 1", "bus: i2c")) == (
        "conf/edge.yaml:7:10: sources[0].bus: bad bus 'i2c'; use a bus number like 1, a "
        "device path like /dev/i2c-1, or emulated"
    )


def test_bad_env_fallback_value() -> None:
    assert error(BASE, env={"INFLUXDB_V2_TIMEOUT": "10s"}) == (
        "conf/edge.yaml: environment variable INFLUXDB_V2_TIMEOUT (value not shown): "
        "must be whole milliseconds"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}: cannot read: No such file or directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(BASE)
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}: cannot read: Permission denied"


def test_directory_and_binary_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r": cannot read: not a regular file \(a directory\)"):
        load_config(str(tmp_path))
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"agent:\n  name: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}: cannot read: not UTF-8 text (byte 0xff at offset 15)"


def test_unknown_time_format_points_at_its_line() -> None:
    text = (BASE + MQTT + "      - topic: 'a/b'\n        format: json\n"
            "        time: {key: ts, format: epoch}\n")
    message = error(text)
    assert message.startswith("conf/edge.yaml:10:")
    assert "unknown time format 'epoch': use iso, or a strptime pattern" in message


@pytest.mark.parametrize(("section", "problem"), [
    ("write:\n  flush_interval: 0\n", "conf/edge.yaml:4:3: write: flush_interval must be "
                                      "greater than 0, got 0"),
    ("buffer:\n  max_size: 0\n", "conf/edge.yaml:4:3: buffer: max_size must be at least 1, "
                                 "got 0"),
    ("buffer:\n  dead_letter_max: 10\n", "conf/edge.yaml:4:3: buffer: dead_letter_max must "
                                         "be at least 1KiB, got 10"),
])
def test_settings_the_writer_refuses_are_config_errors(section: str, problem: str) -> None:
    assert error(BASE + section) == problem

