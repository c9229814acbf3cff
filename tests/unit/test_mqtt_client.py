"""The paho range the MQTT source really needs, and its fast path's private names.

``edge_agent.sources.mqtt.client`` overrides paho internals; these tests pin what
happens when a paho release lacks one (the stock client, one warning), when paho
is missing or too old (one line from the CLI), and on a malformed PUBLISH (a
protocol error paho handles, on 2.0 and 2.1 as on 2.2). scripts/test.sh runs this
file and the MQTT source tests again under the oldest paho the range allows.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, List

import paho.mqtt.client as mqtt
import pytest

from edge_agent.cli import main
from edge_agent.sources.mqtt import client as fast


def test_installed_paho_has_every_private_name_the_fast_path_uses() -> None:
    assert fast.FAST_PATH_MISSING == ()
    assert fast.client_class() is fast._Client


def test_a_renamed_or_missing_private_name_is_reported() -> None:
    class Renamed(mqtt.Client):
        def _sock_recv(self, size: int) -> bytes:  # type: ignore[override]
            return b""

        _handle_publish = None  # type: ignore[assignment]

    missing = fast.missing_private_names(Renamed)
    assert "_sock_recv(bufsize)" in missing
    assert "_handle_publish()" in missing

    class NoPacketState(mqtt.Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            del self._in_packet

    assert fast.missing_private_names(NoPacketState) == ("_in_packet", "_in_packet (a dict)")


def test_missing_names_fall_back_to_the_stock_client_with_one_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(fast, "FAST_PATH_MISSING", ("_sock_recv(bufsize)",))
    monkeypatch.setattr(fast, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="edge_agent.sources.mqtt"):
        assert fast.client_class() is mqtt.Client
        assert fast.client_class() is mqtt.Client
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "lacks _sock_recv(bufsize); using its stock client" in warnings[0]


@pytest.mark.parametrize("body", [b"", b"\x00\x05ab", b"\x00\x01a\x00"])
def test_a_malformed_publish_is_a_protocol_error_not_an_exception(body: bytes) -> None:
    client = fast._Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                          manual_ack=True)
    got: List[Any] = []
    client.publish_sink = lambda *args: got.append(args)
    client._in_packet = {"command": 0x32, "packet": bytearray(body)}  # QoS 1 PUBLISH
    assert client._handle_publish() == mqtt.MQTT_ERR_PROTOCOL
    assert got == []


def test_paho_missing_or_too_old_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for name in [m for m in sys.modules if m.startswith("edge_agent.sources.mqtt")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(mqtt, "CallbackAPIVersion", None)
    monkeypatch.delattr(mqtt, "CallbackAPIVersion")  # what paho 1.x looks like
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"agent: {{state_dir: '{tmp_path / 'state'}'}}\n"
                   "influx: {url: 'http://127.0.0.1:9', api: v1, bucket: b}\n"
                   "sources:\n  - {name: m, type: mqtt, url: 'mqtt://127.0.0.1:9',\n"
                   "     subscriptions: [{topic: 'a/{field}', format: value}]}\n")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        code = main(["-c", str(cfg), "--once", "--dry-run", "--wait", "0.1"])
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("edge-agent: the MQTT source needs paho-mqtt >=2.0,<3")
