"""HTTP to InfluxDB: post one batch of line protocol, classify the answer.

One ``Transport`` per writer holds one ``requests.Session``. ``write()`` never
raises for an HTTP status or a network failure: every outcome, including
"no answer at all", comes back as a ``WriteResult`` that the flusher acts on
(DESIGN.md, "Delivery rules"). Retrying is the flusher's job, so neither
urllib3 nor requests retries or follows redirects here.

Endpoints: v2 ``POST /api/v2/write?org=&bucket=&precision=`` with
``Authorization: Token``; v1 ``POST /write?db=&rp=&precision=`` with basic
auth (or the 1.8 token ``user:password``); v3 ``POST /api/v3/write_lp?db=&
precision=`` with ``Authorization: Bearer``. Secrets (token, password) are
kept out of every message, repr and log line, even when a server echoes them.
"""

from __future__ import annotations

import base64
import gzip as gzip_module
import logging
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from .. import __version__
from ..destination import Destination
from ..redact import REDACTED, redact
from ..tls import TlsNames, check_ca_file, check_client_cert, env_ca_bundle, explain
from .adapter import TlsAdapter
from .failures import (
    PLAIN_TO_TLS,
    describe_failure,
    dropped_mid_request,
    never_connected,
    speaks_tls,
)
from .outcome import Outcome, WriteResult, classify, parse_retry_after, server_message, truncate

__all__ = ["InfluxSettings", "Transport", "strip_userinfo"]

log = logging.getLogger(__name__)

API_VERSIONS = ("v1", "v2", "v3")
GZIP_LEVEL = 1  # level 1: most of the size win for a fraction of the CPU (a Pi's CPU)
CONTENT_TYPE = "text/plain; charset=utf-8"
USER_AGENT = f"edge-agent/{__version__}"

V1_PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
V2_PRECISION = {"ns": "ns", "us": "us", "ms": "ms", "s": "s"}
V3_PRECISION = {"ns": "nanosecond", "us": "microsecond", "ms": "millisecond", "s": "second"}


# -- settings ------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class InfluxSettings:
    """Where and how to reach InfluxDB. Times in seconds.

    ``api`` is "v2" (default), "v1" (also 1.8's compatibility API) or "v3".
    v2 and v3 authenticate with ``token``; v1 with ``username``/``password``,
    or with ``token`` in 1.8's ``user:password`` form. Credentials written
    into the url (``http://user:pass@host``) are moved to username/password.
    ``ssl_ca_cert`` is a CA bundle file to verify the server with;
    ``verify_ssl=False`` turns verification off; ``cert_file`` (and
    ``cert_key_file``, ``cert_key_password`` when the key is apart or
    encrypted) is the client certificate presented for mTLS, as in
    influxdb-client. A CA file or ``verify_ssl=False`` written here wins over
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``; those are used only when
    neither is set. ``setting_prefix`` is how error messages name the settings
    ("influx." in the agent). The repr hides the secrets.
    """

    url: str
    api: str = "v2"
    token: Optional[str] = None
    org: str = ""
    username: Optional[str] = None
    password: Optional[str] = None
    gzip: bool = True
    timeout: float = 10.0
    connect_timeout: float = 5.0
    verify_ssl: bool = True
    ssl_ca_cert: Optional[str] = None
    cert_file: Optional[str] = None
    cert_key_file: Optional[str] = None
    cert_key_password: Optional[str] = None
    setting_prefix: str = ""

    def __post_init__(self) -> None:
        api = str(self.api).strip().lower()
        if api in ("1", "2", "3"):
            api = "v" + api
        if api not in API_VERSIONS:
            raise ValueError(f"api {self.api!r} is not one of {', '.join(API_VERSIONS)}")
        object.__setattr__(self, "api", api)
        parts = urlsplit(str(self.url).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"url {strip_userinfo(str(self.url))!r} must look like http://host:8086 "
                "or https://host:8086")
        if parts.username is not None or parts.password is not None:
            if self.username is None and parts.username:
                object.__setattr__(self, "username", parts.username)
            if self.password is None and parts.password:
                object.__setattr__(self, "password", parts.password)
        object.__setattr__(self, "url", strip_userinfo(str(self.url).strip()).rstrip("/"))
        for name in ("timeout", "connect_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds greater than 0, "
                                 f"got {value!r}")
        if self.token == "":
            object.__setattr__(self, "token", None)

    def secrets(self) -> Tuple[str, ...]:
        """Every form in which a credential could show up, longest first."""
        found: List[str] = []
        if self.token:
            found.append(self.token)
            _, sep, secret = self.token.partition(":")
            if sep and secret:
                found.append(secret)
            found.append(base64.b64encode(self.token.encode("utf-8")).decode("ascii"))
        if self.password:
            found.append(self.password)
            pair = f"{self.username or ''}:{self.password}".encode()
            found.append(base64.b64encode(pair).decode("ascii"))
        if self.cert_key_password:
            found.append(self.cert_key_password)
        more = [quote(s, safe="") for s in found]
        return tuple(sorted({s for s in found + more if s}, key=len, reverse=True))

    def __repr__(self) -> str:
        shown = []
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in ("token", "password", "cert_key_password") and value:
                value = REDACTED
            shown.append(f"{name}={value!r}")
        return f"InfluxSettings({', '.join(shown)})"

    __str__ = __repr__


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (for logs and reports)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# -- the transport -------------------------------------------------------------


