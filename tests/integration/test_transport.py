"""Transport against the fault server (every answer, faults, secrets) and a real influxd."""

from __future__ import annotations

import base64
import json
import logging
import time
from email.utils import formatdate
from typing import Iterator, List

import pytest

from edge_agent.delivery.outcome import (
    MAX_MESSAGE,
    Outcome,
    WriteResult,
    parse_retry_after,
    server_message,
)
from edge_agent.delivery.transport import InfluxSettings, Transport
from edge_agent.destination import Destination
from edge_agent.errors import ConfigError, WriteError
from tests.harness.fault_server import Answer, FaultServer, error_answer
from tests.harness.servers import free_port

TOKEN = "s3cr3t-T0ken_abc=="
PASSWORD = "hunter2-pw"
BODY = b"m,host=a v=1i 1\nm,host=b v=2i 2\nm,host=c v=3i 3"


@pytest.fixture
def transports() -> Iterator[List[Transport]]:
    made: List[Transport] = []
    yield made
    for t in made:
        t.close()


@pytest.fixture
def connect(transports):
    def make(url: str, **kwargs) -> Transport:
        kwargs.setdefault("token", TOKEN)
        t = Transport(InfluxSettings(url, **kwargs))
        transports.append(t)
        return t
    return make


# -- requests on the wire --------------------------------------------------------

def test_v2_request_path_query_headers_and_gzip_body(fault_server, connect):
    t = connect(fault_server.url, org="acme")
    result = t.write(Destination("sensors", precision="ms"), BODY)
    assert result.ok and result.status == 204 and result.outcome is Outcome.OK
    assert result.latency > 0
    (req,) = fault_server.write_requests()
    assert req.path == "/api/v2/write"
    assert req.query == {"org": "acme", "bucket": "sensors", "precision": "ms"}
    assert req.headers["authorization"] == f"Token {TOKEN}"
    assert req.headers["content-encoding"] == "gzip"
    assert req.headers["content-type"] == "text/plain; charset=utf-8"
    assert req.body == BODY  # the server gunzipped it
    assert req.raw_size != len(BODY)
    assert fault_server.points == BODY.decode().split("\n")


def test_destination_org_wins_and_empty_org_is_left_out(fault_server, connect):
    t = connect(fault_server.url, org="acme")
    t.write(Destination("b", org="other"), BODY)
    connect(fault_server.url).write(Destination("b"), BODY)
    first, second = fault_server.write_requests()
    assert first.query == {"org": "other", "bucket": "b", "precision": "ns"}
    assert second.query == {"bucket": "b", "precision": "ns"}


def test_gzip_off_sends_plain_bytes(fault_server, connect):
    connect(fault_server.url, gzip=False).write(Destination("b"), BODY)
    (req,) = fault_server.write_requests()
    assert "content-encoding" not in req.headers
    assert req.raw_size == len(BODY) and req.body == BODY


@pytest.mark.parametrize("precision, wire", [("ns", "n"), ("us", "u"), ("ms", "ms"), ("s", "s")])
def test_v1_path_db_rp_precision_and_basic_auth(fault_server, connect, precision, wire):
    t = connect(fault_server.url, api="v1", token=None, username="ops", password=PASSWORD)
    assert t.write(Destination("farm/autogen", precision=precision), BODY).ok
    (req,) = fault_server.write_requests()
    assert req.path == "/write"
    assert req.query == {"db": "farm", "rp": "autogen", "precision": wire}
    expected = base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    assert req.headers["authorization"] == f"Basic {expected}"
    assert "u" not in req.query and "p" not in req.query  # never credentials in the URL
    assert req.body == BODY


def test_v1_token_user_password_form_and_plain_db(fault_server, connect):
    t = connect(fault_server.url, api="v1", token="ops:" + PASSWORD)
    assert t.write(Destination("farm"), BODY).ok
    (req,) = fault_server.write_requests()
    assert req.query == {"db": "farm", "precision": "n"}
    assert req.headers["authorization"] == f"Token ops:{PASSWORD}"


@pytest.mark.parametrize("precision, wire", [
    ("ns", "nanosecond"), ("us", "microsecond"), ("ms", "millisecond"), ("s", "second")])
