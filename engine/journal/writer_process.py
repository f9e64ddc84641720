"""The journal's appends in a process of their own, so that writing never waits for the event
loop's interpreter lock.

Why: an append in a worker thread needs the interpreter lock to start and again after each
SQLite call (about a dozen times per batch), and a busy event loop gives it up only when it
blocks or after the switch interval (5 ms). So a thread's append starts only once the loop
has nothing left to do, and the loop and the writer take turns instead of overlapping. A
child process has an interpreter of its own: the loop hands it a batch with one write to a
pipe and hears back with one read, both without waiting for anyone.

Plan:
- `AppendProcess(journal).start()` spawns a Python child running `main` for an open
  `SqliteJournal`. The child opens the same data dir with `SqliteJournal` (the schema, the
  index and the checks are the same code), without taking the data dir's lock: it inherits
  the parent's lock file descriptor instead, so the lock is held while either process lives
  (a new server cannot open the data dir while an old writer could still commit), and it asks
  the kernel to end it when the parent ends.
- The parent sends a batch from the event loop (`send`: a non-blocking write, which the idle
  child reads as it goes; for a batch larger than the pipe, `send` waits for room up to
  `HANDOVER_SECONDS`, and what is left then is written by `reply`), and `await reply()` reads
  the answer: nothing, or the error the child's `append` raised, raised again in the parent as
  the same class (SQLite's errors, `OSError` with its errno), so a refusal names its fault as
  before.
- Frames are a 4-byte little-endian length and a `marshal` body: a batch as its rows' and
  records' values in one flat list each (built at C speed on the loop), an answer as None or
  `(class name, errno, message)`.
- If the child ends without answering (killed, crashed), the batch's fate is read from the
  journal once the child is gone: committed if its last row (or record) is there, else
  nothing of it was written (one transaction). The next batch starts a new child.
- The child indexes nothing on its own beyond what `append` does past `_TAIL_KEYS`; it reads
  the index's positions (which the parent's catch-up moves) every `POSITIONS_EVERY` rows, so
  its memory of the tail is pruned as the parent's would be.
- `aclose()` closes the pipe (the child finishes the append it is in, if any, and exits) and
  waits for the child to end.

Only the engine's group commit uses this, and only where `EngineConfig.writer_process` is on;
everything else (tools, tests, a bulk copy) appends in-process through `Journal.append`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from engine.journal.interface import Batch
from engine.journal.sqlite import SqliteJournal
from engine.journal.writer_child import HEADER, AppendFailed, encode_batch, error_of

log = logging.getLogger("turnstile.journal")

#: Bytes the pipe to the child holds (a batch of a few thousand rows fits in one write).
PIPE_BYTES = 4 << 20
_F_SETPIPE_SZ = 1031
#: Seconds `send` may wait for room in the pipe (for a batch larger than the pipe holds) before
#: leaving the rest to `reply`.
HANDOVER_SECONDS = 0.02
#: Seconds `aclose` waits for the child to finish its append and exit before killing it.
CLOSE_SECONDS = 30.0
_ROOT = Path(__file__).resolve().parents[2]
#: The child's program (engine/journal/writer_child.py).
_CHILD = "import sys; from engine.journal.writer_child import main; main(sys.argv[1:])"


# -- the parent's side ----------------------------------------------------------------------


class AppendProcess:
    """The engine's writer child (see the module docstring). Event loop only."""

    def __init__(self, journal: SqliteJournal, synchronous: str) -> None:
        self._journal = journal
        self._synchronous = synchronous
        self._proc: subprocess.Popen[bytes] | None = None
        self._unsent = memoryview(b"")
        self._batch: Batch | None = None
        self._received = bytearray()
        #: Why the last `send` could not hand its batch over (raised by `reply`).
        self._failed: Exception | None = None
        #: Children started so far (1 normally; more after a child ended).
        self.started = 0

    def start(self) -> None:
        """Start the child now (else the first `send` does), so that it is ready by then."""
        if self._proc is None:
            self._spawn()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _spawn(self) -> None:
        lock = self._journal.lock_fd
        if lock is None:
            raise RuntimeError("the journal is not open for writing")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(self._journal.path.parent),
                self._synchronous,
                str(lock),
                str(os.getpid()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(lock,),
            env=env,
            bufsize=0,
        )
        assert proc.stdin is not None and proc.stdout is not None
        for pipe in (proc.stdin, proc.stdout):
            os.set_blocking(pipe.fileno(), False)
        _widen(proc.stdin.fileno())
        self._proc = proc
        self.started += 1

    def send(self, batch: Batch) -> None:
        """Hand `batch` to the child (one write, without blocking); `reply()` must follow
        before the next `send`."""
        if self._batch is not None:
            raise RuntimeError("one batch at a time")
        self._batch = batch
        self._failed = None
        if self._proc is not None and self._proc.poll() is not None:
            _discard(self._proc)  # (it ended: `reply` told the caller what became of its batch)
            self._proc = None
        if self._proc is None:
            try:
                self._spawn()
            except Exception as exc:  # (no process to hand it to: `reply` raises this)
                self._failed = exc
                return
        assert self._proc is not None and self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        frame = memoryview(encode_batch(batch))
        deadline = time.monotonic() + HANDOVER_SECONDS
        while frame:
            try:
                frame = frame[os.write(fd, frame) :]
            except BlockingIOError:
                # A batch larger than the pipe: the idle child is reading it, so wait for room
                # a little here rather than a scheduler pass per pipeful in `reply`.
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [fd], [], left)[1]:
                    break
            except OSError:  # (BrokenPipe) the child is gone: `reply` finds out what was written
                frame = frame[len(frame) :]
        self._unsent = frame

    async def reply(self) -> None:
        """Wait for the child's answer to the batch sent; raise its error (nothing of the
        batch written), or return (the batch is durable)."""
        batch, proc = self._batch, self._proc
        if batch is None:
            raise RuntimeError("no batch was sent")
        if self._failed is not None or proc is None:
            self._batch = None
            failed, self._failed = self._failed, None
            raise AppendFailed(f"the journal writer could not be started: {failed!r}")
        assert proc.stdin is not None and proc.stdout is not None
        try:
            try:
                while self._unsent:
                    await trio.lowlevel.wait_writable(proc.stdin.fileno())
                    try:
                        written = os.write(proc.stdin.fileno(), self._unsent)
                    except BlockingIOError:
                        continue
                    self._unsent = self._unsent[written:]
                answer = await self._read_answer(proc.stdout.fileno())
            except (BrokenPipeError, EOFError):
                await self._await_end(proc)
                if self._committed(batch):
                    log.error("the journal writer ended after committing a batch; restarting")
                    return
                raise AppendFailed(
                    f"the journal writer ended (exit status {proc.returncode}) before"
                    " committing the batch"
                ) from None
        finally:
            self._batch = None
            self._unsent = memoryview(b"")
        error = error_of(answer)
        if error is not None:
            raise error

    async def _read_answer(self, fd: int) -> Any:
        received = self._received
        while True:
            if len(received) >= HEADER.size:
                (size,) = HEADER.unpack_from(received)
                if len(received) >= HEADER.size + size:
                    body = bytes(received[HEADER.size : HEADER.size + size])
                    del received[: HEADER.size + size]
                    return marshal.loads(body)
            await trio.lowlevel.wait_readable(fd)
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                received.clear()
                raise EOFError
            received += data

    async def _await_end(self, proc: subprocess.Popen[bytes]) -> None:
        """Until the child has ended (it closed its end: it is exiting or killed)."""
        await trio.to_thread.run_sync(proc.wait, abandon_on_cancel=True)

    def _committed(self, batch: Batch) -> bool:
        if batch.rows:
            return self._journal.last_seq() >= batch.rows[-1].seq
        if batch.requests:
            last = batch.requests[-1]
            return self._journal.lookup_request(last.session_id, last.request_id) is not None
        return True

    async def aclose(self) -> None:
        """Close the pipe and wait for the child to end (after the append it is in, if any);
        past `CLOSE_SECONDS`, kill it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with trio.move_on_after(CLOSE_SECONDS):
            await trio.to_thread.run_sync(proc.wait, abandon_on_cancel=True)
        if proc.poll() is None:
            log.error("the journal writer did not end in %.0f s: killing it", CLOSE_SECONDS)
            proc.kill()
            proc.wait()
        _discard(proc)


def _widen(fd: int) -> None:
    """Make the pipe hold `PIPE_BYTES`, or as much as the system lets a process ask for
    (`/proc/sys/fs/pipe-max-size`, 1 MiB by default); a batch larger than the pipe takes
    more turns of the commit task to hand over."""
    size = PIPE_BYTES
    while size >= 1 << 16:
        try:
            fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
            return
        except OSError:  # (EPERM past the limit; not Linux: EINVAL)
            size >>= 1


def _discard(proc: subprocess.Popen[bytes]) -> None:
    """Close the parent's ends of an ended child's pipes."""
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
