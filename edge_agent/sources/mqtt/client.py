"""The paho client for the MQTT source: connection settings, TLS, backoff, and a
fast receive path.

``_Client`` reads the socket 64 KiB at a time (stock paho makes three ``recv``
calls and a ``select`` per packet) and decodes QoS 0/1 PUBLISH packets itself,
straight into the source's queue, without building ``MQTTMessage`` and MQTT 5
``Properties`` objects; QoS 2 and every other packet take paho's own path.
It overrides two of paho's private methods (``_sock_recv``,
``_handle_publish``) and reads a few of its private attributes: those names are
checked once at import (:data:`FAST_PATH_MISSING`), and when a paho release lacks
one the source uses paho's stock client (:func:`client_class`, one warning).
``decode_publish`` is tested against paho's own decoder.
"""

from __future__ import annotations

import inspect
import logging
import random
from typing import Any, Callable, Optional, Tuple, Union
from urllib.parse import urlsplit

from ...errors import ConfigError
from ...retry import RetrySchedule
from .payloads import _opt
from .tls import ConnectErrors, configure_tls

#: What pyproject declares; the import check below says the same thing in one line.
PAHO_RANGE = ">=2.0,<3"
try:
    import paho.mqtt
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    mqtt.CallbackAPIVersion  # noqa: B018 - the 2.x constructor API; absent before 2.0
except (ImportError, AttributeError) as exc:
    raise ImportError(f"the MQTT source needs paho-mqtt {PAHO_RANGE} ({exc}); "
                      f"install it with: pip install 'paho-mqtt{PAHO_RANGE}'") from None

__all__ = ["DEFAULT_RECEIVE_MAXIMUM", "DEFAULT_RECONNECT_MAX", "DEFAULT_SESSION_EXPIRY",
           "FAST_PATH_MISSING", "backoff_delay", "client_class", "decode_publish",
           "decode_publish_ids"]

log = logging.getLogger("edge_agent.sources.mqtt")

DEFAULT_RECEIVE_MAXIMUM = 1000  # QoS 1 messages in flight towards us

DEFAULT_SESSION_EXPIRY = 7 * 86_400
DEFAULT_RECONNECT_MAX = 30.0
READ_SIZE = 65536  # bytes per socket read of the network thread

_Sink = Callable[[bytes, bytes, int, int, bool, Tuple[int, ...]], None]


def decode_publish(header: int, packet: Union[bytes, bytearray], v5: bool
                   ) -> Tuple[bytes, bytes, int, int, bool]:
    """``(topic, payload, qos, mid, dup)`` of a PUBLISH packet (after its fixed header)."""
    topic, payload, qos, mid, dup, _ = decode_publish_ids(header, packet, v5)
    return topic, payload, qos, mid, dup


# MQTT 5 section 2.2.2.2: the value sizes of the properties a PUBLISH may carry
# (-2: a 2-byte length and that many bytes; -4: two of those; 0: a variable byte integer).
_PUBLISH_PROPERTY_SIZES = {0x01: 1, 0x02: 4, 0x23: 2, 0x08: -2, 0x09: -2, 0x03: -2,
                           0x26: -4, 0x0B: 0}
_SUBSCRIPTION_IDENTIFIER = 0x0B


