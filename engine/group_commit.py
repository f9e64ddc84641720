"""Group commit: many actors' submissions, one transaction, one fsync.

Submissions queue in memory in the order actors decided them (so each stream's versions reach
the journal in order). Each is encoded as it is submitted: its rows numbered with the next
sequence numbers and its request record made, so that a change the codec refuses raises from
`submit` and its command is refused like a handler's error, before its actor accepts it (no
other command is decided on top of it, nothing else is held back). A batch takes what is
queued (up to `max_batch`) and appends it in one transaction; one batch is written at a time,
and while it is written the actors keep deciding and the next batch fills up. After the commit:

- `on_committed(batch, last_seq)` runs on the event loop: committed states, read models,
  subscriptions and replies move forward together (one consistent cut at `last_seq`);
- if the append raised, nothing of the batch is on disk: `on_failed(submissions, error)` gets
  the batch *and* everything queued behind it (decided on top of the failed working states), and
  numbering restarts after the last durable sequence number.

When a batch starts (the writer and the loop overlap):
- with `threaded`, the append runs in a worker thread. The thread is started straight from
  `submit` once `cut` submissions are queued and no batch is being written, so it writes the
  first part of a burst while the loop is still deciding the rest of it (a burst of replies
  wakes many callers at once, and they all decide within one pass of the scheduler, where no
  task could start a write). `cut` adapts: half the size of the last batch, at least `min_cut`
  (`MIN_CUT`, 256), so a large burst is split in two that take turns with the loop, while a
  small one (a few dozen clients) still goes as one batch: splitting it would only add a commit,
  and with a few clients each commit's fsync is what the callers wait for.
  When the write ends, the next batch starts at once with everything queued meanwhile.
- with an `appender` (engine/journal/writer_process.py: the journal's appends in a child
  process), a batch is started the same way, from `submit` once `cut` are queued or by the
  commit task, but handed over with one write to a pipe from the loop itself: no thread has
  to get the interpreter lock from a busy loop before it can begin, so the child writes while
  the loop decides. Up to `DEPTH_PROCESS` (2) batches are in flight, so the child starts the
  next as soon as one is durable; a task beside the commit task reads the answers in order and
  finishes each batch on the loop. Each batch carries the sequence number it follows
  (`after_seq`): if one fails, the batch in flight behind it (decided on top of it) is refused
  with it, once, and the writer refuses to write it. The smallest cut is `MIN_CUT_PROCESS`
  (32): a burst of a few dozen callers is split in two that overlap, the loop deciding one
  half while the child writes the other, as a thread's append could not.
  `poll()` (the engine calls it as each mutation begins) finishes the oldest batch at once if
  its answer is in, without waiting for the answers task's turn after the scheduler pass;
  the next batch is left to the commit task, so that it takes all the pass decided.
- in any case the commit task starts a batch with whatever is queued when it runs and no batch
  is being written (the end of a scheduler pass: nothing more is coming now). Without
  `threaded` (tests under a virtual clock) this is the only way, and the append runs through
  `run_io`, as any other disk work.

Of one actor's submissions in a batch only the last one's state becomes its committed state;
the states before it are released when the batch is taken (`SUPERSEDED`), not when it
commits: on a hot stream that is most of a batch.

A submission's `ts` is the sequence number of its last event, or, for a command that emitted
nothing, the last sequence number durable when its batch committed (never less than any state it
could have read). A rate-limited submission's take (`Submission.take`) goes in the same batch
as a record of its own (`engine.journal.Take`, the limiter's state after it) at that `ts`.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import outcome
import trio
import trio.lowlevel

from domain.model import Event
from engine import codec
from engine.actor import SUPERSEDED, Submission
from engine.journal import Batch, Journal, RequestRecord, Row, Take, checksum

log = logging.getLogger("turnstile.commit")

#: The smallest cut of a threaded batch (see the module docstring).
MIN_CUT = 256
#: The smallest cut of a batch handed to an `appender`.
MIN_CUT_PROCESS = 32
#: Batches handed to an `appender` at once; the second only while the one in flight holds
#: fewer than `PIPELINE_BELOW` submissions.
DEPTH_PROCESS = 2
PIPELINE_BELOW = 256


class Appender(Protocol):
    """Appends in another process (engine.journal.writer_process.AppendProcess)."""

    def send(self, batch: Batch, after_seq: int) -> None:
        """Hand `batch` over without blocking; never raises (`reply` does). It is written
        only if the journal's last sequence number is then `after_seq`."""
        ...

    async def reply(self) -> None:
        """The oldest sent batch's outcome: return once durable, raise if nothing of it was
        written."""
        ...

    async def wait_answer(self) -> None:
        """Return once `reply` would not wait for the writer (its answer is in, or the writer
        ended); consumes nothing."""
        ...

    def answered(self) -> bool:
        """Whether the oldest sent batch's answer is in (checked without blocking)."""
        ...

    def take_answer(self) -> None:
        """Once `answered()`: that answer, as `reply` gives it."""
        ...


