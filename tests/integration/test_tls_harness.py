"""The TLS harness works for real: requests vs influxd/the v2 stub, paho vs mosquitto.

Each failure test pins the exception class and message the product will see
(OpenSSL 3.0, Python 3.11, urllib3 2, paho 2.1). ``TLS_HARNESS_REPORT=path`` writes
them all as a markdown table. A TLS 1.3 server refusing the client cert is seen
by the client either as the alert or as a bare EOF (a race), so those accept both.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import paho.mqtt.client as mqtt
import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.harness.tls_certs import PKI, make_pki
from tests.harness.tls_servers import TlsHttpServer

EOF_13 = "EOF occurred in violation of protocol"
CERT_REQUIRED_13 = ("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required",
                    EOF_13)
UNKNOWN_CA = "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca"
HANDSHAKE_FAILURE = "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure"
_observed: List[Tuple[str, str, str]] = []


def ssl_root(exc: BaseException) -> BaseException:
    """The ``ssl.SSLError`` (else builtin OSError) in a requests/urllib3 wrapper: it hangs
    off ``__cause__``/``__context__``/``.reason``/``.args`` (urllib3's SSLError is no ssl one)."""
    chain: List[BaseException] = []
    stack = [exc]
    while stack:
        e = stack.pop()
        if all(e is not c for c in chain):
            chain.append(e)
            nxt = (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
            stack.extend(x for x in nxt if isinstance(x, BaseException))
    return (next((e for e in chain if isinstance(e, ssl.SSLError)), None)
            or next((e for e in chain if type(e).__module__ == "builtins"
                     and isinstance(e, OSError)), exc))


def observe(case: str, exc: BaseException) -> BaseException:
    """Record ``exc`` (and its ssl root) for the report; return the root."""
    root = ssl_root(exc)
    for label, e in [(case, exc)] + ([(f"{case} (root)", root)] if root is not exc else []):
        _observed.append((label, f"{type(e).__module__}.{type(e).__name__}", str(e)))
    return root


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


@pytest.fixture(scope="session", autouse=True)
def _report() -> Iterator[None]:
    yield
    if os.environ.get("TLS_HARNESS_REPORT"):
        rows = "".join(f"| {c} | `{k}` | `{m}` |\n" for c, k, m in _observed)
        Path(os.environ["TLS_HARNESS_REPORT"]).write_text(
            "| case | class | message |\n|---|---|---|\n" + rows)


@pytest.fixture
def servers(tls_servers: Any) -> Any:
    """The session's TLS servers (tests/integration/conftest.py)."""
    return tls_servers


def test_pki_is_fast_and_sound(tmp_path: Path) -> None:
    t0 = time.monotonic()
    p = make_pki(tmp_path)
    assert time.monotonic() - t0 < 2.0

    def verify(*certs: Path) -> str:
        return subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(p.ca_cert),
                               *map(str, certs)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True).stdout
    assert verify(p.server_cert, p.client_cert, p.wrong_host_cert).count(": OK") == 3
    assert "certificate has expired" in verify(p.expired_cert)
    assert p.client_key_encrypted.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY")


# ---- HTTPS: requests -> influxd 1.6 and the v2 stub ----------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_influx_https_with_ca(servers: Any, pki: PKI, host: str) -> None:
    url, ca = f"https://{host}:{servers.influx.port}", str(pki.ca_cert)
    assert requests.get(f"{url}/ping", verify=ca, timeout=5).status_code == 204
    assert requests.post(f"{url}/query", params={"q": "CREATE DATABASE tls"}, verify=ca,
                         timeout=5).status_code == 200
    assert requests.post(f"{url}/write", params={"db": "tls"}, data=b"m v=1 1", verify=ca,
                         timeout=5).status_code == 204
    ctx = ssl.create_default_context(cafile=ca)  # Python 3.13's strict default passes too
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    with ctx.wrap_socket(socket.create_connection((host, servers.influx.port), timeout=5),
                         server_hostname=host) as sock:
        assert sock.version() == "TLSv1.3"


@pytest.mark.parametrize("case, code, text", [
    ("other CA", 20, "unable to get local issuer certificate"),  # influxd sends the leaf only
    ("expired", 10, "certificate has expired"),
    ("wrong host (IP)", 64, "IP address mismatch, certificate is not valid for '127.0.0.1'."),
    ("wrong host (DNS)", 62, "Hostname mismatch, certificate is not valid for 'localhost'."),
])
def test_requests_verify_failures(servers: Any, pki: PKI, case: str, code: int, text: str) -> None:
    server = {"other CA": servers.influx, "expired": servers.expired}.get(case, servers.wrong_host)
    ca = pki.other_ca_cert if case == "other CA" else pki.ca_cert
    host = "localhost" if "DNS" in case else "127.0.0.1"
    with pytest.raises(requests.exceptions.SSLError) as info:
        requests.get(f"https://{host}:{server.port}/ping", verify=str(ca), timeout=5)
    root = observe(f"requests → influxd: {case}", info.value)
    assert isinstance(root, ssl.SSLCertVerificationError)
    assert (root.verify_code, root.verify_message) == (code, text)
    assert str(root).startswith(f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                f"{text} (_ssl.c:")


def test_plain_http_to_https_influx_is_a_400(servers: Any) -> None:
    r = requests.get(f"http://127.0.0.1:{servers.influx.port}/ping", timeout=5)
    assert (r.status_code, r.text) == (400, "Client sent an HTTP request to an HTTPS server.\n")


def test_v2_stub_refuses_missing_or_foreign_client_cert(servers: Any, pki: PKI) -> None:
    before, url, ca = len(servers.v2.handshake_errors), servers.v2.url, str(pki.ca_cert)
    writes = len(servers.v2.writes)  # the stub is the session's, shared with other tests
    with pytest.raises(requests.exceptions.SSLError) as info:
        requests.post(f"{url}/api/v2/write", data=b"m v=1", verify=ca, timeout=5)
    root = observe("requests → mTLS: no client cert (TLS 1.3)", info.value)
    assert any(t in str(root) for t in CERT_REQUIRED_13), root
    with pytest.raises(requests.exceptions.SSLError) as info:
        requests.get(f"{url}/ping", verify=ca, timeout=5,
                     cert=(str(pki.other_client_cert), str(pki.other_client_key)))
    root = observe("requests → mTLS: client cert of another CA (TLS 1.3)", info.value)
    assert UNKNOWN_CA in str(root) or EOF_13 in str(root), root

    def seen(text: str) -> bool:
        return any(text in str(e) for e in servers.v2.handshake_errors[before:])
    assert wait_for(lambda: seen("[SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE]"))
    assert wait_for(lambda: seen("[SSL: CERTIFICATE_VERIFY_FAILED]"))
    assert servers.v2.writes[writes:] == []
    tls12 = TlsHttpServer(pki.server_cert, pki.server_key, client_ca=pki.ca_cert,
                          max_tls=ssl.TLSVersion.TLSv1_2)  # TLS 1.2: inside the handshake
    with tls12, pytest.raises(requests.exceptions.SSLError) as info:
        requests.get(f"{tls12.url}/ping", verify=ca, timeout=5)
    assert HANDSHAKE_FAILURE in str(observe("requests → mTLS: no client cert (TLS 1.2)",
                                            info.value))


class KeyPasswordAdapter(HTTPAdapter):
    """requests has no key-password option; urllib3's pool takes ``key_password``."""

    def __init__(self, password: str) -> None:
        self.password = password
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, key_password=self.password, **kwargs)


