"""The ``sources:`` list: i2c, serial and mqtt entries, and MQTT topic templates."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ..errors import ConfigError
from ..sensors import I2C_DRIVERS as _I2C_REGISTRY
from ..sensors import SERIAL_PARSERS as _SERIAL_REGISTRY
from ..sensors import OptionError
from .model import (
    I2CSourceConfig,
    MqttSourceConfig,
    SerialSourceConfig,
    SourceConfig,
    Subscription,
    TimeSpec,
    TlsConfig,
)
from .schema import Context, Section
from .tls import MQTT_KEYS, check_tls, tls_path, verify_off_warning
from .yamlpos import Mark, YMap, YScalar

__all__ = ["I2C_DRIVERS", "SERIAL_DRIVERS", "SOURCE_TYPES", "parse_sources", "parse_topic"]

SOURCE_TYPES = ("i2c", "serial", "mqtt")
# The one registry is edge_agent.sensors: config accepts exactly what a source can build.
I2C_DRIVERS = tuple(_I2C_REGISTRY)
SERIAL_DRIVERS = tuple(_SERIAL_REGISTRY)
FORMATS = ("value", "json", "auto", "influx", "kv")
PRECISIONS = ("ns", "us", "ms", "s", "auto")
VALUE_TYPES = ("int", "float", "str", "bool")

_COMMON = ("name", "type", "interval", "measurement", "tags", "enabled")
_KEYS = {
    "i2c": _COMMON + ("driver", "bus", "address", "options"),
    "serial": _COMMON + ("driver", "port", "baudrate", "bytesize", "parity", "stopbits",
                         "timeout", "options"),
    "mqtt": _COMMON + ("url", "client_id", "username", "password", "protocol", "qos",
                       "clean_session", "session_expiry", "keepalive", "tls", "max_payload",
                       "reconnect_max", "subscriptions"),
}
_TLS_KEYS = ("ca_cert", "certfile", "keyfile", "keyfile_password", "verify")
_SUBSCRIPTION_KEYS = ("preset", "topic", "format", "measurement", "tags", "field", "fields",
                      "types", "time", "timezone", "booleans", "skip", "tag_keys", "where",
                      "decode")
_PARITY = {"none": "N", "even": "E", "odd": "O", "mark": "M", "space": "S",
           "n": "N", "e": "E", "o": "O", "m": "M", "s": "S"}
_Fail = Callable[[str], ConfigError]


def _foreign(kind: str) -> Dict[str, str]:
    """Keys of the other source types, for a precise 'does not apply' message."""
    result: Dict[str, str] = {}
    for other, keys in _KEYS.items():
        for key in keys:
            if other != kind and key not in _KEYS[kind]:
                result.setdefault(key, f"'{key}' is for {other} sources, this one is {kind}")
    return result


def parse_sources(
    ctx: Context, top: Section, agent_name: str, interval: float
) -> Tuple[SourceConfig, ...]:
    sources: List[SourceConfig] = []
    seen: Dict[str, Mark] = {}
    for index, node in enumerate(top.items("sources")):
        where = f"sources[{index}]"
        own_keys = tuple(node.items) if isinstance(node, YMap) else ()
        probe = Section(ctx, node, where, own_keys)  # only to read the type first
        probe.required("type", " (one of i2c, serial, mqtt)")
        kind = probe.choice("type", SOURCE_TYPES, "", what="source type")
        section = Section(ctx, node, where, _KEYS[kind], foreign=_foreign(kind))
        name = section.string("name", "")
        section.required("name", " (a unique name for this source, e.g. climate)")
        if name in seen:
            raise section.fail(
                "name",
                f"duplicate source name '{name}' (first used at line {seen[name].line}); "
                "each source needs a unique name",
            )
        seen[name] = section.value_mark("name")
        sources.append(_PARSERS[kind](section, name, agent_name, interval))
    return tuple(sources)


def _common(section: Section, interval: float) -> Dict[str, object]:
    return {
        "interval": section.duration("interval", interval, positive=True),
        "tags": section.string_map("tags"),
        "enabled": section.boolean("enabled", True),
    }


def _driver(section: Section, kind: str, drivers: Tuple[str, ...]) -> str:
    section.required("driver", f" (one of {', '.join(drivers)})")
    return section.choice("driver", drivers, "", what=f"{kind} driver")


def _i2c(section: Section, name: str, agent_name: str, interval: float) -> I2CSourceConfig:
    driver = _driver(section, "i2c", I2C_DRIVERS)
    section.required("bus", " (a bus number like 1, a path like /dev/i2c-1, or emulated)")
    bus_node = section.scalar("bus", "a bus number, a /dev/i2c-N path or emulated")
    assert bus_node is not None
    bus: Union[int, str]
    value = bus_node.value
    if (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
        isinstance(value, str) and (value == "emulated" or value.startswith("/dev/"))
    ):
        bus = value
    elif isinstance(value, str) and value.isdigit():
        bus = int(value)
    else:
        raise section.fail("bus", f"bad bus {bus_node.text!r}; use a bus number like 1, "
                           "a device path like /dev/i2c-1, or emulated")
    section.required("address", " (the 7-bit device address, e.g. 0x76)")
    address = section.integer("address", 0)
    if not 0x03 <= address <= 0x77:
        raise section.fail("address", f"0x{address:02x} is not a 7-bit device address; "
                           "use 0x03 to 0x77 (as `i2cdetect -y 1` shows it, e.g. 0x76)")
    options = section.mapping("options")
    _check_driver(section, options, lambda: _I2C_REGISTRY[driver](None, address, options))
    return I2CSourceConfig(
        name=name, driver=driver, bus=bus, address=address,
        measurement=section.string("measurement", driver),
        options=options, **_common(section, interval),  # type: ignore[arg-type]
    )


def _serial(section: Section, name: str, agent_name: str, interval: float) -> SerialSourceConfig:
    driver = _driver(section, "serial", SERIAL_DRIVERS)
    section.required("port", " (a device or pyserial URL, e.g. /dev/ttyUSB0 or emulated://pms5003)")
    port = section.string("port", "")
    bytesize = section.integer("bytesize", None, minimum=5, maximum=8)
    parity = section.choice("parity", tuple(_PARITY), None, what="parity")
    stopbits: Optional[float] = None
    if section.has("stopbits"):
        stopbits = section.number("stopbits", 1)
        if stopbits not in (1, 1.5, 2):
            raise section.fail("stopbits", f"must be 1, 1.5 or 2, got {stopbits}")
    options = section.mapping("options")
    _check_driver(section, options, lambda: _SERIAL_REGISTRY[driver](options))
    return SerialSourceConfig(
        name=name, driver=driver, port=port,
        baudrate=section.integer("baudrate", 9600, minimum=1),
        bytesize=bytesize, parity=_PARITY[parity] if parity else None, stopbits=stopbits,
        timeout=section.duration("timeout", 1.0),
        measurement=section.string("measurement", driver),
        options=options, **_common(section, interval),  # type: ignore[arg-type]
    )


def _check_driver(section: Section, options: Mapping[str, Any], build: Callable[[], Any]) -> None:
    """Build the driver once, as the source will (constructors do no I/O), so a bad
    option or address is a config error at its line, not a failure at every poll."""
    try:
        build()
    except OptionError as exc:
        opts = section.section("options", tuple(options))
        mark = opts.key_mark(exc.key) if exc.unknown else opts.value_mark(exc.key)
        raise section.ctx.error(mark, f"{opts.name(exc.key)}: {exc.reason}") from None
    except ValueError as exc:  # the address: the drivers check it against the chip's
        raise section.fail("address", str(exc)) from None


def _mqtt(section: Section, name: str, agent_name: str, interval: float) -> MqttSourceConfig:
    section.required("url", " (mqtt://host:1883 or mqtts://host:8883)")
    url = section.string("url", "")
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("mqtt", "mqtts") or not rest.strip("/"):
        raise section.fail("url", f"bad broker URL {url!r}; use mqtt://host[:port] "
                           "or mqtts://host[:port] for TLS")
    tls: Optional[TlsConfig] = None
    if section.has("tls") and scheme.lower() != "mqtts":
        raise section.fail("tls", "TLS settings need an mqtts:// url")
    if scheme.lower() == "mqtts":
        tls = _tls(section.section("tls", _TLS_KEYS))
    measurement = section.string("measurement", "mqtt")
    section.required("subscriptions", " (a list of {topic, format, ...})")
    subscriptions = tuple(
        _subscription(Section(section.ctx, node, f"{section.where}.subscriptions[{i}]",
                              _SUBSCRIPTION_KEYS), measurement)
        for i, node in enumerate(section.items("subscriptions"))
    )
    if not subscriptions:
        raise section.fail("subscriptions", "needs at least one subscription")
    protocol = section.choice("protocol", ("5", "3.1.1"), "5", what="MQTT protocol version",
                              aliases={"5.0": "5", "311": "3.1.1", "3": "3.1.1"})
    return MqttSourceConfig(
        name=name, url=url, subscriptions=subscriptions,
        client_id=section.string("client_id", f"edge-agent-{agent_name}"),
        username=section.string("username", None),
        password=section.string("password", None, secret=True),
        protocol=protocol,
        qos=section.integer("qos", 1, minimum=0, maximum=2),
        clean_session=section.boolean("clean_session", False),
        session_expiry=section.duration("session_expiry", 7 * 86400.0),
        keepalive=section.duration("keepalive", 60.0, positive=True),
        tls=tls,
        max_payload=section.size("max_payload", 256 * 1024),
        reconnect_max=section.duration("reconnect_max", 30.0, positive=True),
        measurement=measurement, **_common(section, interval),  # type: ignore[arg-type]
    )


def _tls(section: Section) -> TlsConfig:
    tls = TlsConfig(
        ca_cert=tls_path(section, "ca_cert"),
        certfile=tls_path(section, "certfile"),
        keyfile=tls_path(section, "keyfile"),
        verify=section.boolean("verify", True),
        keyfile_password=section.string("keyfile_password", None, secret=True),
    )
    if not tls.verify:
        section.ctx.warnings.append(verify_off_warning(section, "verify", "broker", "ca_cert"))
    check_tls(section, MQTT_KEYS, verify=tls.verify, ca=tls.ca_cert, cert=tls.certfile,
              key=tls.keyfile, password=tls.keyfile_password)
    return tls


def _subscription(section: Section, default_measurement: str) -> Subscription:
    """One subscription; a ``preset`` fills in the keys the user did not write."""
    from ..sources.mqtt.presets import PRESET_NAMES, expand
    from ..sources.mqtt.times import load_zone

    preset = section.choice("preset", PRESET_NAMES, None, what="preset")
    hint = "" if preset else " (or a preset: " + ", ".join(PRESET_NAMES) + ")"
    if preset is None:
        section.required("topic", f" (a topic template such as sensors/{{room}}/{{field}}){hint}")
        section.required("format", f" (one of {', '.join(FORMATS)}){hint}")
    given: Dict[str, Any] = {
        "topic": section.string("topic", None),
        "format": section.choice("format", FORMATS, None, what="format"),
        "measurement": section.string("measurement", None),
        "tags": section.string_map("tags") or None,
        "field": section.string("field", None),
        "fields": section.string_map("fields") or None,
        "types": _types(section) or None,
        "time": _time(section),
        "timezone": section.string("timezone", None),
        "booleans": _booleans(section) or None,
        "skip": _names(section, "skip"),
        "tag_keys": _names(section, "tag_keys"),
        "where": section.mapping("where") or None,
        "decode": _names(section, "decode"),
    }
    spec = expand(preset, given) if preset else {k: v for k, v in given.items() if v is not None}
    topic, fmt = str(spec["topic"]), str(spec["format"])
    levels, captures = parse_topic(topic, lambda message: section.fail("topic", message))
    where_ = "this subscription" + (f" (preset {preset})" if preset else "")
    for key, formats in _APPLIES.items():
        if spec.get(key) and fmt not in formats:
            raise section.fail(key, f"applies only to format {' or '.join(formats)}, "
                               f"{where_} has format {fmt}")
    if "field" in captures and fmt not in ("value", "json", "auto"):
        raise section.fail("topic", "{field} in the topic applies only to format value, "
                           "json or auto")
    if "field" in captures and section.has("field"):
        raise section.fail("field", "the topic already captures {field}; use one or the other")
    time = _time_spec(section, spec.get("time"))
    zone = spec.get("timezone") or (spec.get("time") or {}).get("timezone")
    if zone:
        if not time:
            raise section.fail("timezone", "applies to the time: key of the payload "
                               "(a naive timestamp is read in this zone); there is none")
        at = section
        if not section.has("timezone") and section.has("time"):
            at = section.section("time", ("key", "precision", "format", "timezone"))
        load_zone(str(zone), lambda message: at.fail("timezone", message))
    _check_paths(section, dict(spec.get("fields") or {}))
    if "time" in (spec.get("tag_keys") or ()):
        raise section.fail("tag_keys", "InfluxDB refuses a tag named time")
    field = spec.get("field")
    if fmt == "value" and field is None and "field" not in captures:
        field = "value"
    return Subscription(
        topic=topic, format=fmt,
        measurement=str(spec.get("measurement") or default_measurement),
        filter="/".join("+" if level.startswith("{") else level for level in levels),
        levels=levels, captures=captures, tags=dict(spec.get("tags") or {}),
        field=field, fields=dict(spec.get("fields") or {}), types=dict(spec.get("types") or {}),
        time=time, preset=preset, timezone=zone,
        booleans=dict(spec.get("booleans") or {}), skip=tuple(spec.get("skip") or ()),
        tag_keys=tuple(spec.get("tag_keys") or ()), where=dict(spec.get("where") or {}),
        decode=tuple(spec.get("decode") or ()),
    )


_APPLIES = {
    "field": ("value", "json", "auto"), "fields": ("json", "auto"),
    "types": ("value", "json", "kv", "auto"), "time": ("json", "kv", "auto"),
    "booleans": ("value", "json", "kv", "auto"), "skip": ("json", "kv", "auto"),
    "tag_keys": ("json", "kv", "auto"), "where": ("json", "auto"), "decode": ("json", "auto"),
}


def _types(section: Section) -> Dict[str, str]:
    types = section.string_map("types")
    for field_name, type_name in types.items():
        if type_name not in VALUE_TYPES:
            raise section.ctx.error(
                section.section("types", tuple(types)).value_mark(field_name),
                f"{section.name('types')}.{field_name}: unknown type '{type_name}'; "
                f"accepted: {', '.join(VALUE_TYPES)}",
            )
    return types


def _check_paths(section: Section, fields: Dict[str, str]) -> None:
    from ..sources.mqtt.jsonpaths import parse_path

    for name, path in fields.items():
        try:
            parse_path(path)
        except ValueError as exc:
            raise section.ctx.error(section.section("fields", tuple(fields)).value_mark(name),
                                    f"{section.name('fields')}.{name}: {exc}") from None


def _booleans(section: Section) -> Dict[str, bool]:
    """``booleans: {LOCK: true, UNLOCK: false}``: more words for true and false."""
    words = section.string_map("booleans")
    out: Dict[str, bool] = {}
    for word, value in words.items():
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise section.ctx.error(
                section.section("booleans", tuple(words)).value_mark(word),
                f"{section.name('booleans')}.{word}: must be true or false, got {value!r}")
        out[word] = lowered == "true"
    return out


def _names(section: Section, key: str) -> Optional[Tuple[str, ...]]:
    """A list of field names (skip, tag_keys, decode); a single name is a list of one."""
    node = section.get(key)
    if node is None:
        return None
    if isinstance(node, YScalar):
        return (node.text,)
    names = []
    for item in section.items(key):
        if not isinstance(item, YScalar) or item.value is None:
            raise section.ctx.error(item.mark, f"{section.name(key)}: each entry must be a "
                                    "field name")
        names.append(item.text)
    return tuple(names)


def _time(section: Section) -> Optional[Dict[str, Any]]:
    """The ``time:`` keys the user wrote (a preset's are merged under them)."""
    if not section.has("time"):
        return None
    spec = section.section("time", ("key", "precision", "format", "timezone"))
    time_format = spec.string("format", None)
    if time_format is not None and time_format != "iso" and "%" not in time_format:
        raise spec.fail("format", f"unknown time format {time_format!r}: use iso, or a "
                                  "strptime pattern such as %Y-%m-%d %H:%M:%S")
    given = {"key": spec.string("key", None), "format": time_format,
             "precision": spec.choice("precision", PRECISIONS, None, what="precision"),
             "timezone": spec.string("timezone", None)}
    if given["timezone"] and section.has("timezone"):
        raise spec.fail("timezone", "is given twice (here and as the subscription's "
                                    "timezone:); keep one")
    return {k: v for k, v in given.items() if v is not None}


def _time_spec(section: Section, time: Optional[Dict[str, Any]]) -> Optional[TimeSpec]:
    if not time:
        return None
    if not time.get("key"):
        raise section.ctx.error(section.value_mark("time"),
                                f"{section.name('time')}: missing required key 'key' "
                                "(the payload key holding the timestamp)")
    return TimeSpec(key=str(time["key"]), precision=str(time.get("precision") or "s"),
                    format=time.get("format"))


def parse_topic(topic: str, fail: _Fail) -> Tuple[Tuple[str, ...], Dict[str, int]]:
    """Split a topic template into levels and captures; ``fail(message)`` builds the error.

    The rules are the MQTT source's own (:func:`~edge_agent.sources.mqtt.topics.parse_template`).
    """
    from ..sources.mqtt.topics import parse_template, split_share

    kinds = parse_template(topic, fail)
    captures = {text: index for index, (kind, text) in enumerate(kinds) if kind == "cap"}
    return tuple(split_share(topic, fail)[1].split("/")), captures  # inside a $share/<group>/


_PARSERS: Dict[str, Callable[[Section, str, str, float], SourceConfig]] = {
    "i2c": _i2c,
    "serial": _serial,
    "mqtt": _mqtt,
}
