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
- The parent sends a batch from the event loop (`send`: a non-blocking write, which the child
  reads as it goes; for a batch larger than the pipe, `send` waits for room up to
  `HANDOVER_SECONDS`, and `wait_answer` writes what is left), and `await reply()` reads the
  answer: nothing, or the error the child's `append` raised, raised again in the parent as
  the same class (SQLite's errors, `OSError` with its errno), so a refusal names its fault as
  before.
- `answered()` reads the answer pipe without blocking (at most once per `POLL_SECONDS`) and
  says whether the oldest batch's answer is in; `take_answer()` then gives it as `reply()`
  would, so the group commit can finish a batch from any task without a scheduler pass. The
  answers task waits with `wait_answer()`, which consumes nothing. An ended child's batches
  are only ever answered by `reply()`.
- Two batches may be in flight (the group commit's `DEPTH_PROCESS`), so that the child goes on
  to the next batch as soon as one is durable instead of waiting for the loop to read its
  answer. Each batch says which sequence number it follows, and the child writes it only if the
  journal ends there: the second of two is refused, unwritten, when the first was not written
  (it was decided on top of it); the group commit has refused its commands with the first's.
- Frames: engine/journal/writer_child.py.
- If the child ends without answering (killed, crashed), each batch it owed is judged from the
  journal once the child is gone: committed if its last row (or record) is there, or, for a
  batch of takes only, if the journal holds as many takes more than the batches answered
  before it left (`_take_rid`, the last take rid they left: the child answers a batch before
  it reads the next, so only the oldest unanswered one can have been written, its takes at
  the rids after that); else nothing of it was written (one transaction). The next batch
  starts a new child.
- The child indexes nothing on its own beyond what `append` does past `_TAIL_KEYS`; it reads
  the index's positions (which the parent's catch-up moves) every `POSITIONS_EVERY` rows, so
  its memory of the tail is pruned as the parent's would be.
- `aclose()` closes the pipe (the child finishes the append it is in, if any, and exits) and
  waits for the child to end.

Only the engine's group commit uses this, and only where `EngineConfig.writer_process` is on;
everything else (tools, tests, a bulk copy) appends in-process through `Journal.append`.
"""

from __future__ import annotations

import collections
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
#: leaving the rest to `wait_answer`.
HANDOVER_SECONDS = 0.02
#: The least time between two reads of the answer pipe by `answered()` (a system call each;
#: the engine asks as every mutation begins).
POLL_SECONDS = 0.0002
#: Seconds `aclose` waits for the child to finish its append and exit before killing it.
CLOSE_SECONDS = 30.0
_ROOT = Path(__file__).resolve().parents[2]
#: The child's program (engine/journal/writer_child.py).
_CHILD = "import sys; from engine.journal.writer_child import main; main(sys.argv[1:])"


# -- the parent's side ----------------------------------------------------------------------


class _Child:
    """One writer child and the parent's ends of its pipes."""

    __slots__ = ("proc", "received", "unsent")

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        #: Frames not yet taken by the pipe, and answer bytes read but not yet a whole answer.
        self.unsent = bytearray()
        self.received = bytearray()

    @property
    def stdin(self) -> int:
        assert self.proc.stdin is not None
        return self.proc.stdin.fileno()

    @property
    def stdout(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()


class _Sent:
    __slots__ = ("batch", "child", "failed")

    def __init__(self, batch: Batch, child: _Child | None, failed: Exception | None) -> None:
        self.batch = batch
        self.child = child  # None: it could not be handed to any (`failed` says why)
        self.failed = failed


class AppendProcess:
    """The engine's writer child (see the module docstring). Event loop only."""

    def __init__(self, journal: SqliteJournal, synchronous: str) -> None:
        self._journal = journal
        self._synchronous = synchronous
        self._child: _Child | None = None
        #: Batches sent and not yet answered, oldest first.
        self._outstanding: collections.deque[_Sent] = collections.deque()
        #: Children that ended, until no batch waits on them.
        self._ended: list[_Child] = []
        #: Children started so far (1 normally; more after a child ended).
        self.started = 0
        #: When `answered()` last read the pipe (perf_counter).
        self._polled = 0.0
        #: The journal's last take rid after every batch answered (or judged) so far: read as
        #: the first child starts (the parent appends nothing itself from then on), then moved
        #: by each committed batch's takes.
        self._take_rid = 0

    def start(self) -> None:
        """Start the child now (else the first `send` does), so that it is ready by then."""
        if self._child is None:
            self._spawn()

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.proc.pid

    def _spawn(self) -> None:
        lock = self._journal.lock_fd
        if lock is None:
            raise RuntimeError("the journal is not open for writing")
        if not self.started:
            self._take_rid = self._journal.last_take_rid()
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
        self._child = _Child(proc)
        self.started += 1

    def send(self, batch: Batch, after_seq: int) -> None:
        """Hand `batch` to the child without blocking (see the module docstring), to be
        written only if the journal then ends at `after_seq`; a `reply()` follows for each
        `send`, in order. Never raises: a batch that cannot be handed over is refused by its
        `reply()`."""
        child = self._child
        if child is not None and child.proc.poll() is not None:
            # It ended: what it owed is judged by `reply`; a new child takes this batch.
            self._ended.append(child)
            self._child = child = None
            self._discard_ended()
        if child is None:
            try:
                self._spawn()
            except Exception as exc:
                self._outstanding.append(_Sent(batch, None, exc))
                return
            child = self._child
            assert child is not None
        self._outstanding.append(_Sent(batch, child, None))
        frame = encode_batch(batch, after_seq)
        if child.unsent:  # behind what the pipe has not taken yet
            child.unsent += frame
            return
        view = memoryview(frame)
        deadline = time.monotonic() + HANDOVER_SECONDS
        while view:
            try:
                view = view[os.write(child.stdin, view) :]
            except BlockingIOError:
                # A batch larger than the pipe: the child is reading it, so wait for room a
                # little here rather than a scheduler pass per pipeful in `reply`.
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [child.stdin], [], left)[1]:
                    break
            except OSError:  # (BrokenPipe) the child is gone: `reply` finds out what was written
                return
        child.unsent += view

    def answered(self) -> bool:
        """Whether the child's answer to the oldest batch sent is in (the pipe read without
        blocking, at most once per `POLL_SECONDS`), so that `take_answer()` may be called.
        False while part of the batch is still to be written, and for a child that ended
        (`reply()` judges what it owed)."""
        if not self._outstanding:
            return False
        child = self._outstanding[0].child
        if child is None or child is not self._child or child.unsent:
            return False
        received = child.received
        if _whole_answer(received):
            return True
        now = time.perf_counter()
        if now - self._polled < POLL_SECONDS:
            return False
        self._polled = now
        try:
            data = os.read(child.stdout, 65536)
        except OSError:  # (BlockingIOError: nothing yet)
            return False
        if not data:  # it ended: left to `reply()`, which reads the end again
            return False
        received += data
        return _whole_answer(received)

    def take_answer(self) -> None:
        """Once the oldest batch's answer is in (`answered()`, or `wait_answer()` returned
        with it): that answer, as `reply()` gives it."""
        sent = self._outstanding.popleft()
        try:
            assert sent.child is not None
            answer = _take_answer(sent.child.received)
        finally:
            self._discard_ended()
        error = error_of(answer)
        if error is not None:
            raise error
        self._take_rid += len(sent.batch.takes)

    async def wait_answer(self) -> None:
        """Wait until the oldest batch's answer is in or its child has ended, writing what is
        left of the batch meanwhile; consumes nothing (`reply()` or `take_answer()` does)."""
        while self._outstanding:
            child = self._outstanding[0].child
            if child is None or _whole_answer(child.received):
                return
            if child.unsent:
                try:
                    await _write_unsent(child)
                except BrokenPipeError:  # gone: `reply()` judges
                    return
                continue
            await trio.lowlevel.wait_readable(child.stdout)
            try:
                data = os.read(child.stdout, 65536)
            except BlockingIOError:
                continue
            if not data:  # ended: `reply()` judges
                return
            child.received += data

    async def reply(self) -> None:
        """The child's answer to the oldest batch sent: return (the batch is durable) or
        raise (nothing of it was written)."""
        if not self._outstanding:
            raise RuntimeError("no batch was sent")
        try:
            await self.wait_answer()
        except BaseException:  # (an error of the pipe: this batch is refused with it)
            self._outstanding.popleft()
            self._discard_ended()
            raise
        sent = self._outstanding[0]  # (no await since: nothing else took it)
        child = sent.child
        if child is not None and _whole_answer(child.received):
            self.take_answer()
            return
        # No answer is coming: the child could not be started, or it ended.
        try:
            if child is None:
                raise AppendFailed(f"the journal writer could not be started: {sent.failed!r}")
            child.unsent.clear()
            await trio.to_thread.run_sync(child.proc.wait, abandon_on_cancel=True)
            if self._committed(sent.batch):
                log.error("the journal writer ended after committing a batch; restarting")
                self._take_rid += len(sent.batch.takes)
                return
            raise AppendFailed(
                f"the journal writer ended (exit status {child.proc.returncode}) before"
                " committing the batch"
            )
        finally:
            self._outstanding.popleft()
            self._discard_ended()

    def _committed(self, batch: Batch) -> bool:
        """Whether `batch`, the oldest unanswered one of a child that ended, was written (see
        the module docstring)."""
        if batch.rows:
            return self._journal.last_seq() >= batch.rows[-1].seq
        if batch.requests:
            last = batch.requests[-1]
            return self._journal.lookup_request(last.session_id, last.request_id) is not None
        if batch.takes:
            return self._journal.last_take_rid() >= self._take_rid + len(batch.takes)
        return True

    def _discard_ended(self) -> None:
        """Close the pipes of ended children that no batch waits on any more."""
        if not self._ended:
            return
        waited = {id(sent.child) for sent in self._outstanding}
        for child in list(self._ended):
            if id(child) not in waited:
                self._ended.remove(child)
                _discard(child.proc)

    async def aclose(self) -> None:
        """Close the pipe and wait for the child to end (after the append it is in, if any);
        past `CLOSE_SECONDS`, kill it."""
        child, self._child = self._child, None
        for ended in self._ended:
            _discard(ended.proc)
        self._ended.clear()
        if child is None:
            return
        proc = child.proc
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


def _whole_answer(received: bytearray) -> bool:
    return (
        len(received) >= HEADER.size
        and len(received) >= HEADER.size + HEADER.unpack_from(received)[0]
    )


def _take_answer(received: bytearray) -> Any:
    """The first answer in `received` (whole: `_whole_answer`), removed from it."""
    (size,) = HEADER.unpack_from(received)
    body = bytes(received[HEADER.size : HEADER.size + size])
    del received[: HEADER.size + size]
    return marshal.loads(body)


async def _write_unsent(child: _Child) -> None:
    """Write what the pipe to `child` has not taken yet of the batches sent to it."""
    while child.unsent:
        await trio.lowlevel.wait_writable(child.stdin)
        try:
            written = os.write(child.stdin, child.unsent)
        except BlockingIOError:
            continue
        del child.unsent[:written]


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
