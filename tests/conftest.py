"""Fixtures: real influxd and mosquitto on free ports, and the fault server.

Session-wide servers are shared by tests that only write and query (each test
gets its own database); tests that stop or kill a server ask for their own
with the ``*_factory`` fixtures.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest

from tests.harness.agent import AgentProcess
from tests.harness.fault_server import FaultServer
from tests.harness.mqtt import Publisher
from tests.harness.servers import InfluxServer, MosquittoServer
from tests.harness.tls_certs import PKI, make_pki

_db_numbers = itertools.count(1)


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "chaos" in parts:
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="session")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    server = InfluxServer(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influx: InfluxServer) -> str:
    """A fresh, empty database on the shared influxd."""
    name = f"t{next(_db_numbers)}"
    influx.create_database(name)
    return name


@pytest.fixture
def influx_factory(tmp_path: Path) -> Iterator[Callable[[], InfluxServer]]:
    """Start private influxd servers (for outages); all stopped at the end."""
    made: List[InfluxServer] = []

    def make() -> InfluxServer:
        server = InfluxServer(tmp_path / f"influxd{len(made)}")
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.kill()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoServer]]:
    made: List[MosquittoServer] = []

    def make(extra: str = "") -> MosquittoServer:
        server = MosquittoServer(tmp_path / f"mosquitto{len(made)}", extra=extra)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.kill()


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A private CA with server, client, expired and wrong-host certificates (openssl)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Make ``edge-agent`` processes; any still running at the end is killed."""
    made: List[AgentProcess] = []

    def make(config: Path, env: Optional[Dict[str, str]] = None) -> AgentProcess:
        agent = AgentProcess(config, tmp_path, env)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.kill()


@pytest.fixture
def publisher(mosquitto: MosquittoServer) -> Iterator[Publisher]:
    """A connected MQTT publisher on the session's mosquitto."""
    pub = Publisher(mosquitto.port)
    yield pub
    pub.close()