def test_v3_write_lp_with_explicit_precision(fault_server, connect, precision, wire):
    assert connect(fault_server.url, api="v3").write(Destination("farm", precision=precision),
                                                     BODY).ok
    (req,) = fault_server.write_requests()
    assert req.path == "/api/v3/write_lp"
    assert req.query == {"db": "farm", "precision": wire}
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.body == BODY


def test_one_session_is_reused_across_writes(fault_server, connect):
    t = connect(fault_server.url)
    session = t._session
    for _ in range(3):
        assert t.write(Destination("b"), BODY).ok
    assert t._session is session and len(fault_server.write_requests()) == 3


def test_url_prefix_is_kept(connect):
    with FaultServer() as server:
        t = connect(server.url + "/")
        assert t.write_target(Destination("b"))[0] == server.url + "/api/v2/write"
        t2 = connect("https://proxy.example/influx/")
        assert t2.write_target(Destination("b"))[0] == "https://proxy.example/influx/api/v2/write"


# -- every answer classified -------------------------------------------------------

@pytest.mark.parametrize("status, outcome", [
    (400, Outcome.INVALID), (422, Outcome.INVALID), (401, Outcome.AUTH), (403, Outcome.AUTH),
    (404, Outcome.NOT_FOUND), (413, Outcome.TOO_LARGE), (429, Outcome.THROTTLED),
    (503, Outcome.THROTTLED), (500, Outcome.TRANSIENT), (502, Outcome.TRANSIENT),
    (504, Outcome.TRANSIENT),
])
def test_each_status_becomes_its_outcome_with_the_servers_message(
        fault_server, connect, status, outcome):
    fault_server.script(error_answer(status, f"the server says {status}"))
    result = connect(fault_server.url).write(Destination("b"), BODY)
    assert (result.status, result.outcome) == (status, outcome)
    assert result.message == f"the server says {status}"
    assert result.retry_after is None and not result.ok
    error = result.error()
    assert isinstance(error, WriteError) and error.status == status
    assert str(error) == f"HTTP {status}: the server says {status}"


def test_2xx_with_a_body_is_ok(fault_server, connect):
    fault_server.script(Answer(200, body='{"ok": true}'))
    result = connect(fault_server.url).write(Destination("b"), BODY)
    assert result.ok and result.status == 200


def test_v1_json_error_plain_text_and_empty_bodies(fault_server, connect):
    fault_server.script(
        Answer(404, body='{"error":"database not found: \\"x\\""}'),
        Answer(500, body="upstream exploded\n", headers={"Content-Type": "text/plain"}),
        Answer(502),
        Answer(400, headers={"X-Influxdb-Error": "unable to parse 'x'"}),
    )
    t = connect(fault_server.url)
    messages = [t.write(Destination("b"), BODY).message for _ in range(4)]
    assert messages == ['database not found: "x"', "upstream exploded", "Bad Gateway",
                        "unable to parse 'x'"]


def test_v3_partial_write_details_are_kept(fault_server, connect):
    body = {"error": "partial write of line protocol occurred", "data": [
        {"original_line": "p,bad v= 3", "line_number": 2, "error_message": "missing value"}]}
    fault_server.script(Answer(400, body=json.dumps(body)))
    result = connect(fault_server.url, api="v3").write(Destination("db"), BODY)
    assert result.outcome is Outcome.INVALID
    assert result.message == "partial write of line protocol occurred: line 2: missing value"


def test_long_messages_are_truncated(fault_server, connect):
    fault_server.script(error_answer(400, "x" * 50_000))
    message = connect(fault_server.url).write(Destination("b"), BODY).message
    assert len(message) == MAX_MESSAGE and message.endswith("…")


def test_redirects_are_not_followed(fault_server, connect):
    fault_server.script(Answer(301, headers={"Location": "https://elsewhere/api/v2/write"}))
    result = connect(fault_server.url).write(Destination("b"), BODY)
    assert result.outcome is Outcome.TRANSIENT and result.status == 301
    assert "https://elsewhere/api/v2/write" in result.message
    assert len(fault_server.requests) == 1


# -- Retry-After -------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [(7, 7.0), (2.5, 2.5), (0, 0.0)])
def test_retry_after_seconds(fault_server, connect, value, seconds):
    fault_server.script(error_answer(429, "slow down", "too many requests", retry_after=value))
    result = connect(fault_server.url).write(Destination("b"), BODY)
    assert result.outcome is Outcome.THROTTLED and result.retry_after == seconds
    assert result.error().retry_after == seconds


