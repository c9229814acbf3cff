"""A throwaway PKI for TLS tests, made with the ``openssl`` CLI (no Python deps).

``make_pki(directory)`` writes, with EC P-256 keys (~0.3 s idle, 15 openssl runs,
at most 5 in sequence; scratch files go to ``directory/openssl/``):

* ``ca.pem``/``ca.key``: the private CA everything below is signed by;
* ``server.pem``/``server.key``: SAN ``IP:127.0.0.1, DNS:localhost``;
* ``expired.pem``/``expired.key``: same SAN, notAfter one day in the past;
* ``wrong_host.pem``/``wrong_host.key``: SAN ``DNS:wrong.example, IP:10.99.99.99``;
* ``client.pem``/``client.key``: a client-auth cert (CN ``edge-agent-client``),
  and ``client_enc.key``: the same key as encrypted PKCS#8 (AES-256, passphrase
  in ``PKI.client_key_passphrase``);
* ``other_ca.pem``/``other_ca.key``: an unrelated CA, and ``other_client.pem``/
  ``other_client.key``: a client cert signed by it (a broker must refuse it).

Dates are set with ``openssl ca -startdate/-enddate`` (OpenSSL 3.0 ``x509 -req``
has only ``-days``, which cannot go negative; ``-not_before/-not_after`` only
exist from OpenSSL 3.4). Valid certs start a day in the past (clock skew). The
extensions satisfy Python 3.13's ``VERIFY_X509_STRICT`` default (critical CA
basicConstraints and keyUsage, AKI/SKI on every cert).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

_CONFIG = """\
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = $ENV::EDGE_PKI_DB
new_certs_dir = {dir}/newcerts
serial = $ENV::EDGE_PKI_SERIAL
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
commonName = supplied
organizationName = optional
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = IP:127.0.0.1, DNS:localhost
[ wrong_host_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:wrong.example, IP:10.99.99.99
[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

CLIENT_CN = "edge-agent-client"
DEFAULT_PASSPHRASE = "edge-agent-test-passphrase"


@dataclass(frozen=True)
class PKI:
    """Paths of a PKI made by :func:`make_pki` (all PEM)."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    expired_cert: Path
    expired_key: Path
    wrong_host_cert: Path
    wrong_host_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path
    client_key_passphrase: str
    other_ca_cert: Path
    other_ca_key: Path
    other_client_cert: Path
    other_client_key: Path
    client_cn: str = CLIENT_CN


def openssl_binary() -> str:
    found = shutil.which("openssl")
    if not found:
        raise RuntimeError("openssl not found: install it with: sudo apt-get install -y openssl")
    return found


def _run(args: List[str], env: Optional[Dict[str, str]] = None) -> None:
    proc = subprocess.run([openssl_binary(), *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        out = proc.stdout.decode(errors="replace")
        raise RuntimeError(f"openssl {' '.join(args)} failed ({proc.returncode}): {out}")


def _asn1(when: _dt.datetime) -> str:
    """``openssl ca`` date: UTCTime ``YYMMDDHHMMSSZ``."""
    return when.astimezone(_dt.timezone.utc).strftime("%y%m%d%H%M%SZ")


class _Maker:
    """One ``openssl ca`` database per cert, so certs are signed in parallel."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.work = directory / "openssl"
        (self.work / "newcerts").mkdir(parents=True, exist_ok=True)
        self.config = self.work / "openssl.cnf"
        self.config.write_text(_CONFIG.format(dir=self.work))
        now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
        self.valid = (_asn1(now - _dt.timedelta(days=1)), _asn1(now + _dt.timedelta(days=1825)))
        self.expired = (_asn1(now - _dt.timedelta(days=30)), _asn1(now - _dt.timedelta(days=1)))

    def cert(self, name: str, cn: str, ext: str, ca: Optional[str] = None,
             expired: bool = False) -> None:
        """Key ``name.key`` and cert ``name.pem``; self-signed when ``ca`` is None."""
        key, cert, csr = (self.dir / f"{name}.key", self.dir / f"{name}.pem",
                          self.work / f"{name}.csr")
        env = {"EDGE_PKI_DB": str(self.work / f"{name}.index"),
               "EDGE_PKI_SERIAL": str(self.work / f"{name}.serial")}
        Path(env["EDGE_PKI_DB"]).write_text("")
        Path(env["EDGE_PKI_SERIAL"]).write_text("1000\n")
        _run(["req", "-new", "-config", str(self.config), "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
              "-subj", f"/O=edge-agent tests/CN={cn}", "-out", str(csr)], env)
        key.chmod(0o600)
        signer = (["-selfsign", "-keyfile", str(key)] if ca is None else
                  ["-cert", str(self.dir / f"{ca}.pem"), "-keyfile", str(self.dir / f"{ca}.key")])
        # A CA predates every cert it signs, the expired one too.
        start, end = self.expired if expired else self.valid
        start = self.expired[0] if ca is None else start
        _run(["ca", "-batch", "-notext", "-rand_serial", "-preserveDN",
              "-config", str(self.config), *signer, "-in", str(csr), "-out", str(cert),
              "-extensions", ext, "-startdate", start, "-enddate", end], env)


def make_pki(directory: Union[str, Path], passphrase: str = DEFAULT_PASSPHRASE) -> PKI:
    """Create the whole PKI in ``directory`` (made if missing) and return its paths."""
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    m = _Maker(d)
    with ThreadPoolExecutor(max_workers=8) as pool:
        cas = [pool.submit(m.cert, "ca", "edge-agent test CA", "ca_ext"),
               pool.submit(m.cert, "other_ca", "unrelated test CA", "ca_ext")]
        for f in cas:
            f.result()
        leaves = [pool.submit(m.cert, "server", "127.0.0.1", "server_ext", "ca"),
                  pool.submit(m.cert, "expired", "127.0.0.1", "server_ext", "ca", True),
                  pool.submit(m.cert, "wrong_host", "wrong.example", "wrong_host_ext", "ca"),
                  pool.submit(m.cert, "client", CLIENT_CN, "client_ext", "ca"),
                  pool.submit(m.cert, "other_client", "client of the other CA", "client_ext",
                              "other_ca")]
        for f in leaves:
            f.result()
    _run(["pkey", "-in", str(d / "client.key"), "-out", str(d / "client_enc.key"),
          "-aes-256-cbc", "-passout", f"pass:{passphrase}"])
    (d / "client_enc.key").chmod(0o600)
    return PKI(
        directory=d,
        ca_cert=d / "ca.pem", ca_key=d / "ca.key",
        server_cert=d / "server.pem", server_key=d / "server.key",
        expired_cert=d / "expired.pem", expired_key=d / "expired.key",
        wrong_host_cert=d / "wrong_host.pem", wrong_host_key=d / "wrong_host.key",
        client_cert=d / "client.pem", client_key=d / "client.key",
        client_key_encrypted=d / "client_enc.key", client_key_passphrase=passphrase,
        other_ca_cert=d / "other_ca.pem", other_ca_key=d / "other_ca.key",
        other_client_cert=d / "other_client.pem", other_client_key=d / "other_client.key",
    )


if __name__ == "__main__":  # manual use: python tls_certs.py DIR
    import sys

    print(make_pki(sys.argv[1] if len(sys.argv) > 1 else "pki"))
