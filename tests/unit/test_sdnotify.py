"""sd_notify against a real AF_UNIX datagram socket set as $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket

from edge_agent.agent.sdnotify import Notifier


def _listen(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    return sock


def test_ready_status_watchdog_stopping(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = _listen(path)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000",
                  "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_interval == 10.0
    assert n.ready("collecting 3 sources")
    assert sock.recv(4096) == b"READY=1\nSTATUS=collecting 3 sources"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    n.close()
    sock.close()


def test_abstract_socket_address():
    name = f"edge-agent-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": "@" + name})
    assert n.status("ok")
    assert sock.recv(4096) == b"STATUS=ok"
    sock.close()


def test_outside_systemd_is_a_no_op_and_watchdog_for_other_pid_ignored():
    n = Notifier({})
    assert not n.enabled and not n.ready() and n.watchdog_interval is None
    other = Notifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000",
                      "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None
    assert other.ready() is False  # socket missing: reported, not raised
