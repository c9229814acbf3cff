"""MQTT -> InfluxDB end to end: the real agent path against real mosquitto and influxd.

The agent is built in-process from a YAML config (``load_config`` -> ``Agent``:
MqttSource -> DurableWriter -> DiskBuffer -> Flusher -> Transport v1), messages
are published through the broker, and InfluxDB is queried back. Each case
compares exactly: the measurement, the tag set, every field with its stored
type (``SHOW FIELD KEYS``), and the timestamp when the message carries one
(otherwise it must lie in the publish window: the receive time).

The formats and templates share one agent (one config with every
subscription) so the module stays fast; each case publishes on its own topic
branch and checks its own measurement.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import paho.mqtt.client as mqtt
import pytest

from edge_agent.agent.service import Agent
from edge_agent.config import load_config
from tests.harness.mqtt import StreamPublisher
from tests.harness.waits import wait_for

P = f"it{uuid.uuid4().hex[:6]}"  # topic root of this module's run (shared broker)
SITE = {"site": "gh1"}

# The agent and one MQTT source; a module adds its subscriptions (open_bridge fills in
# state, influx, db, mqtt, p and client_id).
CONFIG_HEAD = """agent:
  name: mqtt-it
  state_dir: {state}
  internal_metrics: 0s
tags: {{site: gh1}}
influx: {{url: '{influx}', api: v1, bucket: {db}, timeout: 5s}}
write: {{flush_interval: 100, retry_interval: 200, max_retry_delay: 1000, commit_interval: 20}}
sources:
  - name: bridge
    type: mqtt
    url: {mqtt}
    client_id: {client_id}
    qos: 1
    reconnect_max: 1s
    subscriptions:
"""
CONFIG = CONFIG_HEAD + """\
      - {{topic: '{p}/v/{{room}}/{{field}}', format: value, measurement: climate,
          tags: {{source: mqtt}}}}
      - {{topic: '{p}/vf/{{device}}', format: value, measurement: level, field: depth}}
      - {{topic: '{p}/vi/{{device}}', format: value, measurement: counter, field: n,
          types: {{n: int}}}}
      - {{topic: '{p}/j/{{device}}', format: json, measurement: flat}}
      - topic: '{p}/jf/{{device}}'
        format: json
        measurement: picked
        fields: {{temperature: sensor.temp, battery: power.battery, first: readings.0,
                  name: meta.name}}
      - {{topic: '{p}/jt/{{device}}', format: json, measurement: typed,
          types: {{rssi: int, count: int, ratio: float, label: str}}}}
      - {{topic: '{p}/ja/{{device}}', format: json, measurement: arr,
          time: {{key: ts, precision: ms}}}}
      - {{topic: '{p}/jn/{{device}}', format: json, measurement: arr_now}}
      - {{topic: '{p}/jtime/{{device}}', format: json, measurement: stamped,
          time: {{key: at, precision: s}}}}
      - {{topic: '{p}/jiso/{{device}}', format: json, measurement: iso,
          time: {{key: at, precision: s}}}}
      - {{topic: '{p}/lp/{{gateway}}', format: influx}}
      - {{topic: '{p}/kv/{{device}}', format: kv, measurement: kvm}}
      - {{topic: '{p}/m/{{measurement}}/{{device}}', format: value, field: v}}
      - {{topic: '{p}/plus/+/{{device}}/+', format: value, measurement: plus, field: v}}
      - {{topic: '{p}/hash/{{zone}}/#', format: value, measurement: hash, field: v}}
