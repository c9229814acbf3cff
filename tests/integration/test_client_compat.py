"""influxdb-client 1.50 and edge-agent side by side against the fault server.

Same calls to both clients -> same requests, same callback arguments, same
error attributes. Each client gets its own FaultServer, so request lists are
compared whole. Waiting is by polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Iterator, List, Tuple

import pytest
import reactivex as rx
import urllib3
from influxdb_client import InfluxDBClient as RefClient
from influxdb_client.client.exceptions import InfluxDBError as RefError
from influxdb_client.client.write_api import SYNCHRONOUS as REF_SYNCHRONOUS
from influxdb_client.client.write_api import WriteApi as RefWriteApi
from influxdb_client.client.write_api import WriteOptions as RefOptions

from edge_agent import SYNCHRONOUS, InfluxDBClient, InfluxDBError, Point, WriteApi, WriteOptions
from tests.harness.fault_server import Answer, FaultServer, error_answer

HOUR = 3_600_000  # ms: a flush_interval no test waits for


@pytest.fixture
def servers() -> Iterator[Tuple[FaultServer, FaultServer]]:
    """(the reference's server, ours)."""
    with FaultServer() as ref, FaultServer() as ours:
        yield ref, ours


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


def clients(ref_server: FaultServer, our_server: FaultServer) -> Tuple[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = RefClient(url=ref_server.url, token="my-token", org="my-org")
    ours = InfluxDBClient(url=our_server.url, token="my-token", org="my-org", enable_gzip=False)
    return ref, ours


def bodies(server: FaultServer) -> List[Tuple[str, str, bytes]]:
    return [(r.query["bucket"], r.query["precision"], r.body) for r in server.write_requests()]


# --------------------------------------------------------------------------- requests


RECORDS: List[Any] = [
    "h2o,location=west level=1.5 1",
    b"h2o,location=west level=2i 2",
    Point("cpu").tag("core", "0").field("temp", 25.3).time(1657729063),
    {"measurement": "h2o", "tags": {"loc": "a b"}, "fields": {"lvl": 1.5, "n": 3}, "time": 7},
    ["m v=1i 1", "m v=2i 2"],
]


@pytest.mark.parametrize("record", RECORDS, ids=["str", "bytes", "Point", "dict", "list"])
def test_synchronous_writes_send_the_same_requests(servers: Any, record: Any) -> None:
    ref_server, our_server = servers
    ref, ours = clients(ref_server, our_server)
    from influxdb_client import Point as RefPoint

    ref_record = (RefPoint("cpu").tag("core", "0").field("temp", 25.3).time(1657729063)
                  if isinstance(record, Point) else record)
    ref.write_api(write_options=REF_SYNCHRONOUS).write("my-bucket", record=ref_record)
    ours.write_api(write_options=SYNCHRONOUS).write("my-bucket", record=record)
    ref.close()
    ours.close()
    (want,), (got,) = ref_server.write_requests(), our_server.write_requests()
    assert (got.path, got.query, got.body) == (want.path, want.query, want.body)
    assert got.headers["authorization"] == want.headers["authorization"]
    assert want.headers["content-type"] == "text/plain"  # it drops the charset it was given
    assert got.headers["content-type"] == "text/plain; charset=utf-8"
    assert want.headers["user-agent"] == "influxdb-client-python/1.50.0"
    assert got.headers["user-agent"].startswith("edge-agent/")


def test_user_agent_can_be_set_as_in_the_reference(fault_server: FaultServer) -> None:
    with InfluxDBClient(url=fault_server.url, token="t", org="o") as client:
        assert client.api_client.user_agent.startswith("edge-agent/")
        client.api_client.user_agent = "greenhouse-logger/2.1"
        client.write_api(write_options=SYNCHRONOUS).write("b", record="m v=1i")
    (req,) = fault_server.write_requests()
    assert req.headers["user-agent"] == "greenhouse-logger/2.1"


def test_gzip_is_on_by_default(fault_server: FaultServer) -> None:
    with InfluxDBClient(url=fault_server.url, token="t", org="o") as client:
        client.write_api(write_options=SYNCHRONOUS).write("b", record="m v=1i")
    (req,) = fault_server.write_requests()
    assert req.headers["content-encoding"] == "gzip"
    assert req.body == b"m v=1i"


# --------------------------------------------------------------------------- errors


def test_synchronous_error_has_the_references_attributes(servers: Any) -> None:
    ref_server, our_server = servers
    for server in servers:
        server.script(error_answer(400, "unable to parse 'm v=': missing field value"))
    ref, ours = clients(ref_server, our_server)
    with pytest.raises(RefError) as want:
        ref.write_api(write_options=REF_SYNCHRONOUS).write("b", record="m v=")
    with pytest.raises(InfluxDBError) as got:
        ours.write_api(write_options=SYNCHRONOUS).write("b", record="m v=")
    ref.close()
    ours.close()
    w, g = want.value, got.value
    assert g.message == w.message == "unable to parse 'm v=': missing field value"
    assert g.status == w.status == 400
    assert g.reason == w.reason == "Bad Request"
    assert g.body == w.body
    assert g.response.status == w.response.status == 400
    assert g.response.reason == w.response.reason
    assert g.response.data == w.response.data
    assert g.headers["Content-Type"] == w.headers["Content-Type"] == "application/json"
    assert g.response.getheader("content-type") == w.response.getheader("content-type")
    assert g.retry_after is None and w.retry_after is None


def _batching_callbacks(client: Any, calls: List[Any], **options: Any) -> Any:
    cls = RefOptions if isinstance(client, RefClient) else WriteOptions
    return client.write_api(
        write_options=cls(**options),
        success_callback=lambda conf, data: calls.append(("success", conf, data, None)),
        # The reference's error callback gets a response without .headers (its
        # retry callback one with them): .headers on the error serves both.
        error_callback=lambda conf, data, exc: calls.append(
            ("error", conf, data, (exc.response.status, exc.message,
                                   exc.headers.get("Retry-After")))),
        retry_callback=lambda conf, data, exc: calls.append(
            ("retry", conf, data, (exc.response.status, exc.message,
                                   exc.headers.get("Retry-After")))))


@pytest.mark.parametrize("answers,expected", [
    ([error_answer(400, "partial write: field type conflict")], (["error"], ["error"])),
    # The reference gives up on 401 at once; we retry it (the token may be fixed,
    # README "Differences from influxdb-client"), then give up as it does.
    ([error_answer(401, "unauthorized access", "unauthorized")] * 2,
     (["error"], ["retry", "error"])),
    ([error_answer(503, "busy", retry_after=0), Answer(204)],
     (["retry", "success"], ["retry", "success"])),
    ([error_answer(429, "slow down", retry_after=0)] * 2,
     (["retry", "error"], ["retry", "error"])),
], ids=["400", "401", "503-then-ok", "429-twice"])
def test_batching_callbacks_get_the_references_arguments(
        servers: Any, answers: List[Answer], expected: Tuple[List[str], List[str]]) -> None:
    """A callback that reads ``exception.response.status`` works (it used to
    raise AttributeError inside the callback, which was caught and logged)."""
    ref_server, our_server = servers
    ref, ours = clients(ref_server, our_server)
    results = []
    for client, server, kinds in zip((ref, ours), servers, expected):
        server.script(*answers)
        calls: List[Any] = []
        api = _batching_callbacks(client, calls, batch_size=1, flush_interval=HOUR,
                                  retry_interval=10, max_retry_delay=20, max_retries=1)
        try:  # closed even on failure: the reference's threads would keep pytest alive
            api.write("b", record="m v=1i 1", write_precision="s")
            wait_for(lambda calls=calls, kinds=kinds: len(calls) >= len(kinds))
        finally:
            api.close()
        assert [c[0] for c in calls] == kinds
        results.append({c[0]: c for c in calls})
    ref.close()
    ours.close()
    want, got = results
    for kind in want:
        assert got[kind][1] == want[kind][1] == ("b", "my-org", "s")
        assert type(got[kind][2]) is type(want[kind][2]) is bytes
        assert got[kind][2] == want[kind][2] == b"m v=1i 1"
        if want[kind][3] is not None:
            assert got[kind][3][:2] == want[kind][3][:2]  # status, message
            # Retry-After: the reference keeps the header's text, we the seconds.
            assert float(got[kind][3][2] or 0) == float(want[kind][3][2] or 0)


# --------------------------------------------------------------------------- construction


def test_write_api_made_directly_with_keywords(servers: Any) -> None:
    ref_server, our_server = servers
    ref, ours = clients(ref_server, our_server)
    RefWriteApi(influxdb_client=ref, write_options=REF_SYNCHRONOUS).write("b", record="m v=1i")
    with WriteApi(influxdb_client=ours, write_options=SYNCHRONOUS) as api:
        api.write("b", record="m v=1i")
    ref.close()
    ours.close()
    assert bodies(our_server) == bodies(ref_server) == [("b", "ns", b"m v=1i")]


def test_retry_strategy_retries_with_urllib3_as_the_reference(servers: Any) -> None:
    """``to_retry_strategy()`` is a urllib3 Retry: hand it to a pool and it
    retries 429/5xx, calling back with an InfluxDBError for each."""
    counts = []
    for server, options in zip(servers, (RefOptions, WriteOptions)):
        server.script(error_answer(503, "busy", retry_after=0),
                      error_answer(429, "slow", retry_after=0))
        seen: List[Any] = []
        retry = options(retry_interval=10, max_retry_delay=40).to_retry_strategy(
            retry_callback=seen.append)
        pool = urllib3.PoolManager()
        response = pool.request("POST", f"{server.url}/api/v2/write?bucket=b&org=o",
                                body=b"m v=1i", retries=retry)
        counts.append((response.status, len(server.write_requests()),
                       [(e.response.status, e.message) for e in seen]))
    assert counts[1] == counts[0] == (204, 3, [(503, "busy"), (429, "slow")])


def test_retry_strategy_settings_match_the_reference() -> None:
    options = dict(retry_interval=2_000, max_retries=7, max_retry_delay=60_000,
                   max_retry_time=90_000, exponential_base=3, jitter_interval=500)
    want = RefOptions(**options).to_retry_strategy()
    got = WriteOptions(**options).to_retry_strategy()
    for name in ("total", "retry_interval", "max_retry_delay", "max_retry_time",
                 "exponential_base", "jitter_interval", "allowed_methods"):
        assert getattr(got, name) == getattr(want, name), name
    for method, status in [("POST", 429), ("POST", 503), ("POST", 400), ("GET", 503)]:
        assert got.is_retry(method, status) == want.is_retry(method, status)


# --------------------------------------------------------------------------- batching


def _batching(client: Any, **options: Any) -> Any:
    cls = RefOptions if isinstance(client, RefClient) else WriteOptions
    return client.write_api(write_options=cls(**options))


def _run_both(servers: Any, writes: Callable[[Any], None], count: int, **options: Any
              ) -> Tuple[List[Any], List[Any]]:
    """Make the same writes with both clients; wait until each server has
    ``count`` requests (flush_interval is an hour: only a full batch sends)."""
    ref_server, our_server = servers
    ref, ours = clients(ref_server, our_server)
    out = []
    for client, server in ((ref, ref_server), (ours, our_server)):
        api = _batching(client, flush_interval=HOUR, **options)
        try:  # closed even on failure: the reference's threads would keep pytest alive
            writes(api)
            wait_for(lambda server=server: len(server.write_requests()) >= count)
        finally:
            api.close()
        out.append(sorted(bodies(server)))
    ref.close()
    ours.close()
    return out[0], out[1]


def test_a_full_batch_leaves_at_once_not_after_flush_interval(servers: Any) -> None:
    def writes(api: Any) -> None:
        api.write("b", record="m v=1i 1")
        api.write("b", record="m v=2i 2")

    want, got = _run_both(servers, writes, 1, batch_size=2)
    assert got == want == [("b", "ns", b"m v=1i 1\nm v=2i 2")]


def test_batches_are_grouped_by_bucket_org_and_precision(servers: Any) -> None:
    def writes(api: Any) -> None:
        api.write("a", record="m v=1i 1")
        api.write("b", record="m v=2i 2")
        api.write("a", record="m v=3i 3")
        api.write("a", record="m v=4i 4", write_precision="s")

    want, got = _run_both(servers, writes, 3, batch_size=4)
    assert got == want == [("a", "ns", b"m v=1i 1\nm v=3i 3"), ("a", "s", b"m v=4i 4"),
                           ("b", "ns", b"m v=2i 2")]


def test_a_part_filled_group_never_holds_back_another(fault_server: FaultServer) -> None:
    with InfluxDBClient(url=fault_server.url, token="t", org="o") as client:
        api = client.write_api(write_options=WriteOptions(batch_size=3, flush_interval=HOUR))
        api.write("a", record="m v=1i 1")  # one line for a: not a batch yet
        api.write("b", record=["m v=2i 2", "m v=3i 3", "m v=4i 4"])  # a full batch for b
        wait_for(lambda: len(fault_server.write_requests()) >= 2)
        assert sorted(bodies(fault_server)) == [
            ("a", "ns", b"m v=1i 1"), ("b", "ns", b"m v=2i 2\nm v=3i 3\nm v=4i 4")]
        api.close()


def test_a_part_filled_batch_waits_for_flush_interval(fault_server: FaultServer) -> None:
    with InfluxDBClient(url=fault_server.url, token="t", org="o") as client:
        api = client.write_api(write_options=WriteOptions(batch_size=3, flush_interval=300))
        api.write("a", record="m v=1i 1")
        api.write("a", record="m v=2i 2")
        assert fault_server.write_requests() == []  # no request while the batch is not full
        wait_for(lambda: len(fault_server.write_requests()) == 1)  # then flush_interval
        assert bodies(fault_server) == [("a", "ns", b"m v=1i 1\nm v=2i 2")]
        api.close()


def test_durable_full_batch_leaves_at_once(fault_server: FaultServer, tmp_path: Any) -> None:
    with InfluxDBClient(url=fault_server.url, token="t", org="o") as client:
        api = client.write_api(write_options=WriteOptions(
            batch_size=2, flush_interval=HOUR, buffer_dir=str(tmp_path / "buf")))
        api.write("b", record="m v=1i 1")
        api.write("b", record="m v=2i 2")
        wait_for(lambda: len(fault_server.write_requests()) == 1)
        assert bodies(fault_server) == [("b", "ns", b"m v=1i 1\nm v=2i 2")]
        api.close()


def test_observable_records_are_written_as_they_arrive(servers: Any) -> None:
    def writes(api: Any) -> None:
        api.write("b", record=rx.of("m v=1i 1", "m v=2i 2", "m v=3i 3"))

    want, got = _run_both(servers, writes, 1, batch_size=3)
    assert got == want == [("b", "ns", b"m v=1i 1\nm v=2i 2\nm v=3i 3")]


def test_observable_in_synchronous_mode_writes_each_item(fault_server: FaultServer) -> None:
    with InfluxDBClient(url=fault_server.url, token="t", org="o") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            "b", record=rx.of(Point("m").field("v", 1), {"measurement": "m",
                                                         "fields": {"v": 2}}))
    assert [r.body for r in fault_server.write_requests()] == [b"m v=1i", b"m v=2i"]
