"""Words for a request that got no answer, and the probe behind one of them.

``describe_failure`` turns what requests raised into one sentence naming the
url (never a secret). ``speaks_tls`` answers a question the failure leaves
open: an http:// url whose connection was reset may be an HTTPS port. Go's
net/http (influxd) answers plain HTTP there with a 400 and closes; when the
close overtakes the request body the client sees only a reset, and Python
TLS servers always reset. One TLS handshake, verifying nothing, tells.
"""

from __future__ import annotations

import socket
import ssl
from typing import Callable, Optional
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from ..tls import TlsNames, exception_chain, explain, find_ssl_error
from .outcome import truncate

__all__ = ["PLAIN_TO_TLS", "describe_failure", "dropped_mid_request", "never_connected",
           "speaks_tls"]

PLAIN_TO_TLS = "HTTP request to an HTTPS server"  # Go's net/http (influxd) on a TLS port


def _refused(cause: BaseException) -> bool:
    return isinstance(cause, ConnectionRefusedError)


def _unresolved(cause: BaseException) -> bool:
    return isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError"


def _dropped(cause: BaseException) -> bool:
    """The server reset or closed the connection before answering."""
    return isinstance(cause, (ConnectionResetError, BrokenPipeError)) \
        or type(cause).__name__ == "RemoteDisconnected"


def describe_failure(exc: requests.RequestException, url: str,
                     connect_timeout: float, read_timeout: float,
                     tls: Optional[Callable[[BaseException], str]] = None) -> str:
    """One sentence for a request that got no answer (no secrets in it).

    ``tls(exc)`` words a TLS failure (the transport knows the settings to name).
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return (f"cannot reach {url}: no connection within {connect_timeout:g} s "
                "(connect timeout)")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no answer from {url} within {read_timeout:g} s (read timeout)"
    if isinstance(exc, requests.exceptions.SSLError) or find_ssl_error(exc) is not None:
        return truncate(tls(exc) if tls is not None else explain(exc, url, TlsNames()))
    if isinstance(exc, requests.exceptions.ProxyError):
        return f"cannot reach {url} through the proxy: {_innermost(exc)}"
    causes = list(exception_chain(exc))
    if any(map(_refused, causes)):
        return f"cannot reach {url}: connection refused"
    if any(map(_unresolved, causes)):
        return f"cannot reach {url}: host name not found"
    for cause in causes:
        if isinstance(cause, ConnectionResetError):
            return f"connection to {url} was reset before an answer arrived"
        if isinstance(cause, BrokenPipeError):
            return f"connection to {url} was closed while sending"
        if type(cause).__name__ == "RemoteDisconnected":
            return f"connection to {url} was closed before an answer arrived"
        if isinstance(cause, socket.timeout):
            return f"no answer from {url} within {read_timeout:g} s (read timeout)"
        if isinstance(cause, OSError) and cause.errno is not None and cause.strerror:
            return f"cannot reach {url}: {cause.strerror.lower()}"
    return f"cannot reach {url}: {_innermost(exc)}"


def _innermost(exc: BaseException) -> str:
    last = exc
    for cause in exception_chain(exc):
        last = cause
    return truncate(str(last) or type(last).__name__)


def dropped_mid_request(exc: BaseException) -> bool:
    """Whether the server reset or closed the connection before answering."""
    return any(map(_dropped, exception_chain(exc)))


def never_connected(exc: BaseException) -> bool:
    """Whether the request failed before it had a connection (InfluxDB cannot have it)."""
    return isinstance(exc, requests.exceptions.ConnectTimeout) or any(
        isinstance(cause, NewConnectionError) or _refused(cause) or _unresolved(cause)
        for cause in exception_chain(exc))


def speaks_tls(url: str, timeout: float) -> bool:
    """Whether the host and port of ``url`` complete (or alert in) a TLS handshake.

    Nothing is verified and nothing is sent after the handshake: it tells an
    HTTPS port from a plain one, no more. Any other failure answers False.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return True
    except ssl.SSLError as exc:
        # An alert (say, "certificate required" under TLS 1.2) is a TLS server
        # talking; a plain server's bytes read as a bad record.
        return "ALERT" in str(exc.reason or "").upper()
    except (OSError, ValueError):
        return False
