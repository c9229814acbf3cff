"""The agent (a subprocess) over TLS: a TLS mistake keeps every point on disk, says
why in one line, and once the config is fixed every point is delivered, exactly.

Against an HTTPS influxd 1.6.7 and an HTTPS v2 write stub that requires a client
certificate (tests/integration/conftest.py); readings come from the emulated I2C
bus. ``REQUESTS_CA_BUNDLE`` names an unrelated CA throughout: the config wins.
And a TLS mosquitto with ``require_certificate``: the bridge says why it cannot
connect, and a SIGHUP with the certificate configured connects it.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List

import paho.mqtt.client as mqtt

from tests.harness.agent import (
    AgentProcess,
    final_counters,
    mqtt_counts,
    series_times,
    total_points,
    write_config,
)
from tests.harness.tls_servers import tls13_refusal_lines
from tests.harness.waits import wait_for as wait_until

I2C = ("climate", "humidity", "soil")
_dbs = itertools.count(1)


def config(path: Path, state: Path, url: str, bucket: str, **influx: str) -> Path:
    """write_config's agent with more keys in its ``influx:`` mapping."""
    # batch_size 20: points InfluxDB does not take are committed once 20 wait
    write_config(path, state_dir=state, influx_url=url, db=bucket, i2c=I2C, write="batch_size: 20")
    text = path.read_text()
    anchor = "timeout: 5s}"
    assert anchor in text
    more = "".join(f", {key}: '{value}'" for key, value in influx.items())
    path.write_text(text.replace(anchor, f"timeout: 5s{more}}}"))
    return path


def log_line(agent: AgentProcess, reason: str) -> str:
    """The flusher's line for ``reason``: '<reason>; N point(s) kept, retry K in Xs'."""
    pattern = re.compile(re.escape(reason) + r"; \d+ point\(s\) kept, retry \d+ in [\d.]+s$")
    found: List[str] = wait_until(
        lambda: [line for line in agent.log().splitlines() if pattern.search(line)], 60,
        f"the log line {reason!r}")
    return found[0]


def kept_on_disk(agent: AgentProcess, state: Path) -> Dict[str, Any]:
    """Stop once points wait in the buffer; the counters it stopped with."""
    wait_until(lambda: ((agent.status(state) or {}).get("buffer") or {}).get("points", 0) >= 20,
               60, "points in the buffer")
    assert agent.stop() == 0, agent.log()
    counters = final_counters(state)
    buffered = json.loads((state / "status.json").read_text())["buffer"]["points"]
    assert counters["written"] == 0
    assert counters["accepted"] == buffered > 0  # nothing left the disk
    return counters


def test_wrong_ca_then_fixed_delivers_every_point_once(
        tls_servers: Any, pki: Any, tmp_path: Path,
        agents: Callable[..., AgentProcess]) -> None:  # noqa: F811
    influx = tls_servers.influx
    db = f"tlsagent{next(_dbs)}"
    influx.create_database(db)
    state, path = tmp_path / "state", tmp_path / "agent.yaml"
    env = {"REQUESTS_CA_BUNDLE": str(pki.other_ca_cert)}
    config(path, state, influx.url, db, ssl_ca_cert=str(pki.other_ca_cert))
    agent = agents(path, env).start()
    log_line(agent, f"TLS to {influx.url} failed: certificate verify failed: the server's "
                    f"certificate is not signed by the CA in influx.ssl_ca_cert "
                    f"({pki.other_ca_cert}) (unable to get local issuer certificate)")
    first = kept_on_disk(agent, state)

    config(path, state, influx.url, db, ssl_ca_cert=str(pki.ca_cert))
    agent.start()
    wait_until(lambda: total_points(influx, db, I2C) > first["accepted"], 60,
               "the kept points and new ones in InfluxDB")
    assert agent.stop() == 0, agent.log()
    counters = final_counters(state)
    assert json.loads((state / "status.json").read_text())["buffer"]["points"] == 0
    assert total_points(influx, db, I2C) == counters["accepted"] == counters["written"]
    assert counters["rejected"] == counters["evicted"] == counters["dropped_invalid"] == 0
    start, end = agent.runs[0]
    # sampled before the first run's stop returned, and before the second run began
    in_first_run = [t for name in I2C for t in series_times(influx, db, name)
                    if start <= t / 1e9 <= end]
    assert len(in_first_run) == first["accepted"]  # the kept points, stamped at sample time
    assert "Traceback" not in agent.log()


