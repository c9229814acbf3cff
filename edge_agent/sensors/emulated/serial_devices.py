"""Emulated serial sensors: real frames at the real cadence, optional line noise.

An emulator is a clock-driven byte source: :meth:`SerialDeviceEmulator.output`
returns every burst due by ``now`` (one burst per ``interval``), and
:meth:`~SerialDeviceEmulator.receive` takes bytes the host wrote. The same
objects feed the ``emulated://`` pyserial URLs and the pseudo-terminal helper.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Optional

from .. import nmea, pms5003
from .signals import slow_wave

#: bursts older than this many intervals are dropped, like a UART overrun
MAX_BACKLOG = 10


class SerialDeviceEmulator:
    """Base: a burst every ``interval`` seconds, ``garbage`` = chance of noise before it."""

    NAME = ""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 1.0,
        garbage: float = 0.0,
        seed: int = 0,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"{self.NAME} emulator: interval must be > 0, got {interval!r}")
        if not 0.0 <= garbage <= 1.0:
            raise ValueError(f"{self.NAME} emulator: garbage must be in 0..1, got {garbage!r}")
        self.clock = clock
        self.interval = interval
        self.garbage = garbage
        self.random = random.Random(seed)
        self._next = clock()
        self._queued = bytearray()
        self.bursts = 0
        self.garbage_bytes = 0
        self.active = True

    def next_due(self) -> float:
        """Clock time of the next burst (now, if replies are queued)."""
        return self.clock() if self._queued else self._next

    def output(self, now: Optional[float] = None) -> bytes:
        """All bytes due by ``now``: queued replies, then one burst per elapsed interval."""
        now = self.clock() if now is None else now
        out = bytearray(self._queued)
        self._queued.clear()
        if now >= self._next:
            due = int((now - self._next) // self.interval) + 1
            first = max(0, due - MAX_BACKLOG)
            for k in range(first, due):
                if self.active:
                    out += self._burst(self._next + k * self.interval)
            self._next += due * self.interval
        return bytes(out)

    def _burst(self, t: float) -> bytes:
        noise = b""
        if self.garbage and self.random.random() < self.garbage:
            noise = self.noise()
            self.garbage_bytes += len(noise)
        self.bursts += 1
        return noise + self.frame(t)

    def noise(self) -> bytes:
        """Random bytes, as a loose wire or a baud-rate glitch produces."""
        return bytes(self.random.randrange(256) for _ in range(self.random.randint(1, 24)))

    def frame(self, t: float) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def receive(self, data: bytes) -> None:
        """Bytes the host wrote; the default device ignores them."""

    def queue(self, data: bytes) -> None:
        self._queued += data


class Pms5003Emulator(SerialDeviceEmulator):
    """PMS5003: a 32-byte frame per interval in active mode; answers 0xE2 in passive mode.

    Understands the host commands 0xE1 (mode), 0xE2 (read) and 0xE4
    (sleep/wake), acknowledging mode and sleep changes with the short frame.
    """

    NAME = "pms5003"

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 1.0,
        garbage: float = 0.0,
        seed: int = 0,
        mode: str = "active",
        phase: float = 0.0,
    ) -> None:
        super().__init__(clock, interval, garbage, seed)
        if mode not in ("active", "passive"):
            raise ValueError(f"pms5003 emulator: mode must be active or passive, got {mode!r}")
        self.passive = mode == "passive"
        self.asleep = False
        self.phase = phase
        self.override: dict[str, int] = {}
        self._commands = bytearray()
        self.active = not self.passive

    def values(self, t: float) -> dict[str, int]:
        pm25 = max(1.0, slow_wave(t, 12.0, 6.0, 1800.0, self.phase))
        cf1 = {"pm1_0_cf1": pm25 * 0.65, "pm2_5_cf1": pm25, "pm10_cf1": pm25 * 1.35}
        values = {k: round(v) for k, v in cf1.items()}
        # the atmospheric values equal CF=1 below ~30 ug/m3 and fall behind above it
        for key, v in cf1.items():
            values[key[:-4]] = round(v if v < 30 else 30 + (v - 30) * 0.66)
        counts = {"0_3um": 150, "0_5um": 45, "1_0um": 9, "2_5um": 1.2, "5_0um": 0.3, "10um": 0.1}
        for key, per in counts.items():
            values["particles_" + key] = round(pm25 * per)
        values.update(self.override)
        return values

    def frame(self, t: float) -> bytes:
        return pms5003.encode(self.values(t))

    def _ack(self, cmd: int, data: int) -> None:
        body = pms5003.START + bytes((0x00, 0x04, cmd, data & 0xFF))
        self.queue(body + pms5003.checksum(body).to_bytes(2, "big"))

    def receive(self, data: bytes) -> None:
        self._commands += data
        while len(self._commands) >= 7:
            start = self._commands.find(pms5003.START)
            if start < 0:
                del self._commands[:-1]
                return
            del self._commands[:start]
            if len(self._commands) < 7:
                return
            frame = bytes(self._commands[:7])
            if pms5003.checksum(frame[:5]) != int.from_bytes(frame[5:], "big"):
                del self._commands[:1]
                continue
            del self._commands[:7]
            cmd, value = frame[2], frame[3] << 8 | frame[4]
            if cmd == pms5003.CMD_MODE:
                self.passive = value == pms5003.MODE_PASSIVE
                self._ack(cmd, value)
            elif cmd == pms5003.CMD_SLEEP:
                self.asleep = value == 0
                self._ack(cmd, value)
            elif cmd == pms5003.CMD_READ and self.passive and not self.asleep:
                self.queue(self.frame(self.clock()))
            self.active = not self.passive and not self.asleep


class NmeaEmulator(SerialDeviceEmulator):
    """A GPS receiver with a fix: GGA then RMC once per interval, position wandering slowly.

    ``utc`` gives the wall-clock time printed in the sentences (default: now).
    """

    NAME = "nmea"

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 1.0,
        garbage: float = 0.0,
        seed: int = 0,
        lat: float = 48.1173,
        lon: float = 11.516667,
        talker: str = "GP",
        utc: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock, interval, garbage, seed)
        self.lat = lat
        self.lon = lon
        self.talker = talker
        self.utc = utc

    def noise(self) -> bytes:
        return super().noise() + b"\r\n"  # noise on the line ends with the next line break

    def position(self, t: float) -> tuple[float, float]:
        return (
            slow_wave(t, self.lat, 0.00005, 600.0),
            slow_wave(t, self.lon, 0.00005, 700.0, 1.0),
        )

    def frame(self, t: float) -> bytes:
        lat, lon = self.position(t)
        stamp = time.gmtime(self.utc())
        hms = time.strftime("%H%M%S", stamp) + ".00"
        date = time.strftime("%d%m%y", stamp)
        lat_s, ns = _ddmm(lat, 2), "N" if lat >= 0 else "S"
        lon_s, ew = _ddmm(lon, 3), "E" if lon >= 0 else "W"
        altitude = slow_wave(t, 545.4, 1.5, 300.0)
        satellites = 8 + round(slow_wave(t, 0.0, 2.0, 900.0))
        speed = abs(slow_wave(t, 0.0, 0.3, 120.0))
        course = slow_wave(t, 180.0, 90.0, 2400.0) % 360
        gga = (f"{self.talker}GGA,{hms},{lat_s},{ns},{lon_s},{ew},1,{satellites:02d},0.9,"
               f"{altitude:.1f},M,46.9,M,,")
        rmc = (f"{self.talker}RMC,{hms},A,{lat_s},{ns},{lon_s},{ew},{speed:.3f},{course:.2f},"
               f"{date},,,A")
        return nmea.sentence(gga) + nmea.sentence(rmc)


def _ddmm(value: float, degree_digits: int) -> str:
    """``ddmm.mmmm`` / ``dddmm.mmmm`` with the minutes rounded without reaching 60."""
    ten_thousandths = round(abs(value) * 60 * 10000)
    degrees, minutes = divmod(ten_thousandths, 60 * 10000)
    return f"{degrees:0{degree_digits}d}{minutes // 10000:02d}.{minutes % 10000:04d}"


EMULATORS: dict[str, Any] = {"pms5003": Pms5003Emulator, "nmea": NmeaEmulator}


def create(name: str, **kwargs: Any) -> SerialDeviceEmulator:
    """An emulator by name ("pms5003", "nmea") with keyword options."""
    try:
        factory = EMULATORS[name]
    except KeyError:
        raise ValueError(
            f"no emulated serial device {name!r}; choose one of {', '.join(EMULATORS)}"
        ) from None
    emulator: SerialDeviceEmulator = factory(**kwargs)
    return emulator


