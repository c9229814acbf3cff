"""A small HTTP server that speaks InfluxDB's write APIs, for fault injection.

Endpoints, as far as this project uses them:

* ``POST /api/v2/write?org=&bucket=&precision=`` (2.x; also served by 3.x)
* ``POST /api/v3/write_lp?db=&precision=`` (3.x)
* ``POST /write?db=&rp=&precision=`` (1.x)
* ``GET /ping`` (204), ``GET /health`` (200 JSON), ``GET /api/v2/ping``

Every request is recorded (method, path, query, headers, gunzipped body).
Accepted lines are kept in ``points``. Tell it how to answer with
:meth:`FaultServer.script` (the next answers, in order) or
:meth:`FaultServer.reject_lines` (InfluxDB's per-line validation: 2.x rejects
a whole batch with 400 naming the first bad line, 1.x/3.x store the valid
lines and answer 400 "partial write"). :meth:`FaultServer.limit` gives it a
fixed capacity in points/s (a token bucket): a write above it is answered 429
with Retry-After, as InfluxDB Cloud's rate limits do (or, queueing, answers
late). ``answers`` logs every write (arrival, status, lines, delay) for rates;
``record=False`` keeps request bodies out of ``requests`` (benchmarks with
millions of points).
"""

from __future__ import annotations

import gzip
import json
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlparse


@dataclass
class Answer:
    """One scripted answer. ``reset`` closes the socket with RST; ``delay`` stalls first."""

    status: int = 204
    body: str = ""
    headers: Dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    store: bool = False  # store the lines even though the status is not 2xx


def error_answer(status: int, message: str, code: str = "invalid",
                 retry_after: Optional[float] = None, **extra: object) -> Answer:
    """An answer with InfluxDB 2.x's JSON error body ``{code, message}``."""
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = {"code": code, "message": message}
    body.update(extra)  # type: ignore[arg-type]
    return Answer(status=status, body=json.dumps(body), headers=headers)


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes
    raw_size: int
    received: float = 0.0  # time.monotonic() when it arrived
    status: int = 0  # the status it was answered with (0 until answered)

    @property
    def lines(self) -> List[str]:
        return [ln for ln in self.body.decode("utf-8").split("\n") if ln]


class FaultServer:
    """Threaded HTTP server bound to 127.0.0.1 on a free port."""

    def __init__(self, token: Optional[str] = None, record: bool = True) -> None:
        self.token = token
        self.record = record
        # (monotonic arrival time, status, lines, seconds held before answering)
        self.answers: List[Tuple[float, int, int, float]] = []
        self._capacity: Optional[float] = None
        self._queue = False
        self._burst = 0.0
        self._tokens = 0.0
        self._filled = 0.0
        self.requests: List[Request] = []
        self.points: List[str] = []
        self._script: List[Answer] = []
        self._bad_line: Optional[Callable[[str], bool]] = None
        self._reject_mode = "v2"
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    # -- control ------------------------------------------------------------

    def script(self, *answers: Answer) -> None:
        """Answer the next write requests with these, in order, then 204 again."""
        with self._lock:
            self._script.extend(answers)

    def reject_lines(self, bad: Callable[[str], bool], mode: str = "v2") -> None:
        """Validate each line with ``bad``; ``mode`` v2 = whole batch rejected, v1 = partial."""
        with self._lock:
            self._bad_line = bad
            self._reject_mode = mode

    def limit(self, points_per_s: Optional[float], burst: Optional[float] = None,
              queue: bool = False) -> None:
        """Accept at most ``points_per_s`` (a token bucket of ``burst`` points, one
        second's worth by default); above it answer 429 with Retry-After: the
        whole seconds until the request would fit, at least 1. With ``queue``
        the server queues instead, like an overloaded OSS node: the request is
        stored and answered 204 once its turn comes (the latency rises). None:
        no limit."""
        with self._lock:
            self._queue = queue
            self._capacity = points_per_s
            self._burst = float(burst if burst is not None else points_per_s or 0.0)
            self._tokens = self._burst
            self._filled = time.monotonic()

    def _over_capacity(self, points: int) -> Optional[Answer]:
        if self._capacity is None:
            return None
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._filled) * self._capacity)
        self._filled = now
        if self._tokens >= points:
            self._tokens -= points
            return None
        if self._queue:  # in debt: answered when the bucket has refilled past it
            self._tokens -= points
            return Answer(204, delay=-self._tokens / self._capacity, store=True)
        wait = max(1, math.ceil((points - self._tokens) / self._capacity))
        return error_answer(429, "write rate limit exceeded", "too many requests",
                            retry_after=wait)

    def write_requests(self) -> List[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- answers ------------------------------------------------------------

    def _decide(self, req: Request) -> Answer:
        with self._lock:
            if self._script:
                answer = self._script.pop(0)
                if answer.store and req.body:
                    self.points.extend(req.lines)
                return answer
            if self.token is not None:
                auth = req.headers.get("authorization", "")
                if auth != f"Token {self.token}":
                    return error_answer(401, "unauthorized access", "unauthorized")
            lines = req.lines
            over = self._over_capacity(len(lines))
            if over is not None:
                if over.store:
                    self.points.extend(lines)
                return over
            bad = self._bad_line
            if bad is not None:
                rejected = [(i, ln) for i, ln in enumerate(lines, 1) if bad(ln)]
                if rejected:
                    first_no, first = rejected[0]
                    if self._reject_mode == "v2":
                        return error_answer(
                            400, f"failed to parse line protocol: errors encountered on line(s):"
                            f"\nerror parsing line {first_no} (1-based): bad line {first!r}",
                            line=first_no)
                    self.points.extend(ln for ln in lines if not bad(ln))
                    return error_answer(
                        400, f"partial write: unable to parse {rejected[0][1]!r}: bad line "
                        f"dropped={len(rejected)}")
            self.points.extend(lines)
            return Answer(204)

    def _handler(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _record(self, body: bytes) -> Request:
                raw = len(body)
                if self.headers.get("Content-Encoding", "") == "gzip":
                    body = gzip.decompress(body)
                url = urlparse(self.path)
                req = Request(
                    self.command, url.path,
                    {k: v[0] for k, v in parse_qs(url.query).items()},
                    {k.lower(): v for k, v in self.headers.items()}, body, raw,
                    time.monotonic(),
                )
                if server.record:
                    with server._lock:
                        server.requests.append(req)
                return req

            def _send(self, answer: Answer) -> None:
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.reset:
                    # RST instead of FIN: SO_LINGER with a zero timeout.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                data = answer.body.encode("utf-8")
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                req = self._record(b"")
                if req.path in ("/ping", "/api/v2/ping"):
                    self._send(Answer(204, headers={"X-Influxdb-Version": "fault-server"}))
                elif req.path == "/health":
                    self._send(Answer(200, json.dumps({"status": "pass"}),
                                      {"Content-Type": "application/json"}))
                else:
                    self._send(error_answer(404, "path not found", "not found"))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                req = self._record(self.rfile.read(length))
                if req.path not in ("/api/v2/write", "/api/v3/write_lp", "/write"):
                    self._send(error_answer(404, "path not found", "not found"))
                    return
                answer = server._decide(req)
                req.status = answer.status
                with server._lock:
                    server.answers.append((time.monotonic(), answer.status,
                                           req.body.count(b"\n") + 1 if req.body else 0,
                                           answer.delay))
                self._send(answer)

        return Handler