def _varint(packet: bytes, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = packet[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ValueError("PUBLISH variable byte integer is malformed")


def _subscription_ids(packet: bytes, pos: int, end: int) -> Tuple[int, ...]:
    """The Subscription Identifiers among the properties in ``packet[pos:end]``."""
    ids: Tuple[int, ...] = ()
    while pos < end:
        prop = packet[pos]
        pos += 1
        size = _PUBLISH_PROPERTY_SIZES.get(prop)
        if size is None:
            raise ValueError(f"PUBLISH property 0x{prop:02x} is not allowed in a PUBLISH")
        if size == 0:
            value, pos = _varint(packet, pos)
            ids += (value,)
        elif size > 0:
            pos += size
        else:
            for _ in range(-size // 2):
                pos += 2 + ((packet[pos] << 8) | packet[pos + 1])
    if pos != end:
        raise ValueError("PUBLISH properties run past their length")
    return ids


def decode_publish_ids(header: int, packet: Union[bytes, bytearray], v5: bool
                       ) -> Tuple[bytes, bytes, int, int, bool, Tuple[int, ...]]:
    """``(topic, payload, qos, mid, dup, subscription_ids)`` of a PUBLISH packet.

    MQTT 3.1.1 section 3.3 / MQTT 5 section 3.3: topic length (2 bytes), topic,
    packet id (QoS > 0), MQTT 5 properties (a variable byte integer length,
    then the properties: only the Subscription Identifiers are read, which tell
    the copies of a message matching overlapping subscriptions apart), payload.
    Raises ``ValueError`` on a truncated or malformed packet.
    """
    qos = (header & 0x06) >> 1
    packet = bytes(packet)  # paho collects it in a bytearray; topics key a dict
    ids: Tuple[int, ...] = ()
    try:
        end = 2 + ((packet[0] << 8) | packet[1])
        if end > len(packet):
            raise ValueError("PUBLISH topic runs past the packet")
        topic = packet[2:end]
        mid = 0
        if qos:
            mid = (packet[end] << 8) | packet[end + 1]
            end += 2
        if v5:
            length, end = _varint(packet, end)
            if length:
                if end + length > len(packet):
                    raise ValueError("PUBLISH properties run past the packet")
                ids = _subscription_ids(packet, end, end + length)
            end += length
            if end > len(packet):
                raise ValueError("PUBLISH properties run past the packet")
    except IndexError:
        raise ValueError("PUBLISH packet is truncated") from None
    return topic, packet[end:], qos, mid, bool(header & 0x08), ids


class _Client(mqtt.Client):
    """paho's client with a cheaper receive path for a high message rate.

    * Reads the socket :data:`READ_SIZE` bytes at a time and serves paho's
      small reads (1 byte of command, 1 of length, then the rest) from that
      buffer; ``loop_read`` keeps going while buffered bytes remain, since
      ``select`` cannot see them.
    * With ``publish_sink`` set, QoS 0 and 1 PUBLISH packets go straight to it
      as ``(topic, payload, qos, mid, dup, subscription_ids)``; QoS 2 (which needs paho's
      PUBREC/PUBREL state) takes paho's own path and ``on_message``.
    """

    publish_sink: Optional[_Sink] = None
    _rbuf = b""
    _rpos = 0
    _rsock: Any = None

    def _sock_recv(self, bufsize: int) -> bytes:
        buf = self._rbuf
        if buf:
            if self._rsock is self._sock:
                pos = self._rpos
                chunk = buf[pos:pos + bufsize]
                pos += len(chunk)
                if pos >= len(buf):
                    self._rbuf, self._rpos = b"", 0
                else:
                    self._rpos = pos
                return chunk
            self._rbuf, self._rpos = b"", 0  # bytes of an old connection
        data = super()._sock_recv(max(bufsize, READ_SIZE))
        if len(data) > bufsize:
            self._rbuf, self._rpos, self._rsock = data, bufsize, self._sock
            return data[:bufsize]
        return data

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTT_ERR_SUCCESS and self._rbuf and self._sock is not None \
                and self._rsock is self._sock:
            rc = super().loop_read(max_packets)
        return rc

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        sink = self.publish_sink
        header = self._in_packet["command"]
        if sink is None or header & 0x06 == 0x04:  # QoS 2: paho's state machine
            return super()._handle_publish()
        try:
            topic, payload, qos, mid, dup, ids = decode_publish_ids(
                header, self._in_packet["packet"], self._protocol == mqtt.MQTTv5)
        except ValueError as exc:
            return _malformed(self, str(exc))
        if qos == 3:
            return _malformed(self, "PUBLISH with QoS 3")
        sink(topic, payload, qos, mid, dup, ids)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return mqtt.MQTT_ERR_SUCCESS


def _malformed(client: mqtt.Client, reason: str) -> mqtt.MQTTErrorCode:
    # What paho 2.2 does with its own MalformedPacket (a protocol error: paho drops
    # the connection), written here so every 2.x behaves the same: 2.0 and 2.1 have
    # no paho.mqtt.exception, and an exception would end their network thread.
    client._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", reason)
    return mqtt.MQTT_ERR_PROTOCOL


#: paho's private names the fast path relies on: methods it overrides or calls
#: (with their parameters) and attributes it reads on a client instance.
_PRIVATE_METHODS = {"_sock_recv": ("bufsize",), "_handle_publish": (), "_send_puback": ("mid",),
                    "_easy_log": ("level", "fmt"), "loop_read": ("max_packets",)}
_PRIVATE_ATTRIBUTES = ("_in_packet", "_protocol", "_manual_ack", "_sock")


def missing_private_names(base: Any) -> Tuple[str, ...]:
    """The private names of :data:`_PRIVATE_METHODS` / :data:`_PRIVATE_ATTRIBUTES`
    that paho client class ``base`` lacks (or has with other parameters)."""
    missing = []
    for name, params in _PRIVATE_METHODS.items():
        method = getattr(base, name, None)
        try:
            names = tuple(inspect.signature(method).parameters)[1:] if method else None
        except (TypeError, ValueError):
            names = None
        if names is None or names[:len(params)] != params:
            missing.append(f"{name}({', '.join(params)})")
    try:
        probe = base(mqtt.CallbackAPIVersion.VERSION2)  # no I/O: paho connects later
        missing += [name for name in _PRIVATE_ATTRIBUTES if not hasattr(probe, name)]
        if not isinstance(getattr(probe, "_in_packet", None), dict):
            missing.append("_in_packet (a dict)")
    except Exception as exc:  # an API change this check cannot foresee: fall back
        missing.append(f"a client instance ({exc})")
    return tuple(dict.fromkeys(missing))


#: Checked once at import: empty when this paho has what ``_Client`` needs.
FAST_PATH_MISSING = missing_private_names(mqtt.Client)
_warned = False


def client_class() -> Any:
    """``_Client`` when this paho has the private names it uses, else paho's stock
    client (every message then takes paho's path and ``on_message``); one warning."""
    global _warned
    if not FAST_PATH_MISSING:
        return _Client
    if not _warned:
        _warned = True
        log.warning("mqtt: paho-mqtt %s lacks %s; using its stock client (slower receive path)",
                    getattr(paho.mqtt, "__version__", "?"), ", ".join(FAST_PATH_MISSING))
    return mqtt.Client


def backoff_delay(attempt: int, cap: float, rng: random.Random, base: float = 1.0) -> float:
    """Seconds before reconnect ``attempt`` (1, 2, ...): the delivery backoff
    (:class:`RetrySchedule`) from ``base / 2``, so uniform in ``[u/2, u)`` with
    ``u = base * 2**(attempt-1)``, and in the band below ``cap`` once there:
    jittered so a fleet of agents does not reconnect in step.
    """
    schedule = RetrySchedule(retry_interval=base / 2, max_retry_delay=cap,
                             attempt=max(attempt, 1) - 1)
    return schedule.next(0.0, rng)[0]


def _protocol(cfg: Any) -> mqtt.MQTTProtocolVersion:
    text = str(_opt(cfg, "protocol", 5)).lower().lstrip("v")
    if text in ("5", "5.0"):
        return mqtt.MQTTv5
    if text in ("3.1.1", "311", "4"):
        return mqtt.MQTTv311
    raise ConfigError(f"mqtt protocol {text!r} is not supported: use 5 or 3.1.1")


def _build_client(cfg: Any, client_id: str, persistent: bool, manual_ack: bool,
                  receive_maximum: int, client_class: Any = mqtt.Client
                  ) -> Tuple[Any, Callable[[], None]]:
    """A configured paho client and a function that starts connecting it."""
    url = urlsplit(str(_opt(cfg, "url", "mqtt://localhost:1883")))
    scheme = (url.scheme or "mqtt").lower()
    if scheme not in ("mqtt", "tcp", "mqtts", "ssl", "tls"):
        raise ConfigError(f"mqtt url scheme {scheme!r} is not supported: use mqtt:// or mqtts://")
    secure = scheme in ("mqtts", "ssl", "tls")
    host = url.hostname or "localhost"
    port = url.port or (8883 if secure else 1883)
    protocol = _protocol(cfg)
    if protocol == mqtt.MQTTv5:
        client = client_class(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                              protocol=protocol, manual_ack=manual_ack)
    else:
        client = client_class(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                              clean_session=not persistent, protocol=protocol,
                              manual_ack=manual_ack)
    username = _opt(cfg, "username", None) or url.username
    if username:
        client.username_pw_set(str(username), _opt(cfg, "password", None) or url.password)
    tls = _opt(cfg, "tls", None)
    if secure or tls is not None:
        configure_tls(client, tls)
    client.edge_connect_errors = ConnectErrors(client, host, port, tls, secure or tls is not None)
    keepalive = int(_opt(cfg, "keepalive", 60))

    def connect() -> None:
        if protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            expiry = int(_opt(cfg, "session_expiry", DEFAULT_SESSION_EXPIRY)) if persistent else 0
            props.SessionExpiryInterval = min(expiry, 0xFFFFFFFF)
            props.ReceiveMaximum = receive_maximum
            client.connect_async(host, port, keepalive, clean_start=not persistent,
                                 properties=props)
        else:
            client.connect_async(host, port, keepalive)
        client.loop_start()

    return client, connect