def test_v2_stub_accepts_client_cert(servers: Any, pki: PKI) -> None:
    ca, url, plain = str(pki.ca_cert), servers.v2.url, (str(pki.client_cert), str(pki.client_key))
    assert requests.get(f"{url}/ping", verify=ca, cert=plain, timeout=5).status_code == 204
    assert requests.post(f"{url}/api/v2/write", params={"org": "o", "bucket": "b"},
                         data=b"m v=1 1", verify=ca, cert=plain, timeout=5).status_code == 204
    s = requests.Session()
    s.mount("https://", KeyPasswordAdapter(pki.client_key_passphrase))
    enc = (str(pki.client_cert), str(pki.client_key_encrypted))
    assert s.post(f"{url}/api/v2/write?org=o&bucket=b", data=b"m v=2", verify=ca, cert=enc,
                  timeout=5).status_code == 204
    w = servers.v2.writes[-2:]
    assert [(x.body, x.client_cn) for x in w] == [(b"m v=1 1", pki.client_cn),
                                                  (b"m v=2", pki.client_cn)]
    assert w[0].query == {"org": ["o"], "bucket": ["b"]}
    s.mount("https://", KeyPasswordAdapter("wrong"))
    with pytest.raises(requests.exceptions.SSLError) as info:
        s.get(f"{url}/ping", verify=ca, cert=enc, timeout=5)
    assert "[SSL] PEM lib" in str(observe("requests: wrong key passphrase", info.value))


