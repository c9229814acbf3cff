"""TLS settings in the config: check-config refuses what the agent would refuse.

Every TLS file is checked as readable PEM of the right kind when the config is
loaded, the client key must decrypt and match its certificate, and each
mistake is one ``path:LINE:COL: setting: ...`` line. Verification turned off
is one warning. The certificates are real (tests/harness/tls_certs.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import pytest

from edge_agent.cli import main
from edge_agent.config import parse_config
from edge_agent.config.model import Config, MqttSourceConfig
from edge_agent.errors import ConfigError


def parse(text: str) -> Config:
    return parse_config(text, "edge.yaml", env={})


def influx(**keys: object) -> str:
    return "influx:\n  bucket: b\n  url: https://db:8086\n" + "".join(
        f"  {k}: {v}\n" for k, v in keys.items())


def mqtt(tls: str) -> str:
    return ("influx: {bucket: b}\nsources:\n  - name: bridge\n    type: mqtt\n"
            "    url: mqtts://broker\n    subscriptions: [{topic: 'a/{field}', format: value}]\n"
            f"    tls:\n{tls}")


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


def test_influx_client_certificate_is_parsed(pki: Any) -> None:
    config = parse(influx(ssl_ca_cert=pki.ca_cert, cert_file=pki.client_cert,
                          cert_key_file=pki.client_key_encrypted,
                          cert_key_password=repr(pki.client_key_passphrase)))
    settings = config.influx.settings()
    assert (settings["ssl_ca_cert"], settings["cert_file"], settings["cert_key_file"],
            settings["cert_key_password"], settings["setting_prefix"]) == (
        str(pki.ca_cert), str(pki.client_cert), str(pki.client_key_encrypted),
        pki.client_key_passphrase, "influx.")
    assert config.redacted()["influx"]["cert_key_password"] == "***"
    assert pki.client_key_passphrase not in repr(config)
    assert config.warnings == ()


@pytest.mark.parametrize("keys, where, message", [
    ({"ssl_ca_cert": "{dir}/missing.pem"}, "4:16",
     "influx.ssl_ca_cert: cannot read {dir}/missing.pem: No such file or directory"),
    ({"ssl_ca_cert": "{dir}/client.key"}, "4:16",
     "influx.ssl_ca_cert: {dir}/client.key holds no PEM certificate (no '-----BEGIN "
     "CERTIFICATE-----' line): give the CA certificate in PEM form"),
    ({"cert_file": "{dir}/client.pem"}, "4:14",
     "influx.cert_file: {dir}/client.pem holds no private key: set influx.cert_key_file to "
     "the client certificate's key file"),
    ({"cert_key_file": "{dir}/client.key"}, "4:18",
     "influx.cert_key_file: a key without a certificate: set influx.cert_file to the client "
     "certificate it belongs to"),
    ({"cert_file": "{dir}/client.pem", "cert_key_file": "{dir}/missing.key"}, "5:18",
     "influx.cert_key_file: cannot read {dir}/missing.key: No such file or directory"),
    ({"cert_file": "{dir}/client.pem", "cert_key_file": "{dir}/client_enc.key"}, "5:18",
     "influx.cert_key_file: the key in {dir}/client_enc.key is encrypted: set "
     "influx.cert_key_password to its passphrase"),
    ({"cert_file": "{dir}/client.pem", "cert_key_file": "{dir}/client_enc.key",
      "cert_key_password": "nope"}, "6:22",
     "influx.cert_key_password: cannot decrypt the key in {dir}/client_enc.key: wrong "
     "passphrase"),
    ({"cert_file": "{dir}/client.pem", "cert_key_file": "{dir}/other_client.key"}, "5:18",
     "influx.cert_key_file: the key in {dir}/other_client.key does not belong to the "
     "certificate in influx.cert_file ({dir}/client.pem)"),
])
def test_influx_tls_mistakes_are_one_positioned_line(pki: Any, keys: dict, where: str,
                                                     message: str) -> None:
    d = pki.directory
    text = influx(**{k: v.format(dir=d) for k, v in keys.items()})
    assert refused(text) == f"edge.yaml:{where}: {message.format(dir=d)}"


def test_a_combined_pem_needs_no_key_file(pki: Any, tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(pki.client_cert.read_bytes() + pki.client_key.read_bytes())
    assert parse(influx(cert_file=both)).influx.cert_file == str(both)


def test_the_ca_file_is_not_read_while_verification_is_off(pki: Any) -> None:
    config = parse(influx(verify_ssl="false", ssl_ca_cert=pki.directory / "missing.pem"))
    assert config.warnings == (
        "edge.yaml:4:15: influx.verify_ssl is false: the server's certificate is not checked, "
        "so anyone on the network path can pose as the server (influx.ssl_ca_cert is ignored "
        "while it is off); give its CA file instead",)


def test_mqtt_tls_files_are_checked(pki: Any) -> None:
    d = pki.directory
    assert refused(mqtt(f"      ca_cert: {d}/missing.pem\n")) == (
        f"edge.yaml:8:16: sources[0].tls.ca_cert: cannot read {d}/missing.pem: No such file "
        "or directory")
    assert refused(mqtt(f"      certfile: {d}/client.pem\n      keyfile: {d}/client_enc.key\n"
                        )) == (
        f"edge.yaml:9:16: sources[0].tls.keyfile: the key in {d}/client_enc.key is encrypted: "
        "set sources[0].tls.keyfile_password to its passphrase")
    config = parse(mqtt(f"      ca_cert: {pki.ca_cert}\n      certfile: {pki.client_cert}\n"
                        f"      keyfile: {pki.client_key_encrypted}\n"
                        f"      keyfile_password: {pki.client_key_passphrase}\n"))
    (bridge,) = config.sources
    assert isinstance(bridge, MqttSourceConfig) and bridge.tls is not None
    assert bridge.tls.keyfile_password == pki.client_key_passphrase
    assert config.redacted()["sources"][0]["tls"]["keyfile_password"] == "***"


def test_mqtt_verify_off_is_one_warning(pki: Any) -> None:
    config = parse(mqtt("      verify: false\n"))
    assert config.warnings == (
        "edge.yaml:8:15: sources[0].tls.verify is false: the broker's certificate is not "
        "checked, so anyone on the network path can pose as the broker; give its CA file "
        "instead",)


@pytest.fixture
def _root_logging() -> Iterator[None]:
    """main() configures the root logger; give pytest its handlers back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_check_config_refuses_a_missing_ca_and_warns_for_verify_off(
        pki: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        _root_logging: None) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(influx(ssl_ca_cert=tmp_path / "nope.pem"))
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"edge-agent: {path}:4:16: influx.ssl_ca_cert: cannot read "
                   f"{tmp_path}/nope.pem: No such file or directory\n")
    path.write_text(influx(verify_ssl="no"))
    assert main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr()
    warning = (f"{path}:4:15: influx.verify_ssl is false: the server's certificate is not "
               "checked, so anyone on the network path can pose as the server; give its CA "
               "file instead")
    assert out.err.count(warning) == 1
    assert "verify_ssl: false" in out.out


