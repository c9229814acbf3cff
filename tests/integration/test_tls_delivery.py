"""TLS to InfluxDB with real certificates: the transport and the library.

Against an HTTPS influxd 1.6.7 (good, expired and wrong-host certificates) and
an HTTPS v2 write stub that requires a client certificate. Each case asserts
delivery, or the exact one-line error naming host, setting and reason. Under
TLS 1.3 a server refusing the client certificate is seen either as its alert
or as a bare EOF (a race in the server's close), so those cases accept the
two exact lines. Servers: tests/integration/conftest.py.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from typing import Any, Dict, Tuple

import pytest
import requests
import urllib3

from edge_agent import SYNCHRONOUS, InfluxDBClient
from edge_agent.delivery.outcome import Outcome
from edge_agent.delivery.transport import InfluxSettings, Transport
from edge_agent.destination import Destination
from edge_agent.errors import WriteError
from tests.harness.fault_server import Answer
from tests.harness.tls_servers import tls13_refusal_lines

_dbs = itertools.count(1)


def write(url: str, body: bytes = b"m v=1 1", api: str = "v1", bucket: str = "tls",
          **settings: Any) -> Any:
    with Transport(InfluxSettings(url=url, api=api, timeout=5, **settings)) as transport:
        return transport.write(Destination(bucket), body)


@pytest.fixture
def db(tls_servers: Any) -> str:
    name = f"tls{next(_dbs)}"
    tls_servers.influx.create_database(name)
    return name


def test_https_influx_with_the_private_ca_stores_the_points(tls_servers: Any, pki: Any,
                                                           db: str) -> None:
    result = write(tls_servers.influx.url, b"m v=1 1\nm v=2 2", bucket=db,
                   ssl_ca_cert=str(pki.ca_cert))
    assert (result.status, result.outcome) == (204, Outcome.OK)
    assert tls_servers.influx.count(db, "m", "v") == 2


def _cases(s: Any, pki: Any) -> Dict[str, Tuple[str, Dict[str, Any], str]]:
    """case -> (url, settings, the exact one-line error)."""
    other, ca = str(pki.other_ca_cert), str(pki.ca_cert)
    wrong_dns = s.wrong_host.url.replace("127.0.0.1", "localhost")
    return {
        "other CA": (s.influx.url, {"ssl_ca_cert": other},
                     f"TLS to {s.influx.url} failed: certificate verify failed: the server's "
                     f"certificate is not signed by the CA in ssl_ca_cert ({other}) (unable to "
                     "get local issuer certificate)"),
        "expired": (s.expired.url, {"ssl_ca_cert": ca},
                    f"TLS to {s.expired.url} failed: certificate verify failed: the server's "
                    "certificate has expired (renew it on the server)"),
        "wrong host (IP)": (s.wrong_host.url, {"ssl_ca_cert": ca},
                            f"TLS to {s.wrong_host.url} failed: certificate verify failed: "
                            "hostname mismatch: IP address mismatch, certificate is not valid "
                            "for '127.0.0.1'. (connect by a name or address the certificate "
                            "lists)"),
        "wrong host (DNS)": (wrong_dns, {"ssl_ca_cert": ca},
                             f"TLS to {wrong_dns} failed: certificate verify failed: hostname "
                             "mismatch: Hostname mismatch, certificate is not valid for "
                             "'localhost'. (connect by a name or address the certificate lists)"),
        "no client certificate (TLS 1.2)": (
            s.v2_tls12.url, {"ssl_ca_cert": ca},
            f"TLS to {s.v2_tls12.url} failed: the server requires a client certificate and "
            "none is configured: set cert_file and cert_key_file"),
    }


@pytest.mark.parametrize("case", ["other CA", "expired", "wrong host (IP)", "wrong host (DNS)",
                                  "no client certificate (TLS 1.2)"])
def test_tls_failures_are_one_exact_line(tls_servers: Any, pki: Any, case: str) -> None:
    url, settings, message = _cases(tls_servers, pki)[case]
    result = write(url, api="v2", **settings)
    assert (result.status, result.outcome, result.message) == (0, Outcome.TRANSIENT, message)


def test_client_certificate_required_under_tls13(tls_servers: Any, pki: Any) -> None:
    url, ca = tls_servers.v2.url, str(pki.ca_cert)
    result = write(url, api="v2", ssl_ca_cert=ca)
    assert result.outcome is Outcome.TRANSIENT
    assert result.message in tls13_refusal_lines(url, "cert_file", "cert_key_file")
    other = str(pki.other_client_cert)
    result = write(url, api="v2", ssl_ca_cert=ca, cert_file=other,
                   cert_key_file=str(pki.other_client_key))
    assert result.message in tls13_refusal_lines(url, "cert_file", "cert_key_file", other)


def test_plain_http_to_the_https_port_is_kept_not_dead_lettered(tls_servers: Any) -> None:
    # influxd answers 400 "Client sent an HTTP request to an HTTPS server" and
    # closes; when its close overtakes the request body the client sees a reset
    # instead (status 0). Either way: the same line, and kept for a retry.
    url = tls_servers.influx.url.replace("https://", "http://")
    result = write(url)
    assert (result.outcome, result.message) == (
        Outcome.TRANSIENT, f"the server at {url} speaks HTTPS on this port: use https:// in url")
    assert result.status in (400, 0)


def test_plain_http_to_a_tls_port_that_resets_is_named(tls_servers: Any) -> None:
    # Python's TLS server (the v2 stub) resets a plain request every time: the
    # transport's TLS probe names the cause.
    url = tls_servers.v2.url.replace("https://", "http://")
    result = write(url, api="v2", setting_prefix="influx.")
    assert (result.status, result.outcome, result.message) == (
        0, Outcome.TRANSIENT,
        f"the server at {url} speaks HTTPS on this port: use https:// in influx.url")
    assert not result.reached


def test_a_plain_server_that_resets_is_not_called_https(fault_server: Any) -> None:
    fault_server.script(Answer(reset=True))
    result = write(fault_server.url, api="v2")
    assert (result.status, result.outcome, result.message) == (
        0, Outcome.TRANSIENT,
        f"connection to {fault_server.url} was reset before an answer arrived")


@pytest.mark.parametrize("key", ["plain", "encrypted"])
def test_library_presents_the_client_certificate(tls_servers: Any, pki: Any, key: str) -> None:
    stub = tls_servers.v2
    before = len(stub.writes)
    keys: Dict[str, Any] = ({"cert_key_file": str(pki.client_key)} if key == "plain" else
                            {"cert_key_file": str(pki.client_key_encrypted),
                             "cert_key_password": pki.client_key_passphrase})
    with InfluxDBClient(url=stub.url, token="my-token", org="o", ssl_ca_cert=str(pki.ca_cert),
                        cert_file=str(pki.client_cert), **keys) as client:
        client.write_api(write_options=SYNCHRONOUS).write("b", record=f"m {key}=1i 1")
    assert [(w.body, w.client_cn, w.query["bucket"]) for w in stub.writes[before:]] == [
        (f"m {key}=1i 1".encode(), pki.client_cn, ["b"])]


def test_library_without_the_client_certificate_says_so(tls_servers: Any, pki: Any) -> None:
    url = tls_servers.v2_tls12.url
    with InfluxDBClient(url=url, token="my-token", org="o", ssl_ca_cert=str(pki.ca_cert)
                        ) as client, pytest.raises(WriteError) as info:
        client.write_api(write_options=SYNCHRONOUS).write("b", record="m v=1")
    assert str(info.value) == (f"TLS to {url} failed: the server requires a client certificate "
                               "and none is configured: set cert_file and cert_key_file")


# -- the environment's CA bundle never beats the settings -----------------------------


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_ca_bundle_in_the_environment(tls_servers: Any, pki: Any, db: str, variable: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(pki.other_ca_cert))  # an unrelated CA bundle
    url = tls_servers.influx.url
    # The control: requests itself lets the environment override Session.verify.
    session = requests.Session()
    session.verify = str(pki.ca_cert)
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{url}/ping", timeout=5)
    assert write(url, b"m v=1 1", bucket=db, ssl_ca_cert=str(pki.ca_cert)).ok
    assert write(url, b"m v=2 2", bucket=db, verify_ssl=False).ok
    with InfluxDBClient(url=url, api="v1", ssl_ca_cert=str(pki.ca_cert)) as client:
        client.write_api(write_options=SYNCHRONOUS).write(db, record="m v=3 3")
    assert tls_servers.influx.count(db, "m", "v") == 3
    # Where the settings say nothing, the environment decides, and the error says so.
    result = write(url, bucket=db)
    assert result.message == (
        f"TLS to {url} failed: certificate verify failed: the server's certificate is not "
        f"signed by the CA bundle in ${variable} ({pki.other_ca_cert}); set ssl_ca_cert to "
        "override it (unable to get local issuer certificate)")


# -- verification off: said once, never per request ------------------------------------


def test_verify_off_warns_once_and_never_per_request(tls_servers: Any, db: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    url = tls_servers.influx.url
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger="edge_agent"), InfluxDBClient(
                url=url, api="v1", verify_ssl=False) as client:
            api = client.write_api(write_options=SYNCHRONOUS)
            for i in range(3):
                api.write(db, record=f"m v={i} {i + 1}")
        insecure = urllib3.exceptions.InsecureRequestWarning
        ours = [w for w in seen if issubclass(w.category, insecure)]
        requests.get(f"{url}/ping", verify=False, timeout=5)  # the control: urllib3 does warn
        control = [w for w in seen if issubclass(w.category, insecure)]
    assert tls_servers.influx.count(db, "m", "v") == 3
    assert (len(ours), len(control)) == (0, 1)
    assert [r.getMessage() for r in caplog.records] == [
        f"InfluxDBClient(verify_ssl=False): the certificate of {url} is not checked, so anyone "
        "on the network path can pose as the server; give its CA file as ssl_ca_cert instead"]


# -- keyword arguments -------------------------------------------------------------------


def test_influxdb_client_keywords(pki: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reference's own keywords: no warning
        InfluxDBClient(url="https://db:8086", retries=3, connection_pool_maxsize=4,
                       profilers=None, auth_basic=False, proxy_headers=None, ssl_context=None,
                       cert_file=str(pki.client_cert), cert_key_file=str(pki.client_key))
    with pytest.warns(UserWarning) as seen:
        InfluxDBClient(url="https://db:8086", cert_fil="client.pem")
        InfluxDBClient(url="https://db:8086", cert_fil="client.pem")  # once, not twice
    assert [str(w.message).split(";")[0] for w in seen] == [
        "InfluxDBClient: unknown keyword argument 'cert_fil' ignored (did you mean 'cert_file'?)"]
    with pytest.warns(UserWarning, match=r"^InfluxDBClient: ssl_context= is not supported and "
                                         r"has no effect: give ssl_ca_cert, cert_file"):
        InfluxDBClient(url="https://db:8086", ssl_context=object())
