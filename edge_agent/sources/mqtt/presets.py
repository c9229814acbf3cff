"""Subscription presets for the firmware people own: ``preset: zigbee2mqtt`` and so on.

A preset is the subscription keys of one firmware family (topic template,
format, measurement, time key, booleans, field rules). :func:`expand` fills
them in under what the user wrote: a key the user gives wins; ``types``,
``booleans``, ``tags`` and ``time`` are merged key by key; ``skip``,
``tag_keys`` and ``decode`` are joined. docs/presets.md shows each preset with the real
message it was built from and where that shape is documented.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

__all__ = ["PRESETS", "PRESET_NAMES", "expand"]

PRESETS: Mapping[str, Mapping[str, Any]] = {
    # zigbee2mqtt/FRIENDLY_NAME, always JSON; friendly names may hold spaces
    # (docs/guide/configuration/devices-groups.md). bridge/* and */availability
    # are two levels deep and so not matched. "state" is "ON"/"OFF", covers
    # "OPEN"/"CLOSE", locks "LOCK"/"UNLOCK" (docs/guide/usage/exposes.md).
    "zigbee2mqtt": {
        "topic": "zigbee2mqtt/{device}",
        "format": "json",
        "measurement": "zigbee2mqtt",
        "booleans": {"close": False, "lock": True, "unlock": False},
        "skip": ("last_seen", "elapsed", "device_*", "update_available"),
    },
    # tele/<topic>/SENSOR and STATE are JSON, tele/<topic>/LWT is Online/Offline
    # (tasmota docs MQTT.md). "Time" is the device's local time without an
    # offset unless SetOption52 is on: set timezone: to the device's zone.
    "tasmota": {
        "topic": "tele/{device}/{kind}",
        "format": "auto",
        "measurement": "tasmota",
        "time": {"key": "Time", "precision": "s"},
        "tag_keys": ("TempUnit", "PressureUnit"),
        "skip": ("Epoch", "Uptime", "SleepMode", "Wifi_SSId", "Wifi_BSSId", "Wifi_Mode",
                 "Wifi_Downtime", "*_TotalStartTime"),
    },
    # <topic_prefix>/status/<component:id>: a component's whole status as JSON,
    # no timestamp (shelly-api-docs gen2 Mqtt, Switch). temperature.tC is
    # "number or null"; aenergy.by_minute is an array (by_minute_0..2).
    "shelly": {
        "topic": "{device}/status/{component}",
        "format": "json",
        "measurement": "shelly",
        "skip": ("id",),
    },
    # <prefix>/<component type>/<object id>/state: plain text ("23.5", "ON",
    # "nan"), a light's state JSON (esphome docs components/mqtt.rst).
    "esphome": {
        "topic": "{node}/{component}/{field}/state",
        "format": "auto",
        "measurement": "esphome",
    },
    # mqtt_statestream: base/<domain>/<entity>/state and one topic per
    # attribute, attributes JSON-encoded ("\u00b0C"), states raw ("on", "21.4",
    # "unavailable"). One measurement per entity: a "state" field is a number
    # for one entity and a bool for another, and InfluxDB keeps one type per
    # field of a measurement.
    "homeassistant": {
        "topic": "homeassistant/{domain}/{measurement}/{field}",
        "format": "auto",
        "skip": ("config_*",),
    },
    # owntracks/<user>/<device>: _type location (and lwt on the same topic),
    # tst is the fix's epoch time in seconds (booklet docs/tech/json.md).
    "owntracks": {
        "topic": "owntracks/{user}/{device}",
        "format": "json",
        "measurement": "owntracks",
        "time": {"key": "tst", "precision": "s"},
        "where": {"_type": "location"},
        "tag_keys": ("tid",),
        "types": {"acc": "int", "alt": "int", "batt": "int", "bs": "int", "cog": "int",
                  "vac": "int", "vel": "int", "created_at": "int"},
        "skip": ("_type", "_id", "topic", "inregions*", "inrids*", "SSID", "BSSID"),
    },
}
PRESET_NAMES = tuple(PRESETS)
_MERGED = ("types", "booleans", "tags", "time")
_JOINED = ("skip", "tag_keys", "decode")


def expand(name: str, given: Mapping[str, Any]) -> Dict[str, Any]:
    """The subscription keys of preset ``name`` with the user's ``given`` keys over them."""
    out: Dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v)
                           for k, v in PRESETS[name].items()}
    for key, value in given.items():
        if value is None or key == "preset":
            continue
        if key in _MERGED and isinstance(value, Mapping):
            out[key] = {**dict(out.get(key) or {}), **dict(value)}
        elif key in _JOINED:
            joined = list(out.get(key) or ())
            joined.extend(v for v in value if v not in joined)
            out[key] = tuple(joined)
        else:
            out[key] = value
    return out
