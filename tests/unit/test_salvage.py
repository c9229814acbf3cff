"""Damaged buffer files: every readable segment salvaged and delivered, the rest counted.

In the spirit of Vector's disk-buffer tests: a buffer of known segments is
closed, its SQLite file is damaged (a torn tail, truncation, a garbage header,
a whole garbage first page, 16 KiB of garbage in the middle, bit flips in
stored segments), and the buffer is drained. The oracle for what is still
readable is independent of the code under test: the ``sqlite3`` command-line
shell reads every rowid of the damaged file one by one, and this test decodes
the segment header itself. Asserted exactly: the segments delivered are the
ones the shell can read (all of them when only the first page is garbage),
and accepted = written + lost_corrupt.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from edge_agent.buffer.disklog import DiskBuffer
from edge_agent.buffer.ledger import read_ledger
from edge_agent.buffer.logcache import NEW_PAGE_SIZE, create_file, page_size_of
from edge_agent.buffer.segment import Segment
from edge_agent.destination import Destination

A = Destination("telemetry")
SQLITE3 = shutil.which("sqlite3")
SEGMENTS = 120


def segment_lines(key: int, n: int) -> bytes:
    # Shaped like the agent's BME280 readings (docs: Bosch BME280 datasheet fields).
    return b"\n".join(b"bme280,host=pi,sensor=s%d temperature=21.%d,humidity=40.%d %d"
                      % (key, i % 10, i % 7, 1_700_000_000_000_000_000 + key * 10_000 + i)
                      for i in range(n))


def build(path: Path, page_size: int = NEW_PAGE_SIZE) -> Tuple[Dict[int, int], int]:
    """120 segments of 5 to 200 lines (some span overflow pages); -> {id: count}, total.

    ``page_size`` 4096: a file as the code before 1 KiB pages made it.
    """
    create_file(str(path), page_size)
    buf = DiskBuffer(path, max_size=1 << 28, clock=lambda: 1000.0)
    counts = [200 if i % 7 == 0 else 5 + i % 40 for i in range(SEGMENTS)]
    ids = buf.append_many([Segment(A, n, segment_lines(i, n), 1000.0)
                           for i, n in enumerate(counts)], {"accepted": sum(counts)})
    buf.close()
    return dict(zip(ids, counts)), sum(counts)


def readable_by_sqlite3(db: Path) -> Dict[int, int]:
    """{segment id: lines} of every row the sqlite3 shell can read, rowid by rowid.

    The shell reads a copy whose header page count (offset 28) is the file's
    real length, as SQLite itself would compute it for a header it distrusts.
    """
    assert SQLITE3
    copy = db.parent.parent / "oracle.db"
    data = bytearray(db.read_bytes())
    page = PAGE[db]
    data += bytes(-len(data) % page)  # a torn last page: what is left of it, zero-filled
    if len(data) >= 100:
        struct.pack_into(">I", data, 28, len(data) // page)
    copy.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):  # what SQLite reads besides the file: its WAL
        side = db.with_name(db.name + suffix)
        if side.exists():
            shutil.copyfile(side, copy.with_name(copy.name + suffix))
    db = copy
    script = "".join(f"SELECT key, hex(value) FROM Cache WHERE rowid = {r} "
                     "AND typeof(key) = 'integer';\n" for r in range(1, SEGMENTS + 10))
    run = subprocess.run([SQLITE3, "-readonly", "-separator", "|", str(db)], input=script,
                         capture_output=True, text=True, timeout=120)
    found: Dict[int, int] = {}
    for row in run.stdout.splitlines():
        key, _, hexed = row.partition("|")
        value = bytes.fromhex(hexed)
        if value[:4] not in (b"EAS1", b"EAS2") or len(value) < 18:
            continue  # not a segment header this test recognises
        (klen,) = struct.unpack_from("<H", value, 16)
        try:
            Destination.from_key(value[18:18 + klen].decode())
            lines = value[18 + klen:]
            if value[:4] == b"EAS2":  # zlib-compressed lines
                lines = zlib.decompress(lines)
        except (ValueError, zlib.error):
            continue
        found[int(key)] = lines.count(b"\n") + 1
    return found


def drain(path: Path) -> Tuple[DiskBuffer, Dict[int, int]]:
    """Open the damaged buffer and deliver everything; -> buffer, {id: points delivered}."""
    buf = DiskBuffer(path, max_size=1 << 28, clock=lambda: 1000.0)
    delivered: Dict[int, int] = {}
    while True:
        head = buf.head(10_000, 1 << 24)
        if not head:
            return buf, delivered
        for key, seg in head:
            assert seg.count == len(seg.lines())
            delivered[key] = seg.count
        buf.remove([key for key, _ in head], count_as="written")


# The page size of each damaged file, read before the damage (the oracle needs it).
PAGE: Dict[Path, int] = {}


def page_of(db: Path) -> int:
    return PAGE.setdefault(db, page_size_of(str(db)) or 4096)


def torn_tail(db: Path) -> None:
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size - page_of(db) // 2)


def truncated(db: Path) -> None:
    page = page_of(db)
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size * 6 // 10 // page * page)


def garbage_header(db: Path) -> None:
    page_of(db)
    with open(db, "r+b") as f:
        f.write(random.Random(1).randbytes(100))


def garbage_first_page(db: Path) -> None:
    """The header and the schema page both garbage."""
    page = page_of(db)
    with open(db, "r+b") as f:
        f.write(random.Random(4).randbytes(page))


def garbage_middle(db: Path) -> None:
    page = page_of(db)
    with open(db, "r+b") as f:
        f.seek(db.stat().st_size // 2 // page * page + page * 1000 // 4096)
        f.write(random.Random(2).randbytes(16 * 1024))


def bit_flips(db: Path) -> None:
    """Flip one bit in the header or lines of every fifth stored segment."""
    page_of(db)
    data = bytearray(db.read_bytes())
    rng = random.Random(3)
    starts = [i for i in range(len(data)) if data[i:i + 4] in (b"EAS1", b"EAS2")]
    for start in starts[::5]:
        where = start + rng.choice([5, 9, 20, 40, 60])  # count, first_time, key, lines
        data[where] ^= 1 << rng.randrange(8)
    db.write_bytes(bytes(data))


DAMAGE: Dict[str, Callable[[Path], None]] = {
    "torn_tail": torn_tail, "truncated": truncated, "garbage_header": garbage_header,
    "garbage_first_page": garbage_first_page,
    "garbage_middle": garbage_middle, "bit_flips": bit_flips,
}


@pytest.mark.skipif(SQLITE3 is None, reason="the sqlite3 shell (the oracle) is not installed")
@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("page_size", [NEW_PAGE_SIZE, 4096])
def test_salvage_delivers_every_readable_segment_and_counts_the_rest(
        tmp_path: Path, damage: str, page_size: int, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "buffer"
    written, total = build(path, page_size)
    db = path / "cache.db"
    DAMAGE[damage](db)
    oracle = readable_by_sqlite3(db)
    whole = damage in ("garbage_header", "garbage_first_page")
    if whole:
        assert oracle == {}, "the shell reads a file with a garbage header: no test"
        oracle = dict(written)  # only the header is gone: everything is readable
    caplog.set_level(logging.CRITICAL, logger="edge_agent.buffer")

    buf, delivered = drain(path)
    try:
        assert delivered == oracle
        lost = buf.counters.get("lost_corrupt")
        # Exact accounting: every accepted point was delivered or counted as lost.
        assert buf.counters.get("accepted") == buf.counters.get("written") + lost
        assert buf.counters.get("written") == sum(delivered.values())
        if not whole:
            assert 0 < len(delivered) < len(written), "the damage hit nothing: no test"
            assert lost > 0
        else:
            assert lost == 0
        assert delivered.keys() <= written.keys()
        # Bit flips and garbage inside a row can change a segment's lines or count: it is
        # recounted from its lines (the rest counted lost). Other damage leaves rows whole.
        if damage not in ("bit_flips", "garbage_middle"):
            assert {k: delivered[k] for k in delivered if delivered[k] != written[k]} == {}
        critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
        assert len(critical) == 1 and f"{lost} points could not be read" in critical[0]
        # Ids never restart: the next segment follows the highest one ever given.
        assert buf.append(A, b"m v=1", 1, 1000.0) > max(written)
    finally:
        buf.close()
    # The counters survive the damage outside the file too, and no second salvage.
    ledger = read_ledger(str(path))
    assert ledger is not None and ledger["counters"]["lost_corrupt"] == lost
    again = DiskBuffer(path, max_size=1 << 28, clock=lambda: 1000.0)
    assert again.counters.get("lost_corrupt") == lost and again.stats().points == 1
    again.close()
    assert len([p for p in tmp_path.iterdir() if ".corrupt-" in p.name]) == 1


def test_counters_and_ids_survive_when_the_file_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "buffer"
    written, total = build(path)
    buf = DiskBuffer(path, clock=lambda: 1000.0)
    buf.remove(list(written)[:10], count_as="written")
    done = sum(list(written.values())[:10])
    buf.close()
    (path / "cache.db").write_bytes(os.urandom(64 * 1024))  # nothing readable is left

    buf, delivered = drain(path)
    try:
        assert delivered == {}
        assert buf.counters.get("written") == done
        assert buf.counters.get("lost_corrupt") == total - done
        assert buf.counters.get("accepted") == total
        assert buf.append(A, b"m v=1", 1, 1000.0) > max(written)
    finally:
        buf.close()


def test_damage_found_while_running_is_salvaged_with_the_live_counts(tmp_path: Path) -> None:
    path = tmp_path / "buffer"
    written, total = build(path)
    buf = DiskBuffer(path, clock=lambda: 1000.0)
    first = buf.head(1, 1 << 20)
    buf.remove([first[0][0]], count_as="written")
    garbage_middle(path / "cache.db")
    buf._cache.close()  # drop SQLite's page cache: the next read sees the damage
    delivered: Dict[int, int] = {}
    while True:
        head = buf.head(10_000, 1 << 24)
        if not head:
            break
        delivered.update((k, s.count) for k, s in head)
        buf.remove([k for k, _ in head], count_as="written")
    counters = buf.counters.snapshot()
    assert counters["lost_corrupt"] > 0
    assert counters["accepted"] == total == counters["written"] + counters["lost_corrupt"]
    buf.close()


def test_ledger_keeps_ids_monotonic_after_a_move_aside(tmp_path: Path) -> None:
    path = tmp_path / "buffer"
    buf = DiskBuffer(path, clock=lambda: 1000.0)
    ids: List[int] = [buf.append(A, b"m v=%d" % i, 1, 1000.0) for i in range(5)]
    buf.remove(ids, count_as="written")
    buf.close()
    shutil.rmtree(path)  # the file is gone altogether (a card replaced, rm -rf)
    buf = DiskBuffer(path, clock=lambda: 1000.0)
    assert buf.append(A, b"m v=9", 1, 1.0) > ids[-1]
    assert buf.counters.get("written") == 5
    buf.close()


def test_salvage_and_status_read_a_state_dir_with_uri_characters(tmp_path: Path) -> None:
    from edge_agent.buffer.recovery import peek_meta

    path = tmp_path / "site ?#%41 dir" / "buffer"
    written, total = build(path)
    meta = peek_meta(str(path))
    assert meta is not None and meta["points"] == total
    garbage_middle(path / "cache.db")
    buf, delivered = drain(path)
    try:
        assert 0 < len(delivered) < len(written)
        assert buf.counters.get("accepted") == (buf.counters.get("written")
                                                + buf.counters.get("lost_corrupt"))
    finally:
        buf.close()
