"""TLS for both ways out (InfluxDB over HTTPS, the MQTT broker).

Three jobs, shared by the config checks, the HTTP transport and the MQTT client:

* :func:`check_ca_file` / :func:`check_client_cert`: the files a user named are
  readable PEM of the right kind, and a client key loads (with its passphrase)
  and belongs to its certificate -- checked once, before any connection, so
  ``check-config`` refuses what the agent would refuse.
* :func:`key_password`: the passphrase as OpenSSL's password callback. It is
  always passed: without one, OpenSSL asks for an encrypted key's passphrase
  on the terminal (a hang on a console, ``EINVAL`` under systemd).
* :func:`explain`: a failed handshake as one sentence naming the peer, the
  setting to look at and the reason (verify failed against which CA file,
  hostname mismatch, expired, client certificate required or refused).

Settings are named as the caller spells them (:class:`TlsNames`): the agent's
``influx.ssl_ca_cert``, the library's ``ssl_ca_cert``, an MQTT source's ``tls.ca_cert``.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Tuple, Union

from .errors import ConfigError
from .redact import register_secret

__all__ = ["TlsNames", "check_ca_file", "check_client_cert", "exception_chain", "explain",
           "find_ssl_error", "key_password"]

_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_KEY_BLOCKS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
               "DSA PRIVATE KEY")
_MAX_PEM = 8 * 1024 * 1024  # a system CA bundle is ~200 KiB; more is not a PEM file

# OpenSSL X509_V_ERR_* codes (x509_vfy.h) as ssl.SSLCertVerificationError.verify_code.
_UNTRUSTED = {2, 18, 19, 20, 21}  # unknown issuer, self-signed (leaf or in chain)
_EXPIRED, _NOT_YET_VALID = 10, 9
_NAME_MISMATCH = {62, 64}  # hostname, IP address
# Alerts a server sends when it does not like (or did not get) our certificate.
_CERT_REQUIRED = ("CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE")
_CERT_REFUSED = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERTIFICATE",
                 "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "ACCESS_DENIED", "DECRYPT_ERROR")


@dataclass(frozen=True)
class TlsNames:
    """How messages name the TLS settings (the caller's spelling)."""

    ca: str = "ssl_ca_cert"
    cert: str = "cert_file"
    key: str = "cert_key_file"
    password: str = "cert_key_password"
    verify: str = "verify_ssl"
    plain: str = "http://"  # the scheme without TLS, for "the server does not speak TLS"

    @classmethod
    def prefixed(cls, prefix: str) -> TlsNames:
        """The InfluxDB names under ``prefix`` ("influx." in the agent's config)."""
        return cls(*(prefix + name for name in ("ssl_ca_cert", "cert_file", "cert_key_file",
                                                "cert_key_password", "verify_ssl")))


MQTT_NAMES = TlsNames(ca="tls.ca_cert", cert="tls.certfile", key="tls.keyfile",
                      password="tls.keyfile_password", verify="tls.verify", plain="mqtt://")


# -- files, checked before use --------------------------------------------------


def _pem_blocks(path: str, setting: str) -> Tuple[str, ...]:
    """The kinds of PEM block in ``path`` ("CERTIFICATE", "PRIVATE KEY", ...)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_PEM + 1)
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_PEM:
        raise ConfigError(f"{setting}: {path} is larger than 8 MiB: not a PEM file")
    return tuple(m.group(1).decode("ascii") for m in _PEM_BLOCK.finditer(data))


def check_ca_file(path: str, setting: str) -> None:
    """``path`` is a readable PEM bundle of CA certificates OpenSSL can load."""
    blocks = _pem_blocks(path, setting)
    if "CERTIFICATE" not in blocks:
        raise ConfigError(f"{setting}: {path} holds no PEM certificate (no '-----BEGIN "
                          "CERTIFICATE-----' line): give the CA certificate in PEM form")
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{setting}: {path} is not a CA bundle OpenSSL can load: "
                          f"{_clean(exc)}") from None


class _NoPassword(Exception):
    pass


def key_password(password: Optional[str]) -> Callable[[], str]:
    """OpenSSL's password callback: ``password``, or an error when none is set.

    Always pass one: with no callback OpenSSL prompts on the terminal for an
    encrypted key (it blocks, or fails with EINVAL under systemd).
    """
    register_secret(password)

    def callback() -> str:
        if password is None:
            raise _NoPassword()
        return password

    return callback


def check_client_cert(cert: Optional[str], key: Optional[str], password: Optional[str],
                      names: TlsNames) -> None:
    """The client certificate loads: files readable PEM, key decrypts and matches.

    ``key`` may be None when ``cert`` holds the key too. Raises ConfigError
    with a message starting with the setting to fix.
    """
    if cert is None:
        if key is not None:
            raise ConfigError(f"{names.key}: a key without a certificate: set {names.cert} "
                              "to the client certificate it belongs to")
        if password is not None:
            raise ConfigError(f"{names.password}: a passphrase without a key: set "
                              f"{names.cert} and {names.key}")
        return
    blocks = _pem_blocks(cert, names.cert)
    if "CERTIFICATE" not in blocks:
        raise ConfigError(f"{names.cert}: {cert} holds no PEM certificate (no '-----BEGIN "
                          "CERTIFICATE-----' line)")
    if key is None:
        if not any(b in _KEY_BLOCKS for b in blocks):
            raise ConfigError(f"{names.cert}: {cert} holds no private key: set {names.key} "
                              "to the client certificate's key file")
    elif not any(b in _KEY_BLOCKS for b in _pem_blocks(key, names.key)):
        raise ConfigError(f"{names.key}: {key} holds no PEM private key (no '-----BEGIN "
                          "PRIVATE KEY-----' line)")
    key_setting, key_path = (names.key, key) if key is not None else (names.cert, cert)
    try:
        ssl.create_default_context().load_cert_chain(cert, key, password=key_password(password))
    except _NoPassword:
        raise ConfigError(f"{key_setting}: the key in {key_path} is encrypted: set "
                          f"{names.password} to its passphrase") from None
    except ssl.SSLError as exc:
        text = _clean(exc)
        if "KEY_VALUES_MISMATCH" in text:
            raise ConfigError(f"{key_setting}: the key in {key_path} does not belong to the "
                              f"certificate in {names.cert} ({cert})") from None
        if password is not None and ("PEM lib" in text or "bad decrypt" in text):
            raise ConfigError(f"{names.password}: cannot decrypt the key in {key_path}: wrong "
                              "passphrase") from None
        raise ConfigError(f"{key_setting}: cannot load the client certificate and key: "
                          f"{text}") from None


# -- failures, explained ----------------------------------------------------------


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (requests -> urllib3 -> ssl)."""
    seen = set()
    todo = [exc]
    while todo:
        item = todo.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        linked = [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]
        todo.extend(x for x in linked if isinstance(x, BaseException))


def find_ssl_error(exc: BaseException) -> Optional[ssl.SSLError]:
    """The ``ssl.SSLError`` somewhere in ``exc``'s chain (urllib3 wraps it twice)."""
    for item in exception_chain(exc):
        if isinstance(item, ssl.SSLError):
            return item
    return None


def _clean(exc: Union[BaseException, str]) -> str:
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    return _SUFFIX.sub("", text).strip()


def env_ca_bundle() -> Optional[Tuple[str, str]]:
    """``(variable, path)`` of the CA bundle requests takes from the environment."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.get(name):
            return name, os.environ[name]
    return None


def explain(exc: BaseException, peer: str, names: TlsNames, *, ca_file: Optional[str] = None,
            cert_file: Optional[str] = None, env_ca: Optional[Tuple[str, str]] = None) -> str:
    """One sentence for a TLS failure talking to ``peer`` (a URL or host:port).

    ``ca_file`` is the CA bundle the user configured (None: the system's, or
    ``env_ca`` = (variable, path) when that came from the environment);
    ``cert_file`` the client certificate sent (None: none).
    """
    err = find_ssl_error(exc) or exc
    head = f"TLS to {peer} failed"
    if isinstance(err, ssl.SSLCertVerificationError):
        code, detail = err.verify_code, err.verify_message or _clean(err)
        if code in _UNTRUSTED:
            if ca_file is not None:
                trust = f"the CA in {names.ca} ({ca_file})"
            elif env_ca is not None:
                trust = (f"the CA bundle in ${env_ca[0]} ({env_ca[1]}); set {names.ca} to "
                         "override it")
            else:
                trust = f"a CA this system trusts; set {names.ca} to your CA's PEM file"
            return (f"{head}: certificate verify failed: the server's certificate is not "
                    f"signed by {trust} ({detail})")
        if code == _EXPIRED:
            return (f"{head}: certificate verify failed: the server's certificate has expired "
                    "(renew it on the server)")
        if code == _NOT_YET_VALID:
            return (f"{head}: certificate verify failed: the server's certificate is not valid "
                    "yet (check this device's clock)")
        if code in _NAME_MISMATCH:
            return (f"{head}: certificate verify failed: hostname mismatch: {detail} (connect "
                    "by a name or address the certificate lists)")
        return f"{head}: certificate verify failed: {detail}"
    text = _clean(err)
    eof = isinstance(err, ssl.SSLEOFError) or "EOF occurred" in text
    if any(r in text for r in _CERT_REQUIRED) or (
            cert_file is None and "HANDSHAKE_FAILURE" in text):
        if cert_file is None:
            return (f"{head}: the server requires a client certificate and none is configured: "
                    f"set {names.cert} and {names.key}")
        return f"{head}: the server did not receive the client certificate in {names.cert}"
    if any(r in text for r in _CERT_REFUSED) and cert_file is not None:
        return (f"{head}: the server refused the client certificate in {names.cert} "
                f"({cert_file}): {text}")
    if eof:
        if cert_file is None:
            return (f"{head}: the server closed the connection during the TLS handshake "
                    f"(does it require a client certificate? set {names.cert} and {names.key})")
        return (f"{head}: the server closed the connection during the TLS handshake (does it "
                f"accept the client certificate in {names.cert} ({cert_file})?)")
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return (f"{head}: the server does not speak TLS on this port ({text}); use "
                f"{names.plain} for a server without TLS")
    if "PEM lib" in text or "bad decrypt" in text:
        return f"{head}: cannot load the client key: check {names.key} and {names.password}"
    return f"{head}: handshake refused: {text}"