def test_requests_ca_bundle_env_beats_session_verify(servers: Any, pki: PKI,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_ca_cert))
    s = requests.Session()
    s.verify = str(pki.ca_cert)  # silently overridden by the environment
    with pytest.raises(requests.exceptions.SSLError):
        s.get(f"{servers.influx.url}/ping", timeout=5)
    assert s.get(f"{servers.influx.url}/ping", verify=str(pki.ca_cert), timeout=5).ok
    s.trust_env = False
    assert s.get(f"{servers.influx.url}/ping", timeout=5).ok


_NO_PASSWORD = """if True:
    import ssl, sys
    def refuse(): raise RuntimeError("key is encrypted: set a passphrase")
    for pw in (None, refuse):
        try:
            ssl.create_default_context().load_cert_chain(sys.argv[1], sys.argv[2], password=pw)
        except Exception as e:
            print(type(e).__name__, e)
"""


def test_encrypted_key_without_password_prompts(pki: PKI) -> None:
    # No controlling tty here; WITH one, OpenSSL blocks reading "Enter PEM pass phrase:".
    out = subprocess.run([sys.executable, "-c", _NO_PASSWORD, str(pki.client_cert),
                          str(pki.client_key_encrypted)], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=30, start_new_session=True)
    assert "Enter PEM pass phrase:" in out.stdout + out.stderr
    assert [ln for ln in out.stdout.splitlines() if "pass phrase" not in ln] == [
        "OSError [Errno 22] Invalid argument", "RuntimeError key is encrypted: set a passphrase"]


# ---- MQTT: paho 2 -> mosquitto 2.0 ---------------------------------------------------------

class CapturingClient(mqtt.Client):
    """paho's loop thread swallows connect errors (``on_connect_fail`` gets none)."""

    connect_error: Optional[BaseException] = None

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as err:
            self.connect_error = err
            raise


class Probe:
    """A paho client recording callbacks; ``first()``: connect_async + loop_start, like
    the product, and the first of on_connect / on_disconnect / on_connect_fail."""

    def __init__(self, ca: Optional[Path], cert: Optional[Path] = None,
                 key: Optional[Path] = None, password: Any = None,
                 context: Optional[ssl.SSLContext] = None) -> None:
        self.c = CapturingClient(mqtt.CallbackAPIVersion.VERSION2)
        self.c.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # loop_stop waits one
        if context is not None:
            self.c.tls_set_context(context)
        elif ca is not None:
            self.c.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None,
                           keyfile=str(key) if key else None, keyfile_password=password)
        self.events: List[Tuple[str, Any]] = []
        self.errors: List[str] = []  # on_log at MQTT_LOG_ERR
        self.done, self.got = threading.Event(), threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: self._event("connect", rc)
        self.c.on_disconnect = lambda c, u, f, rc, p: self._event("disconnect", rc)
        self.c.on_connect_fail = lambda c, u: self._event("connect_fail", None)
        self.c.on_message = lambda c, u, m: self.got.set()
        self.c.on_log = lambda c, u, lvl, buf: (
            self.errors.append(buf) if lvl == mqtt.MQTT_LOG_ERR else None)

    def _event(self, kind: str, value: Any) -> None:
        self.events.append((kind, value))
        self.done.set()

    def first(self, port: int) -> Tuple[str, Any]:
        self.c.connect_async("127.0.0.1", port, 30)
        self.c.loop_start()
        assert self.done.wait(10), "no connect/disconnect/connect_fail callback"
        return self.events[0]

    def read_error(self) -> str:
        return next(e for e in self.errors if e.startswith("failed to receive on socket: "))

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.mark.parametrize("client", ["ca only", "cert", "encrypted key", "key password callable"])
def test_mqtt_tls_roundtrip(servers: Any, pki: PKI, client: str) -> None:
    pw: Any = pki.client_key_passphrase
    if client == "key password callable":
        pw = lambda: pki.client_key_passphrase  # noqa: E731 - ssl takes a callable too
    key = pki.client_key if client == "cert" else pki.client_key_encrypted
    p = (Probe(pki.ca_cert) if client == "ca only" else
         Probe(pki.ca_cert, pki.client_cert, key, password=pw))
    try:
        kind, rc = p.first((servers.mqtt if client == "ca only" else servers.mqtt_mtls).port)
        assert (kind, str(rc)) == ("connect", "Success")
        p.c.subscribe("tls/t", qos=1)
        p.c.publish("tls/t", b"hi", qos=1)
        assert p.got.wait(5)
    finally:
        p.close()