def test_retry_after_http_date(fault_server, connect):
    when = formatdate(time.time() + 30, usegmt=True)
    fault_server.script(Answer(503, body="busy", headers={"Retry-After": when}))
    result = connect(fault_server.url).write(Destination("b"), BODY)
    assert result.outcome is Outcome.THROTTLED
    assert result.retry_after is not None and 27 <= result.retry_after <= 31


def test_parse_retry_after_forms():
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after(formatdate(now + 60, usegmt=True), now) == pytest.approx(60, abs=1)
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk, now) is None


def test_server_message_forms():
    assert server_message(b'{"code":"invalid","message":"bad line 3"}') == "bad line 3"
    assert server_message(b'{"error":"partial write: x dropped=1"}') == "partial write: x dropped=1"
    assert server_message(b"plain reason") == "plain reason"
    assert server_message(b"{not json") == "{not json"
    assert server_message(b"", reason="Too Many Requests") == "Too Many Requests"


# -- no answer: timeouts, resets, refused ------------------------------------------

def test_hang_past_the_read_timeout_is_transient_without_waiting(fault_server, connect):
    fault_server.script(Answer(delay=5.0))
    started = time.monotonic()
    result = connect(fault_server.url, timeout=0.5).write(Destination("b"), BODY)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert (result.status, result.outcome) == (0, Outcome.TRANSIENT)
    assert result.message == f"no answer from {fault_server.url} within 0.5 s (read timeout)"
    assert 0.4 < result.latency < 3.0


def test_connection_reset_is_transient(fault_server, connect):
    fault_server.script(Answer(reset=True))
    t = connect(fault_server.url)
    result = t.write(Destination("b"), BODY)
    assert (result.status, result.outcome) == (0, Outcome.TRANSIENT)
    assert result.message.startswith(f"connection to {fault_server.url} was ")
    assert "before an answer" in result.message
    assert result.reached  # a reset after sending: InfluxDB may have stored the lines
    # the next write on the same transport works again
    assert t.write(Destination("b"), BODY).ok


def test_connection_refused_is_transient_with_a_clear_message(connect):
    url = f"http://127.0.0.1:{free_port()}"
    t = connect(url)
    result = t.write(Destination("b"), BODY)
    assert result == WriteResult(0, Outcome.TRANSIENT,
                                 f"cannot reach {url}: connection refused", None, result.latency)
    assert not result.reached  # the flusher's "in flight" ends: InfluxDB cannot have it
    ping = t.ping()
    assert (ping.status, ping.outcome) == (0, Outcome.TRANSIENT)


def test_unknown_host_is_transient(connect):
    result = connect("http://no-such-host.invalid:8086", connect_timeout=2).write(
        Destination("b"), BODY)
    assert (result.status, result.outcome) == (0, Outcome.TRANSIENT)
    assert result.message.startswith("cannot reach http://no-such-host.invalid:8086: ")


# -- secrets -----------------------------------------------------------------------

def test_secrets_echoed_by_the_server_are_redacted(fault_server, connect, caplog):
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    fault_server.script(
        error_answer(401, f"bad Authorization header 'Token {TOKEN}'"),
        Answer(403, body=f"denied for Basic {basic} (password {PASSWORD})"),
        Answer(400, headers={"X-Influxdb-Error": f"token {TOKEN} rejected"}),
    )
    v2 = connect(fault_server.url)
    v1 = connect(fault_server.url, api="v1", token=None, username="ops", password=PASSWORD)
    results = [v2.write(Destination("b"), BODY), v1.write(Destination("db"), BODY),
               v2.write(Destination("b"), BODY)]
    assert results[0].message == "bad Authorization header 'Token ***'"
    assert results[1].message == "denied for Basic *** (password ***)"
    assert results[2].message == "token *** rejected"
    texts = [repr(r) for r in results] + [str(r.error()) for r in results]
    texts += [repr(v2), str(v2), repr(v1.settings), str(v1.settings), caplog.text]
    for text in texts:
        assert TOKEN not in text and PASSWORD not in text and basic not in text


