"""Bytes one disk-buffer commit writes: the quick loop behind bench/wear.py's offline number.

    .venv/bin/python bench/commit_bytes.py [--commits 30] [--dir /var/tmp]

Opens a DiskBuffer in a temporary directory on ``--dir`` (a real disk, not a
tmpfs: page-cache writeback is what is counted) and commits, ``--commits``
times, what the agent commits after a 60 s hold offline: one segment of 8
sensors x 60 s of line protocol (about 30 KB) with its "accepted" count.
After each commit ``os.sync()`` writes the dirty pages back, as the 60 s
between real commits would, so the next commit dirties them again. Prints
``write_bytes`` of ``/proc/self/io`` per commit (4 KiB page-cache pages
dirtied: frames that share a page count once), the WAL's growth per commit,
the SQLite pages each commit wrote (from the WAL's frame headers) and the
ratio to the line-protocol bytes.
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.buffer.disklog import DiskBuffer  # noqa: E402
from edge_agent.buffer.segment import Segment  # noqa: E402
from edge_agent.destination import Destination  # noqa: E402

FIELDS = ["temperature=%.2f,humidity=%.2f,pressure=%.2f", "temperature=%.2f,humidity=%.2f",
          "voltage=%.4f", "lux=%.1f"]


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise SystemExit("no write_bytes in /proc/self/io")


def minute(rng: random.Random, t0: float) -> List[bytes]:
    out = []
    for s in range(60):
        for i in range(8):
            fmt = FIELDS[i % 4]
            values = tuple(rng.uniform(10, 1000) for _ in range(fmt.count("%")))
            out.append((f"s{i},agent=wear " + fmt % values + f" {int((t0 + s) * 1e9)}").encode())
    return out


def frames(wal: str, start: int) -> List[int]:
    """Page numbers of the WAL frames after byte ``start``."""
    raw = Path(wal).read_bytes()
    page = struct.unpack(">I", raw[8:12])[0]
    pos, out = max(start, 32), []
    while pos + 24 <= len(raw):
        out.append(struct.unpack(">I", raw[pos:pos + 4])[0])
        pos += 24 + page
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=30)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    rng = random.Random(1)
    dest = Destination("greenhouse", "home")
    with tempfile.TemporaryDirectory(prefix="commit-bytes-", dir=args.dir) as tmp:
        buf = DiskBuffer(os.path.join(tmp, "buffer"))
        wal = os.path.join(buf.directory, "cache.db-wal")
        page = buf._cache._sql("PRAGMA page_size").fetchone()[0]
        os.sync()
        written = lp = grown = 0
        pages: List[int] = []
        t0 = time.time()
        for k in range(args.commits):
            lines = minute(rng, t0 + 60 * k)
            data = b"\n".join(lines)
            lp += len(data) + 1
            before, size = write_bytes(), os.path.getsize(wal)
            buf.append_many([Segment(dest, len(lines), data, t0 + 60 * k)],
                            {"accepted": len(lines)})
            os.sync()
            written += write_bytes() - before
            grown += os.path.getsize(wal) - size
            pages = frames(wal, size)
        buf.close()
    n = args.commits
    print(f"page_size {page}: {n} commits of {lp // n} B of line protocol: "
          f"written {written // n} B/commit ({written / lp:.2f}x), WAL +{grown // n} B/commit; "
          f"the last commit wrote pages {pages}")


if __name__ == "__main__":
    main()