def test_influxdb_client_environment_variables(pki: Any) -> None:
    env = {"INFLUXDB_V2_SSL_CA_CERT": str(pki.ca_cert),
           "INFLUXDB_V2_CERT_FILE": str(pki.client_cert),
           "INFLUXDB_V2_CERT_KEY_FILE": str(pki.client_key_encrypted),
           "INFLUXDB_V2_CERT_KEY_PASSWORD": pki.client_key_passphrase}
    influx_config = parse_config(influx(), "edge.yaml", env=env).influx
    assert (influx_config.ssl_ca_cert, influx_config.cert_file, influx_config.cert_key_file,
            influx_config.cert_key_password) == tuple(env.values())
    with pytest.raises(ConfigError) as info:
        parse_config(influx(), "edge.yaml", env={**env, "INFLUXDB_V2_CERT_KEY_PASSWORD": "no"})
    assert str(info.value) == (
        "edge.yaml: environment variable INFLUXDB_V2_CERT_KEY_PASSWORD: cannot decrypt the key "
        f"in {pki.client_key_encrypted}: wrong passphrase")
    # The file's own setting wins over the environment's.
    config = parse_config(influx(ssl_ca_cert=pki.other_ca_cert), "edge.yaml", env=env)
    assert config.influx.ssl_ca_cert == str(pki.other_ca_cert)


def test_tls_keys_with_a_plain_http_url_are_said_to_do_nothing(pki: Any) -> None:
    text = influx(ssl_ca_cert=pki.ca_cert, verify_ssl="false").replace("https://", "http://")
    assert parse(text).warnings == (
        "edge.yaml:4:3: influx.ssl_ca_cert has no effect: influx.url is http:// (no TLS); use "
        "https:// for TLS",
        "edge.yaml:5:3: influx.verify_ssl has no effect: influx.url is http:// (no TLS); use "
        "https:// for TLS")


def test_verify_off_from_the_environment_is_one_warning() -> None:
    config = parse_config(influx(), "edge.yaml", env={"INFLUXDB_V2_VERIFY_SSL": "false"})
    assert config.influx.verify_ssl is False
    assert config.warnings == (
        "edge.yaml: environment variable INFLUXDB_V2_VERIFY_SSL is false: the server's "
        "certificate is not checked, so anyone on the network path can pose as the server; "
        "give its CA file in influx.ssl_ca_cert instead",)
