"""TLS servers on free 127.0.0.1 ports, for tests.

* :class:`TlsMosquitto`: mosquitto 2.x, one TLS listener, optional ``require_certificate``.
* :class:`TlsInflux`: influxd 1.x with ``[http] https-enabled`` (v1 API over HTTPS only);
  queries as :class:`~tests.harness.servers.InfluxServer` does.
* :class:`TlsHttpServer`: in-process stub of the InfluxDB v2 write API that REQUIRES
  a client cert (``POST /api/v2/write`` and ``GET /ping`` -> 204); it records each
  write with the client cert's CN, and each failed TLS handshake.

The processes are servers.py's (own work dir, waited for until they answer,
SIGTERM then SIGKILL); all three are context managers. Readiness never
verifies the server cert, so servers with the expired or wrong-host cert start too.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import socket
import ssl
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, TypeVar, Union
from urllib.parse import parse_qs, urlsplit

from tests.harness.servers import InfluxServer, MosquittoServer, _Process

PathLike = Union[str, Path]
_P = TypeVar("_P", bound="_Managed")


def tls13_refusal_lines(peer: str, cert_setting: str, key_setting: str,
                        cert: Optional[str] = None) -> Tuple[str, str]:
    """The two exact lines edge-agent may give when a TLS 1.3 server refuses a missing
    (``cert`` None) or foreign client certificate: the alert, or a bare EOF when the
    server's close wins the race."""
    head = f"TLS to {peer} failed: "
    closed = head + "the server closed the connection during the TLS handshake "
    if cert is None:
        return (head + "the server requires a client certificate and none is configured: "
                f"set {cert_setting} and {key_setting}",
                closed + f"(does it require a client certificate? set {cert_setting} and "
                f"{key_setting})")
    return (head + f"the server refused the client certificate in {cert_setting} ({cert}): "
            "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca",
            closed + f"(does it accept the client certificate in {cert_setting} ({cert})?)")


class _Managed(_Process):
    """servers.py's process as a context manager."""

    def __enter__(self: _P) -> _P:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TlsMosquitto(MosquittoServer, _Managed):
    """mosquitto with one TLS listener on 127.0.0.1, anonymous allowed, persistence on.

    ``tls_version`` is mosquitto's *minimum*: to test TLS 1.2, cap the client
    (``SSLContext.maximum_version``). The broker's own log goes to
    ``broker_log`` via ``log_dest file`` (``log_dest stdout`` into a file is
    block-buffered: empty until exit). mosquitto sends ``cafile``'s CA along
    with the leaf; the readiness probe logs one ``Client connection from
    127.0.0.1 failed: ...unexpected eof while reading``.
    """

    def __init__(self, workdir: PathLike, cafile: PathLike, certfile: PathLike,
                 keyfile: PathLike, require_certificate: bool = False,
                 port: Optional[int] = None, tls_version: Optional[str] = None,
                 extra: str = "") -> None:
        super().__init__(Path(workdir), port=port)
        self.broker_log = self.workdir / "broker.log"
        plain = self.config_path.read_text()
        listener = f"listener {self.port} 127.0.0.1\n"
        assert listener in plain and "log_dest stdout\n" in plain
        version = f"tls_version {tls_version}\n" if tls_version else ""
        tls = (f"{listener}cafile {cafile}\ncertfile {certfile}\nkeyfile {keyfile}\n"
               f"require_certificate {'true' if require_certificate else 'false'}\n{version}")
        self.config_path.write_text(
            plain.replace(listener, tls).replace(
                "log_dest stdout\n", f"log_dest file {self.broker_log}\nlog_type notice\n"
                "log_type information\nconnection_messages true\n") + extra + "\n")

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 4000) -> str:
        text = "".join(p.read_text(errors="replace") for p in (self.log_path, self.broker_log)
                       if p.exists())
        return text[-n:]


class TlsInflux(InfluxServer, _Managed):
    """influxd 1.x serving its v1 HTTP API over HTTPS only.

    ``ca``: the harness's own queries verify the server with it (without it,
    they do not verify); they ignore REQUESTS_CA_BUNDLE. influxd (Go) sends the
    leaf cert only. Refused TLS clients show in ``log_path`` as Go's
    ``http: TLS handshake error from 127.0.0.1:P: ...``.
    """

    def __init__(self, workdir: PathLike, certfile: PathLike, keyfile: PathLike,
                 ca: Optional[PathLike] = None, port: Optional[int] = None) -> None:
        super().__init__(Path(workdir), port=port)
        self.url = f"https://127.0.0.1:{self.port}"
        plain = self.config_path.read_text()
        anchor = "  max-body-size = 0\n"
        assert anchor in plain
        self.config_path.write_text(plain.replace(anchor, (
            f"{anchor}  https-enabled = true\n  https-certificate = \"{certfile}\"\n"
            f"  https-private-key = \"{keyfile}\"\n")))
        self._session.trust_env = False
        self._session.verify = str(ca) if ca is not None else False

    def ready(self) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=0.5, context=ctx)
        try:
            conn.request("GET", "/ping")
            return conn.getresponse().status == 204
        except OSError:
            return False
        finally:
            conn.close()


@dataclass(frozen=True)
class WriteRecord:
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes  # gunzipped when sent with Content-Encoding: gzip
    client_cn: Optional[str]
    client_subject: Tuple[Tuple[Tuple[str, str], ...], ...]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TlsHttpServer

    def setup(self) -> None:
        self.request.settimeout(10)
        self.request.do_handshake()  # here, not in accept(): a stalled client blocks no one
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _reply(self, status: int) -> None:
        body = b"" if status == 204 else b'{"code":"not found","message":"path not found"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(204 if urlsplit(self.path).path == "/ping" else 404)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path != "/api/v2/write":
            return self._reply(404)
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        subject = tuple(tuple(rdn) for rdn in (self.request.getpeercert() or {}).get("subject", ()))
        cn = next((v for rdn in subject for k, v in rdn if k == "commonName"), None)
        self.server.writes.append(WriteRecord(parse_qs(url.query), dict(self.headers.items()),
                                              body, cn, subject))
        self._reply(204)


class TlsHttpServer(http.server.ThreadingHTTPServer):
    """In-process HTTPS stub of the InfluxDB v2 write API on 127.0.0.1, in a thread.

    ``client_ca``: client certs are REQUIRED and verified against it (``None``:
    server-auth TLS only). ``max_tls``: cap the protocol; TLS 1.2 refuses a missing
    client cert inside the handshake, TLS 1.3 only after the client's handshake is
    done. ``writes``: each accepted write; ``handshake_errors``: what the server
    raised on refused clients, e.g. ``[SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE]``.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, certfile: PathLike, keyfile: PathLike,
                 client_ca: Optional[PathLike] = None,
                 max_tls: Optional[ssl.TLSVersion] = None) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if max_tls is not None:
            self.context.maximum_version = max_tls
        self.context.load_cert_chain(str(certfile), str(keyfile))
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(cafile=str(client_ca))
        self.writes: List[WriteRecord] = []
        self.handshake_errors: List[BaseException] = []
        self._thread: Optional[threading.Thread] = None
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = int(self.server_address[1])
        self.url = f"https://127.0.0.1:{self.port}"

    def get_request(self) -> Tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet, recorded
        err = sys.exc_info()[1]
        if isinstance(err, (ssl.SSLError, ConnectionError, socket.timeout)):
            self.handshake_errors.append(err)
        else:
            super().handle_error(request, client_address)

    def start(self) -> TlsHttpServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"tls-http-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server_close()

    def __enter__(self) -> TlsHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