"""


class Bridge:
    """The running agent plus what a case needs to publish and read back."""

    def __init__(self, agent: Agent, influx: Any, db: str, tags: Dict[str, str]) -> None:
        self.agent = agent
        self.influx = influx
        self.db = db
        self.tags = tags  # the agent's effective default tags (site + host)
        self.publisher: Optional[mqtt.Client] = None

    def publish(self, topic: str, payload: Any) -> Tuple[int, int]:
        """Publish (QoS 1, acked by the broker); the wall-clock window in ns."""
        assert self.publisher is not None
        data = payload if isinstance(payload, bytes) else (
            payload if isinstance(payload, str) else json.dumps(payload)).encode()
        before = time.time_ns()
        info = self.publisher.publish(f"{P}/{topic}", data, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
        return before, time.time_ns()

    def points(self, measurement: str, expect: int, timeout: float = 30.0
               ) -> List[Dict[str, Any]]:
        """The stored points of ``measurement`` once ``expect`` are there (sorted by time)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.influx.rows(self.db, f'SELECT * FROM "{measurement}"')
            if len(rows) >= expect or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(rows) == expect, f"{measurement}: {len(rows)} points, expected {expect}"
        for row in rows:
            row.pop("_measurement", None)
        return sorted(rows, key=lambda r: (r["time"], json.dumps(r, sort_keys=True)))

    def field_types(self, measurement: str) -> Dict[str, str]:
        rows = self.influx.rows(self.db, f'SHOW FIELD KEYS FROM "{measurement}"')
        return {r["fieldKey"]: r["fieldType"] for r in rows}

    def tag_keys(self, measurement: str) -> Set[str]:
        rows = self.influx.rows(self.db, f'SHOW TAG KEYS FROM "{measurement}"')
        return {r["tagKey"] for r in rows}

    def row(self, tags: Dict[str, str], fields: Dict[str, Any], time_ns: int,
            columns: Set[str]) -> Dict[str, Any]:
        """What ``SELECT *`` returns for one point: every column, None where absent."""
        out: Dict[str, Any] = {c: None for c in columns}
        out.update(self.tags)
        out.update(tags)
        out.update(fields)
        out["time"] = time_ns
        return out


@contextlib.contextmanager
def open_bridge(config_text: str, influx: Any, mosquitto: Any, workdir: Path) -> Iterator[Bridge]:
    """The agent of ``config_text`` (a template: state, influx, db, mqtt, p, client_id) running
    against a fresh database, with a connected publisher; at the end no message was rejected."""
    db = f"mqtt_{uuid.uuid4().hex[:8]}"
    influx.create_database(db)
    path = workdir / "agent.yaml"
    path.write_text(config_text.format(state=workdir / "state", influx=influx.url, db=db,
                                       mqtt=mosquitto.url, p=P,
                                       client_id=f"edge-it-{uuid.uuid4().hex[:6]}"))
    config = load_config(str(path))
    agent = Agent(config)
    agent.start()
    try:
        source = agent.sources[0]
        wait_for(lambda: source.connected, 30, "the MQTT source to connect")
        time.sleep(0.3)  # SUBACK: the broker routes to us only after it
        b = Bridge(agent, influx, db, dict(config.tags))
        assert set(b.tags) == {"site", "host"}, b.tags
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        b.publisher = pub
        yield b
        pub.disconnect()
        pub.loop_stop()
        status = source.status()
        # No case publishes anything the bridge should refuse.
        rejected = {k: v for k, v in status["subscriptions"].items() if v["messages_rejected"]}
        assert not rejected, rejected
    finally:
        agent.shutdown()


@pytest.fixture(scope="module")
def bridge(influx: Any, mosquitto: Any, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Bridge]:
    with open_bridge(CONFIG, influx, mosquitto, tmp_path_factory.mktemp("mqtt-influx")) as b:
        yield b


def _in_window(stamp: int, window: Tuple[int, int]) -> None:
    # Receive time: after the publish call began, before its PUBACK came back
    # (+1 s for the two clocks being read in different threads).
    assert window[0] <= stamp <= window[1] + 1_000_000_000, (stamp, window)


# -- formats -----------------------------------------------------------------------


def test_value_field_from_topic_captures_as_tags(bridge: Bridge) -> None:
    w1 = bridge.publish("v/kitchen/temp", "21.5")
    w2 = bridge.publish("v/hall/on", "true")
    w3 = bridge.publish("v/hall/state", "door open")
    w4 = bridge.publish("v/hall/temp", "-3")
    rows = bridge.points("climate", 4)
    assert bridge.field_types("climate") == {
        "temp": "float", "on": "boolean", "state": "string"}
    assert bridge.tag_keys("climate") == {"site", "host", "room", "source"}
    cols = {"temp", "on", "state", "room", "source"}
    by_field = {next(k for k in ("temp", "on", "state") if r[k] is not None) + r["room"]: r
                for r in rows}
    expect = {
        "tempkitchen": ({"room": "kitchen"}, {"temp": 21.5}, w1),
        "onhall": ({"room": "hall"}, {"on": True}, w2),
        "statehall": ({"room": "hall"}, {"state": "door open"}, w3),
        "temphall": ({"room": "hall"}, {"temp": -3.0}, w4),
    }
    assert set(by_field) == set(expect)
    for key, (tags, fields, window) in expect.items():
        got = by_field[key]
        _in_window(got["time"], window)
        assert got == bridge.row({**tags, "source": "mqtt"}, fields, got["time"], cols)


