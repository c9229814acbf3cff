"""``edge_agent.tls.explain`` for the failures the TLS servers of the integration tests
cannot produce (a clock behind, an unusual verify code, an alert we do not map); the
common ones are asserted end to end in tests/integration/test_tls_*.py."""

from __future__ import annotations

import ssl

import requests

from edge_agent.tls import MQTT_NAMES, TlsNames, explain


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                                          f"failed: {message} (_ssl.c:1006)")
    err.verify_code, err.verify_message = code, message
    return err


def wrapped(err: BaseException) -> requests.exceptions.SSLError:
    """As requests raises it: the ssl error two wrappers down (urllib3's SSLError, MaxRetry)."""
    try:
        try:
            raise err
        except ssl.SSLError as inner:
            raise requests.exceptions.SSLError(ValueError("urllib3 wrapper")) from inner
    except requests.exceptions.SSLError as outer:
        return outer


def test_certificate_not_valid_yet_points_at_the_clock() -> None:
    assert explain(wrapped(verify_error(9, "certificate is not yet valid")), "https://db:8086",
                   TlsNames.prefixed("influx.")) == (
        "TLS to https://db:8086 failed: certificate verify failed: the server's certificate is "
        "not valid yet (check this device's clock)")


def test_other_verify_codes_keep_openssl_s_words() -> None:
    assert explain(verify_error(26, "unsuitable certificate purpose"), "broker:8883",
                   MQTT_NAMES) == (
        "TLS to broker:8883 failed: certificate verify failed: unsuitable certificate purpose")


def test_an_unmapped_alert_is_a_refused_handshake_without_the_source_line() -> None:
    err = ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version "
                          "(_ssl.c:1006)")
    assert explain(wrapped(err), "https://db:8086", TlsNames()) == (
        "TLS to https://db:8086 failed: handshake refused: [SSL: TLSV1_ALERT_PROTOCOL_VERSION] "
        "tlsv1 alert protocol version")
