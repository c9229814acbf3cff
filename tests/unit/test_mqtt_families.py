"""Each firmware family's documented messages through its preset (pure, no broker).

Payloads are copied verbatim from /work/research/firmware_payloads.md, which names
the upstream page or source file of each; the same source is named beside each
payload here. Times are checked against datetime arithmetic, not copied output.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

import pytest

from edge_agent.lineproto.encoder import LineEncoder
from edge_agent.sources.mqtt.payloads import MessageParser, Parsed, Rejected
from edge_agent.sources.mqtt.presets import PRESET_NAMES, PRESETS, expand

T = 1_700_000_000_123_456_789  # receive time, ns


def parser(preset: Optional[str], **keys: Any) -> MessageParser:
    return MessageParser(expand(preset, keys) if preset else keys, LineEncoder("ns"))


def parse(p: MessageParser, topic: str, payload: str) -> Parsed:
    return p.parse(topic, payload.encode("utf-8"), T)


def utc_ns(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=timezone.utc).timestamp()) * 10**9


def test_every_preset_fills_topic_and_format() -> None:
    assert PRESET_NAMES == ("zigbee2mqtt", "tasmota", "shelly", "esphome", "homeassistant",
                            "owntracks")
    for name in PRESET_NAMES:
        assert {"topic", "format"} <= set(PRESETS[name])
        parser(name)  # compiles


# -- Zigbee2MQTT -------------------------------------------------------------------


def test_zigbee2mqtt_friendly_names_with_spaces_and_umlauts() -> None:
    p = parser("zigbee2mqtt")
    # Xiaomi WSDCGQ01LM [Koenkk/zigbee2mqtt.io docs/guide/usage/mqtt_topics_and_messages.md]
    got = parse(p, "zigbee2mqtt/Kühlschrank Küche", '{"temperature": 27.34, "humidity": 44.72}')
    assert got.lines == (
        f"zigbee2mqtt,device=Kühlschrank\\ Küche humidity=44.72,temperature=27.34 {T}",)
    # [Koenkk/zigbee2mqtt#9847]: a name with spaces; the legacy "device" object is skipped
    got = parse(p, "zigbee2mqtt/Capteur Chambre Thomas",
                '{"battery":93.5,"device":{"applicationVersion":4,"friendlyName":"Capteur Chambre '
                'Thomas","hardwareVersion":1,"ieeeAddr":"0x84fd27fffe714d42","manufacturerID":4098,'
                '"manufacturerName":"MultIR","model":"ST30","networkAddress":15591,"powerSource":'
                '"Battery","softwareBuildID":"ST30_v1.0.4","type":"EndDevice","zclVersion":3},'
                '"humidity":43.5,"linkquality":255,"temperature":null}')
    assert got.lines == ("zigbee2mqtt,device=Capteur\\ Chambre\\ Thomas battery=93.5,"
                         f"humidity=43.5,linkquality=255 {T}",)
    assert (got.dropped_fields, got.drop_reason) == (1, "field 'temperature' is null")


def test_zigbee2mqtt_nulls_drop_fields_and_last_seen_as_time() -> None:
    # [Koenkk/zigbee2mqtt#10959]
    payload = ('{"battery":null,"illuminance":3,"illuminance_lux":3,"last_seen":'
               '"2022-01-28T20:12:23+01:00","linkquality":61,"occupancy":true,"temperature":null,'
               '"voltage":null}')
    fields = "illuminance=3,illuminance_lux=3,linkquality=61,occupancy=true"
    got = parse(parser("zigbee2mqtt"), "zigbee2mqtt/0x00158d0007d762e0", payload)
    assert got.lines == (f"zigbee2mqtt,device=0x00158d0007d762e0 {fields} {T}",)
    assert got.dropped_fields == 3
    timed = parse(parser("zigbee2mqtt", time={"key": "last_seen"}),
                  "zigbee2mqtt/0x00158d0007d762e0", payload)
    assert timed.lines == (
        f"zigbee2mqtt,device=0x00158d0007d762e0 {fields} {utc_ns(2022, 1, 28, 19, 12, 23)}",)
    assert timed.own_time


def test_zigbee2mqtt_on_off_words_and_nested_objects() -> None:
    p = parser("zigbee2mqtt")
    # IKEA LED1545G12 [docs/guide/usage/mqtt_topics_and_messages.md]
    assert parse(p, "zigbee2mqtt/Kitchen bulb",
                 '{"state": "ON", "brightness": 215, "color_temp": 325}').lines == (
        f"zigbee2mqtt,device=Kitchen\\ bulb brightness=215,color_temp=325,state=true {T}",)
    # the update object [docs/guide/usage/ota_updates.md]
    assert parse(p, "zigbee2mqtt/Kitchen bulb",
                 '{"update": {"state": "updating","progress":13.37,"remaining": 219}}').lines == (
        f'zigbee2mqtt,device=Kitchen\\ bulb update_progress=13.37,update_remaining=219,'
        f'update_state="updating" {T}',)
    # a field keeps its first type: "TOGGLE" after "ON" would be a string in a bool field
    got = parse(p, "zigbee2mqtt/Kitchen bulb", '{"state": "TOGGLE", "brightness": 10}')
    assert got.lines == (f"zigbee2mqtt,device=Kitchen\\ bulb brightness=10 {T}",)
    assert got.drop_reason == "field 'state' = 'TOGGLE' is not a bool"


# -- Tasmota -----------------------------------------------------------------------


def test_tasmota_sensor_local_time_in_the_device_zone() -> None:
    p = parser("tasmota", timezone="Europe/Berlin")
    # Sonoff POW [tasmota/docs docs/devices/Sonoff-Pow-R2.md]; Time is local (CET, +01:00)
    got = parse(p, "tele/pow1/SENSOR",
                '{"Time":"2018-02-15T17:37:10","ENERGY":{"TotalStartTime":"2018-11-14T18:39:40",'
                '"Total":6.294,"Yesterday":5.340,"Today":0.954,"Period":217,"Power":2635,'
                '"ApparentPower":2650,"ReactivePower":282,"Factor":0.99,"Voltage":227,'
                '"Current":11.661}}')
    assert got.lines == (
        "tasmota,device=pow1,kind=SENSOR ENERGY_ApparentPower=2650,ENERGY_Current=11.661,"
        "ENERGY_Factor=0.99,ENERGY_Period=217,ENERGY_Power=2635,ENERGY_ReactivePower=282,"
        "ENERGY_Today=0.954,ENERGY_Total=6.294,ENERGY_Voltage=227,ENERGY_Yesterday=5.34 "
        f"{utc_ns(2018, 2, 15, 16, 37, 10)}",)
    # BME280 [docs/BME280.md]: the unit strings become tags; summer time (CEST, +02:00)
    got = parse(p, "tele/tasmota/SENSOR",
                '{\n  "Time": "2019-11-03T19:34:28",\n  "BME280": {\n    "Temperature": 21.7,\n'
                '    "Humidity": 66.6,\n    "Pressure": 988.6\n  },\n  "PressureUnit": "hPa",\n'
                '  "TempUnit": "C"\n}')
    assert got.lines == (
        "tasmota,PressureUnit=hPa,TempUnit=C,device=tasmota,kind=SENSOR BME280_Humidity=66.6,"
        f"BME280_Pressure=988.6,BME280_Temperature=21.7 {utc_ns(2019, 11, 3, 18, 34, 28)}",)


def test_tasmota_state_with_offset_power_word_and_lwt() -> None:
    p = parser("tasmota", timezone="America/New_York")  # the offset in the payload wins
    # SetOption52 [docs/DeepSleep.md]
    got = parse(p, "tele/demo-sensor/STATE",
                '{"Time":"2021-06-27T15:03:44+02:00","Uptime":"0T00:00:13","UptimeSec":13,'
                '"Heap":28,"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":1,'
                '"POWER":"ON","Wifi":{"AP":1,"SSId":"DEMOAP","BSSId":"XX:XX:XX:XX:XX:XX",'
                '"Channel":1,"Mode":"11n","RSSI":86,"Signal":-57,"LinkCount":1,'
                '"Downtime":"0T00:00:07"}}')
    assert got.lines == (
        "tasmota,device=demo-sensor,kind=STATE Heap=28,LoadAvg=19,MqttCount=1,POWER=true,"
        "Sleep=50,UptimeSec=13,Wifi_AP=1,Wifi_Channel=1,Wifi_LinkCount=1,Wifi_RSSI=86,"
        f"Wifi_Signal=-57 {utc_ns(2021, 6, 27, 13, 3, 44)}",)
    # LWT [docs/MQTT.md]: text, no time of its own
    assert parse(p, "tele/tasmota_XXXXXX/LWT", "Offline").lines == (
        f"tasmota,device=tasmota_XXXXXX,kind=LWT value=false {T}",)
    # stat/<topic>/POWER [docs/MQTT.md], through the preset with its own topic
    power = parser("tasmota", topic="stat/{device}/{field}")
    assert parse(power, "stat/tasmota_switch/POWER", "OFF").lines == (
        f"tasmota,device=tasmota_switch POWER=false {T}",)


def test_tasmota_epoch_time_number() -> None:
    # Time 2 [docs/DeepSleep.md]: Epoch next to Time; read Epoch (UTC seconds) instead
    p = parser("tasmota", time={"key": "Epoch", "precision": "s"}, skip=["Time"])
    got = parse(p, "tele/tasmota/STATE",
                '{"Time":"2019-09-04T13:08:48","Epoch":1567595328,"Uptime":"0T00:00:14",'
                '"UptimeSec":14,"Heap":24,"SleepMode":"Dynamic","Sleep":50,"LoadAvg":20,'
                '"MqttCount":1,"Wifi":{"AP":1,"SSId":"MyWLAN","BSSId":"AA:FF:AA:AA:AA:AA",'
                '"Channel":11,"RSSI":100,"LinkCount":1,"Downtime":"0T00:00:08","DeepSleep":300,'
                '"Heap":25160}}')
    assert got.lines[0].endswith(" 1567595328000000000")
    assert "Epoch=" not in got.lines[0] and "Time=" not in got.lines[0]


# -- Shelly Gen2 -------------------------------------------------------------------


def test_shelly_switch_status_arrays_flattened_nulls_dropped() -> None:
    # Switch status [shelly-api-docs gen2 Components/FunctionalComponents/Switch]; the
    # values after "total" are the research note's own (the page stops there)
    got = parse(parser("shelly"), "shellyplus1-a8032abe54dc/status/switch:0",
                '{"id":0,"source":"timer","output":false,"timer_started_at":1626942399.36,'
                '"timer_duration":60,"apower":0,"voltage":237.571,"aenergy":{"total":14.093,'
                '"by_minute":[0.000,0.000,0.000],"minute_ts":1626942420},'
                '"temperature":{"tC":null,"tF":null}}')
    assert got.lines == (
        "shelly,component=switch:0,device=shellyplus1-a8032abe54dc aenergy_by_minute_0=0,"
        "aenergy_by_minute_1=0,aenergy_by_minute_2=0,aenergy_minute_ts=1626942420,"
        "aenergy_total=14.093,apower=0,output=false,source=\"timer\",timer_duration=60,"
        f"timer_started_at=1626942399.36,voltage=237.571 {T}",)
    assert got.dropped_fields == 2  # temperature.tC and .tF: "number or null"


def test_shelly_notify_status_paths_with_index_and_own_time() -> None:
    # NotifyStatus Example 1 [shelly-api-docs gen2 General/Notifications]
    p = parser(None, topic="{device}/events/rpc", format="json", measurement="shelly",
               fields={"output": "params.switch:0.output", "source": "params.switch:0.source"},
               time={"key": "params.ts", "precision": "s"})
    got = parse(p, "shellypro4pm-f008d1d8b8b8/events/rpc",
                '{\n"src": "shellypro4pm-f008d1d8b8b8",\n"dst": "user_1",\n"method": '
                '"NotifyStatus",\n"params": {\n"ts": 1631186545.04,\n"switch:0": {\n"id": 0,\n'
                '"output": true,\n"source": "button"\n}\n}\n}')
    assert got.lines == ('shelly,device=shellypro4pm-f008d1d8b8b8 output=true,source="button" '
                         "1631186545040000000",)
    # Example 2: a partial frame without the switch: its fields are missing, counted
    got = parse(p, "shellypro4pm-f008d1d8b8b8/events/rpc",
                '{\n"src": "shellypro4pm-f008d1d8b8b8",\n"dst": "user_1",\n"method": '
                '"NotifyStatus",\n"params": {\n"ts": 1624348482.25,\n"cloud": {\n"connected": '
                'false\n}\n}\n}')
    assert (got.lines, got.dropped_fields) == ((), 2)
    by_minute = parser(None, topic="s", format="json", fields={"last": "aenergy.by_minute[0]"})
    assert parse(by_minute, "s", '{"aenergy":{"by_minute":[12.5,3]}}').lines == (
        f"mqtt last=12.5 {T}",)


# -- ESPHome -----------------------------------------------------------------------


@pytest.mark.parametrize("topic,payload,line", [
    # [esphome/esphome esphome/components/mqtt/mqtt_sensor.cpp] "%.*f" of the state
    ("livingroom/sensor/living_room_temperature/state", "23.5",
     "esphome,component=sensor,node=livingroom living_room_temperature=23.5"),
    # [esphome/components/mqtt/mqtt_binary_sensor.cpp] exactly "ON" or "OFF"
    ("livingroom/binary_sensor/front_door/state", "ON",
     "esphome,component=binary_sensor,node=livingroom front_door=true"),
    ("livingroom/binary_sensor/front_door/state", "OFF",
     "esphome,component=binary_sensor,node=livingroom front_door=false"),
])
def test_esphome_states(topic: str, payload: str, line: str) -> None:
    assert parse(parser("esphome"), topic, payload).lines == (f"{line} {T}",)


def test_esphome_nan_drops_the_reading() -> None:
    # [esphome/components/mqtt/mqtt_sensor.cpp]: NaN is printed as "nan"
    got = parse(parser("esphome"), "livingroom/sensor/living_room_temperature/state", "nan")
    assert (got.lines, got.dropped_fields) == ((), 1)
    # availability [esphome-docs components/mqtt.rst] is two levels: not this template
    assert parser("esphome").match("livingroom/status") is None


# -- Home Assistant mqtt_statestream -------------------------------------------------


def test_homeassistant_states_and_json_attributes() -> None:
    p = parser("homeassistant")
    # [home-assistant.io source/_integrations/mqtt_statestream.markdown]
    assert parse(p, "homeassistant/light/master_bedroom_dimmer/state", "on").lines == (
        f"master_bedroom_dimmer,domain=light state=true {T}",)
    assert parse(p, "homeassistant/light/master_bedroom_dimmer/last_updated",
                 "2017-10-01T23:20:30.920969+00:00").lines == (
        f'master_bedroom_dimmer,domain=light last_updated="2017-10-01T23:20:30.920969+00:00" {T}',)
    # [home-assistant/core homeassistant/components/mqtt_statestream + helpers/json.py]
    assert parse(p, "homeassistant/sensor/outdoor_temperature/unit_of_measurement",
                 '"\\u00b0C"').lines == (
        f'outdoor_temperature,domain=sensor unit_of_measurement="°C" {T}',)
    # [home-assistant/core tests/components/mqtt_statestream/test_init.py]
    test = parser("homeassistant", topic="pub/{domain}/{measurement}/{field}")
    assert parse(test, "pub/fake/entity/testing", '"YES"').lines == (
        f'entity,domain=fake testing="YES" {T}',)
    assert parse(test, "pub/fake/entity/list", '["a", "b", "c"]').lines == (
        f'entity,domain=fake list_0="a",list_1="b",list_2="c" {T}',)
    assert parse(test, "pub/fake/entity/bool", "false").lines == (
        f"entity,domain=fake bool=false {T}",)
    assert parse(test, "pub/fake/entity/state", "off").lines == (
        f"entity,domain=fake state=false {T}",)
    # the docs say states are JSON-serialised ('"on"'), the code sends them raw: both work
    assert parse(test, "pub/fake/entity/state", '"on"').lines == (
        f"entity,domain=fake state=true {T}",)


def test_homeassistant_unavailable_after_numbers_keeps_the_float_field() -> None:
    p = parser("homeassistant")
    topic = "homeassistant/sensor/outdoor_temperature/state"
    assert parse(p, topic, "21.4").lines == (f"outdoor_temperature,domain=sensor state=21.4 {T}",)
    # [home-assistant/core homeassistant/const.py] STATE_UNAVAILABLE, STATE_UNKNOWN
    for word in ("unavailable", "unknown"):
        got = parse(p, topic, word)
        assert (got.lines, got.dropped_fields) == ((), 1)
        assert got.drop_reason == f"field 'state' is {word!r} (no reading)"
    typed = parser("homeassistant", types={"state": "float"})
    assert parse(typed, topic, '"21.4"').lines == (
        f"outdoor_temperature,domain=sensor state=21.4 {T}",)
    assert parse(typed, topic, "unavailable").dropped_fields == 1


# -- OwnTracks ---------------------------------------------------------------------


def test_owntracks_location_with_its_own_time() -> None:
    p = parser("owntracks")
    # mosquitto_sub -v output [owntracks/booklet docs/guide/quicksetup.md]
    got = parse(p, "owntracks/jane/nokia",
                '{"_type":"location","SSID":"mywifi","alt":154,"batt":53,"conn":"w",'
                '"created_at":1706856299,"lat":48.856826,"lon":2.292713,"tid":"j1",'
                '"tst":1706856298,"vel":0}')
    assert got.lines == ('owntracks,device=nokia,tid=j1,user=jane alt=154i,batt=53i,conn="w",'
                         "created_at=1706856299i,lat=48.856826,lon=2.292713,vel=0i "
                         "1706856298000000000",)
    assert got.own_time
    # iOS shape [docs/tech/lua.md]
    got = parse(p, "owntracks/jane/phone",
                '{"batt":-1,"lon":2.29513,"lat":48.85833,"t":"u","tst":1441984413,'
                '"_type":"location","tid":"JJ"}')
    assert got.lines == ('owntracks,device=phone,tid=JJ,user=jane batt=-1i,lat=48.85833,'
                         'lon=2.29513,t="u" 1441984413000000000',)


def test_owntracks_lwt_is_refused_with_the_reason() -> None:
    # {"_type":"lwt", ...} on the same topic [docs/tech/json.md]; tst value: the note's own
    with pytest.raises(Rejected) as info:
        parse(parser("owntracks"), "owntracks/jane/nokia", '{"_type":"lwt","tst":1706856298}')
    assert info.value.reason == "_type is 'lwt'; this subscription keeps only _type: location"
    assert parser("owntracks").match("owntracks/jane/nokia/event") is None


# -- time zones and epochs -----------------------------------------------------------


@pytest.mark.parametrize("stamp,expected", [
    (1_700_000_000, 1_700_000_000 * 10**9), (1_700_000_000_123, 1_700_000_000_123 * 10**6),
    (1_700_000_000_123_456, 1_700_000_000_123_456 * 10**3), (T, T),
    ("1700000000.5", 17 * 10**17 + 5 * 10**8),
])
def test_epoch_precision_auto(stamp: Any, expected: int) -> None:
    p = parser(None, topic="e", format="json", time={"key": "t", "precision": "auto"})
    got = p.parse("e", f'{{"v": 1, "t": {stamp if isinstance(stamp, int) else repr(stamp)}}}'
                  .replace("'", '"').encode(), 0)
    assert got.lines == (f"mqtt v=1 {expected}",)


def test_naive_strptime_time_in_zone_and_dst() -> None:
    p = parser(None, topic="e", format="json", timezone="Europe/Berlin",
               time={"key": "t", "format": "%Y.%m.%d %H:%M:%S"})
    # old STATUS shape "2018.02.15 01:00:50" [tasmota/docs docs/JSON-Status-Responses.md]
    assert parse(p, "e", '{"v": 1, "t": "2018.02.15 01:00:50"}').lines == (
        f"mqtt v=1 {utc_ns(2018, 2, 15, 0, 0, 50)}",)
    assert parse(p, "e", '{"v": 1, "t": "2024.07.01 12:00:00"}').lines == (
        f"mqtt v=1 {utc_ns(2024, 7, 1, 10, 0, 0)}",)


def test_float_seconds_are_read_as_the_decimal_written() -> None:
    p = parser(None, topic="e", format="json", time={"key": "ts", "precision": "s"})
    # 1624348482.25 [shelly NotifyStatus Example 2]; 1700000000.123 as a float is
    # 1700000000.1229999065... and would give ...122999808 ns
    assert parse(p, "e", '{"v": 1, "ts": 1700000000.123}').lines == (
        "mqtt v=1 1700000000123000000",)
    assert parse(p, "e", '{"v": 1, "ts": 1624348482.25}').lines == (
        "mqtt v=1 1624348482250000000",)
