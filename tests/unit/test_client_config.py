"""Client construction against influxdb-client 1.50: the same file, env or
arguments give the same readable settings (url, token, org, default tags and
``api_client.configuration``). No request is made here."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from influxdb_client import InfluxDBClient as RefClient

from edge_agent import ConfigError, InfluxDBClient

# What users read off a client (client attributes, then the configuration's).
CLIENT_ATTRS = ("url", "token", "org", "default_tags")
CONF_ATTRS = ("host", "verify_ssl", "ssl_ca_cert", "cert_file", "cert_key_file",
              "cert_key_password", "proxy", "timeout", "connection_pool_maxsize", "auth_basic")

SETTINGS = {
    "url": "http://127.0.0.1:8086", "org": "my-org", "token": "my-token", "timeout": "6000",
    "verify_ssl": "False", "ssl_ca_cert": "/etc/ssl/ca.pem", "cert_file": "/etc/ssl/c.pem",
    "cert_key_file": "/etc/ssl/k.pem", "cert_key_password": "pw", "proxy": "http://proxy:3128",
    "connection_pool_maxsize": "25", "auth_basic": "false",
}


def ref_from_file(path: Path, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RefClient.from_config_file(str(path), **kwargs)


def assert_same_settings(ours: Any, ref: Any) -> None:
    for name in CLIENT_ATTRS:
        assert getattr(ours, name) == getattr(ref, name), name
    for conf in (ours.conf, ours.api_client.configuration):
        for name in CONF_ATTRS:
            assert getattr(conf, name) == getattr(ref.api_client.configuration, name), name


def write_ini(path: Path, section: str = "influx2") -> Path:
    body = "\n".join(f"{k} = {v}" for k, v in SETTINGS.items())
    path.write_text(f"[{section}]\n{body}\n[tags]\nid = 132-987-655\nsite = gh\n")
    return path


def test_ini_file_matches_reference(tmp_path: Path) -> None:
    path = write_ini(tmp_path / "config.ini")
    ours, ref = InfluxDBClient.from_config_file(str(path)), ref_from_file(path)
    assert_same_settings(ours, ref)
    assert ours.default_tags == {"id": "132-987-655", "site": "gh"}
    assert ours.conf.verify_ssl is False and ours.conf.timeout == 6000
    ref.close()


def test_config_name_selects_the_section(tmp_path: Path) -> None:
    path = write_ini(tmp_path / "config.ini", section="greenhouse")
    with open(path, "a") as handle:
        handle.write("[influx2]\nurl = http://wrong:1\ntoken = wrong\n")
    ours = InfluxDBClient.from_config_file(str(path), config_name="greenhouse")
    ref = ref_from_file(path, config_name="greenhouse")
    assert_same_settings(ours, ref)
    assert ours.url == "http://127.0.0.1:8086"
    ref.close()


def test_missing_config_name_section_is_a_clear_error(tmp_path: Path) -> None:
    path = write_ini(tmp_path / "config.ini")
    with pytest.raises(ConfigError, match=r"no \[other\] section .*sections found: influx2, tags"):
        InfluxDBClient.from_config_file(str(path), config_name="other")


def test_toml_file_matches_reference(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    body = "\n".join(f'  {k} = "{v}"' for k, v in SETTINGS.items())
    path.write_text(f'[influx2]\n{body}\n[tags]\n  id = "132-987-655"\n')
    ours, ref = InfluxDBClient.from_config_file(str(path)), ref_from_file(path)
    assert_same_settings(ours, ref)
    ref.close()


def test_json_file_matches_reference(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    data = dict(SETTINGS, timeout=6000, tags={"id": "132-987-655"})
    path.write_text(json.dumps(data))
    ours, ref = InfluxDBClient.from_config_file(str(path)), ref_from_file(path)
    assert_same_settings(ours, ref)
    assert ours.default_tags == {"id": "132-987-655"}
    ref.close()


def test_json_in_a_file_named_ini_is_read_as_json(tmp_path: Path) -> None:
    """The reference falls back to JSON when configparser cannot read the file."""
    path = tmp_path / "config.ini"
    path.write_text(json.dumps({"url": "http://127.0.0.1:9999", "token": "t", "org": "o",
                                "timeout": 6000}))
    ours, ref = InfluxDBClient.from_config_file(str(path)), ref_from_file(path)
    assert_same_settings(ours, ref)
    ref.close()


def test_no_timeout_setting_still_gives_one() -> None:
    """The reference then has no timeout at all: a write can hang forever."""
    ours = InfluxDBClient.from_env_properties()
    assert ours.conf.timeout == 10_000 and ours.settings.timeout == 10.0


def test_yaml_file_with_config_name(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("lab:\n  url: http://127.0.0.1:8086\n  org: o\n  token: t\n"
                    "  cert_file: /etc/ssl/c.pem\ntags:\n  id: x\n")
    ours = InfluxDBClient.from_config_file(str(path), config_name="lab")
    assert (ours.url, ours.org, ours.token, ours.conf.cert_file, ours.default_tags) == \
        ("http://127.0.0.1:8086", "o", "t", "/etc/ssl/c.pem", {"id": "x"})


def test_env_properties_match_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SETTINGS.items():
        if key not in ("proxy",):  # the reference reads no proxy from the environment
            monkeypatch.setenv(f"INFLUXDB_V2_{key.upper()}", value)
    monkeypatch.setenv("INFLUXDB_V2_TAG_LOCATION", "attic")
    ours, ref = InfluxDBClient.from_env_properties(), RefClient.from_env_properties()
    assert_same_settings(ours, ref)
    assert ours.default_tags == {"location": "attic"}
    ref.close()


def test_constructor_keywords_are_readable_as_in_the_reference() -> None:
    kwargs: Any = dict(url="https://127.0.0.1:8086/", token="tok", org="o", timeout=(2000, 9000),
                       verify_ssl=False, ssl_ca_cert="/ca.pem", cert_file="/c.pem",
                       cert_key_file="/k.pem", cert_key_password="pw",
                       proxy="http://proxy:3128", connection_pool_maxsize=3,
                       default_tags={"a": "1"})
    ours, ref = InfluxDBClient(**kwargs), RefClient(**kwargs)
    assert_same_settings(ours, ref)
    assert ours.conf.host == "https://127.0.0.1:8086"
    assert (ours.settings.connect_timeout, ours.settings.timeout) == (2.0, 9.0)
    assert "pw" not in repr(ours.conf)  # secrets stay out of reprs
    ref.close()


def test_url_must_be_a_string_as_in_the_reference() -> None:
    # (The reference raises the same ValueError, then fails again in __del__.)
    with pytest.raises(ValueError, match='"url" attribute is not str instance'):
        InfluxDBClient(url=None)  # type: ignore[arg-type]


def test_reactivex_and_pandas_stay_optional() -> None:
    """Writing (not Observables, not DataFrames) imports neither."""
    import subprocess
    import sys

    code = ("import sys, edge_agent\n"
            "from edge_agent.client.write_api import WriteApi\n"
            "from edge_agent.client.records import Serializer\n"
            "Serializer().to_list([{'measurement': 'm', 'fields': {'v': 1}}, 'm v=2'])\n"
            "print(sorted(m for m in ('reactivex', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_async_client_settings_are_readable_too() -> None:
    from edge_agent import InfluxDBClientAsync

    client = InfluxDBClientAsync(url="http://127.0.0.1:8086", token="t", org="o",
                                 cert_file="/c.pem")
    assert (client.url, client.token, client.org) == ("http://127.0.0.1:8086", "t", "o")
    assert client.api_client.configuration.cert_file == "/c.pem"
    with pytest.raises(AttributeError):
        client.nothing_like_this  # noqa: B018
