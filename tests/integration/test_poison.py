"""Poison batches: the valid lines are delivered, the bad ones dead-lettered, the queue moves.

Through the durable client (``WriteOptions(buffer_dir=...)``) against the real
influxd (1.x: 400 "partial write", valid lines stored) and against the fault
server speaking 2.x (400 rejects the whole batch) and 422 (partial: valid
lines stored, the rest rejected).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, List, Tuple

from edge_agent import InfluxDBClient, WriteOptions
from edge_agent.buffer.disklog import DiskBuffer
from tests.harness.fault_server import Answer, FaultServer, Request, error_answer
from tests.harness.servers import InfluxServer

T0 = 1_700_000_000_000_000_000


def options(tmp_path: Path, **extra: object) -> WriteOptions:
    settings = {"batch_size": 1000, "flush_interval": 100, "retry_interval": 100,
                "max_retry_delay": 500, "buffer_dir": str(tmp_path / "agent"), **extra}
    return WriteOptions(**settings)


def dead_letters(tmp_path: Path) -> List[Tuple[str, List[str]]]:
    """(header, lines) entries of the dead-letter file."""
    path = tmp_path / "agent" / "dead-letters.lp"
    if not path.exists():
        return []
    entries: List[Tuple[str, List[str]]] = []
    for row in path.read_text().splitlines():
        if row.startswith("#"):
            entries.append((row, []))
        elif row:
            entries[-1][1].append(row)
    return entries


def buffer_state(tmp_path: Path) -> Tuple[int, dict]:
    buf = DiskBuffer(tmp_path / "agent" / "buffer")
    try:
        return buf.stats().points, buf.counters.snapshot()
    finally:
        buf.close()


def test_field_type_conflict_against_real_influxd(influx: InfluxServer, influx_db: str,
                                                  tmp_path: Path) -> None:
    assert influx.write(influx_db, f"poison,k=seed n=0i {T0}").status_code == 204  # n: integer
    valid = [f"poison,k=a n={i}i {T0 + i}" for i in range(1, 101)]
    batch = list(valid)
    bad = [f"poison,k=b n={i}.5 {T0 + 1000 + i}" for i in (17, 63)] + [
        f'poison,k=c n="text" {T0 + 2000}']
    batch[16:16] = bad[:1]
    batch[63:63] = bad[1:2]
    batch.append(bad[2])
    later = [f"poison,k=later n={i}i {T0 + 5000 + i}" for i in range(50)]

    client = InfluxDBClient(url=influx.url, token="", org="", api="v1")
    api = client.write_api(write_options=options(tmp_path))
    api.write(influx_db, record=batch)  # one write: one segment, one batch
    assert api.flush(timeout=10.0)
    api.write(influx_db, record=later)  # the queue keeps moving after the poison
    api.close()
    client.close()

    rows = influx.rows(influx_db, 'SELECT "n", "k" FROM "poison"')
    stored = {(r["k"], r["n"]) for r in rows}
    assert stored == ({("seed", 0)} | {("a", i) for i in range(1, 101)}
                      | {("later", i) for i in range(50)})
    assert len(rows) == 1 + 100 + 50

    entries = dead_letters(tmp_path)
    assert sorted(line for _, lines in entries for line in lines) == sorted(bad)
    for header, _ in entries:
        assert f"bucket={influx_db} HTTP 400:" in header
        assert "field type conflict" in header  # the server's own message
    points, counters = buffer_state(tmp_path)
    assert points == 0
    assert counters["rejected"] == 3 and counters["written"] == 100 + 50
    assert counters["accepted"] == len(batch) + len(later)


def test_v2_whole_batch_rejected_for_one_bad_line(fault_server: FaultServer,
                                                   tmp_path: Path) -> None:
    fault_server.reject_lines(lambda line: "BAD" in line, mode="v2")
    lines = [f"m,k=a n={i}i {T0 + i}" for i in range(200)]
    lines[137] = f"m,k=BAD n=x {T0 + 137}"
    later = [f"m,k=later n={i}i {T0 + 1000 + i}" for i in range(30)]

    client = InfluxDBClient(url=fault_server.url, token="tok", org="o")
    api = client.write_api(write_options=options(tmp_path))
    api.write("b", record=lines)
    assert api.flush(timeout=10.0)
    api.write("b", record=later)
    api.close()
    client.close()

    valid = [ln for ln in lines if "BAD" not in ln]
    # 2.x stores nothing from a rejected batch, so each valid line arrives exactly once.
    assert sorted(fault_server.points) == sorted(valid + later)
    (header, rejected), = dead_letters(tmp_path)
    assert rejected == [lines[137]]
    assert "HTTP 400:" in header and "failed to parse" in header
    requests = fault_server.write_requests()
    assert requests[0].lines == lines  # one batch, then bisection
    bisecting = requests[1:-1]
    assert len(bisecting) <= 2 * math.ceil(math.log2(len(lines)))
    assert requests[-1].lines == later
    points, counters = buffer_state(tmp_path)
    assert points == 0 and counters["rejected"] == 1 and counters["written"] == 199 + 30


class PartialServer(FaultServer):
    """Newer 2.x: 422 when some lines were rejected and the rest stored."""

    def __init__(self, bad: Callable[[str], bool]) -> None:
        super().__init__()
        self.bad = bad

    def _decide(self, req: Request) -> Answer:
        with self._lock:
            lines = req.lines
            rejected = [ln for ln in lines if self.bad(ln)]
            self.points.extend(ln for ln in lines if not self.bad(ln))
        if not rejected:
            return Answer(204)
        return error_answer(422, f"partial write: {len(rejected)} line(s) rejected: "
                            f"{rejected[0]!r}: invalid field value", "unprocessable entity",
                            line=lines.index(rejected[0]) + 1)


def test_422_partial_write_dead_letters_only_the_rejected_lines(tmp_path: Path) -> None:
    lines = [f"m,k=a n={i}i {T0 + i}" for i in range(64)]
    for i in (5, 40, 41):
        lines[i] = f"m,k=BAD n=? {T0 + i}"
    with PartialServer(lambda line: "BAD" in line) as server:
        client = InfluxDBClient(url=server.url, token="tok", org="o")
        api = client.write_api(write_options=options(tmp_path))
        api.write("b", record=lines)
        assert api.flush(timeout=10.0)
        api.write("b", record=["m,k=later n=1i 1"])
        api.close()
        client.close()
        requests = server.write_requests()
        stored = list(server.points)

    valid = {ln for ln in lines if "BAD" not in ln}
    # Bisection resends stored lines (idempotent in InfluxDB): every one arrives, none lost.
    assert set(stored) == valid | {"m,k=later n=1i 1"}
    assert requests[0].lines == lines and len(requests) > 2
    entries = dead_letters(tmp_path)
    assert sorted(ln for _, group in entries for ln in group) == sorted(
        lines[i] for i in (5, 40, 41))
    assert all("HTTP 422:" in header and "partial write" in header for header, _ in entries)
    points, counters = buffer_state(tmp_path)
    assert points == 0 and counters["rejected"] == 3