@pytest.mark.parametrize("case, code, text", [
    ("other CA", 19, "self-signed certificate in certificate chain"),  # mosquitto sends ca.pem
    ("expired", 10, "certificate has expired"),
    ("wrong host", 64, "IP address mismatch, certificate is not valid for '127.0.0.1'."),
])
def test_mqtt_verify_failures(servers: Any, pki: PKI, case: str, code: int, text: str) -> None:
    server = {"other CA": servers.mqtt, "expired": servers.mqtt_expired}.get(case,
                                                                             servers.mqtt_wrong)
    ca = pki.other_ca_cert if case == "other CA" else pki.ca_cert
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        Probe(ca).c.connect("127.0.0.1", server.port, 30)
    observe(f"paho connect() → mosquitto: {case}", info.value)
    assert (info.value.verify_code, info.value.verify_message) == (code, text)
    p = Probe(ca)
    try:  # connect_async + loop_start: on_connect_fail with no error, nothing in the log
        assert p.first(server.port) == ("connect_fail", None)
        assert not any(text in e for e in p.errors)
        assert isinstance(p.c.connect_error, ssl.SSLCertVerificationError)
        assert text in str(p.c.connect_error)
    finally:
        p.close()


@pytest.mark.parametrize("case", ["no client cert", "client cert of another CA"])
def test_mqtt_require_certificate_refusals(servers: Any, pki: PKI, case: str) -> None:
    other = case != "no client cert"
    cert, key = (pki.other_client_cert, pki.other_client_key) if other else (None, None)
    p = Probe(pki.ca_cert, cert, key)
    try:  # TLS 1.3: the handshake "succeeds", the broker's alert comes on the first read
        kind, rc = p.first(servers.mqtt_mtls.port)
        assert (kind, str(rc), rc.value) == ("disconnect", "Unspecified error", 128)
        assert all(k != "connect" for k, _ in p.events) and p.c.connect_error is None
        err = p.read_error()
        _observed.append((f"paho async → mosquitto require_certificate: {case} (TLS 1.3)",
                          "on_log ERR", err))
        assert any(t in err for t in ((UNKNOWN_CA, EOF_13) if other else CERT_REQUIRED_13)), err
    finally:
        p.close()
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.2: refused inside connect()
    if cert and key:
        ctx.load_cert_chain(str(cert), str(key))
    with pytest.raises(ssl.SSLError) as info:
        Probe(None, context=ctx).c.connect("127.0.0.1", servers.mqtt_mtls.port, 30)
    observe(f"paho connect() → mosquitto require_certificate: {case} (TLS 1.2)", info.value)
    assert (UNKNOWN_CA if other else HANDSHAKE_FAILURE) in str(info.value)
    want = "certificate verify failed" if other else "peer did not return a certificate"
    assert wait_for(lambda: want in servers.mqtt_mtls.log_tail(20000))


@pytest.mark.parametrize("case, key, password, exc, text", [
    ("wrong key passphrase", "client_key_encrypted", "no", ssl.SSLError, "[SSL] PEM lib"),
    ("key of another cert", "other_client_key", None, ssl.SSLError,
     "[X509: KEY_VALUES_MISMATCH] key values mismatch"),
    ("missing key file", "missing", None, FileNotFoundError, "No such file or directory"),
])
def test_paho_tls_set_errors(pki: PKI, case: str, key: str, password: Optional[str],
                             exc: type, text: str) -> None:
    with pytest.raises(exc) as info:
        mqtt.Client(mqtt.CallbackAPIVersion.VERSION2).tls_set(
            ca_certs=str(pki.ca_cert), certfile=str(pki.client_cert), keyfile_password=password,
            keyfile=str(getattr(pki, key, pki.directory / "missing.key")))
    assert text in str(observe(f"paho tls_set: {case}", info.value))


def test_plain_mqtt_to_tls_listener(servers: Any) -> None:
    p = Probe(None)
    try:
        kind, rc = p.first(servers.mqtt.port)
        assert (kind, str(rc)) == ("disconnect", "Unspecified error")
        _observed.append(("paho plain mqtt:// → TLS listener", "on_log ERR", p.read_error()))
    finally:
        p.close()