def test_settings_repr_hides_secrets_and_url_credentials(connect):
    settings = InfluxSettings(f"http://ops:{PASSWORD}@127.0.0.1:{free_port()}/", api="v1")
    assert (settings.username, settings.password) == ("ops", PASSWORD)
    assert "@" not in settings.url and PASSWORD not in settings.url
    assert PASSWORD not in repr(settings) and "password='***'" in repr(settings)
    t = Transport(settings)
    try:
        result = t.write(Destination("db"), BODY)
        assert PASSWORD not in result.message and "connection refused" in result.message
    finally:
        t.close()
    with pytest.raises(ValueError) as caught:
        InfluxSettings(f"ftp://ops:{PASSWORD}@host")
    assert PASSWORD not in str(caught.value)
    assert "token=None" in repr(InfluxSettings("http://h:8086"))


def test_1_8_token_password_part_is_redacted(fault_server, connect):
    fault_server.script(Answer(401, body=f"authorization failed: password {PASSWORD} wrong"))
    result = connect(fault_server.url, api="v1", token=f"ops:{PASSWORD}").write(
        Destination("db"), BODY)
    assert result.message == "authorization failed: password *** wrong"


# -- settings and TLS ----------------------------------------------------------------

def test_settings_validation():
    with pytest.raises(ValueError, match="api 'v4'"):
        InfluxSettings("http://h:8086", api="v4")
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        InfluxSettings("http://h:8086", timeout=0)
    with pytest.raises(ValueError, match="must look like http://host:8086"):
        InfluxSettings("localhost:8086")
    assert InfluxSettings("http://h:8086", api="V1").api == "v1"


def test_tls_verification_on_by_default_ca_file_and_explicit_off(tmp_path, pki, connect,
                                                                 monkeypatch):
    # verify goes with every request; the environment's bundle only where the settings
    # say nothing (read when the transport is made, as requests would per request)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert connect("https://h:8086")._verify is True
    monkeypatch.setenv("CURL_CA_BUNDLE", str(pki.other_ca_cert))
    assert connect("https://h:8086")._verify == str(pki.other_ca_cert)
    assert connect("https://h:8086", ssl_ca_cert=str(pki.ca_cert))._verify == str(pki.ca_cert)
    assert connect("https://h:8086", verify_ssl=False)._verify is False
    with pytest.raises(ConfigError, match="^ssl_ca_cert: cannot read .*missing.pem: No such"):
        Transport(InfluxSettings("https://h:8086", ssl_ca_cert=str(tmp_path / "missing.pem")))
    torn = tmp_path / "torn.pem"
    torn.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="^ssl_ca_cert: .*torn.pem is not a CA bundle"):
        Transport(InfluxSettings("https://h:8086", ssl_ca_cert=str(torn)))


def test_tls_failure_is_transient(fault_server, connect):
    # an https client talking to a plain-http server: the handshake fails
    url = fault_server.url.replace("http://", "https://")
    result = connect(url, timeout=2).write(Destination("b"), BODY)
    assert (result.status, result.outcome) == (0, Outcome.TRANSIENT)
    assert result.message == (
        f"TLS to {url} failed: the server does not speak TLS on this port ([SSL: "
        "WRONG_VERSION_NUMBER] wrong version number); use http:// for a server without TLS")


