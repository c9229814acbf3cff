"""One driver registry: config accepts exactly the drivers a source can build, and
checks each driver's declared options at their line, as check-config runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from edge_agent import sensors
from edge_agent.config import parse_config
from edge_agent.sensors import describe_options
from tests.harness.configs import BASE
from tests.harness.configs import config_error as error

#: options a driver cannot do without (everything else has a default)
REQUIRED: Dict[str, Dict[str, Any]] = {"register": {"register": 0},
                                       "regex": {"pattern": "(?P<t>.+)"}}




def bh1750(options: str, address: str = "0x23") -> str:
    return BASE + ("sources:\n  - name: light\n    type: i2c\n    driver: bh1750\n    bus: 1\n"
                   f"    address: {address}\n    options: {options}\n")


@pytest.mark.parametrize("name", sorted(sensors.I2C_DRIVERS))
def test_every_registered_i2c_driver_is_accepted(name: str) -> None:
    cls = sensors.I2C_DRIVERS[name]
    address = cls.ADDRESSES[0] if cls.ADDRESSES else 0x40
    options = REQUIRED.get(name, {})
    config = parse_config(BASE + f"sources:\n  - {{name: s, type: i2c, driver: {name}, bus: 1, "
                          f"address: {address}, options: {options}}}\n", env={})
    assert config.sources[0].driver == name


@pytest.mark.parametrize("name", sorted(sensors.SERIAL_PARSERS))
def test_every_registered_serial_parser_is_accepted(name: str) -> None:
    options = REQUIRED.get(name, {})
    config = parse_config(BASE + "sources:\n  - name: s\n    type: serial\n"
                          f"    driver: {name}\n    port: /dev/ttyUSB0\n"
                          f"    options: {options!r}\n".replace("'", '"'), env={})
    assert config.sources[0].driver == name


def test_a_bad_choice_is_an_error_at_its_line_with_the_accepted_values() -> None:
    assert error(bh1750("{mode: hihg}")) == (
        "conf/edge.yaml:9:21: sources[0].options.mode: must be one of 'high', 'high2', 'low', "
        "got 'hihg'")


def test_an_out_of_range_option_names_the_range() -> None:
    assert error(bh1750("{mtreg: 500}")) == (
        "conf/edge.yaml:9:22: sources[0].options.mtreg: must be <= 254, got 500")


def test_an_unknown_option_points_at_its_key_with_a_suggestion() -> None:
    assert error(bh1750("{mdoe: high}")) == (
        "conf/edge.yaml:9:15: sources[0].options.mdoe: unknown option (did you mean 'mode'?); "
        "known options of bh1750: mode, mtreg")


def test_the_driver_own_checks_run_too() -> None:
    text = BASE + ("sources:\n  - name: line\n    type: serial\n    driver: regex\n"
                   "    port: /dev/ttyUSB0\n    options:\n      pattern: 'no groups'\n")
    assert error(text) == ("conf/edge.yaml:9:16: sources[0].options.pattern: needs named groups "
                           "such as (?P<temperature>[-\\d.]+)")


def test_an_address_the_chip_cannot_answer_on() -> None:
    assert error(bh1750("{}", address="0x76")) == (
        "conf/edge.yaml:8:14: sources[0].address: bh1750: address 0x76 is not one of 0x23, 0x5c")


def test_the_docs_are_the_declarations() -> None:
    """docs/drivers.md is generated from OPTIONS: what a user reads is what is checked."""
    from edge_agent.sensors.__main__ import drivers_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "drivers.md"
    assert docs.read_text() == drivers_markdown(), \
        "run: python -m edge_agent.sensors > docs/drivers.md"
    assert describe_options(sensors.BH1750.OPTIONS)[0] == (
        "mode (one of 'high', 'high2', 'low'; default 'high'): high 1 lx, high2 0.5 lx, "
        "low 4 lx (faster)")
    for cls in [*sensors.I2C_DRIVERS.values(), *sensors.SERIAL_PARSERS.values()]:
        assert f"{cls.OPTIONS[0].name} (" in docs.read_text(), cls