def _settings_only(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """requests' auth hook that changes nothing (the token header stays)."""
    return request


class Transport:
    """Posts batches of line protocol to one InfluxDB over one HTTP session.

    TLS: ``verify`` and ``cert`` go with every request, so what the settings
    say wins over ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``; those decide only
    when the settings say nothing. The environment (proxies, ``NO_PROXY``, the
    CA bundle) is read once, here: requests would scan it on every request,
    a fifth of a small write's CPU.
    """

    def __init__(self, settings: InfluxSettings) -> None:
        names = TlsNames.prefixed(settings.setting_prefix)
        if settings.verify_ssl and settings.ssl_ca_cert is not None:
            check_ca_file(settings.ssl_ca_cert, names.ca)
        check_client_cert(settings.cert_file, settings.cert_key_file,
                          settings.cert_key_password, names)
        self.settings = settings
        self._names = names
        self._secrets = settings.secrets()
        self._timeouts = (float(settings.connect_timeout), float(settings.timeout))
        # The environment's CA bundle counts only where the settings say nothing.
        self._env_ca = env_ca_bundle() if settings.verify_ssl and not settings.ssl_ca_cert \
            else None
        self._verify: Union[bool, str] = (False if not settings.verify_ssl
                                          else settings.ssl_ca_cert
                                          or (self._env_ca[1] if self._env_ca else True))
        self._cert: Union[None, str, Tuple[str, str]] = None
        if settings.cert_file:
            self._cert = ((settings.cert_file, settings.cert_key_file)
                          if settings.cert_key_file else settings.cert_file)
        session = requests.Session()
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(settings.url))
        session.headers["User-Agent"] = USER_AGENT
        session.headers["Accept"] = "application/json"
        session.mount("https://", TlsAdapter(settings.cert_key_password, settings.verify_ssl))
        self._auth_headers = self._credentials(session)
        self._session = session

    def _tls_failure(self, exc: BaseException) -> str:
        return explain(exc, self.settings.url, self._names, ca_file=self.settings.ssl_ca_cert,
                       cert_file=self.settings.cert_file, env_ca=self._env_ca)

    def _credentials(self, session: requests.Session) -> Dict[str, str]:
        s = self.settings
        if s.api == "v1" and (s.username or s.password):
            session.auth = (s.username or "", s.password or "")
            return {}
        if s.token:
            # With no session auth, requests would fetch ~/.netrc (or $NETRC) credentials
            # for the host and put them in place of the token the settings give.
            session.auth = _settings_only
            scheme = "Bearer" if s.api == "v3" else "Token"
            return {"Authorization": f"{scheme} {s.token}"}
        return {}

    # -- requests --------------------------------------------------------------

    def write_target(self, dest: Destination) -> Tuple[str, List[Tuple[str, str]]]:
        """The URL and query parameters a batch for ``dest`` is posted to."""
        s = self.settings
        if s.api == "v1":
            db, _, rp = dest.bucket.partition("/")
            params = [("db", db)]
            if rp:
                params.append(("rp", rp))
            params.append(("precision", V1_PRECISION[dest.precision]))
            return f"{s.url}/write", params
        if s.api == "v3":
            return f"{s.url}/api/v3/write_lp", [
                ("db", dest.bucket), ("precision", V3_PRECISION[dest.precision])]
        params = []
        org = dest.org or s.org
        if org:
            params.append(("org", org))
        params += [("bucket", dest.bucket), ("precision", V2_PRECISION[dest.precision])]
        return f"{s.url}/api/v2/write", params

    def write(self, dest: Destination, body: bytes) -> WriteResult:
        """Post one batch (lines joined by newlines) to ``dest``; never raises for HTTP."""
        url, params = self.write_target(dest)
        headers = {"Content-Type": CONTENT_TYPE, **self._auth_headers}
        if self.settings.gzip and body:
            body = gzip_module.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
            headers["Content-Encoding"] = "gzip"
        return self._request("POST", url, params, body, headers)

    def check_write(self, dest: Destination) -> WriteResult:
        """Whether the credentials may write to ``dest``, cheaply: an empty write.

        InfluxDB checks credentials and the bucket before it parses the body,
        so 2xx or a 400 about the empty body means "authorised" (outcome OK);
        401/403 (AUTH) and 404 (NOT_FOUND) mean what they say.
        """
        url, params = self.write_target(dest)
        result = self._request("POST", url, params, b"",
                               {"Content-Type": CONTENT_TYPE, **self._auth_headers})
        if result.ok or result.outcome is Outcome.INVALID:
            return WriteResult(result.status, Outcome.OK,
                               f"authorised to write to {dest.bucket!r}", None, result.latency)
        return result

    def ping(self) -> WriteResult:
        """Whether InfluxDB answers, and how fast (``latency``); never raises.

        v1/v2 ask ``GET /ping``; v3 asks ``GET /health`` (``/ping`` where
        that does not exist). The message names the server version when told.
        """
        paths = ("/health", "/ping") if self.settings.api == "v3" else ("/ping",)
        result = WriteResult(0, Outcome.TRANSIENT)
        for path in paths:
            result = self._request("GET", self.settings.url + path, [], None,
                                   dict(self._auth_headers))
            if result.status != 404:
                break
        return result

    def _request(self, method: str, url: str, params: List[Tuple[str, str]],
                 data: Optional[bytes], headers: Dict[str, str]) -> WriteResult:
        started = time.monotonic()
        try:
            response = self._session.request(
                method, url, params=params, data=data, headers=headers,
                timeout=self._timeouts, allow_redirects=False, verify=self._verify,
                cert=self._cert,
            )
        except requests.RequestException as exc:
            latency = time.monotonic() - started
            if (url.startswith("http://") and dropped_mid_request(exc)
                    and speaks_tls(url, self._timeouts[0])):
                return WriteResult(0, Outcome.TRANSIENT, self._plain_to_tls(), None, latency,
                                   reached=False)
            message = redact(describe_failure(exc, self.settings.url, *self._timeouts,
                                              tls=self._tls_failure), self._secrets)
            log.debug("%s %s: no answer after %.3f s: %s", method, url, latency, message)
            return WriteResult(0, Outcome.TRANSIENT, message, None, latency,
                               reached=not never_connected(exc))
        latency = time.monotonic() - started
        try:
            result = self._result(response, latency)
        finally:
            response.close()
        log.debug("%s %s -> %d in %.3f s", method, url, result.status, latency)
        return result

    def _result(self, response: requests.Response, latency: float) -> WriteResult:
        status = response.status_code
        outcome = classify(status)
        retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
        if outcome is Outcome.OK:
            version = response.headers.get("X-Influxdb-Version")
            message = f"InfluxDB {version}" if version else ""
        elif 300 <= status < 400:
            location = response.headers.get("Location", "")
            message = (f"redirected ({status}) to {location or 'another address'}: "
                       "set the url to the final address")
        else:
            message = server_message(response.content, response.reason or "",
                                     response.headers.get("X-Influxdb-Error", ""))
            message = message or f"HTTP {status}"
            if status == 400 and PLAIN_TO_TLS in message:
                # Not a verdict on the lines: nothing may be dead-lettered for it.
                outcome = Outcome.TRANSIENT
                message = self._plain_to_tls()
        message = truncate(redact(message, self._secrets))
        headers = {k: redact(v, self._secrets) for k, v in response.headers.items()}
        body = "" if outcome is Outcome.OK else truncate(
            redact(response.content.decode("utf-8", "replace"), self._secrets))
        return WriteResult(status, outcome, message, retry_after, latency,
                           response.reason or "", headers, body)

    def _plain_to_tls(self) -> str:
        return (f"the server at {self.settings.url} speaks HTTPS on this port: use "
                f"https:// in {self.settings.setting_prefix}url")

    @property
    def user_agent(self) -> str:
        """The User-Agent header sent (``edge-agent/<version>`` unless set)."""
        return str(self._session.headers["User-Agent"])

    @user_agent.setter
    def user_agent(self, value: str) -> None:
        self._session.headers["User-Agent"] = value

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Transport({self.settings!r})"

