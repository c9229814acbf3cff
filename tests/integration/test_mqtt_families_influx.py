"""Each firmware family's documented messages: real mosquitto -> agent -> real influxd.

One agent with one subscription per preset (the Zigbee2MQTT one exactly as a
user writes it: ``- preset: zigbee2mqtt``; the others under this run's topic
root, as their configurable base/prefix allows). Each case publishes payloads
copied from /work/research/firmware_payloads.md (the upstream source is named
beside each) and reads InfluxDB back: every value with its stored type
(``SHOW FIELD KEYS``), the tags (device names with spaces, punctuation and
umlauts), and the device's own timestamp where the message carries one.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Iterator

import pytest

from tests.harness.waits import wait_for as _wait
from tests.integration.test_mqtt_influx import (
    CONFIG_HEAD,
    Bridge,
    P,
    _in_window,
    open_bridge,
)

CONFIG = CONFIG_HEAD + """\
      - preset: zigbee2mqtt
      - {{preset: zigbee2mqtt, topic: '{p}/z2m/{{device}}', measurement: z2m_seen,
          time: {{key: last_seen}}}}
      - {{preset: tasmota, topic: '{p}/tele/{{device}}/{{kind}}', timezone: Europe/Berlin}}
      - {{preset: tasmota, topic: '{p}/stat/{{device}}/{{field}}', measurement: tasmota_stat}}
      - {{preset: shelly, topic: '{p}/{{device}}/status/{{component}}'}}
      - {{topic: '{p}/{{device}}/events/rpc', format: json, measurement: shelly_rpc,
          fields: {{output: 'params.switch:0.output', source: 'params.switch:0.source'}},
          time: {{key: params.ts, precision: s}}}}
      - {{preset: esphome, topic: '{p}/esp/{{node}}/{{component}}/{{field}}/state'}}
      - {{preset: homeassistant, topic: '{p}/ha/{{domain}}/{{measurement}}/{{field}}'}}
      - {{preset: owntracks, topic: '{p}/owntracks/{{user}}/{{device}}'}}
"""


@pytest.fixture(scope="module")
def bridge(influx: Any, mosquitto: Any, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Bridge]:
    with open_bridge(CONFIG, influx, mosquitto, tmp_path_factory.mktemp("families")) as b:
        yield b


def utc_ns(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=timezone.utc).timestamp()) * 10**9


def publish_raw(bridge: Bridge, topic: str, payload: str) -> None:
    """Publish on ``topic`` itself (no run prefix): the preset's own topic tree."""
    assert bridge.publisher is not None
    info = bridge.publisher.publish(topic, payload.encode("utf-8"), qos=1)
    info.wait_for_publish(10)
    assert info.is_published()


def stats(bridge: Bridge, template: str) -> Dict[str, Any]:
    return dict(bridge.agent.sources[0].status()["subscriptions"][template])


# -- Zigbee2MQTT -------------------------------------------------------------------


NAMES = ["Living Room", "Kühlschrank Küche", 'Ecke, "links"=an \\ Tür']


def test_zigbee2mqtt_names_as_tags_types_and_nulls(bridge: Bridge) -> None:
    # Xiaomi WSDCGQ01LM [Koenkk/zigbee2mqtt.io docs/guide/usage/mqtt_topics_and_messages.md]
    publish_raw(bridge, f"zigbee2mqtt/{NAMES[0]}", '{"temperature": 27.34, "humidity": 44.72}')
    # IKEA LED1545G12, "state" is the string "ON" [same page]
    publish_raw(bridge, f"zigbee2mqtt/{NAMES[1]}",
                '{"state": "ON", "brightness": 215, "color_temp": 325}')
    # nulls and last_seen [Koenkk/zigbee2mqtt#10959]
    publish_raw(bridge, f"zigbee2mqtt/{NAMES[2]}",
                '{"battery":null,"illuminance":3,"illuminance_lux":3,"last_seen":'
                '"2022-01-28T20:12:23+01:00","linkquality":61,"occupancy":true,'
                '"temperature":null,"voltage":null}')
    rows = {r["device"]: r for r in bridge.points("zigbee2mqtt", 3)}
    assert set(rows) == set(NAMES)
    assert (rows[NAMES[0]]["temperature"], rows[NAMES[0]]["humidity"]) == (27.34, 44.72)
    assert (rows[NAMES[1]]["state"], rows[NAMES[1]]["brightness"]) == (True, 215.0)
    third = rows[NAMES[2]]
    assert (third["occupancy"], third["illuminance"], third["temperature"]) == (True, 3.0, None)
    assert bridge.field_types("zigbee2mqtt") == {
        "temperature": "float", "humidity": "float", "state": "boolean", "brightness": "float",
        "color_temp": "float", "illuminance": "float", "illuminance_lux": "float",
        "linkquality": "float", "occupancy": "boolean"}
    assert bridge.tag_keys("zigbee2mqtt") == {"site", "host", "device"}
    assert stats(bridge, "zigbee2mqtt/{device}")["fields_dropped"] == 3


