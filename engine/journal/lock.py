"""The data dir's writer lock: one process writes a data dir at a time.

Plan:
- `lock_data_dir` takes an exclusive `flock` on `LOCK_FILE` and writes the taker's pid into it.
  The descriptor is the lock: it goes when the process ends, however it ends.
- A writer process (engine/journal/writer_process.py) inherits that descriptor, so the lock is
  held while the server or its writer lives. When a server is killed (kill -9, OOM), the kernel
  kills its writer too (`PR_SET_PDEATHSIG`), but asynchronously: the writer may still be ending
  when the server is started again, and a restart must not fail for that.
- So a lock that is held is judged by the pid in the file. If that process lives, another
  server (or another open journal of this process) writes the data dir: `JournalLocked` at
  once, naming the pid. If it has ended (or is a zombie), the holder is a writer outliving it,
  which ends by itself: wait for the lock up to `ORPHAN_WAIT_SECONDS`, then `JournalLocked`.
- The pid is only a hint for the wait and the message; the `flock` alone decides who writes.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from engine.journal.interface import JournalLocked

#: Held (an exclusive `flock`) by the one journal writing a data dir, while it is open; holds
#: the pid of the process that took it.
LOCK_FILE = "journal.lock"
#: How long an open waits for a lock held after its taker ended (its writer process ending).
ORPHAN_WAIT_SECONDS = 10.0
_RETRY_SECONDS = 0.01


def lock_data_dir(data_dir: Path, *, orphan_wait: float = ORPHAN_WAIT_SECONDS) -> int:
    """Take the data dir's writer lock and return its descriptor (close it to let go), or
    raise `JournalLocked` (see the module docstring for when it waits first)."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline: float | None = None
        while not _try_flock(fd):
            holder = _holder(fd)
            if holder is not None and _alive(holder):
                mine = " (this one: another open journal, or its writer)"
                raise JournalLocked(
                    f"{data_dir} is in use: process {holder} writes it"
                    + (mine if holder == os.getpid() else "")
                )
            now = time.monotonic()
            if deadline is None:
                deadline = now + orphan_wait
            if now >= deadline:
                raise JournalLocked(
                    f"{data_dir} is in use: another process writes it (its lock outlived"
                    f" process {holder} for {orphan_wait:g} s)"
                )
            time.sleep(_RETRY_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> int | None:
    """The pid the lock's taker wrote, or None (none written: a taker from before pids were
    written, or one between its flock and its write)."""
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: it exists
        return True
    try:  # a zombie (ended, not yet reaped) holds nothing
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
