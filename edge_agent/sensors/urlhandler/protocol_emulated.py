"""pyserial handler for ``emulated://<device>[?option=value&...]``.

``serial.serial_for_url("emulated://pms5003?interval=1&garbage=0.1")`` gives a
port that behaves like a serial port with an emulated sensor on the far end:
frames arrive at the device's cadence, reads block up to ``timeout``, and
writes reach the emulator (so passive-mode PMS5003 requests are answered).
Devices: ``pms5003`` (options: interval, garbage, seed, mode) and ``nmea``
(options: interval, garbage, seed, lat, lon, talker).
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import Any, Optional

from serial.serialutil import PortNotOpenError, SerialBase, SerialException, to_bytes

from ..emulated.serial_devices import SerialDeviceEmulator, create

_FLOAT_OPTIONS = ("interval", "garbage", "lat", "lon", "phase")
_INT_OPTIONS = ("seed",)
_STR_OPTIONS = ("mode", "talker")


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """(device name, emulator keyword options) from an ``emulated://`` URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "emulated":
        raise SerialException(f"expected an emulated://<device> URL, got {url!r}")
    name = (parts.netloc or parts.path.lstrip("/")).lower()
    options: dict[str, Any] = {}
    for key, values in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items():
        value = values[-1]
        try:
            if key in _FLOAT_OPTIONS:
                options[key] = float(value)
            elif key in _INT_OPTIONS:
                options[key] = int(value)
            elif key in _STR_OPTIONS:
                options[key] = value
            else:
                raise ValueError("unknown option")
        except ValueError:
            raise SerialException(f"{url!r}: bad option {key}={value!r}") from None
    return name, options


class Serial(SerialBase):
    """A serial port whose far end is an emulated sensor (no hardware, no pty)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.emulator: Optional[SerialDeviceEmulator] = None
        self._rx = bytearray()
        self._cancel = threading.Event()
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self.is_open:  # type: ignore[has-type]
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        name, options = parse_url(self.portstr or "")
        try:
            self.emulator = create(name, **options)
        except (TypeError, ValueError) as exc:
            raise SerialException(f"{self.portstr!r}: {exc}") from None
        self._rx.clear()
        self.is_open = True

    def close(self) -> None:
        self.is_open = False
        self._cancel.set()
        self.emulator = None
        super().close()

    def from_url(self, url: str) -> None:
        parse_url(url)

    def _reconfigure_port(self, force_update: bool = False) -> None:
        """Line settings do not matter to an emulated device."""

    def _pull(self) -> None:
        if self.emulator is not None:
            self._rx += self.emulator.output()

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        self._pull()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        self._cancel.clear()
        while True:
            self._pull()
            if len(self._rx) >= size or not self.is_open or self.emulator is None:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait = max(0.0, self.emulator.next_due() - self.emulator.clock())
            if deadline is not None:
                wait = min(wait, deadline - now)
            if self._cancel.wait(min(wait, 0.5) + 0.0005):
                break
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    def cancel_read(self) -> None:
        self._cancel.set()

    def write(self, data: Any) -> int:
        if not self.is_open or self.emulator is None:
            raise PortNotOpenError()
        payload = to_bytes(data)
        self.emulator.receive(payload)
        return len(payload)

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        self._pull()
        self._rx.clear()

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    @property
    def out_waiting(self) -> int:
        return 0

    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
