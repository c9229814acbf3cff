"""Real influxd and mosquitto processes on free loopback ports, for tests.

Each server gets its own temp directory, is waited for until it answers, and
can be stopped, killed and restarted on the same port (outage tests). A
missing binary fails loudly with the install command, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests

INSTALL_HINT = ("install it with: sudo apt-get install -y mosquitto influxdb "
                "(or run scripts/test.sh)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str, *candidates: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"{name} not found: {INSTALL_HINT}")


class _Process:
    """A server process we own: start, wait until ready, stop/kill/restart."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = workdir / f"{self.name}.log"

    def command(self) -> List[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGTERM), killed if it does not exit in time."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: an outage with no goodbye."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


class InfluxServer(_Process):
    """Debian's influxd 1.x, v1 HTTP API on a free loopback port."""

    name = "influxd"

    def __init__(self, workdir: Path, port: Optional[int] = None) -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "influxd.conf"
        d = workdir
        self.config_path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[coordinator]
  log-queries-after = "0s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
"""
        )
        self._session = requests.Session()

    def command(self) -> List[str]:
        return [_binary("influxd", "/usr/bin/influxd"), "-config", str(self.config_path)]

    def ready(self) -> bool:
        try:
            return self._session.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except requests.RequestException:
            return False

    def query(self, q: str, db: Optional[str] = None, epoch: str = "ns") -> Dict[str, Any]:
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        r = self._session.post(f"{self.url}/query", params=params, timeout=30)
        r.raise_for_status()
        body: Dict[str, Any] = r.json()
        for result in body.get("results", []):
            if "error" in result:
                raise RuntimeError(f"influx query {q!r}: {result['error']}")
        return body

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"')

    def rows(self, db: str, q: str) -> List[Dict[str, Any]]:
        """Query and flatten to a list of ``{column: value}`` dicts (with the series tags)."""
        out: List[Dict[str, Any]] = []
        for result in self.query(q, db)["results"]:
            for series in result.get("series", []):
                for values in series["values"]:
                    row = dict(zip(series["columns"], values))
                    row.update(series.get("tags") or {})
                    row["_measurement"] = series.get("name")
                    out.append(row)
        return out

    def count(self, db: str, measurement: str, field: str) -> int:
        rows = self.rows(db, f'SELECT count("{field}") FROM "{measurement}"')
        return int(rows[0]["count"]) if rows else 0

    def write(self, db: str, body: str, precision: str = "ns") -> requests.Response:
        return self._session.post(
            f"{self.url}/write", params={"db": db, "precision": precision},
            data=body.encode("utf-8"), timeout=30,
        )


class MosquittoServer(_Process):
    """Debian's mosquitto 2.x on a free loopback port, persistence on."""

    name = "mosquitto"

    def __init__(self, workdir: Path, port: Optional[int] = None, extra: str = "") -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.config_path = workdir / "mosquitto.conf"
        (workdir / "data").mkdir(exist_ok=True)
        # Run as root (CI), mosquitto drops to the "mosquitto" user, which cannot
        # write the persistence file in our temp dir: sessions would not survive
        # a restart. Staying root keeps the harness honest about persistence.
        run_as = "user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
        self.config_path.write_text(
            f"""{run_as}listener {self.port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {workdir}/data/
autosave_interval 1
log_dest stdout
log_type error
log_type warning
{extra}
"""
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> List[str]:
        return [_binary("mosquitto", "/usr/sbin/mosquitto"), "-c", str(self.config_path)]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False
