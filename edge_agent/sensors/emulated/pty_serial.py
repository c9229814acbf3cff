"""Run a serial emulator behind a real pseudo-terminal, so pyserial reads a tty.

``PtySerialDevice(emulator)`` opens a pty pair, sets the slave side raw, and
runs a thread that writes the emulator's frames into the master side at their
cadence and hands whatever the host writes back to ``emulator.receive``.
Open :attr:`path` with pyserial like any serial device.

:meth:`unplug` closes the pair (a reader sees the device vanish);
:meth:`replug` opens a new pair. A new pair gets a new ``/dev/pts/N``, so give
``link=`` a path to keep a stable name, as udev's ``/dev/serial/by-id`` does.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import tty
from typing import Optional

from .serial_devices import SerialDeviceEmulator

#: longest sleep of the writer thread, so unplug/stop are noticed promptly
POLL = 0.05


class PtySerialDevice:
    """An emulated serial device on the master side of a real pty pair."""

    def __init__(self, emulator: SerialDeviceEmulator, link: Optional[str] = None) -> None:
        self.emulator = emulator
        self.link = link
        self.master: Optional[int] = None
        self.slave: Optional[int] = None
        self.slave_name = ""
        self.written = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        """The device path to open: the stable link if one was given, else /dev/pts/N."""
        return self.link or self.slave_name

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def start(self) -> PtySerialDevice:
        """Open the pty pair and start writing frames (alias: :meth:`replug`)."""
        with self._lock:
            if self.master is not None:
                return self
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line discipline: bytes pass as they are
            os.set_blocking(master, False)
            self.master, self.slave = master, slave
            self.slave_name = os.ttyname(slave)
            if self.link:
                tmp = f"{self.link}.tmp{os.getpid()}"
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink(self.slave_name, tmp)
                os.replace(tmp, self.link)
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"pty-{self.emulator.NAME}", daemon=True
            )
            self._thread.start()
        return self

    replug = start

    def unplug(self) -> None:
        """Close both sides of the pair: readers get an error, as when a USB adapter is pulled."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join()
        with self._lock:
            for fd in (self.master, self.slave):
                if fd is not None:
                    os.close(fd)
            self.master = self.slave = None
            if self.link and os.path.lexists(self.link):
                os.unlink(self.link)

    stop = unplug

    def inject(self, data: bytes) -> None:
        """Write raw bytes (e.g. garbage) into the line right now."""
        with self._lock:
            if self.master is not None:
                self._write(self.master, data)

    def _write(self, fd: int, data: bytes) -> None:
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            sent = 0
        self.written += sent
        self.dropped += len(data) - sent  # nobody reading: the bytes are lost, like an overrun

    def _run(self) -> None:
        master = self.master
        assert master is not None
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                data = self.emulator.output()
                if data:
                    self._write(master, data)
            wait = min(POLL, max(0.0, self.emulator.next_due() - self.emulator.clock()))
            try:
                readable, _, _ = select.select([master], [], [], wait)
            except (OSError, ValueError):
                return
            if readable:
                try:
                    received = os.read(master, 4096)
                except (BlockingIOError, OSError):
                    received = b""
                if received:
                    with self._lock:
                        self.emulator.receive(received)

    def __enter__(self) -> PtySerialDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.unplug()
