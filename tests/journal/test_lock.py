"""The data dir's writer lock (engine/journal/lock.py): refused at once while its taker lives;
waited for while only a process outliving its taker holds it (a killed server's writer, ending);
taken after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.journal import JournalLocked
from engine.journal.lock import LOCK_FILE, _alive, lock_data_dir
from engine.journal.sqlite import SqliteJournal

ROOT = Path(__file__).resolve().parents[2]

#: Takes the lock, starts a process that inherits it and holds it until its stdin (this
#: process's) ends, prints that process's pid, then waits for stdin itself.
_TAKER = """
import subprocess, sys
from pathlib import Path
from engine.journal.lock import lock_data_dir
fd = lock_data_dir(Path(sys.argv[1]))
heir = subprocess.Popen(
    [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"], pass_fds=(fd,)
)
print(heir.pid, flush=True)
sys.stdin.buffer.read()
"""


def _start_taker(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    taker = subprocess.Popen(
        [sys.executable, "-c", _TAKER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert taker.stdout is not None
    heir = int(taker.stdout.readline())
    return taker, heir


def _release(taker: subprocess.Popen[bytes]) -> None:
    """End the heir's (and the taker's, if it lives) stdin: the heir ends and lets go."""
    assert taker.stdin is not None and taker.stdout is not None
    taker.stdin.close()
    taker.stdout.close()


def test_a_lock_whose_taker_lives_is_refused_at_once_naming_it(tmp_path: Path) -> None:
    fd = lock_data_dir(tmp_path)
    try:
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(JournalLocked, match=f"process {os.getpid()} writes it"):
            lock_data_dir(tmp_path, orphan_wait=3600)  # would hang if it waited
    finally:
        os.close(fd)
    os.close(lock_data_dir(tmp_path))


def test_a_lock_held_by_another_live_process_is_refused_at_once(tmp_path: Path) -> None:
    taker, heir = _start_taker(tmp_path)
    try:
        with pytest.raises(JournalLocked, match=f"process {taker.pid} writes it"):
            SqliteJournal.open(tmp_path)
    finally:
        _release(taker)
        taker.wait()
    _wait_for_exit(heir)


def test_a_lock_outliving_its_taker_is_waited_for_then_taken(tmp_path: Path) -> None:
    taker, heir = _start_taker(tmp_path)
    taker.kill()  # as kill -9 of a server: its heir (the writer) still holds the lock
    taker.wait()
    with pytest.raises(JournalLocked, match=f"outlived process {taker.pid}"):
        lock_data_dir(tmp_path, orphan_wait=0)
    taken: list[int] = []
    waiter = threading.Thread(target=lambda: taken.append(lock_data_dir(tmp_path)))
    waiter.start()
    _release(taker)  # the heir ends: the waiting open takes the lock
    waiter.join()
    [fd] = taken
    try:
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    finally:
        os.close(fd)
    _wait_for_exit(heir)


def test_a_zombie_taker_counts_as_ended(tmp_path: Path) -> None:
    taker, heir = _start_taker(tmp_path)
    try:
        os.kill(taker.pid, signal.SIGKILL)
        os.waitid(os.P_PID, taker.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped
        assert not _alive(taker.pid)
        with pytest.raises(JournalLocked, match="outlived"):
            lock_data_dir(tmp_path, orphan_wait=0)
    finally:
        _release(taker)
        taker.wait()
    _wait_for_exit(heir)
    os.close(lock_data_dir(tmp_path, orphan_wait=0))


def test_a_server_killed_with_its_writer_process_opens_again_at_once(tmp_path: Path) -> None:
    """The real thing: a journal with a writer process, its process SIGKILLed, the data dir
    opened right after (the kernel ends the writer, asynchronously)."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from engine.journal.sqlite import SqliteJournal\n"
        "from engine.journal.writer_process import AppendProcess\n"
        "journal = SqliteJournal.open(Path(sys.argv[1]))\n"
        "appender = AppendProcess(journal, 'FULL')\n"
        "appender.start()\n"
        "print(appender.pid, flush=True)\n"
        "sys.stdin.buffer.read()\n"
    )
    for _ in range(3):
        server = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert server.stdout is not None
        int(server.stdout.readline())
        server.kill()
        server.wait()
        SqliteJournal.open(tmp_path).close()
        assert server.stdin is not None
        server.stdin.close()
        server.stdout.close()


def _wait_for_exit(pid: int) -> None:
    """The heir is not our child: wait for its lock to go rather than for the pid."""
    for _ in range(1000):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if not _alive(pid):
            return
        threading.Event().wait(0.01)
