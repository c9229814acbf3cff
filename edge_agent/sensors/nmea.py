"""NMEA 0183 sentences from GPS/GNSS receivers: GGA (fix data) and RMC.

Reference: NMEA 0183 v4.10 sections 5.2 (sentence structure: ``$``, address,
comma-separated fields, ``*`` and a checksum = XOR of all characters between
``$`` and ``*`` as two hex digits, ``<CR><LF>``; at most 82 characters) and
the GGA / RMC sentence definitions. Latitude ``ddmm.mmmm`` and longitude
``dddmm.mmmm`` become decimal degrees, negative south and west.

Any talker is accepted (GP, GN, GL, GA, BD, ...); other sentence types
(GSV, GSA, VTG, ...) are skipped without counting as errors.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ._common import Option, Reading
from ._serial import LineParser

SUPPORTED = ("GGA", "RMC")
MAX_LENGTH = 82  # "$" to "\r\n" inclusive


def checksum(body: str) -> str:
    """The two uppercase hex digits that follow ``*`` for ``body`` (between $ and *)."""
    value = 0
    for char in body:
        value ^= ord(char)  # a non-ASCII character can never match two hex digits
    return f"{value:02X}"


def sentence(body: str) -> bytes:
    """A complete sentence with checksum and CRLF, e.g. ``sentence("GPGGA,...")``."""
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def parse_coordinate(value: str, hemisphere: str, degree_digits: int) -> float:
    """Decimal degrees from ``ddmm.mmmm`` (lat, 2 degree digits) or ``dddmm.mmmm`` (lon, 3)."""
    dot = value.find(".")
    whole = dot if dot >= 0 else len(value)
    if whole < 3 or whole > degree_digits + 2 or not value[:whole].isdigit():
        raise ValueError(f"bad coordinate {value!r}")
    degrees = int(value[: whole - 2])
    minutes = float(value[whole - 2 :])
    limit = 90 if degree_digits == 2 else 180
    if minutes >= 60.0 or degrees + minutes / 60.0 > limit:
        raise ValueError(f"coordinate {value!r} out of range")
    result = degrees + minutes / 60.0
    if hemisphere in ("S", "W"):
        return -result
    if hemisphere not in ("N", "E"):
        raise ValueError(f"bad hemisphere {hemisphere!r}")
    return result


def _position(fields: list[str], reading: Reading) -> None:
    lat, ns, lon, ew = fields
    if lat and lon:
        reading["latitude"] = round(parse_coordinate(lat, ns, 2), 7)
        reading["longitude"] = round(parse_coordinate(lon, ew, 3), 7)


def _optional(fields: list[str], index: int, kind: type, name: str, reading: Reading) -> None:
    if len(fields) > index and fields[index]:
        reading[name] = kind(fields[index])


def decode_gga(fields: list[str]) -> Reading:
    """Fields of a GGA sentence from the comma-separated parts after the address."""
    if len(fields) < 9:
        raise ValueError(f"GGA has {len(fields)} fields, expected 14")
    reading: Reading = {"fix_quality": int(fields[5] or 0), "satellites": int(fields[6] or 0)}
    _position(fields[1:5], reading)
    _optional(fields, 7, float, "hdop", reading)
    _optional(fields, 8, float, "altitude", reading)
    _optional(fields, 10, float, "geoid_separation", reading)
    return reading


def decode_rmc(fields: list[str]) -> Reading:
    """Fields of an RMC sentence; ``valid`` is False when the receiver has no fix."""
    if len(fields) < 9:
        raise ValueError(f"RMC has {len(fields)} fields, expected 11 to 13")
    if fields[1] not in ("A", "V"):
        raise ValueError(f"RMC status {fields[1]!r} is neither A nor V")
    reading: Reading = {"valid": fields[1] == "A"}
    _position(fields[2:6], reading)
    _optional(fields, 6, float, "speed_knots", reading)
    _optional(fields, 7, float, "course", reading)
    return reading


DECODERS = {"GGA": decode_gga, "RMC": decode_rmc}


class NMEA(LineParser):
    """Line parser for NMEA 0183 GGA and RMC sentences.

    Options: ``sentences`` (list, default ["GGA", "RMC"]), ``require_checksum``
    (default true), ``max_length`` (default 82, the standard's limit; raise it
    for receivers in high-precision mode). Fields: GGA -> latitude, longitude
    (decimal degrees, absent without a fix), fix_quality (0 = none, 1 = GPS,
    2 = DGPS, 4/5 = RTK), satellites, hdop, altitude (m), geoid_separation (m);
    RMC -> valid, latitude, longitude, speed_knots, course (degrees true).
    """

    NAME = "nmea"
    OPTIONS = LineParser.OPTIONS + (
        Option("sentences", "any", list(SUPPORTED), doc=f"a list drawn from {list(SUPPORTED)}"),
        Option("require_checksum", "bool", True),
        Option("max_length", "int", MAX_LENGTH, minimum=12, maximum=4096),
    )

    def __init__(self, options: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(options)
        opts = self.opts
        sentences = opts["sentences"]
        if not isinstance(sentences, list) or not all(
            isinstance(s, str) and s.upper() in SUPPORTED for s in sentences
        ):
            raise opts.error("sentences", f"must be a list drawn from {list(SUPPORTED)}")
        self.sentences = {s.upper() for s in sentences}
        self.require_checksum: bool = opts["require_checksum"]
        self.max_length: int = opts["max_length"]
        self.skipped = 0

    def parse_line(self, line: str) -> Optional[Reading]:
        line = line.strip()
        start = line.rfind("$")  # a sentence has one "$": noise may precede it
        if start < 0:
            self.error(f"nmea: not a sentence: {line[:40]!r}")
            return None
        if start:  # noise before the "$": keep the sentence, count the noise
            self.error(f"nmea: {start} stray characters before '$'")
            line = line[start:]
        if len(line) + 2 > self.max_length:
            self.error(f"nmea: sentence longer than {self.max_length} characters")
            return None
        body, star, given = line[1:].partition("*")
        if star:
            if given.upper() != checksum(body):
                self.error(f"nmea: checksum {given!r} != computed {checksum(body)} in {line!r}")
                return None
        elif self.require_checksum:
            self.error(f"nmea: sentence without checksum: {line[:40]!r}")
            return None
        fields = body.split(",")
        kind = fields[0][-3:]
        if kind not in self.sentences:
            self.skipped += 1
            return None
        try:
            return DECODERS[kind](fields[1:])
        except ValueError as exc:
            self.error(f"nmea: bad {kind} sentence ({exc}): {line[:60]!r}")
            return None