def test_netrc_never_replaces_the_token(fault_server, connect, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
    monkeypatch.setenv("NETRC", str(netrc))  # requests reads it when no auth is set
    assert connect(fault_server.url).write(Destination("b"), BODY).ok
    assert fault_server.requests[-1].headers["authorization"] == f"Token {TOKEN}"


# -- ping and check_write ----------------------------------------------------------

def test_ping_v2_and_v3(fault_server, connect):
    result = connect(fault_server.url).ping()
    assert result.ok and result.status == 204 and result.message == "InfluxDB fault-server"
    assert result.latency > 0
    assert connect(fault_server.url, api="v3").ping().status == 200
    paths = [r.path for r in fault_server.requests]
    assert paths == ["/ping", "/health"]


def test_check_write_tells_authorised_from_not(connect):
    with FaultServer(token=TOKEN) as server:
        assert connect(server.url).check_write(Destination("b")).outcome is Outcome.OK
        wrong = connect(server.url, token="wrong").check_write(Destination("b"))
        assert wrong.outcome is Outcome.AUTH and wrong.status == 401
        assert server.points == []


# -- the real influxd (1.6.7, v1 API) --------------------------------------------------

def test_real_influxd_write_is_stored_and_queryable(influx, influx_db, connect):
    t = connect(influx.url, api="v1", token=None)
    lines = "\n".join(f"env,room=r{i % 3} t={20 + i / 10},n={i}i {1_700_000_000 + i}"
                      for i in range(500))
    result = t.write(Destination(influx_db, precision="s"), lines.encode())
    assert result.ok and result.status == 204, result.message
    assert influx.count(influx_db, "env", "n") == 500
    rows = influx.rows(influx_db, 'SELECT "n" FROM env WHERE room = \'r1\' ORDER BY time LIMIT 1')
    assert rows[0]["n"] == 1 and rows[0]["time"] == 1_700_000_001 * 10**9


def test_real_influxd_retention_policy_from_bucket(influx, influx_db, connect):
    t = connect(influx.url, api="v1", token=None)
    assert t.write(Destination(f"{influx_db}/autogen"), b"rp v=1i 1").ok
    assert influx.count(influx_db, "rp", "v") == 1
    missing = t.write(Destination(f"{influx_db}/nope"), b"rp v=2i 2")
    assert missing.outcome is not Outcome.OK and "nope" in missing.message


def test_real_influxd_partial_write_message_is_carried(influx, influx_db, connect):
    t = connect(influx.url, api="v1", token=None)
    result = t.write(Destination(influx_db), b"p v=1i 1\np,bad v= 3\np v=4i 4")
    assert (result.status, result.outcome) == (400, Outcome.INVALID)
    assert result.message.startswith("partial write: unable to parse 'p,bad v= 3'")
    assert "missing tag value" in result.message
    assert influx.count(influx_db, "p", "v") == 2


def test_real_influxd_unknown_database_is_not_found(influx, connect):
    result = connect(influx.url, api="v1", token=None).write(Destination("no_such_db"), BODY)
    assert (result.status, result.outcome) == (404, Outcome.NOT_FOUND)
    assert result.message.startswith("database not found")
    assert "no_such_db" in result.message


def test_real_influxd_ping_and_check_write(influx, influx_db, connect):
    t = connect(influx.url, api="v1", token=None)
    ping = t.ping()
    assert ping.ok and ping.message.startswith("InfluxDB 1.")
    assert t.check_write(Destination(influx_db)).outcome is Outcome.OK
    assert t.check_write(Destination("no_such_db")).outcome is Outcome.NOT_FOUND
    assert influx.rows(influx_db, "SHOW MEASUREMENTS") == []


def test_real_influxd_outage_is_transient(influx_factory, connect):
    server = influx_factory()
    server.create_database("o")
    t = connect(server.url, api="v1", token=None)
    assert t.write(Destination("o"), b"o v=1i 1").ok
    server.kill()
    down = t.write(Destination("o"), b"o v=2i 2")
    assert (down.status, down.outcome) == (0, Outcome.TRANSIENT)
    assert down.message == f"cannot reach {server.url}: connection refused"
    server.start()
    assert t.write(Destination("o"), b"o v=2i 2").ok
    assert server.count("o", "o", "v") == 2


def test_the_environments_proxy_and_no_proxy_are_honoured(monkeypatch):
    # requests reads HTTP_PROXY/NO_PROXY on every request; the transport reads them
    # once, when it is made. A recording proxy on 127.0.0.1 answers 204 itself.
    import http.server
    import threading

    seen = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.requestline)
            self.send_response(204)
            self.end_headers()

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy",
                     "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        url = "http://influx.example.invalid:8086"
        with Transport(InfluxSettings(url=url, api="v2", token="my-token", org="o")) as t:
            assert t.write(Destination("b"), BODY).ok
        assert len(seen) == 1 and seen[0].startswith(f"POST {url}/api/v2/write?"), seen
        monkeypatch.setenv("NO_PROXY", "example.invalid")
        with Transport(InfluxSettings(url=url, api="v2", token="my-token", org="o",
                                      connect_timeout=2)) as t:
            result = t.write(Destination("b"), BODY)
        assert result.message == f"cannot reach {url}: host name not found"
        assert len(seen) == 1
    finally:
        proxy.shutdown()
        proxy.server_close()