class _Prepared:
    """One batch on its way to the journal."""

    __slots__ = ("after_seq", "doomed", "good", "last_seq", "rows", "started", "write_seconds")

    def __init__(self, good: list[Submission], rows: Batch, last_seq: int, after_seq: int) -> None:
        self.good = good
        self.rows = rows
        self.last_seq = last_seq
        #: The last sequence number of the batch taken before it (what it must follow).
        self.after_seq = after_seq
        #: A batch before it failed while it was in flight: its submissions are refused already,
        #: and the writer process refuses it too (it does not follow what is durable).
        self.doomed = False
        #: When it was handed to an appender (perf_counter).
        self.started = 0.0
        #: Wall time its append took (in the thread that ran it; to the appender's answer).
        self.write_seconds = 0.0


class GroupCommit:
    def __init__(
        self,
        journal: Journal,
        *,
        run_io: Callable[[Callable[[], None]], Awaitable[None]],
        on_committed: Callable[[list[Submission], int], None],
        on_failed: Callable[[list[Submission], BaseException], None],
        max_batch: int = 4_096,
        threaded: bool = False,
        appender: Appender | None = None,
        min_cut: int | None = None,
    ) -> None:
        self._journal = journal
        self._run_io = run_io
        self._on_committed = on_committed
        self._on_failed = on_failed
        self._max_batch = max_batch
        self._threaded = threaded
        self._appender = appender
        #: Batches handed to the appender, oldest first, until their answers.
        self._flight: collections.deque[_Prepared] = collections.deque()
        self._answer_due = trio.Event()
        #: What is queued (only the loop touches it: a writer thread has its own batch).
        self._queue: list[Submission] = []
        self._rows: list[Row] = []
        self._requests: list[RequestRecord] = []
        self._takes: list[Take] = []
        #: The last sequence number given to a queued row, and the last of a batch taken.
        self._numbered = journal.last_seq()
        self._taken = self._numbered
        self._wakeup = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        #: Batches being written: at most `_depth` at a time (one, but two to a writer process,
        #: which starts the second as soon as the first is durable).
        self._writing = 0
        self._depth = DEPTH_PROCESS if appender is not None else 1
        if min_cut is None:
            min_cut = MIN_CUT_PROCESS if appender is not None else MIN_CUT
        self._min_cut = max(1, min_cut)
        self._cut = self._min_cut
        #: An error raised while finishing a threaded batch on the loop: the commit task
        #: raises it, so that it ends the engine as an error in the commit task would.
        self._crashed: BaseException | None = None
        self.last_seq = self._numbered
        self.batches = 0
        self.rows_written = 0
        #: Wall time spent in appends that committed (the writer's busy time, for benchmarks).
        self.write_seconds = 0.0

    def submit(self, submission: Submission) -> None:
        """Queue `submission` for the next batch. Raises (queueing nothing) if its change
        cannot be encoded: its command is then refused, and its actor must not accept it."""
        encoded, record, take, last = _encode(submission, self._numbered)
        self._numbered = submission.ts = last
        queue = self._queue
        queue.append(submission)
        self._rows += encoded
        if record is not None:
            self._requests.append(record)
        if take is not None:
            self._takes.append(take)
        if self._idle.is_set():
            self._idle = trio.Event()
        if self._starts_early and self._has_room() and len(queue) >= self._cut:
            self._start(self._take())
        else:
            self._wakeup.set()

    def _has_room(self) -> bool:
        """Whether a batch may start now: none in flight, or (to a writer process) one in
        flight that is small. Small batches mean callers wait on each commit's latency, which
        a second batch in flight hides; large ones mean the writer is busy, and splitting
        them would only add commits."""
        if not self._writing:
            return True
        return self._writing < self._depth and len(self._flight[-1].good) < PIPELINE_BELOW

    @property
    def _starts_early(self) -> bool:
        return self._threaded or self._appender is not None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def take_queued(self) -> list[Submission]:
        """Remove and return every submission not yet taken into a batch (at shutdown, when
        the journal could not take them in time: the caller refuses them)."""
        queued = self._queue
        self._drop_queued()
        return queued

    async def drained(self) -> None:
        """Wait until everything submitted so far is committed or failed."""
        await self._idle.wait()

    async def run(self) -> None:
        if self._appender is None:
            await self._batches()
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._answers)
            await self._batches()

    async def _batches(self) -> None:
        while True:
            if self._crashed is not None:
                raise self._crashed
            if not self._has_room() or not self._queue:
                if not self._writing and not self._queue:
                    self._idle.set()
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            prepared = self._take()
            if self._starts_early:
                self._start(prepared)
                continue
            self._writing = 1
            error: BaseException | None = None
            try:
                await self._run_io(functools.partial(_timed_append, self._journal, prepared))
            except Exception as io_error:
                error = io_error
            self._finish(prepared, error)

    # -- one batch ------------------------------------------------------------------------

    def _take(self) -> _Prepared:
        """Take the next batch from the queue."""
        count = len(self._queue)
        if count <= self._max_batch:
            good, rows, requests, takes = self._queue, self._rows, self._requests, self._takes
            self._queue, self._rows, self._requests, self._takes = [], [], [], []
        else:  # (rare: a burst past `max_batch`) the rows, records, takes of the first `count`
            count = self._max_batch
            good = self._queue[:count]
            row_end = sum(_row_count(s) for s in good)
            request_end = sum(s.request is not None for s in good)
            take_end = sum(s.take is not None for s in good)
            rows, requests = self._rows[:row_end], self._requests[:request_end]
            takes = self._takes[:take_end]
            del self._queue[:count], self._rows[:row_end], self._requests[:request_end]
            del self._takes[:take_end]
        self._cut = max(self._min_cut, count // 2)
        _release_superseded(good)
        after, self._taken = self._taken, good[-1].ts
        batch = Batch(rows=rows, requests=requests, takes=takes)
        return _Prepared(good, batch, good[-1].ts, after)

    def _drop_queued(self) -> None:
        """Forget what is queued; numbering goes on after what is durable."""
        self._queue, self._rows, self._requests, self._takes = [], [], [], []
        self._numbered = self._taken = self.last_seq

    def _start(self, prepared: _Prepared) -> None:
        if self._appender is not None:
            self._writing += 1
            self._flight.append(prepared)
            prepared.started = time.perf_counter()
            self._appender.send(prepared.rows, prepared.after_seq)
            self._answer_due.set()
        else:
            self._start_threaded(prepared)

    async def _answers(self) -> None:
        """Beside the commit task: the appender's answers, in the order the batches went
        (unless `poll` took one first)."""
        appender = self._appender
        assert appender is not None
        while True:
            if not self._flight:
                self._answer_due = trio.Event()
                await self._answer_due.wait()
                continue
            await appender.wait_answer()
            if not self._flight:
                continue  # (`poll` took it meanwhile)
            result: outcome.Outcome[None]
            try:
                await appender.reply()
                result = outcome.Value(None)
            except Exception as exc:
                result = outcome.Error(exc)
            self._answered(result)

    def poll(self) -> None:
        """Finish the oldest batch in flight now if the writer process has answered it (see
        `Appender.answered`). The engine calls it where no decision is under way (as a
        mutation begins), so that on a busy loop a batch's callers hear of it within the pass
        the answer came in, not after it as the answers task would."""
        appender = self._appender
        if appender is None or not self._flight or not appender.answered():
            return
        result: outcome.Outcome[None]
        try:
            appender.take_answer()
            result = outcome.Value(None)
        except Exception as exc:
            result = outcome.Error(exc)
        # The next batch is left to the commit task, at the end of this pass: started here,
        # mid-pass, it would take only what is queued so far.
        self._answered(result, start_next=False)

    def _answered(self, result: outcome.Outcome[None], *, start_next: bool = True) -> None:
        """The appender's answer to the oldest batch in flight."""
        prepared = self._flight[0]
        prepared.write_seconds = time.perf_counter() - prepared.started
        self._flight.popleft()
        if prepared.doomed:
            self._writing -= 1
            if isinstance(result, outcome.Value):  # (the writer's order check forbids it)
                self._crashed = RuntimeError(
                    "the journal wrote a batch decided on top of one that failed"
                )
            self._wakeup.set()
            return
        self._written(prepared, result, start_next=start_next)

    def _start_threaded(self, prepared: _Prepared) -> None:
        self._writing += 1
        token = trio.lowlevel.current_trio_token()
        written = self._written

        def write() -> None:  # in the worker thread
            result = outcome.capture(_timed_append, self._journal, prepared)
            token.run_sync_soon(written, prepared, result)

        trio.lowlevel.start_thread_soon(write, _thread_ended)

    def _written(
        self, prepared: _Prepared, result: outcome.Outcome[Any], *, start_next: bool = True
    ) -> None:
        """Back on the loop after a threaded or an appender's append."""
        error = result.error if isinstance(result, outcome.Error) else None
        try:
            if error is not None and not isinstance(error, Exception):
                raise error  # KeyboardInterrupt and the like: not a storage fault
            self._finish(prepared, error)
            if start_next and self._queue and self._has_room():
                # What queued during the write waited long enough.
                self._start(self._take())
        except BaseException as exc:
            self._crashed = exc
            self._wakeup.set()

    def _finish(self, prepared: _Prepared, io_error: BaseException | None) -> None:
        """The batch's append returned (`io_error` None) or raised."""
        self._writing -= 1
        good = prepared.good
        if io_error is not None:
            failed = list(good)
            for later in self._flight:  # (decided on top of this one: refused with it)
                later.doomed = True
                failed += later.good
            failed += self._queue
            self._drop_queued()
            log.error("journal append failed, %d commands refused: %r", len(failed), io_error)
            self._on_failed(failed, io_error)
            self._wakeup.set()
            return
        self.last_seq = prepared.last_seq
        self.batches += 1
        self.rows_written += len(prepared.rows.rows)
        self.write_seconds += prepared.write_seconds
        self._on_committed(good, prepared.last_seq)
        self._wakeup.set()


def _thread_ended(result: outcome.Outcome[None]) -> None:
    """A writer thread's own end: its append's outcome went to the loop, so only a bug of the
    thread itself lands here."""
    if isinstance(result, outcome.Error):
        log.error("the journal writer thread failed: %r", result.error)


def _timed_append(journal: Journal, prepared: _Prepared) -> None:
    started = time.perf_counter()
    try:
        journal.append(prepared.rows)
    finally:
        prepared.write_seconds = time.perf_counter() - started


#: A `Row` (a `RequestRecord`) of a tuple of its fields: tuple's own constructor, without the
#: Python-level `__new__` a NamedTuple's runs (a frame per row on the commit path).
_new_row = functools.partial(tuple.__new__, Row)
_new_record = functools.partial(tuple.__new__, RequestRecord)
_new_take = functools.partial(tuple.__new__, Take)


def rows_of(events: Iterable[Event], seq: int) -> list[Row]:
    """The journal rows of `events`, numbered from `seq + 1` (payloads encoded, checksummed).
    Raises if a value cannot be encoded. One loop with no call per row of its own: every
    event of every command passes here."""
    rows: list[Row] = []
    append, encoders, dumps, crc = rows.append, codec.PAYLOAD_FNS, codec.dumps, checksum
    for event in events:
        seq += 1
        cls = type(event)
        payload = dumps((encoders.get(cls) or codec.payload_fn(cls))(event))
        append(
            _new_row(
                (
                    seq,
                    event.stream,
                    event.version,
                    cls.type_name,
                    cls.schema,
                    payload,
                    event.at,
                    crc(payload),
                )
            )
        )
    return rows


def row_of(seq: int, event: Event) -> Row:
    """The journal row of `event` at sequence number `seq`."""
    return rows_of((event,), seq - 1)[0]


def _release_superseded(batch: list[Submission]) -> None:
    """Only the last state of each actor in `batch` (in commit order: a submission's
    companions before it) becomes a committed state; the others are released as the batch is
    written, instead of at its commit. On a hot stream that is most of the batch: each
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


def _row_count(submission: Submission) -> int:
    """How many journal rows `submission` writes (its companions' events and its own)."""
    return len(submission.events) + sum(len(c.events) for c in submission.companions)


def _encode(
    submission: Submission, seq: int
) -> tuple[list[Row], RequestRecord | None, Take | None, int]:
    """The journal rows of `submission` numbered after `seq`, its request record (if it has a
    request id), its rate limiter's take (if it has one: journaled at its last sequence
    number), and that last sequence number. Raises if a value cannot be encoded."""
    events = submission.events
    for companion in reversed(submission.companions):
        events = companion.events + events
    rows = rows_of(events, seq)
    seq += len(rows)
    record = None
    if submission.request is not None:
        session_id, request_id = submission.request
        record = _new_record(
            (session_id, request_id, codec.dumps(submission.value), seq, submission.decided_at)
        )
    take = None
    taken = submission.take
    if taken is not None:
        state = taken.state
        at, window_start, count, tokens = (
            state.updated_at,
            state.window_start,
            state.count,
            state.milli_tokens,
        )
        take = _new_take((seq, taken.stream, at, window_start, count, tokens))
    return rows, record, take, seq
