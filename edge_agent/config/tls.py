"""TLS settings of the config (``influx:`` and an MQTT source's ``tls:``), checked as
the agent will use them: files readable PEM of the right kind, the client key
decrypts and matches its certificate (:mod:`edge_agent.tls`). A mistake is
``path:LINE:COL: <setting>: ...``; verification turned off is one warning.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any, Dict, Mapping, Optional

from ..errors import ConfigError
from ..tls import TlsNames, check_ca_file, check_client_cert
from .schema import Section

__all__ = ["INFLUX_KEYS", "MQTT_KEYS", "check_tls", "influx_tls", "tls_path",
           "verify_off_warning"]

#: The settings' keys inside their section, in :class:`TlsNames` order.
INFLUX_KEYS = TlsNames()
MQTT_KEYS = TlsNames(ca="ca_cert", cert="certfile", key="keyfile", password="keyfile_password",
                     verify="verify", plain="mqtt://")


def tls_path(section: Section, key: str, fallback: Optional[str] = None) -> Optional[str]:
    """A file setting (``~`` expanded), or ``fallback`` (from the environment)."""
    value = section.string(key, "") or fallback
    return os.path.expanduser(value) if value else None


def _names(section: Section, keys: TlsNames) -> TlsNames:
    return TlsNames(*(section.name(getattr(keys, f.name)) if f.name != "plain" else keys.plain
                      for f in fields(TlsNames)))


def check_tls(section: Section, keys: TlsNames, *, verify: bool, ca: Optional[str],
              cert: Optional[str], key: Optional[str], password: Optional[str],
              env: Optional[Dict[str, str]] = None) -> None:
    """Refuse here what the connection would refuse later, at the key's position.

    ``env`` maps a key to the environment variable its value came from when
    the section does not set it (the message then names the variable).
    """
    names = _names(section, keys)
    try:
        if verify and ca is not None:
            check_ca_file(ca, names.ca)
        check_client_cert(cert, key, password, names)
    except ConfigError as exc:
        text = str(exc)
        by_setting: Dict[str, str] = {getattr(names, f.name): getattr(keys, f.name)
                                      for f in fields(TlsNames)}
        setting, _, rest = text.partition(": ")
        key_name = by_setting.get(setting)
        if key_name is None:
            raise
        if not section.has(key_name) and env and key_name in env:
            raise ConfigError(f"{section.ctx.path}: environment variable {env[key_name]}: "
                              f"{rest}") from None
        raise section.fail(key_name, rest) from None


def verify_off_warning(section: Section, key: str, peer: str, ca_key: Optional[str]) -> str:
    """The one warning for ``key: false`` (said at start and by check-config)."""
    mark = section.value_mark(key)
    ignored = (f" ({section.name(ca_key)} is ignored while it is off)"
               if ca_key is not None and section.has(ca_key) else "")
    return (f"{section.ctx.path}:{mark.line}:{mark.col}: {section.name(key)} is false: the "
            f"{peer}'s certificate is not checked, so anyone on the network path can pose as "
            f"the {peer}{ignored}; give its CA file instead")


def influx_tls(section: Section, env: Mapping[str, str], url: str, verify: bool
               ) -> Dict[str, Any]:
    """``influx:``'s TLS files (else influxdb-client's ``INFLUXDB_V2_*`` variables),
    checked; warnings for verification off and for TLS keys with an http:// url."""
    secure = url.lower().startswith("https://")
    path = section.ctx.path
    if not verify and secure:
        if section.has("verify_ssl"):
            section.ctx.warnings.append(verify_off_warning(section, "verify_ssl", "server",
                                                           "ssl_ca_cert"))
        else:
            section.ctx.warnings.append(
                f"{path}: environment variable INFLUXDB_V2_VERIFY_SSL is false: the server's "
                "certificate is not checked, so anyone on the network path can pose as the "
                "server; give its CA file in influx.ssl_ca_cert instead")
    variables = {key: f"INFLUXDB_V2_{key.upper()}" for key in
                 ("ssl_ca_cert", "cert_file", "cert_key_file", "cert_key_password")}
    from_env = {key: name for key, name in variables.items()
                if not section.has(key) and env.get(name)}
    tls: Dict[str, Any] = {key: tls_path(section, key, env.get(variables[key]))
                           for key in ("ssl_ca_cert", "cert_file", "cert_key_file")}
    tls["cert_key_password"] = (section.string("cert_key_password", None, secret=True)
                                or env.get(variables["cert_key_password"]))
    check_tls(section, INFLUX_KEYS, verify=verify, ca=tls["ssl_ca_cert"], cert=tls["cert_file"],
              key=tls["cert_key_file"], password=tls["cert_key_password"], env=from_env)
    if not secure:
        for key in [k for k in ("ssl_ca_cert", "cert_file", "verify_ssl") if section.has(k)]:
            mark = section.key_mark(key)
            section.ctx.warnings.append(
                f"{path}:{mark.line}:{mark.col}: influx.{key} has no effect: influx.url is "
                "http:// (no TLS); use https:// for TLS")
    return tls
