"""The seed's client API against the real influxd (v1 API) and the fault server."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge_agent import (
    ASYNCHRONOUS,
    SYNCHRONOUS,
    InfluxDBClient,
    InfluxDBClientAsync,
    Point,
    WriteError,
    WriteOptions,
    WritePrecision,
)


def v1_client(influx, **kwargs):
    return InfluxDBClient(url=influx.url, token="", org="", api="v1", **kwargs)


def test_synchronous_write_is_queryable(influx, influx_db):
    with v1_client(influx) as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        api.write(influx_db, record=Point("cpu").tag("core", "0").field("temp", 25.3)
                  .time(1657729063, WritePrecision.S), write_precision=WritePrecision.S)
        api.write(influx_db, record=["cpu,core=1 temp=20 1657729064"],
                  write_precision=WritePrecision.S)
    rows = influx.rows(influx_db, 'SELECT * FROM "cpu"')
    assert [(r["time"], r["core"], r["temp"]) for r in rows] == [
        (1657729063 * 10**9, "0", 25.3), (1657729064 * 10**9, "1", 20.0)]


def test_synchronous_error_carries_status_and_server_message(influx):
    with v1_client(influx) as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        with pytest.raises(WriteError) as info:
            api.write("no_such_db", record="m v=1")
    assert info.value.status == 404 and "database not found" in info.value.message


def test_batching_close_delivers_everything(influx, influx_db):
    client = v1_client(influx, default_tags={"site": "gh"})
    api = client.write_api(write_options=WriteOptions(batch_size=500, flush_interval=10_000))
    api.write(influx_db, record=({"measurement": "m", "tags": {"i": str(i % 3)},
                                  "fields": {"n": i}, "time": i} for i in range(2000)))
    client.close()
    assert influx.count(influx_db, "m", "n") == 2000
    assert {r["site"] for r in influx.rows(influx_db, 'SELECT * FROM "m" LIMIT 5')} == {"gh"}


def test_flush_sends_now(influx, influx_db):
    with v1_client(influx) as client:
        api = client.write_api(write_options=WriteOptions(batch_size=10_000,
                                                          flush_interval=600_000))
        api.write(influx_db, record=[f"m v={i}i {i}" for i in range(10)])
        assert api.flush()
        assert influx.count(influx_db, "m", "v") == 10


def test_asynchronous_returns_a_handle(influx, influx_db):
    with v1_client(influx) as client:
        api = client.write_api(write_options=ASYNCHRONOUS)
        handle = api.write(influx_db, record="m v=1i 1")
        assert handle.get() is None
        bad = api.write("no_such_db", record="m v=1i 1")
        with pytest.raises(WriteError):
            bad.get()
    assert influx.count(influx_db, "m", "v") == 1


def test_async_client(influx, influx_db):
    async def main():
        async with InfluxDBClientAsync(url=influx.url, token="", org="", api="v1") as client:
            ok = await client.write_api().write(bucket=influx_db, record=Point("a").field("v", 1))
            assert ok is True
            assert await client.ping()

    asyncio.run(main())
    assert influx.count(influx_db, "a", "v") == 1


def test_durable_batching_with_buffer_dir(influx, influx_db, tmp_path):
    options = WriteOptions(batch_size=100, flush_interval=50, buffer_dir=str(tmp_path / "buf"))
    with v1_client(influx) as client:
        api = client.write_api(write_options=options)
        api.write(influx_db, record=[f"d v={i}i {i}" for i in range(1000)])
    assert influx.count(influx_db, "d", "v") == 1000
    assert (tmp_path / "buf").is_dir()


def test_from_config_file_ini_toml_yaml(tmp_path, fault_server, monkeypatch):
    ini = tmp_path / "config.ini"
    ini.write_text(f"[influx2]\nurl={fault_server.url}\norg=my-org\ntoken=my-token\n"
                   "timeout=6000\n[tags]\nid = 132-987-655\n")
    toml = tmp_path / "config.toml"
    toml.write_text(f'[influx2]\n  url = "{fault_server.url}"\n  org = "my-org"\n'
                    '  token = "my-token"\n  timeout = 6000\n[tags]\n  id = "132-987-655"\n')
    yml = tmp_path / "config.yaml"
    yml.write_text(f"influx2:\n  url: {fault_server.url}\n  org: my-org\n  token: my-token\n"
                   "tags:\n  id: 132-987-655\n")
    for path in (ini, toml, yml):
        with InfluxDBClient.from_config_file(str(path)) as client:
            client.write_api(write_options=SYNCHRONOUS).write("b", record=Point("m").field("v", 1))
    reqs = fault_server.write_requests()
    assert len(reqs) == 3
    for req in reqs:
        assert req.headers["authorization"] == "Token my-token"
        assert req.query["org"] == "my-org"
        assert req.lines == ["m,id=132-987-655 v=1i"]


def test_from_env_properties(fault_server, monkeypatch):
    monkeypatch.setenv("INFLUXDB_V2_URL", fault_server.url)
    monkeypatch.setenv("INFLUXDB_V2_ORG", "env-org")
    monkeypatch.setenv("INFLUXDB_V2_TOKEN", "env-token")
    monkeypatch.setenv("INFLUXDB_V2_TAG_LOCATION", "attic")
    with InfluxDBClient.from_env_properties() as client:
        client.write_api(write_options=SYNCHRONOUS).write("b", record=Point("m").field("v", 1))
    (req,) = fault_server.write_requests()
    assert req.headers["authorization"] == "Token env-token"
    assert req.query == {"org": "env-org", "bucket": "b", "precision": "ns"}
    assert req.lines == ["m,location=attic v=1i"]


def test_callbacks_success_and_error(fault_server):
    fault_server.reject_lines(lambda line: "bad" in line)
    ok, errors = [], []
    with InfluxDBClient(url=fault_server.url, token="t", org="o") as client:
        api = client.write_api(write_options=WriteOptions(batch_size=10, flush_interval=10),
                               success_callback=lambda conf, data: ok.append(data),
                               error_callback=lambda conf, data, exc: errors.append(data))
        api.write("b", record=["m v=1", "m,bad=1 v=2", "m v=3"])
    assert errors == [b"m,bad=1 v=2"]  # bytes, as influxdb-client passes them
    assert ok and b"m v=1" in ok[0]


def test_durable_close_with_server_down_keeps_points_for_the_next_run(tmp_path, influx):
    from tests.harness.servers import free_port

    down = f"http://127.0.0.1:{free_port()}"
    options = WriteOptions(batch_size=100, flush_interval=50, max_close_wait=60_000,
                           buffer_dir=str(tmp_path / "buf"))
    client = InfluxDBClient(url=down, token="", org="", api="v1")
    client.write_api(write_options=options).write("later", record="m v=1i 1\nm v=2i 2")
    started = time.monotonic()
    client.close()
    # Behaviour, not speed: it gives up at the first refusal instead of retrying
    # for max_close_wait, because the points are safe on disk.
    assert time.monotonic() - started < 30
    influx.create_database("later")
    with InfluxDBClient(url=influx.url, token="", org="", api="v1") as again:
        again.write_api(write_options=options)  # the next run delivers the backlog
    assert influx.count("later", "m", "v") == 2
