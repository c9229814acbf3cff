"""Fixtures of the integration tests: TLS servers, started once per session with the
generated PKI, and emulated I2C buses with the sources started on them."""

from __future__ import annotations

import contextlib
import itertools
import ssl
from types import SimpleNamespace
from typing import Any, Callable, Iterator, List

import pytest

from edge_agent.sensors.emulated import EmulatedSMBus
from edge_agent.sources.i2c import forget_bus, register_bus
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


_buses = itertools.count()


@pytest.fixture
def buses() -> Iterator[Callable[..., str]]:
    """``make(x76=emulator, ...)``: a fresh emulated bus registered under a unique name."""
    made: List[str] = []

    def make(**devices: Any) -> str:
        name = f"bus-{next(_buses)}"
        bus = EmulatedSMBus(name)
        for address, device in devices.items():
            bus.add(int(address[1:], 16), device)
        register_bus(name, bus)
        made.append(name)
        return name

    yield make
    for name in made:
        forget_bus(name)


@pytest.fixture
def sources() -> Iterator[List[Any]]:
    """Sources a test started; stopped at its end."""
    started: List[Any] = []
    yield started
    for src in started:
        src.stop(timeout=3.0)
