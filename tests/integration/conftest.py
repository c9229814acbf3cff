"""TLS servers for the integration tests, started once per session with the generated PKI."""

from __future__ import annotations

import contextlib
import ssl
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from tests.harness.tls_certs import PKI
from tests.harness.tls_servers import TlsHttpServer, TlsInflux, TlsMosquitto


@pytest.fixture(scope="session")
def tls_servers(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """HTTPS influxd (good, expired and wrong-host certificates), an HTTPS v2 write
    stub requiring a client certificate (TLS 1.3, and one capped at 1.2), and TLS
    mosquittos (good, ``require_certificate``, expired, wrong host)."""
    d, ca = tmp_path_factory.mktemp("tls-servers"), pki.ca_cert
    good, expired, wrong = ((pki.server_cert, pki.server_key), (pki.expired_cert, pki.expired_key),
                            (pki.wrong_host_cert, pki.wrong_host_key))
    s = SimpleNamespace(
        influx=TlsInflux(d / "influx", *good, ca=ca), expired=TlsInflux(d / "expired", *expired),
        wrong_host=TlsInflux(d / "wrong", *wrong), mqtt=TlsMosquitto(d / "mqtt", ca, *good),
        mqtt_mtls=TlsMosquitto(d / "mqtt_mtls", ca, *good, require_certificate=True),
        mqtt_expired=TlsMosquitto(d / "mqtt_expired", ca, *expired),
        mqtt_wrong=TlsMosquitto(d / "mqtt_wrong", ca, *wrong),
        v2=TlsHttpServer(*good, client_ca=ca),
        v2_tls12=TlsHttpServer(*good, client_ca=ca, max_tls=ssl.TLSVersion.TLSv1_2))
    with contextlib.ExitStack() as stack:
        for server in vars(s).values():
            stack.enter_context(server)
        yield s
