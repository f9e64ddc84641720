"""Group commit: many actors' submissions, one transaction, one fsync.

Submissions queue in memory in the order actors decided them (so each stream's versions reach
the journal in order). A batch takes what is queued (up to `max_batch`), numbers the events with
consecutive sequence numbers, and appends them in one transaction; one batch is written at a
time, and while it is written the actors keep deciding and the next batch fills up. After the
commit:

- `on_committed(batch, last_seq)` runs on the event loop: committed states, read models,
  subscriptions and replies move forward together (one consistent cut at `last_seq`);
- if the append raised, nothing of the batch is on disk: `on_failed(submissions, error)` gets
  the batch *and* everything queued behind it (decided on top of the failed working states), and
  numbering restarts after the last durable sequence number.
- a submission that cannot be encoded (a value the codec refuses: a bug in one function) is
  left out, with every submission decided on top of it: each later one, in the batch or
  queued, that involves one of the same actors (its own or a companion's). The rest of the
  batch is written as usual; then `on_refused(submissions, error)` gets those left out. One
  bad command costs its own actors' pipelined work, not everyone's.

When a batch starts (the writer and the loop overlap):
- with `threaded`, the append runs in a worker thread started straight from `submit` once
  `cut` submissions are queued and no batch is being written, so the thread writes the first
  part of a burst while the loop is still deciding the rest of it (a burst of replies wakes
  many callers at once, and they all decide within one pass of the scheduler, where no task
  could start a write). `cut` adapts: half the size of the last batch, at least `min_cut`
  (`MIN_CUT`, 256), so a large burst is split in two that take turns with the loop, while a
  small one (a few dozen clients) still goes as one batch: splitting it would only add a
  commit, and with a few clients each commit's fsync is what the callers wait for.
  When the write ends, the next batch starts at once with everything queued meanwhile.
- in any case the commit task starts a batch with whatever is queued when it runs and no batch
  is being written (the end of a scheduler pass: nothing more is coming now). Without
  `threaded` (tests under a virtual clock) this is the only way, and the append runs through
  `run_io`, as any other disk work.

A submission's `ts` is the sequence number of its last event, or, for a command that emitted
nothing, the last sequence number durable when its batch committed (never less than any state it
could have read).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio
import trio.lowlevel

from domain.model import Event
from engine import codec
from engine.actor import SUPERSEDED, Submission
from engine.journal import Batch, Journal, RequestRecord, Row, checksum

log = logging.getLogger("turnstile.commit")

#: The smallest cut of a threaded batch (see the module docstring).
MIN_CUT = 256


class _Prepared:
    """One batch on its way to the journal: what is written, and what was left out."""

    __slots__ = ("error", "good", "last_seq", "refused", "rows", "tainted", "write_seconds")

    def __init__(self) -> None:
        self.good: list[Submission] = []
        self.refused: list[Submission] = []
        self.tainted: set[int] = set()  # ids of actors whose working state built on a refusal
        self.error: BaseException | None = None
        self.rows: Batch | None = None
        self.last_seq = 0
        #: Wall time its append took (in the thread that ran it).
        self.write_seconds = 0.0


class GroupCommit:
    def __init__(
        self,
        journal: Journal,
        *,
        run_io: Callable[[Callable[[], None]], Awaitable[None]],
        on_committed: Callable[[list[Submission], int], None],
        on_failed: Callable[[list[Submission], BaseException], None],
        on_refused: Callable[[list[Submission], BaseException], None] | None = None,
        max_batch: int = 4_096,
        threaded: bool = False,
        min_cut: int = MIN_CUT,
    ) -> None:
        self._journal = journal
        self._run_io = run_io
        self._on_committed = on_committed
        self._on_failed = on_failed
        self._on_refused = on_refused or on_failed
        self._max_batch = max_batch
        self._threaded = threaded
        self._queue: list[Submission] = []
        self._wakeup = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        #: A batch is being written (at most one at a time).
        self._writing = False
        self._min_cut = max(1, min_cut)
        self._cut = self._min_cut
        #: An error raised while finishing a threaded batch on the loop: the commit task
        #: raises it, so that it ends the engine as an error in the commit task would.
        self._crashed: BaseException | None = None
        self.last_seq = journal.last_seq()
        self.batches = 0
        self.rows_written = 0
        #: Wall time spent in appends that committed (the writer's busy time, for benchmarks).
        self.write_seconds = 0.0

    def submit(self, submission: Submission) -> None:
        queue = self._queue
        queue.append(submission)
        if self._idle.is_set():
            self._idle = trio.Event()
        if self._threaded and not self._writing and len(queue) >= self._cut:
            self._start_threaded()
        else:
            self._wakeup.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def take_queued(self) -> list[Submission]:
        """Remove and return every submission not yet taken into a batch (at shutdown, when
        the journal could not take them in time: the caller refuses them)."""
        queued, self._queue = self._queue, []
        return queued

    async def drained(self) -> None:
        """Wait until everything submitted so far is committed or failed."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            if self._crashed is not None:
                raise self._crashed
            if self._writing or not self._queue:
                if not self._writing and not self._queue:
                    self._idle.set()
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            if self._threaded:
                self._start_threaded()
                continue
            prepared = self._prepare()
            self._writing = True
            error: BaseException | None = None
            if prepared.rows is not None:
                try:
                    await self._run_io(functools.partial(_timed_append, self._journal, prepared))
                except Exception as io_error:
                    error = io_error
            self._finish(prepared, error)

    # -- one batch ------------------------------------------------------------------------

    def _take(self) -> list[Submission]:
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        self._cut = max(self._min_cut, len(batch) // 2)
        return batch

    def _prepare(self) -> _Prepared:
        """Take a batch from the queue and encode it (on the loop: it reads the states)."""
        prepared = _Prepared()
        rows: list[Row] = []
        requests: list[RequestRecord] = []
        seq = self.last_seq
        good, refused, tainted = prepared.good, prepared.refused, prepared.tainted
        for submission in self._take():
            if tainted:  # (empty unless a submission of this batch was refused)
                actors = _actors_of(submission)
                if actors & tainted:
                    refused.append(submission)
                    tainted |= actors
                    continue
            try:
                encoded, record, last = _encode(submission, seq)
            except Exception as exc:
                log.error("a command's change cannot be encoded, refused: %r", exc)
                prepared.error = exc
                refused.append(submission)
                tainted |= _actors_of(submission)
                continue
            rows += encoded
            if record is not None:
                requests.append(record)
            seq = submission.ts = last
            good.append(submission)
        prepared.last_seq = seq
        if good:
            prepared.rows = Batch(rows=rows, requests=requests)
            _release_superseded(good)
        return prepared

    def _start_threaded(self) -> None:
        token = trio.lowlevel.current_trio_token()
        prepared = self._prepare()
        self._writing = True
        if prepared.rows is None:  # everything taken was refused: nothing to write
            self._finish(prepared, None)
            return

        def deliver(result: outcome.Outcome[None]) -> None:  # in the worker thread
            token.run_sync_soon(self._written, prepared, result)

        append = functools.partial(_timed_append, self._journal, prepared)
        trio.lowlevel.start_thread_soon(append, deliver)

    def _written(self, prepared: _Prepared, result: outcome.Outcome[Any]) -> None:
        """Back on the loop after a threaded append."""
        error = result.error if isinstance(result, outcome.Error) else None
        try:
            if error is not None and not isinstance(error, Exception):
                raise error  # KeyboardInterrupt and the like: not a storage fault
            self._finish(prepared, error)
            if self._queue and not self._writing:
                self._start_threaded()  # what queued during the write waited long enough
        except BaseException as exc:
            self._crashed = exc
            self._wakeup.set()

    def _finish(self, prepared: _Prepared, io_error: BaseException | None) -> None:
        """The batch's append returned (`io_error` None) or raised."""
        self._writing = False
        good, refused = prepared.good, prepared.refused
        if io_error is not None:
            log.error(
                "journal append failed, %d commands refused: %r",
                len(good) + len(refused),
                io_error,
            )
            failed = good + self._queue
            self._queue = []
            if refused:
                assert prepared.error is not None
                self._on_refused(refused, prepared.error)
            self._on_failed(failed, io_error)
            self._wakeup.set()
            return
        if good:
            assert prepared.rows is not None
            self.last_seq = prepared.last_seq
            self.batches += 1
            self.rows_written += len(prepared.rows.rows)
            self.write_seconds += prepared.write_seconds
            self._on_committed(good, prepared.last_seq)
        if refused:
            assert prepared.error is not None
            tainted = prepared.tainted
            # Queued submissions decided on top of a refused one go with it.
            kept: list[Submission] = []
            for submission in self._queue:
                actors = _actors_of(submission)
                if actors & tainted:
                    refused.append(submission)
                    tainted |= actors
                else:
                    kept.append(submission)
            self._queue = kept
            self._on_refused(refused, prepared.error)
        self._wakeup.set()


def _timed_append(journal: Journal, prepared: _Prepared) -> None:
    assert prepared.rows is not None
    started = time.perf_counter()
    try:
        journal.append(prepared.rows)
    finally:
        prepared.write_seconds = time.perf_counter() - started


def row_of(seq: int, event: Event) -> Row:
    """The journal row of `event` at sequence number `seq` (payload encoded, checksummed)."""
    payload = codec.encode_event(event)
    return Row(
        seq,
        event.stream,
        event.version,
        type(event).type_name,
        type(event).schema,
        payload,
        event.at,
        checksum(payload),
    )


def _release_superseded(batch: list[Submission]) -> None:
    """Only the last state of each actor in `batch` (in commit order: a submission's
    companions before it) becomes a committed state; the others are released now, while the
    batch is written, instead of at its commit. On a hot stream that is most of the batch: each
    state holds its own copies of the paths it changed."""
    seen: set[int] = set()
    for submission in reversed(batch):
        key = id(submission.actor)
        if key in seen:
            submission.state = SUPERSEDED
        else:
            seen.add(key)
        for companion in reversed(submission.companions):
            key = id(companion.actor)
            if key in seen:
                companion.state = SUPERSEDED
            else:
                seen.add(key)


def _actors_of(submission: Submission) -> set[int]:
    return {id(part.actor) for part in (*submission.companions, submission)}


def _encode(submission: Submission, seq: int) -> tuple[list[Row], RequestRecord | None, int]:
    """The journal rows of `submission` numbered after `seq`, its request record (if it has a
    request id), and its last sequence number. Raises if a value cannot be encoded."""
    rows: list[Row] = []
    events = submission.events
    for companion in reversed(submission.companions):
        events = companion.events + events
    for event in events:
        seq += 1
        rows.append(row_of(seq, event))
    record = None
    if submission.request is not None:
        session_id, request_id = submission.request
        record = RequestRecord(
            session_id, request_id, codec.dumps(submission.value), seq, submission.decided_at
        )
    return rows, record, seq
