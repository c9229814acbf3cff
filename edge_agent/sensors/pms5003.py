"""Plantower PMS5003 particulate matter sensor, UART 9600 8N1.

Datasheet: Plantower PMS5003 series data manual, appendix I (transport
protocol, active mode) and appendix II (host protocol, passive mode).

Frame (device -> host), 32 bytes, big-endian words:
  0x42 0x4D, frame length (28 = 2 x 13 data words + checksum), then
  PM1.0, PM2.5, PM10 in ug/m3 at CF=1 (standard particle),
  PM1.0, PM2.5, PM10 in ug/m3 under atmospheric environment,
  particles > 0.3, 0.5, 1.0, 2.5, 5.0, 10 um per 0.1 L of air, reserved,
  checksum = 16-bit sum of bytes 0..29.
Command (host -> device), 7 bytes: 0x42 0x4D CMD DATAH DATAL LRCH LRCL,
LRC = 16-bit sum of the first five bytes. 0xE2 = read in passive mode,
0xE1 = mode (0 passive, 1 active), 0xE4 = sleep (0) / wake (1). The device
acknowledges some commands with a short frame (length 4) that is not a reading.
"""

from __future__ import annotations

import struct
from typing import Any, Mapping, Optional

from ._common import Option, Options, Reading
from ._serial import SerialParser

START = b"\x42\x4d"
FRAME_LENGTH = 32
DATA_LENGTH = 28
FIELDS = (
    "pm1_0_cf1",
    "pm2_5_cf1",
    "pm10_cf1",
    "pm1_0",
    "pm2_5",
    "pm10",
    "particles_0_3um",
    "particles_0_5um",
    "particles_1_0um",
    "particles_2_5um",
    "particles_5_0um",
    "particles_10um",
)
CMD_READ = 0xE2
CMD_MODE = 0xE1
CMD_SLEEP = 0xE4
MODE_PASSIVE = 0
MODE_ACTIVE = 1


def checksum(data: bytes) -> int:
    """The 16-bit byte sum used by both frame directions."""
    return sum(data) & 0xFFFF


def command(cmd: int, data: int = 0) -> bytes:
    """A host -> device command frame, e.g. ``command(CMD_READ)`` = 42 4D E2 00 00 01 71."""
    body = START + bytes((cmd & 0xFF, data >> 8 & 0xFF, data & 0xFF))
    return body + struct.pack(">H", checksum(body))


def encode(values: Mapping[str, int], reserved: int = 0) -> bytes:
    """A device -> host data frame carrying ``values`` (missing fields are 0)."""
    words = [int(values.get(name, 0)) & 0xFFFF for name in FIELDS] + [reserved & 0xFFFF]
    body = START + struct.pack(">H13H", DATA_LENGTH, *words)
    return body + struct.pack(">H", checksum(body))


def decode(frame: bytes) -> Reading:
    """Fields of one complete 32-byte frame (checksum already verified)."""
    words = struct.unpack_from(">12H", frame, 4)
    return dict(zip(FIELDS, words))


class PMS5003(SerialParser):
    """Frame parser for PMS5003 (also PMS7003/PMSA003, same frame).

    Options: ``mode`` ("active" default: the sensor streams a frame every
    ~1 s; "passive": the sensor answers :meth:`request` frames). Fields:
    pm1_0_cf1, pm2_5_cf1, pm10_cf1 (CF=1), pm1_0, pm2_5, pm10 (atmospheric),
    particles_0_3um .. particles_10um (counts per 0.1 L), all integers.
    Counters: ``errors`` / ``last_error`` (bad checksum or length),
    ``skipped_bytes`` (garbage discarded while resynchronising).
    """

    NAME = "pms5003"
    OPTIONS = (Option("mode", "choice", "active", choices=("active", "passive"),
                      doc="passive: the agent asks for each reading"),)

    def __init__(self, options: Optional[Mapping[str, Any]] = None) -> None:
        opts = Options(self.NAME, options, self.OPTIONS)
        self.mode: str = opts["mode"]
        super().__init__()
        self.skipped_bytes = 0
        self._buffer = bytearray()

    def startup(self) -> bytes:
        """Put the sensor in the configured mode (sent once after the port opens)."""
        return command(CMD_MODE, MODE_PASSIVE if self.mode == "passive" else MODE_ACTIVE)

    def request(self) -> bytes:
        """In passive mode, the frame that asks for one reading."""
        return command(CMD_READ) if self.mode == "passive" else b""

    def _skip(self, count: int) -> None:
        del self._buffer[:count]
        self.skipped_bytes += count

    def feed(self, data: bytes) -> list[Reading]:
        readings: list[Reading] = []
        buf = self._buffer
        buf += data
        while True:
            start = buf.find(START)
            if start < 0:
                # keep a trailing 0x42: it may be the first half of a header
                self._skip(len(buf) - 1 if buf.endswith(START[:1]) else len(buf))
                return readings
            if start:
                self._skip(start)
            if len(buf) < 4:
                return readings
            length = buf[2] << 8 | buf[3]
            if length not in (DATA_LENGTH, 4):
                self.error(f"pms5003: bad frame length {length} (expected 28)")
                self._skip(1)  # the header was garbage; look for the next one
                continue
            total = 4 + length
            if len(buf) < total:
                return readings
            frame = bytes(buf[:total])
            got = frame[-2] << 8 | frame[-1]
            want = checksum(frame[:-2])
            if got != want:
                self.error(f"pms5003: checksum 0x{got:04x} != computed 0x{want:04x}")
                self._skip(1)
                continue
            del buf[:total]
            if length == DATA_LENGTH:
                self.frames += 1
                readings.append(decode(frame))
