"""MQTT over TLS with real certificates: TLS mosquitto, also with ``require_certificate``.

Each case asserts delivery, or the exact one-line reason naming host, setting
and reason, where paho alone says "cannot reach the broker" or "Unspecified
error". Servers: tests/integration/conftest.py. Payloads: a plain value, as a
Tasmota/ESPHome sensor state topic carries it (e.g. ``22.5``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, Callable, Dict

import paho.mqtt.client as mqtt
import pytest

from edge_agent.errors import ConfigError
from edge_agent.sources.mqtt.once import collect_once
from edge_agent.sources.mqtt.source import MqttSource
from tests.harness.sinks import MemorySink
from tests.harness.tls_servers import tls13_refusal_lines


def bridge(url: str, topic: str = "tls", **tls: Any) -> Dict[str, Any]:
    return {"name": "bridge", "url": url, "client_id": f"tls-{uuid.uuid4().hex[:8]}",
            "subscriptions": [{"topic": f"{topic}/{{room}}/{{field}}", "format": "value"}],
            "tls": tls, "reconnect_max": 1.0}


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return check()


def publish(port: int, pki: Any, topic: str, payload: bytes) -> None:
    """A retained QoS 1 message over TLS with the client certificate (every test broker
    accepts it)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.tls_set(ca_certs=str(pki.ca_cert), certfile=str(pki.client_cert),
                   keyfile=str(pki.client_key))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("server, keys", [
    ("mqtt", "ca only"),
    ("mqtt_mtls", "client certificate, encrypted key and its passphrase"),
])
def test_bridge_delivers_over_tls(tls_servers: Any, pki: Any, server: str, keys: str) -> None:
    broker = getattr(tls_servers, server)
    tls: Dict[str, Any] = {"ca_cert": str(pki.ca_cert)}
    if keys != "ca only":
        tls.update(certfile=str(pki.client_cert), keyfile=str(pki.client_key_encrypted),
                   keyfile_password=pki.client_key_passphrase)
    topic = f"tls{uuid.uuid4().hex[:6]}"
    publish(broker.port, pki, f"{topic}/attic/temp", b"22.5")  # retained: sent on subscribe
    sink = MemorySink()
    source = MqttSource(bridge(broker.url, topic, **tls), sink)
    source.start()
    try:
        wait_for(sink.snapshot)
        # The error watch is off once connected: paho calls its logger for every packet.
        assert source._client.logger is None
    finally:
        source.stop()
    assert source.status()["last_error"] == ""
    assert [line.rsplit(" ", 1)[0] for line in sink.snapshot()] == ["mqtt,room=attic temp=22.5"]


def _lines(s: Any, pki: Any) -> Dict[str, Any]:
    other = str(pki.other_ca_cert)
    return {
        "other CA": (s.mqtt, {"ca_cert": other},
                     "certificate verify failed: the server's certificate is not signed by the "
                     f"CA in tls.ca_cert ({other}) (self-signed certificate in certificate "
                     "chain)"),
        "system CAs": (s.mqtt, {},
                       "certificate verify failed: the server's certificate is not signed by a "
                       "CA this system trusts; set tls.ca_cert to your CA's PEM file "
                       "(self-signed certificate in certificate chain)"),
        "expired": (s.mqtt_expired, {"ca_cert": str(pki.ca_cert)},
                    "certificate verify failed: the server's certificate has expired (renew it "
                    "on the server)"),
        "wrong host": (s.mqtt_wrong, {"ca_cert": str(pki.ca_cert)},
                       "certificate verify failed: hostname mismatch: IP address mismatch, "
                       "certificate is not valid for '127.0.0.1'. (connect by a name or "
                       "address the certificate lists)"),
    }


@pytest.mark.parametrize("case", ["other CA", "system CAs", "expired", "wrong host"])
def test_verify_failures_are_one_exact_line(tls_servers: Any, pki: Any, case: str) -> None:
    broker, tls, reason = _lines(tls_servers, pki)[case]
    result = collect_once(bridge(broker.url, **tls), 1.0)
    assert (result.connected, result.error) == (
        False, f"TLS to 127.0.0.1:{broker.port} failed: {reason}")


def test_require_certificate_refusals(tls_servers: Any, pki: Any) -> None:
    peer = f"127.0.0.1:{tls_servers.mqtt_mtls.port}"
    result = collect_once(bridge(tls_servers.mqtt_mtls.url, ca_cert=str(pki.ca_cert)), 1.0)
    assert not result.connected
    assert result.error in tls13_refusal_lines(peer, "tls.certfile", "tls.keyfile")
    other = str(pki.other_client_cert)
    result = collect_once(bridge(tls_servers.mqtt_mtls.url, ca_cert=str(pki.ca_cert),
                                 certfile=other, keyfile=str(pki.other_client_key)), 1.0)
    assert not result.connected
    assert result.error in tls13_refusal_lines(peer, "tls.certfile", "tls.keyfile", other)


def test_plain_mqtt_to_a_tls_listener(tls_servers: Any) -> None:
    url = tls_servers.mqtt.url.replace("mqtts://", "mqtt://")
    cfg = bridge(url)
    del cfg["tls"]
    result = collect_once(cfg, 1.0)
    assert (result.connected, result.error) == (
        False, f"the broker at 127.0.0.1:{tls_servers.mqtt.port} reset the connection before "
        "it answered; if it listens with TLS there, use an mqtts:// url")


def test_an_encrypted_key_without_passphrase_never_prompts(tls_servers: Any, pki: Any) -> None:
    # Without a passphrase callback OpenSSL would ask on the terminal (or fail with EINVAL).
    with pytest.raises(ConfigError) as info:
        MqttSource(bridge(tls_servers.mqtt_mtls.url, ca_cert=str(pki.ca_cert),
                          certfile=str(pki.client_cert), keyfile=str(pki.client_key_encrypted)),
                   MemorySink())
    assert str(info.value) == (f"tls.keyfile: the key in {pki.client_key_encrypted} is "
                               "encrypted: set tls.keyfile_password to its passphrase")


def test_the_bridge_logs_the_reason_once_per_backoff_step(
        tls_servers: Any, pki: Any, caplog: pytest.LogCaptureFixture) -> None:
    broker = tls_servers.mqtt
    source = MqttSource(bridge(broker.url, ca_cert=str(pki.other_ca_cert)), MemorySink())
    with caplog.at_level(logging.WARNING, logger="edge_agent"):
        source.start()
        try:
            wait_for(lambda: [r for r in caplog.records if "reconnecting" in r.getMessage()])
        finally:
            source.stop()
    (line,) = [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()][:1]
    reason = (f"TLS to 127.0.0.1:{broker.port} failed: certificate verify failed: the server's "
              f"certificate is not signed by the CA in tls.ca_cert ({pki.other_ca_cert}) "
              "(self-signed certificate in certificate chain)")
    assert re.fullmatch(re.escape(f"mqtt bridge: {reason}; reconnecting in ") +
                        r"\d+\.\d s \(attempt 1\)", line), line
    assert source.status()["last_error"] == reason


def test_verify_off_connects_to_any_broker(tls_servers: Any, pki: Any) -> None:
    # The config warns once for it (tests/unit/test_config_tls.py); the CA file is not read.
    for broker in (tls_servers.mqtt_wrong, tls_servers.mqtt_expired):
        result = collect_once(bridge(broker.url, verify=False,
                                     ca_cert=str(pki.directory / "missing.pem")), 1.0)
        assert (result.connected, result.error) == (True, "")
