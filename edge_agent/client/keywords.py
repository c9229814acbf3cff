"""``InfluxDBClient(**kwargs)``: the keyword arguments influxdb-client accepts are
accepted; a misspelt one is said once, never silently ignored (a typo in a TLS
keyword would leave a user believing mTLS is on).

The list is influxdb-client 1.50's (``client/_base.py``, ``InfluxDBClient``).
"""

from __future__ import annotations

import difflib
import warnings
from typing import Mapping, Set

__all__ = ["HONOURED", "NO_EFFECT", "UNSUPPORTED", "check_keywords"]

#: Used by this client (``api`` is this project's: "v1", "v2" or "v3").
HONOURED = frozenset({"verify_ssl", "ssl_ca_cert", "cert_file", "cert_key_file",
                      "cert_key_password", "username", "password", "api"})
#: influxdb-client's, harmless to ignore here: retries follow WriteOptions, the
#: connection pool is requests', profilers and config_name concern queries and files.
NO_EFFECT = frozenset({"retries", "connection_pool_maxsize", "profilers", "auth_basic",
                       "config_name", "proxy_headers"})
#: influxdb-client's, not supported here: ignoring them silently would mislead.
UNSUPPORTED = {
    "ssl_context": "give ssl_ca_cert, cert_file, cert_key_file (and cert_key_password) instead",
    "proxy": "set HTTPS_PROXY / HTTP_PROXY in the environment instead",
}
_warned: Set[str] = set()


def check_keywords(kwargs: Mapping[str, object]) -> None:
    """Warn once per name for an unknown or unsupported keyword argument."""
    known = sorted(HONOURED | NO_EFFECT | set(UNSUPPORTED))
    for name, value in kwargs.items():
        if name in HONOURED or name in NO_EFFECT or name in _warned:
            continue
        if name in UNSUPPORTED and value is None:
            continue
        _warned.add(name)
        if name in UNSUPPORTED:
            message = (f"InfluxDBClient: {name}= is not supported and has no effect: "
                       f"{UNSUPPORTED[name]}")
        else:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = (f"InfluxDBClient: unknown keyword argument {name!r} ignored{hint}; "
                       f"accepted: {', '.join(known)}")
        warnings.warn(message, UserWarning, stacklevel=3)