def test_client_certificate_required_then_configured(
        tls_servers: Any, pki: Any, tmp_path: Path,
        agents: Callable[..., AgentProcess]) -> None:  # noqa: F811
    stub = tls_servers.v2_tls12  # TLS 1.2: the refusal is inside the handshake, one wording
    state, path = tmp_path / "state", tmp_path / "agent.yaml"
    before = len(stub.writes)
    v2 = {"api": "v2", "org": "o", "token": "edge-token-123", "ssl_ca_cert": str(pki.ca_cert)}
    config(path, state, stub.url, "b", **v2)
    path.write_text(path.read_text().replace("api: v1, ", ""))
    agent = agents(path, {"REQUESTS_CA_BUNDLE": str(pki.other_ca_cert)}).start()
    log_line(agent, f"TLS to {stub.url} failed: the server requires a client certificate and "
                    "none is configured: set influx.cert_file and influx.cert_key_file")
    first = kept_on_disk(agent, state)
    assert stub.writes[before:] == []

    config(path, state, stub.url, "b", **v2, cert_file=str(pki.client_cert),
           cert_key_file=str(pki.client_key_encrypted),
           cert_key_password=pki.client_key_passphrase)
    path.write_text(path.read_text().replace("api: v1, ", ""))
    agent.start()

    def lines() -> List[bytes]:
        return [line for w in stub.writes[before:] for line in w.body.split(b"\n") if line]

    wait_until(lambda: len(set(lines())) > first["accepted"], 60, "the kept points at the stub")
    assert agent.stop() == 0, agent.log()
    counters = final_counters(state)
    assert len(set(lines())) == counters["accepted"] == counters["written"]
    assert {w.client_cn for w in stub.writes[before:]} == {pki.client_cn}
    assert pki.client_key_passphrase not in agent.log()
    assert "Traceback" not in agent.log()


def test_broker_requiring_a_client_certificate_then_fixed_by_sighup(
        tls_servers: Any, pki: Any, influx: Any, influx_db: str, tmp_path: Path,
        agents: Callable[..., AgentProcess]) -> None:  # noqa: F811
    broker = tls_servers.mqtt_mtls
    state, path = tmp_path / "state", tmp_path / "agent.yaml"
    topic = f"tls{uuid.uuid4().hex[:6]}"

    def bridge_config(**tls: str) -> None:
        write_config(path, state_dir=state, influx_url=influx.url, db=influx_db, i2c=(),
                     mqtt_url=broker.url, client_id=f"edge-tls-{topic}", topic=topic)
        text = path.read_text()
        url_line = f"    url: {broker.url}\n"
        assert url_line in text
        keys = "".join(f"      {key}: '{value}'\n" for key, value in tls.items())
        path.write_text(text.replace(url_line, f"{url_line}    tls:\n{keys}"))

    bridge_config(ca_cert=str(pki.ca_cert))
    agent = agents(path).start()
    peer = f"127.0.0.1:{broker.port}"
    wait_until(lambda: [line for line in agent.log().splitlines() if any(
        f"mqtt bridge: {reason}; reconnecting in " in line
        for reason in tls13_refusal_lines(peer, "tls.certfile", "tls.keyfile"))], 60,
        "the bridge's one-line reason")

    bridge_config(ca_cert=str(pki.ca_cert), certfile=str(pki.client_cert),
                  keyfile=str(pki.client_key_encrypted),
                  keyfile_password=pki.client_key_passphrase)
    agent.send(signal.SIGHUP)
    wait_until(lambda: any(s.get("connected") for s in
                           (agent.status(state) or {}).get("sources", [])),
               60, "the bridge to connect with its certificate")
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.tls_set(ca_certs=str(pki.ca_cert), certfile=str(pki.client_cert),
                      keyfile=str(pki.client_key))
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        for seq in range(20):  # the JSON a sensor node publishes: {"seq": n, "v": reading}
            payload = json.dumps({"seq": seq, "v": seq * 0.5})
            publisher.publish(f"{topic}/dev1", payload, qos=1).wait_for_publish(10)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    wait_until(lambda: mqtt_counts(influx, influx_db)[0] >= 20, 60, "20 messages in InfluxDB")
    assert agent.stop() == 0, agent.log()
    assert mqtt_counts(influx, influx_db) == (20, 20)
    assert pki.client_key_passphrase not in agent.log()
    assert "Traceback" not in agent.log()
