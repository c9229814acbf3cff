"""What the agent keeps in RAM-backed storage: the status file and the counters' journal.

Both change all the time and neither must wear the SD card: they live in a
private directory (mode 0700, ours) in ``$RUNTIME_DIRECTORY`` (systemd) or
/dev/shm, named after the state directory. Both survive the process (kill -9,
a crash) and go with a reboot or a power cut.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from typing import Optional

from ..buffer.tally import FILE_NAME, Tally

__all__ = ["STATUS_FILE", "open_tally", "private_runtime_dir", "status_path", "tally_path"]

log = logging.getLogger("edge_agent.agent")

STATUS_FILE = "status.json"


def private_runtime_dir(state_dir: str, create: bool = True) -> Optional[str]:
    """This state directory's private directory in RAM, made if need be; None without one
    (no such storage, or the directory there is not ours alone)."""
    runtime = (os.environ.get("RUNTIME_DIRECTORY") or "/dev/shm").split(":")[0]
    if not os.path.isdir(runtime):
        return None
    digest = hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:16]
    private = os.path.join(runtime, f"edge-agent-{digest}")
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(private, 0o700)
        info = os.lstat(private)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return private


def status_path(state_dir: str) -> str:
    """Where the status file is written: RAM-backed storage when there is some.

    It is rewritten every 2 s, which alone would write about 2 KB/s to an SD
    card (4x the line protocol of 10 sensors at 1 s). ``state_dir/status.json``
    becomes a symlink to the private runtime directory, so readers find it
    where they always did. Without one the file stays in state_dir.
    """
    link = os.path.join(state_dir, STATUS_FILE)
    private = private_runtime_dir(state_dir)
    if private is None:
        return link
    target = os.path.join(private, STATUS_FILE)
    try:
        if os.path.islink(link) and os.readlink(link) == target:
            return target
        tmp = link + ".link"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:
        return link
    return target


def tally_path(state_dir: str) -> Optional[str]:
    """Where the journal of ``state_dir`` is, if its directory exists (nothing is made)."""
    private = private_runtime_dir(state_dir, create=False)
    return None if private is None else os.path.join(private, FILE_NAME)


def open_tally(state_dir: str) -> Optional[Tally]:
    """The counters' journal of this state directory, None (one warning) without RAM storage."""
    private = private_runtime_dir(state_dir)
    try:
        if private is not None:
            return Tally.in_dir(private)
    except (OSError, ValueError) as exc:
        log.warning("cannot keep the counters' journal in %s (%s)", private, exc)
        return None
    log.warning("no RAM-backed directory (/dev/shm or $RUNTIME_DIRECTORY) for the counters' "
                "journal: after a kill, counts since the last buffer commit are not recovered")
    return None