def test_value_with_configured_field_and_int_type(bridge: Bridge) -> None:
    w1 = bridge.publish("vf/tank1", " 1.25 ")
    w2 = bridge.publish("vi/door", "17")
    (depth,) = bridge.points("level", 1)
    _in_window(depth["time"], w1)
    assert depth == bridge.row({"device": "tank1"}, {"depth": 1.25}, depth["time"], {"device"})
    assert bridge.field_types("level") == {"depth": "float"}
    (count,) = bridge.points("counter", 1)
    _in_window(count["time"], w2)
    assert count == bridge.row({"device": "door"}, {"n": 17}, count["time"], {"device"})
    assert bridge.field_types("counter") == {"n": "integer"}


def test_json_nested_objects_flattened(bridge: Bridge) -> None:
    window = bridge.publish("j/node7", {
        "temp": 20.5, "env": {"hum": 40, "co2": {"ppm": 612}}, "ok": True, "name": "north",
        "list": [1, 2], "nothing": None})
    (row,) = bridge.points("flat", 1)
    _in_window(row["time"], window)
    fields = {"temp": 20.5, "env_hum": 40.0, "env_co2_ppm": 612.0, "ok": True, "name": "north",
              "list_0": 1.0, "list_1": 2.0}
    assert row == bridge.row({"device": "node7"}, fields, row["time"], {"device"})
    # numbers are floats by default (even 40 and 612), arrays flattened, the null dropped
    assert bridge.field_types("flat") == {
        "temp": "float", "env_hum": "float", "env_co2_ppm": "float", "ok": "boolean",
        "name": "string", "list_0": "float", "list_1": "float"}
    stats = bridge.agent.sources[0].status()["subscriptions"][f"{P}/j/{{device}}"]
    assert (stats["fields_dropped"], stats["last_drop_reason"]) == (1, "field 'nothing' is null")


def test_json_fields_pick_dotted_paths(bridge: Bridge) -> None:
    window = bridge.publish("jf/probe", {
        "sensor": {"temp": 19.25, "unused": 1}, "power": {"battery": 87, "volts": 3.1},
        "readings": [4.5, 5.5], "meta": {"name": "probe-a"}, "other": 1})
    (row,) = bridge.points("picked", 1)
    _in_window(row["time"], window)
    assert row == bridge.row(
        {"device": "probe"},
        {"temperature": 19.25, "battery": 87.0, "first": 4.5, "name": "probe-a"},
        row["time"], {"device"})
    assert bridge.field_types("picked") == {
        "temperature": "float", "battery": "float", "first": "float", "name": "string"}


def test_json_types_make_integers(bridge: Bridge) -> None:
    window = bridge.publish("jt/plug", {"rssi": -71, "count": 3.0, "ratio": 1, "label": 5,
                                        "plain": 2})
    (row,) = bridge.points("typed", 1)
    _in_window(row["time"], window)
    assert row == bridge.row({"device": "plug"},
                             {"rssi": -71, "count": 3, "ratio": 1.0, "label": "5", "plain": 2.0},
                             row["time"], {"device"})
    assert bridge.field_types("typed") == {
        "rssi": "integer", "count": "integer", "ratio": "float", "label": "string",
        "plain": "float"}


def test_json_array_with_own_timestamps(bridge: Bridge) -> None:
    base = 1_700_000_000_123
    bridge.publish("ja/batch", [{"ts": base + i, "v": i * 1.5, "ok": i % 2 == 0}
                                for i in range(3)])
    rows = bridge.points("arr", 3)
    assert rows == [bridge.row({"device": "batch"}, {"v": i * 1.5, "ok": i % 2 == 0},
                               (base + i) * 1_000_000, {"device"}) for i in range(3)]
    assert bridge.field_types("arr") == {"v": "float", "ok": "boolean"}


def test_json_array_without_timestamps_keeps_every_element(bridge: Bridge) -> None:
    # One receive time for the whole message: unless each element gets its own
    # instant, InfluxDB stores the three as one point (same series, same time).
    window = bridge.publish("jn/batch", [{"v": 1}, {"v": 2}, {"v": 3}])
    rows = bridge.points("arr_now", 3)
    assert [r["v"] for r in rows] == [1.0, 2.0, 3.0]
    for r in rows:
        _in_window(r["time"], window)
        assert r == bridge.row({"device": "batch"}, {"v": r["v"]}, r["time"], {"device"})