def test_zigbee2mqtt_last_seen_as_the_points_time(bridge: Bridge) -> None:
    # advanced.last_seen: ISO_8601 [docs/guide/configuration/all-settings.md]; the
    # payload from [Koenkk/zigbee2mqtt#27185]
    bridge.publish("z2m/Bewegungsmelder Flur",
                   '{\n  "battery": null,\n  "identify": null,\n  "illuminance": 111,\n'
                   '  "last_seen": "2025-04-22T13:47:10+02:00",\n  "linkquality": 47,\n'
                   '  "occupancy": null,\n  "update": {\n    "installed_version": -1,\n'
                   '    "latest_version": -1,\n    "state": null\n  }\n}')
    (row,) = bridge.points("z2m_seen", 1)
    assert row == bridge.row(
        {"device": "Bewegungsmelder Flur"},
        {"illuminance": 111.0, "linkquality": 47.0, "update_installed_version": -1.0,
         "update_latest_version": -1.0}, utc_ns(2025, 4, 22, 11, 47, 10), {"device"})
    assert set(bridge.field_types("z2m_seen").values()) == {"float"}


# -- Tasmota -----------------------------------------------------------------------


def test_tasmota_telemetry_in_the_device_zone_and_lwt(bridge: Bridge) -> None:
    # Sonoff POW [tasmota/docs docs/devices/Sonoff-Pow-R2.md]: Time is local (CET)
    bridge.publish("tele/pow1/SENSOR",
                   '{"Time":"2018-02-15T17:37:10","ENERGY":{"TotalStartTime":'
                   '"2018-11-14T18:39:40","Total":6.294,"Yesterday":5.340,"Today":0.954,'
                   '"Period":217,"Power":2635,"ApparentPower":2650,"ReactivePower":282,'
                   '"Factor":0.99,"Voltage":227,"Current":11.661}}')
    # STATE with an offset (SetOption52) [docs/DeepSleep.md]
    bridge.publish("tele/demo-sensor/STATE",
                   '{"Time":"2021-06-27T15:03:44+02:00","Uptime":"0T00:00:13","UptimeSec":13,'
                   '"Heap":28,"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":1,'
                   '"POWER":"ON","Wifi":{"AP":1,"SSId":"DEMOAP","BSSId":"XX:XX:XX:XX:XX:XX",'
                   '"Channel":1,"Mode":"11n","RSSI":86,"Signal":-57,"LinkCount":1,'
                   '"Downtime":"0T00:00:07"}}')
    window = bridge.publish("tele/pow1/LWT", "Online")  # [docs/MQTT.md]
    rows = {(r["device"], r["kind"]): r for r in bridge.points("tasmota", 3)}
    sensor = rows[("pow1", "SENSOR")]
    assert sensor["time"] == utc_ns(2018, 2, 15, 16, 37, 10)
    assert (sensor["ENERGY_Power"], sensor["ENERGY_Current"]) == (2635.0, 11.661)
    state = rows[("demo-sensor", "STATE")]
    assert state["time"] == utc_ns(2021, 6, 27, 13, 3, 44)
    assert (state["POWER"], state["Wifi_RSSI"], state["UptimeSec"]) == (True, 86.0, 13.0)
    lwt = rows[("pow1", "LWT")]
    assert lwt["value"] is True
    _in_window(lwt["time"], window)
    types = bridge.field_types("tasmota")
    assert types["POWER"] == "boolean" and types["value"] == "boolean"
    assert set(types.values()) == {"float", "boolean"}  # the unit and duration strings skipped
    # stat/<topic>/POWER [docs/MQTT.md]: plain text OFF
    bridge.publish("stat/tasmota_switch/POWER", "OFF")
    (power,) = bridge.points("tasmota_stat", 1)
    assert (power["device"], power["POWER"]) == ("tasmota_switch", False)
    assert bridge.field_types("tasmota_stat") == {"POWER": "boolean"}


