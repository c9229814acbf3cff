"""An SMBus with smbus2's method names whose devices are register-level emulators.

Every SMBus call is broken into the I2C transactions the kernel would put on
the wire (a write of the command/register byte, then a read), and each
transaction goes to the emulated chip at that address. So a driver that works
here sends the same bytes it would send to a real chip, including the byte
order of SMBus word transfers (LSB first).

Faults (per device, ``device.fault``): "absent" -> every access raises
``OSError(121, 'Remote I/O error')`` as smbus2 does when nothing answers;
"hang" -> every access first sleeps ``device.hang_seconds``; "stuck" -> the
values stop changing; "bad_crc" (chips with CRCs) -> corrupted checksums.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time
from typing import Any, Callable, Optional, Sequence

I2C_M_RD = 0x0001
I2C_SMBUS_BLOCK_MAX = 32
FAULTS = ("absent", "hang", "stuck", "bad_crc")


def nack() -> OSError:
    """What the Linux I2C layer raises when a device does not acknowledge."""
    return OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))


class EmulatedDevice:
    """Base of a chip emulator: I2C write and read transactions, values over time.

    Subclasses implement :meth:`write` and :meth:`read` (the wire protocol) and
    :meth:`values` (the physical quantities at a time). ``override`` pins
    quantities to fixed values (``device.override["temperature"] = 30.0``).
    """

    NAME = ""
    FAULTS: tuple[str, ...] = ("absent", "hang", "stuck")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.override: dict[str, float] = {}
        self._fault: Optional[str] = None
        self._stuck_at: Optional[float] = None
        self.hang_seconds = 5.0
        self.transactions = 0

    @property
    def fault(self) -> Optional[str]:
        return self._fault

    @fault.setter
    def fault(self, fault: Optional[str]) -> None:
        if fault is not None and fault not in self.FAULTS:
            raise ValueError(
                f"{self.NAME} emulator: fault {fault!r} is not one of {', '.join(self.FAULTS)}"
            )
        self._fault = fault
        self._stuck_at = self.clock() if fault == "stuck" else None

    def value_time(self) -> float:
        """The time the physical quantities are taken at (frozen while stuck)."""
        return self._stuck_at if self._stuck_at is not None else self.clock()

    def quantities(self) -> dict[str, float]:
        values = self.values(self.value_time())
        values.update(self.override)
        return values

    def values(self, t: float) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, data: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, length: int) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError


class EmulatedSMBus:
    """Drop-in for :class:`smbus2.SMBus` hosting emulated devices by address.

    ``bus.add(0x76, BME280Emulator())``; an address with no device NACKs
    (errno 121), like a real bus. ``sleep`` is used by the "hang" fault.
    """

    def __init__(
        self,
        bus: Any = 1,
        devices: Optional[dict[int, EmulatedDevice]] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bus = bus
        self.devices: dict[int, EmulatedDevice] = dict(devices or {})
        self.sleep = sleep
        self.fd: Optional[int] = None
        self._lock = threading.RLock()
        self.closed = False

    # -- management ---------------------------------------------------------
    def add(self, address: int, device: EmulatedDevice) -> EmulatedDevice:
        self.devices[address] = device
        return device

    def remove(self, address: int) -> EmulatedDevice:
        return self.devices.pop(address)

    def open(self, bus: Any) -> None:
        self.bus = bus
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> EmulatedSMBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- wire level ---------------------------------------------------------
    def _device(self, address: int) -> EmulatedDevice:
        device = self.devices.get(address)
        if device is None or device.fault == "absent":
            raise nack()
        if device.fault == "hang":
            self.sleep(device.hang_seconds)
        device.transactions += 1
        return device

    def _write(self, address: int, data: bytes) -> None:
        with self._lock:
            self._device(address).write(bytes(data))

    def _read(self, address: int, length: int) -> bytes:
        with self._lock:
            data = self._device(address).read(length)
        if len(data) != length:
            raise AssertionError(f"emulator at 0x{address:02x} returned {len(data)}/{length} bytes")
        return data

    def _write_read(self, address: int, command: int, length: int) -> bytes:
        # one combined transaction (repeated start), as the kernel issues it
        with self._lock:
            self._write(address, bytes((command,)))
            return self._read(address, length)

    # -- smbus2 API -----------------------------------------------------------
    def write_quick(self, i2c_addr: int, force: Optional[bool] = None) -> None:
        self._write(i2c_addr, b"")

    def read_byte(self, i2c_addr: int, force: Optional[bool] = None) -> int:
        return self._read(i2c_addr, 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: Optional[bool] = None) -> None:
        self._write(i2c_addr, bytes((value,)))

    def read_byte_data(self, i2c_addr: int, register: int, force: Optional[bool] = None) -> int:
        return self._write_read(i2c_addr, register, 1)[0]

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: Optional[bool] = None
    ) -> None:
        self._write(i2c_addr, bytes((register, value)))

    def read_word_data(self, i2c_addr: int, register: int, force: Optional[bool] = None) -> int:
        data = self._write_read(i2c_addr, register, 2)
        return data[0] | data[1] << 8  # SMBus words travel LSB first

    def write_word_data(
        self, i2c_addr: int, register: int, value: int, force: Optional[bool] = None
    ) -> None:
        self._write(i2c_addr, bytes((register, value & 0xFF, value >> 8 & 0xFF)))

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: Optional[bool] = None
    ) -> list[int]:
        if length > I2C_SMBUS_BLOCK_MAX:
            raise ValueError(f"Desired block length over {I2C_SMBUS_BLOCK_MAX} bytes")
        return list(self._write_read(i2c_addr, register, length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: Optional[bool] = None
    ) -> None:
        if len(data) > I2C_SMBUS_BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {I2C_SMBUS_BLOCK_MAX} bytes")
        self._write(i2c_addr, bytes((register, *data)))

    def i2c_rdwr(self, *i2c_msgs: Any) -> None:
        """Run smbus2 ``i2c_msg`` reads and writes as one combined transaction."""
        with self._lock:
            for msg in i2c_msgs:
                if msg.flags & I2C_M_RD:
                    data = self._read(msg.addr, msg.len)
                    ctypes.memmove(msg.buf, data, len(data))
                else:
                    self._write(msg.addr, bytes(msg))
