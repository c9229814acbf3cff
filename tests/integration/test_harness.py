"""The harness itself: real servers start on free ports, answer, and come back."""

from __future__ import annotations

import socket

import requests

from tests.harness.fault_server import Answer, error_answer


def test_influxd_round_trip_and_restart(influx_factory):
    server = influx_factory()
    assert server.port not in (8086, 8088)
    server.create_database("h")
    assert server.write("h", "m v=1i 1\nm v=2i 2").status_code == 204
    assert server.count("h", "m", "v") == 2
    server.kill()
    assert not server.ready()
    server.start()
    assert server.count("h", "m", "v") == 2  # data survived the kill (WAL)


def test_influxd_partial_write_matches_reference_facts(influx, influx_db):
    r = influx.write(influx_db, "p v=1i 1\np,bad v= 3\np v=4i 4")
    assert r.status_code == 400
    assert "partial write" in r.text and "missing tag value" in r.text
    assert influx.count(influx_db, "p", "v") == 2


def test_mosquitto_accepts_connections_and_restarts(mosquitto_factory):
    server = mosquitto_factory()
    assert server.port != 1883
    socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    server.stop()
    assert not server.ready()
    server.start()
    assert server.ready()


def test_fault_server_records_and_scripts(fault_server):
    fault_server.script(error_answer(429, "slow down", retry_after=3), Answer(reset=True))
    url = f"{fault_server.url}/api/v2/write"
    r = requests.post(url, params={"org": "o", "bucket": "b"}, data=b"m v=1")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json() == {"code": "invalid", "message": "slow down"}
    try:
        requests.post(url, data=b"m v=2")
        raise AssertionError("expected a connection reset")
    except requests.ConnectionError:
        pass
    assert requests.post(url, data=b"m v=3\nm v=4").status_code == 204
    assert fault_server.points == ["m v=3", "m v=4"]
    assert [r.query.get("bucket") for r in fault_server.write_requests()] == ["b", None, None]


def test_fault_server_rejects_whole_batch_like_v2(fault_server):
    fault_server.reject_lines(lambda line: "bad" in line, mode="v2")
    r = requests.post(f"{fault_server.url}/api/v2/write", data=b"m v=1\nm,bad=1 v=2")
    assert r.status_code == 400 and r.json()["line"] == 2
    assert fault_server.points == []
    fault_server.reject_lines(lambda line: "bad" in line, mode="v1")
    r = requests.post(f"{fault_server.url}/write", data=b"m v=1\nm,bad=1 v=2")
    assert r.status_code == 400 and "partial write" in r.text
    assert fault_server.points == ["m v=1"]