# -- Shelly ------------------------------------------------------------------------


def test_shelly_status_arrays_and_null_temperature(bridge: Bridge) -> None:
    # [shelly-api-docs gen2 Switch]; values after "total" from the research note
    window = bridge.publish(
        "shellyplus1-a8032abe54dc/status/switch:0",
        '{"id":0,"source":"timer","output":false,"timer_started_at":1626942399.36,'
        '"timer_duration":60,"apower":0,"voltage":237.571,"aenergy":{"total":14.093,'
        '"by_minute":[0.000,0.000,0.000],"minute_ts":1626942420},'
        '"temperature":{"tC":null,"tF":null}}')
    (row,) = bridge.points("shelly", 1)
    _in_window(row["time"], window)
    assert (row["device"], row["component"]) == ("shellyplus1-a8032abe54dc", "switch:0")
    assert (row["output"], row["voltage"], row["aenergy_by_minute_2"]) == (False, 237.571, 0.0)
    assert bridge.field_types("shelly") == {
        "aenergy_by_minute_0": "float", "aenergy_by_minute_1": "float",
        "aenergy_by_minute_2": "float", "aenergy_minute_ts": "float", "aenergy_total": "float",
        "apower": "float", "output": "boolean", "source": "string", "timer_duration": "float",
        "timer_started_at": "float", "voltage": "float"}
    assert stats(bridge, f"{P}/{{device}}/status/{{component}}")["fields_dropped"] == 2


def test_shelly_notify_status_own_time_and_partial_frames(bridge: Bridge) -> None:
    # NotifyStatus Example 1 and 2 [shelly-api-docs gen2 General/Notifications]
    bridge.publish("shellypro4pm-f008d1d8b8b8/events/rpc",
                   '{\n"src": "shellypro4pm-f008d1d8b8b8",\n"dst": "user_1",\n"method": '
                   '"NotifyStatus",\n"params": {\n"ts": 1631186545.04,\n"switch:0": {\n'
                   '"id": 0,\n"output": true,\n"source": "button"\n}\n}\n}')
    bridge.publish("shellypro4pm-f008d1d8b8b8/events/rpc",
                   '{\n"src": "shellypro4pm-f008d1d8b8b8",\n"dst": "user_1",\n"method": '
                   '"NotifyStatus",\n"params": {\n"ts": 1624348482.25,\n"cloud": {\n'
                   '"connected": false\n}\n}\n}')
    template = f"{P}/{{device}}/events/rpc"
    _wait(lambda: stats(bridge, template)["messages_received"] == 2, 10, "both frames")
    (row,) = bridge.points("shelly_rpc", 1)
    assert row == bridge.row({"device": "shellypro4pm-f008d1d8b8b8"},
                             {"output": True, "source": "button"}, 1631186545040000000,
                             {"device"})
    assert bridge.field_types("shelly_rpc") == {"output": "boolean", "source": "string"}
    assert stats(bridge, template)["fields_dropped"] == 2  # Example 2 has no switch:0


# -- ESPHome -----------------------------------------------------------------------


