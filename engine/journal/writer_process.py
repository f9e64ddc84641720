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
  answer. The second of two is refused, unwritten, when the first was not written (it was
  decided on top of it; the group commit has refused its commands with the first's). So each
  batch says where the journal must end for it to be written: the sequence number it follows
  (`after_seq`, the group commit's) and the journal's position (writer_child.py: last seq,
  last record rid, last take rid; a batch of records or takes only moves a rid, not the seq).
  The parent counts the position itself: read from the journal before the first batch, moved
  by each batch handed over (`_expected`). Once a failure is answered (`reply` raises), every
  batch still out is doomed (`_Sent.doomed`): each follows a position past the journal's end,
  so the child refuses it, and the position is read again before the next batch is handed
  over (nothing still out can be written meanwhile), so that batch follows the actual end.
  A batch with nothing to write moves no position, so no position can tell that it failed:
  the child never fails one (writer_child.py), and the parent refuses a batch itself, unsent,
  while a batch before it that is not doomed is already known refused (it could not be handed
  over, or its child ended: `_settle`). `after_seq` is the group commit's own count of the
  seq: it agrees with the position's (both start from the journal and start again from it
  after a failure), and is checked too, so that a disagreement refuses rather than writes.
- Frames: engine/journal/writer_child.py.
- If the child ends without answering (killed, crashed), each batch it owed is judged at once
  (`_settle`), before any other child is started, so from the journal as that child left it:
  by its answer if that is in the pipe, else committed if the journal ends exactly where the
  batch would have left it (`follows` moved by the batch), else nothing of it was written (one
  transaction). Exact: the child answers a batch before it reads the next, so only the oldest
  unanswered one can have been written, and a batch not written leaves the journal short of
  that end (a batch with nothing to write counts as committed if all before it were). The
  next `send` sees the child ended, judges its batches then if `reply` has not, and starts a
  new child (unless it refuses the batch, as above).
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
from engine.journal.writer_child import (
    HEADER,
    AppendFailed,
    Position,
    encode_batch,
    error_of,
    position_after,
    position_of,
)

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

    __slots__ = ("ended", "proc", "received", "settled", "unsent")

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        #: Frames not yet taken by the pipe, and answer bytes read but not yet a whole answer.
        self.unsent = bytearray()
        self.received = bytearray()
        #: Known to have ended: its answers are left to `_settle`.
        self.ended = False
        #: Every batch it was sent is judged (`_settle`), and its pipes are closed.
        self.settled = False

    @property
    def stdin(self) -> int:
        assert self.proc.stdin is not None
        return self.proc.stdin.fileno()

    @property
    def stdout(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()


class _Sent:
    """A batch sent, until its answer is taken."""

    __slots__ = ("batch", "child", "doomed", "error", "follows", "judged")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        #: The child it was handed to (None: refused without one, `error` says why), and the
        #: journal position it must follow there.
        self.child: _Child | None = None
        self.follows: Position = (0, 0, 0)
        #: Its outcome, when known otherwise than by its child's answer: refused without being
        #: handed over, or judged from the journal after its child ended (`error` None:
        #: committed).
        self.judged = False
        self.error: BaseException | None = None
        #: A batch before it failed while it was out: it was decided on top of that one (the
        #: group commit refuses it with it), so it is refused too.
        self.doomed = False

    def judge(self, error: BaseException | None) -> None:
        self.judged = True
        self.error = error


class AppendProcess:
    """The engine's writer child (see the module docstring). Event loop only."""

    def __init__(self, journal: SqliteJournal, synchronous: str) -> None:
        self._journal = journal
        self._synchronous = synchronous
        self._child: _Child | None = None
        #: Batches sent and not yet answered, oldest first.
        self._outstanding: collections.deque[_Sent] = collections.deque()
        #: Children started so far (1 normally; more after a child ended).
        self.started = 0
        #: When `answered()` last read the pipe (perf_counter).
        self._polled = 0.0
        #: Where the journal ends once every batch handed over is written: read before the
        #: first batch and before the first one sent after a failure was answered (None until
        #: then), moved by each batch handed over.
        self._expected: Position | None = None

    def start(self) -> None:
        """Start the child now (else the first `send` does), so that it is ready by then."""
        if self._child is None:
            self._spawn()

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.proc.pid

    def _spawn(self) -> _Child:
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
        self._child = child = _Child(proc)
        self.started += 1
        return child

    def send(self, batch: Batch, after_seq: int) -> None:
        """Hand `batch` to the child without blocking (see the module docstring), to be
        written only if the journal then ends at `after_seq` and where the batches sent before
        it leave it; a `reply()` follows for each `send`, in order. Never raises: a batch that
        cannot be handed over is refused by its `reply()`."""
        child = self._child
        if child is not None and (child.settled or child.proc.poll() is not None):
            # It ended: what it owed is judged now, before a new child can write anything.
            self._settle(child)
            self._child = child = None
        sent = _Sent(batch)
        self._outstanding.append(sent)
        if any(before.error is not None and not before.doomed for before in self._outstanding):
            # A batch before it is refused, and this one was decided on top of it.
            sent.judge(AppendFailed("a batch before it was not written, so it is not either"))
            return
        try:
            if self._expected is None:
                self._expected = position_of(self._journal)
            if child is None:
                child = self._spawn()
        except Exception as exc:
            sent.judge(AppendFailed(f"the journal writer could not be started: {exc!r}"))
            return
        sent.child, sent.follows = child, self._expected
        self._expected = position_after(self._expected, batch)
        frame = encode_batch(batch, after_seq, sent.follows)
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
        sent = self._outstanding[0]
        child = sent.child
        if sent.judged or child is None or child.ended or child is not self._child:
            return False
        if child.unsent:
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
        if sent.judged:
            error = sent.error
        else:
            assert sent.child is not None
            error = error_of(_take_answer(sent.child.received))
        if error is not None:
            self._refused(sent)
            raise error

    def _refused(self, sent: _Sent) -> None:
        """`sent` (taken from `_outstanding`) was not written. Unless it was doomed, every
        batch still out was decided on top of it, so is doomed: each follows a position past
        where the journal ends, or is refused here (`send`). The journal's end is read again
        before the next batch is handed over (until then nothing out can be written)."""
        if sent.doomed:
            return
        for later in self._outstanding:
            later.doomed = True
        self._expected = None

    async def wait_answer(self) -> None:
        """Wait until the oldest batch's answer is in or its child has ended, writing what is
        left of the batch meanwhile; consumes nothing (`reply()` or `take_answer()` does)."""
        while self._outstanding:
            sent = self._outstanding[0]
            child = sent.child
            if sent.judged or child is None or child.ended or _whole_answer(child.received):
                return
            try:
                if child.unsent:
                    await _write_unsent(child)
                    continue
                await trio.lowlevel.wait_readable(child.stdout)
            except BrokenPipeError:  # gone: `reply()` judges
                return
            except trio.ClosedResourceError:  # judged meanwhile (`_settle`): look again
                continue
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
            sent = self._outstanding[0]
            child = sent.child
            if not sent.judged and child is not None and not _whole_answer(child.received):
                # No answer is coming: the child ended (`answered()` takes nothing from it
                # meanwhile). What it owed is judged once it is gone.
                child.ended = True
                child.unsent.clear()
                await trio.to_thread.run_sync(child.proc.wait, abandon_on_cancel=True)
                self._settle(child)
        except BaseException:  # (an error of the pipe: this batch is refused with it)
            self._refused(self._outstanding.popleft())
            raise
        self.take_answer()

    def _settle(self, child: _Child) -> None:
        """Judge every batch that `child`, which ended, was sent and has not been answered
        for: by its answer if that is in the pipe, else from the journal (see the module
        docstring); then close its pipes. Called before any other child is started, so the
        journal ends where `child` left it."""
        if child.settled:
            return
        child.ended = child.settled = True
        received = child.received
        with contextlib.suppress(OSError):  # (BlockingIOError: nothing more)
            while data := os.read(child.stdout, 65536):
                received += data
        end: Position | BaseException | None = None
        for sent in self._outstanding:
            if sent.child is not child or sent.judged:
                continue
            if _whole_answer(received):
                sent.judge(error_of(_take_answer(received)))
                continue
            if end is None:
                try:
                    end = position_of(self._journal)
                except Exception as exc:
                    end = exc
            if isinstance(end, BaseException):
                sent.judge(AppendFailed(f"the journal writer ended and the journal fails: {end!r}"))
            elif end == position_after(sent.follows, sent.batch):
                log.error("the journal writer ended after committing a batch; restarting")
                sent.judge(None)
            else:
                sent.judge(
                    AppendFailed(
                        f"the journal writer ended (exit status {child.proc.returncode})"
                        " before committing the batch"
                    )
                )
        _discard(child.proc)

    async def aclose(self) -> None:
        """Close the pipe and wait for the child to end (after the append it is in, if any);
        past `CLOSE_SECONDS`, kill it."""
        child, self._child = self._child, None
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
    """Close the parent's ends of an ended child's pipes. A task waiting on one (`wait_answer`
    for a batch that `_settle` judged meanwhile) is woken first, with `ClosedResourceError`:
    a descriptor closed under a waiter would leave it waiting for good."""
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None and not pipe.closed:
            trio.lowlevel.notify_closing(pipe.fileno())
            with contextlib.suppress(OSError):
                pipe.close()