def test_json_time_key_in_seconds_and_iso(bridge: Bridge) -> None:
    bridge.publish("jtime/st1", {"at": 1_700_000_005, "t": 1})
    bridge.publish("jiso/st1", {"at": "2024-05-17T12:34:56.000336Z", "t": 2})
    (row,) = bridge.points("stamped", 1)
    assert row == bridge.row({"device": "st1"}, {"t": 1.0}, 1_700_000_005 * 10**9, {"device"})
    (iso,) = bridge.points("iso", 1)
    assert iso == bridge.row({"device": "st1"}, {"t": 2.0}, 1_715_949_296_000_336_000,
                             {"device"})


def test_influx_line_protocol_gets_default_tags(bridge: Bridge) -> None:
    window = bridge.publish("lp/gw1", (
        "cpu,core=0 usage=0.5,n=3i,s=\"idle\",up=true 1700000000000000001\n"
        "cpu,core=1,host=box usage=1 1700000000000000002\n"
        "disk\\ io,dev=sda\\ 1 r=7i\n"
        "disk\\ io,dev=sda\\ 1 r=8i\n"))
    cpu = bridge.points("cpu", 2)
    cols = {"usage", "n", "s", "up", "core", "gateway"}
    assert cpu == [
        bridge.row({"core": "0", "gateway": "gw1"},
                   {"usage": 0.5, "n": 3, "s": "idle", "up": True}, 1700000000000000001, cols),
        # the line's own tag wins over the agent's default host tag
        bridge.row({"core": "1", "gateway": "gw1", "host": "box"}, {"usage": 1.0},
                   1700000000000000002, cols),
    ]
    assert bridge.field_types("cpu") == {"usage": "float", "n": "integer", "s": "string",
                                         "up": "boolean"}
    # Lines without a timestamp get the receive time, each its own instant (two
    # lines of one series at one time would be one point in InfluxDB).
    disks = bridge.points("disk io", 2)
    for disk, r in zip(disks, (7, 8)):
        _in_window(disk["time"], window)
        assert disk == bridge.row({"dev": "sda 1", "gateway": "gw1"}, {"r": r}, disk["time"],
                                  {"dev", "gateway", "r"})


def test_kv_space_and_comma_separated(bridge: Bridge) -> None:
    w1 = bridge.publish("kv/a1", "t=21.5 on=true mode=auto")
    w2 = bridge.publish("kv/a2", "t=-1,on=false,mode=off")
    rows = {r["device"]: r for r in bridge.points("kvm", 2)}
    cols = {"t", "on", "mode", "device"}
    _in_window(rows["a1"]["time"], w1)
    _in_window(rows["a2"]["time"], w2)
    assert rows["a1"] == bridge.row({"device": "a1"}, {"t": 21.5, "on": True, "mode": "auto"},
                                    rows["a1"]["time"], cols)
    assert rows["a2"] == bridge.row({"device": "a2"}, {"t": -1.0, "on": False, "mode": "off"},
                                    rows["a2"]["time"], cols)
    assert bridge.field_types("kvm") == {"t": "float", "on": "boolean", "mode": "string"}


# -- topic templates ------------------------------------------------------------


def test_measurement_from_topic(bridge: Bridge) -> None:
    bridge.publish("m/boiler/b1", "71.5")
    bridge.publish("m/pump/p1", "0")
    (boiler,) = bridge.points("boiler", 1)
    (pump,) = bridge.points("pump", 1)
    assert boiler == bridge.row({"device": "b1"}, {"v": 71.5}, boiler["time"], {"device"})
    assert pump == bridge.row({"device": "p1"}, {"v": 0.0}, pump["time"], {"device"})
    assert bridge.tag_keys("boiler") == {"site", "host", "device"}


def test_plus_matches_one_level_and_captures_nothing(bridge: Bridge) -> None:
    bridge.publish("plus/floor1/d1/raw", "1")
    bridge.publish("plus/floor2/d2/x", "2")
    bridge.publish("plus/floor2/d2", "3")  # one level short: no match, not subscribed
    bridge.publish("plus/floor2/d2/x/y", "4")  # one level long
    rows = bridge.points("plus", 2)
    assert [(r["device"], r["v"]) for r in rows] == [("d1", 1.0), ("d2", 2.0)]
    assert bridge.tag_keys("plus") == {"site", "host", "device"}
    bridge.publish("plus/floor3/d3/z", "5")  # behind the non-matching ones: once it is in,
    rows = bridge.points("plus", 3)  # they would be too
    assert [(r["device"], r["v"]) for r in rows] == [("d1", 1.0), ("d2", 2.0), ("d3", 5.0)]