def test_esphome_text_states_and_nan(bridge: Bridge) -> None:
    # [esphome/esphome esphome/components/mqtt/mqtt_sensor.cpp, mqtt_binary_sensor.cpp]
    bridge.publish("esp/livingroom/sensor/living_room_temperature/state", "23.5")
    bridge.publish("esp/livingroom/binary_sensor/front_door/state", "ON")
    bridge.publish("esp/livingroom/sensor/living_room_temperature/state", "nan")
    bridge.publish("esp/livingroom/binary_sensor/front_door/state", "OFF")
    rows = bridge.points("esphome", 3)
    assert sorted((r["component"], r["living_room_temperature"], r["front_door"])
                  for r in rows) == [("binary_sensor", None, False),
                                     ("binary_sensor", None, True), ("sensor", 23.5, None)]
    assert bridge.field_types("esphome") == {"living_room_temperature": "float",
                                             "front_door": "boolean"}
    template = f"{P}/esp/{{node}}/{{component}}/{{field}}/state"
    _wait(lambda: stats(bridge, template)["fields_dropped"] == 1, 10, "the nan drop counted")


# -- Home Assistant ----------------------------------------------------------------


def test_homeassistant_unavailable_never_changes_the_type(bridge: Bridge) -> None:
    # states raw, attributes JSON [home-assistant/core mqtt_statestream, helpers/json.py]
    bridge.publish("ha/sensor/outdoor_temperature/state", "21.4")
    bridge.publish("ha/sensor/outdoor_temperature/state", "unavailable")  # const.py
    bridge.publish("ha/sensor/outdoor_temperature/unit_of_measurement", '"\\u00b0C"')
    bridge.publish("ha/light/master_bedroom_dimmer/state", "on")  # mqtt_statestream.markdown
    bridge.publish("ha/sensor/outdoor_temperature/state", "unknown")
    bridge.publish("ha/sensor/outdoor_temperature/state", "19")
    temps = bridge.points("outdoor_temperature", 3)
    assert [r["state"] for r in temps if r["state"] is not None] == [21.4, 19.0]
    assert [r["unit_of_measurement"] for r in temps if r["unit_of_measurement"]] == ["°C"]
    assert bridge.field_types("outdoor_temperature") == {
        "state": "float", "unit_of_measurement": "string"}
    (light,) = bridge.points("master_bedroom_dimmer", 1)
    assert (light["domain"], light["state"]) == ("light", True)
    assert bridge.field_types("master_bedroom_dimmer") == {"state": "boolean"}
    template = f"{P}/ha/{{domain}}/{{measurement}}/{{field}}"
    assert stats(bridge, template)["fields_dropped"] == 2


# -- OwnTracks ---------------------------------------------------------------------


def test_owntracks_location_with_its_own_time(bridge: Bridge) -> None:
    # [owntracks/booklet docs/guide/quicksetup.md]
    bridge.publish("owntracks/jane/nokia",
                   '{"_type":"location","SSID":"mywifi","alt":154,"batt":53,"conn":"w",'
                   '"created_at":1706856299,"lat":48.856826,"lon":2.292713,"tid":"j1",'
                   '"tst":1706856298,"vel":0}')
    # [docs/tech/lua.md]
    bridge.publish("owntracks/jane/phone",
                   '{"batt":-1,"lon":2.29513,"lat":48.85833,"t":"u","tst":1441984413,'
                   '"_type":"location","tid":"JJ"}')
    rows = {r["device"]: r for r in bridge.points("owntracks", 2)}
    nokia, phone = rows["nokia"], rows["phone"]
    assert nokia["time"] == 1706856298 * 10**9 and phone["time"] == 1441984413 * 10**9
    assert (nokia["user"], nokia["tid"], nokia["lat"], nokia["alt"], nokia["batt"]) == (
        "jane", "j1", 48.856826, 154, 53)
    assert (phone["tid"], phone["batt"], phone["t"]) == ("JJ", -1, "u")
    assert bridge.field_types("owntracks") == {
        "alt": "integer", "batt": "integer", "conn": "string", "created_at": "integer",
        "lat": "float", "lon": "float", "vel": "integer", "t": "string"}
    assert bridge.tag_keys("owntracks") == {"site", "host", "user", "device", "tid"}
