"""Config reading that cannot hurt: no secret in an error message, no endless read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from tests.harness.configs import BASE
from tests.harness.configs import config_error as error

# ------------------------------------------- never echo a secret (issue 9)

TOKEN = "tkn-9f8e7d6c5b4a"


@pytest.mark.parametrize("snippet, env, expected", [
    # a ${VAR} in the wrong key: the value is the token
    ("  timeout: ${INFLUX_TOKEN}\n", {"INFLUX_TOKEN": TOKEN},
     "conf/edge.yaml:3:12: influx.timeout: bad duration ***: use a number with a unit"),
    # the token pasted into the wrong key as well as into token:
    (f"  token: {TOKEN}\n  timeout: {TOKEN}\n", {},
     "conf/edge.yaml:4:12: influx.timeout: bad duration ***: use a number with a unit"),
    ("  api: ${API}\n", {"API": "v9"},
     "conf/edge.yaml:3:8: influx.api: unknown InfluxDB API ***"),
    ("  gzip: ${PW}\n", {"PW": "hunter2"},
     "conf/edge.yaml:3:9: influx.gzip: must be true or false, got a value from the "
     "environment (not shown)"),
])
def test_values_from_the_environment_or_secret_keys_are_not_repeated(
        snippet: str, env: Dict[str, str], expected: str) -> None:
    message = error(BASE + snippet, env=env)
    assert message.startswith(expected), message
    for value in env.values():
        assert value not in message.split(": ", 1)[1]
    assert TOKEN not in message


def test_an_interpolated_number_is_not_shown_either() -> None:
    message = error(BASE + "write:\n  batch_size: ${BATCH}\n", env={"BATCH": "12x"})
    assert message == ("conf/edge.yaml:4:15: write.batch_size: must be an integer, got a value "
                       "from the environment (not shown)")


def test_an_environment_fallback_value_is_not_shown() -> None:
    message = error(BASE, env={"INFLUXDB_V2_TIMEOUT": TOKEN})
    assert TOKEN not in message and "INFLUXDB_V2_TIMEOUT" in message


# ------------------------------------------- bounded config reads (issue 9)

def test_a_device_is_refused_without_reading_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/dev/zero")  # before: read until memory ran out
    assert str(info.value) == ("/dev/zero: cannot read: not a regular file (a character "
                               "device); give the path of a YAML file")


@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"not a regular file \(a pipe\)"):
        load_config(str(fifo))  # before: open() blocked until a writer came


def test_a_config_above_the_size_cap_is_refused(tmp_path: Path) -> None:
    from edge_agent.config.loader import MAX_CONFIG_BYTES

    path = tmp_path / "big.yaml"
    text = BASE + "#" * (MAX_CONFIG_BYTES - len(BASE) - 1) + "\n"
    path.write_text(text)
    assert load_config(str(path)).influx.bucket == "b"  # exactly at the cap: fine
    path.write_text(text + "#\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == (f"{path}: cannot read: {MAX_CONFIG_BYTES + 2} bytes is more "
                               "than a config file may have (1024 KiB)")


def test_a_short_value_from_the_environment_does_not_garble_the_sentence() -> None:
    # hidden where the message quotes it, not wherever the word occurs
    message = error(BASE + "  timeout: ${T}\n", env={"T": "seconds"})
    assert message == ("conf/edge.yaml:3:12: influx.timeout: bad duration ***: use a number "
                       "with a unit ms, s, m, h or d (e.g. 250ms, 10s, 5m, 2h, 7d); a plain "
                       "number is seconds")
