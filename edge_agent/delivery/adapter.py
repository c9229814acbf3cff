r"""The HTTPS side of the transport's requests session, where requests has no option.

* :class:`TlsAdapter` passes the client key's passphrase to urllib3's pools
  (requests has no key-password setting), as OpenSSL's callback, so an
  encrypted key never makes OpenSSL prompt on a terminal.
* With ``verify_ssl=False`` its pools make :class:`_UnverifiedConnection`\ s,
  so urllib3 does not repeat its InsecureRequestWarning on every request (the
  agent says it once, at start); other sessions in the process still warn.
"""

from __future__ import annotations

from typing import Any, Optional

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..tls import key_password

__all__ = ["TlsAdapter"]


class _UnverifiedConnection(HTTPSConnection):
    """A connection of a session with ``verify_ssl=False``.

    The user turned verification off on purpose and is told once, when the
    agent starts (and by check-config); urllib3 would add a two-line
    InsecureRequestWarning to every request, which it decides from
    ``is_verified``: here that reads True, for this session's pools only.
    """

    @property
    def is_verified(self) -> bool:
        return True

    @is_verified.setter
    def is_verified(self, value: bool) -> None:
        pass


class _UnverifiedPool(HTTPSConnectionPool):
    ConnectionCls = _UnverifiedConnection


class TlsAdapter(HTTPAdapter):
    """requests has no key-passphrase option; urllib3's pools take ``key_password``.

    The passphrase callback is always given, so OpenSSL never prompts on a
    terminal for an encrypted key.
    """

    def __init__(self, password: Optional[str], verify: bool) -> None:
        self._password = key_password(password)
        self._verify = verify
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, key_password=self._password, **kwargs)
        if not self._verify:
            self.poolmanager.pool_classes_by_scheme = {"http": HTTPConnectionPool,
                                                       "https": _UnverifiedPool}
