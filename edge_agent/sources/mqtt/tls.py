"""TLS for the MQTT client, and why a connection failed, in one line.

paho in ``connect_async`` + ``loop_start`` mode swallows the reason a
connection failed: ``on_connect_fail`` gets no error, and a broker refusing a
missing client certificate under TLS 1.3 shows only as ``on_disconnect``
"Unspecified error" (the alert arrives on the first read, logged by paho at
ERROR). :class:`ConnectErrors` keeps both -- the exception of paho's
``reconnect()`` and the last socket error paho logs -- so the source can say
"TLS to host:port failed: ..." with the setting to fix (:func:`edge_agent.tls.explain`).
It wraps public names only (``reconnect``, ``enable_logger``), so it works on
the fast-path client and on paho's stock one alike.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any, Optional

from ...tls import MQTT_NAMES, check_ca_file, check_client_cert, explain, key_password
from .payloads import _opt

__all__ = ["ConnectErrors", "configure_tls", "connect_failure", "disconnect_reason"]


def configure_tls(client: Any, tls: Any) -> None:
    """``client.tls_set`` from a source's ``tls`` settings (None: system CAs, verified).

    Files are checked first (one ConfigError naming the setting); the key's
    passphrase callback is always given, so OpenSSL never prompts.
    """
    verify = bool(_opt(tls, "verify", True))
    ca = _opt(tls, "ca_cert", None)
    cert = _opt(tls, "certfile", None)
    key = _opt(tls, "keyfile", None)
    password = _opt(tls, "keyfile_password", None)
    if verify and ca is not None:
        check_ca_file(ca, MQTT_NAMES.ca)
    check_client_cert(cert, key, password, MQTT_NAMES)
    tls_set: Any = client.tls_set  # paho types keyfile_password as str; ssl takes a callable
    tls_set(ca_certs=ca if verify else None, certfile=cert, keyfile=key,
            cert_reqs=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE,
            keyfile_password=key_password(password))
    if not verify:
        client.tls_insecure_set(True)


class _ErrorLog:
    """A stand-in for paho's logger that keeps the last socket error while a
    connection is being set up. paho calls it for every packet, so it takes
    itself out once the broker's CONNACK arrives (``reconnect`` puts it back).
    """

    def __init__(self, owner: ConnectErrors, client: Any) -> None:
        self._owner = owner
        self._client = client

    def log(self, level: int, fmt: str, *args: Any) -> None:
        if level >= logging.ERROR:
            exc = next((a for a in args if isinstance(a, BaseException)), None)
            if exc is not None:
                self._owner.read_error = exc
        elif fmt.startswith("Received CONNACK"):
            self._client.disable_logger()

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name
        return level >= logging.ERROR


class ConnectErrors:
    """What paho's network thread learnt about the last failed connection."""

    def __init__(self, client: Any, host: str, port: int, tls: Any, secure: bool) -> None:
        self.peer = f"{host}:{port}"
        self.secure = secure
        self.ca = _opt(tls, "ca_cert", None) if _opt(tls, "verify", True) else None
        self.cert = _opt(tls, "certfile", None)
        self.connect_error: Optional[OSError] = None
        self.read_error: Optional[BaseException] = None
        reconnect = client.reconnect

        def watched_reconnect() -> Any:
            self.connect_error = self.read_error = None
            client.enable_logger(errors)
            try:
                return reconnect()
            except OSError as exc:
                self.connect_error = exc
                raise

        errors = _ErrorLog(self, client)
        setattr(client, "reconnect", watched_reconnect)  # noqa: B010 - paho's loop calls it

    def _explain(self, exc: BaseException) -> str:
        return explain(exc, self.peer, MQTT_NAMES, ca_file=self.ca, cert_file=self.cert)

    def connect_failure(self) -> str:
        exc = self.connect_error
        where = f"cannot reach the broker at {self.peer}"
        if exc is None:
            return where
        if isinstance(exc, ssl.SSLError):
            return self._explain(exc)
        if isinstance(exc, ConnectionRefusedError):
            return f"{where}: connection refused"
        if isinstance(exc, socket.gaierror):
            return f"{where}: host name not found"
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return f"{where}: no answer (connect timeout)"
        return f"{where}: {(exc.strerror or str(exc) or type(exc).__name__).lower()}"

    def disconnect_reason(self, reason: Any) -> str:
        exc = self.read_error
        if isinstance(exc, ssl.SSLError):
            return self._explain(exc)
        if exc is not None and self.secure and "EOF" in str(exc):
            return self._explain(exc)
        if isinstance(exc, ConnectionResetError) and not self.secure:
            return (f"the broker at {self.peer} reset the connection before it answered; if it "
                    "listens with TLS there, use an mqtts:// url")
        return f"disconnected: {reason}"


def _watch(client: Any) -> Optional[ConnectErrors]:
    watch = getattr(client, "edge_connect_errors", None)
    return watch if isinstance(watch, ConnectErrors) else None


def connect_failure(client: Any) -> str:
    """Why the last connection attempt of ``client`` failed, in one line."""
    watch = _watch(client)
    return watch.connect_failure() if watch else "cannot reach the broker"


def disconnect_reason(client: Any, reason: Any) -> str:
    """Why ``client`` was disconnected (the TLS reason when paho logged one)."""
    watch = _watch(client)
    return watch.disconnect_reason(reason) if watch else f"disconnected: {reason}"