def test_hash_matches_any_depth(bridge: Bridge) -> None:
    bridge.publish("hash/north", "1")
    bridge.publish("hash/north/a", "2")
    bridge.publish("hash/south/a/b/c", "3")
    rows = bridge.points("hash", 3)
    assert [(r["zone"], r["v"]) for r in rows] == [("north", 1.0), ("north", 2.0),
                                                   ("south", 3.0)]
    assert bridge.tag_keys("hash") == {"site", "host", "zone"}


# -- broker restart mid-stream --------------------------------------------------------


def seq_with_ts(n: int) -> Tuple[str, str]:
    """Message ``n`` carries its own timestamp: a resend that reaches the broker twice
    (its PUBACK lost in the broker's shutdown) is the same point, so the count in
    InfluxDB must equal what was published exactly."""
    return f"dev{n % 4}", json.dumps({"seq": n, "ts": n})


def test_broker_restart_mid_stream_loses_nothing(
    influx: Any, influx_db: str, mosquitto_factory: Callable[..., Any], tmp_path: Path,
) -> None:
    # Why raise max_queued_messages: while the agent is away (the broker just
    # restarted and our reconnect backoff has not fired yet, or the agent is
    # catching up on the backlog), mosquitto queues the messages of our
    # persistent session and *drops* those beyond max_queued_messages
    # (default 1000, counted per client, in-flight included). The publisher
    # reconnects first and resends its unacked backlog at once, so a
    # default-config broker may drop messages before the agent is back: that
    # is a broker budget (the operator sizes it for the outages to survive),
    # not something the agent can prevent. The limit here covers the window.
    broker = mosquitto_factory("max_queued_messages 100000\n")
    state = tmp_path / "state"
    topic = f"rs{uuid.uuid4().hex[:6]}"
    path = tmp_path / "agent.yaml"
    path.write_text(f"""agent: {{name: restart, state_dir: {state}, internal_metrics: 0s}}
tags: {{site: gh1}}
influx: {{url: '{influx.url}', api: v1, bucket: {influx_db}, timeout: 5s}}
write: {{flush_interval: 100, retry_interval: 200, max_retry_delay: 1000, commit_interval: 20}}
sources:
  - name: bridge
    type: mqtt
    url: {broker.url}
    client_id: edge-restart-{uuid.uuid4().hex[:6]}
    qos: 1
    clean_session: false
    session_expiry: 1h
    reconnect_max: 2s
    subscriptions:
      - {{topic: '{topic}/{{device}}', format: json, measurement: seqs,
          types: {{seq: int}}, time: {{key: ts, precision: ms}}}}
""")
    agent = Agent(load_config(str(path)))
    agent.start()
    source = agent.sources[0]
    try:
        wait_for(lambda: source.connected, 30, "the MQTT source to connect")
        time.sleep(0.3)
        load = StreamPublisher(broker.port, topic, rate=300, persistent=True,
                               payload=seq_with_ts).start()
        wait_for(lambda: influx.count(influx_db, "seqs", "seq") > 300, 30, "load to flow")
        broker.stop()  # graceful: mosquitto saves sessions and queued messages
        wait_for(lambda: not source.connected, 10, "the agent to see the outage")
        time.sleep(1.0)  # the publisher keeps publishing into its own queue
        broker.start()
        wait_for(lambda: source.connected, 30, "the agent to reconnect")
        time.sleep(1.0)
        published = load.stop()
        assert published > 600
        wait_for(lambda: influx.count(influx_db, "seqs", "seq") >= published, 60,
              f"all {published} messages in InfluxDB")
        # Every message acked and the buffer empty: a duplicate would be in InfluxDB now.
        wait_for(lambda: source.status()["unacked"] == 0 and not source.status()["queued"]
                 and agent.buffer.stats().points == 0, 60, "the bridge and buffer to drain")
        count = influx.count(influx_db, "seqs", "seq")
        distinct = influx.rows(influx_db, 'SELECT count(distinct("seq")) FROM "seqs"')
        assert (count, int(distinct[0]["count"])) == (published, published)
        status = source.status()
        assert status["connects"] >= 2 and status["disconnects"] >= 1
    finally:
        agent.shutdown()
