"""Group commit: many actors' submissions, one transaction, one fsync.

Submissions queue in memory in the order actors decided them (so each stream's versions reach
the journal in order). One task takes everything queued, numbers the events with consecutive
sequence numbers, and appends them in one transaction in a worker thread; while that fsync runs,
the actors keep deciding and the next batch fills up. After the commit:

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

A submission's `ts` is the sequence number of its last event, or, for a command that emitted
nothing, the last sequence number durable when its batch committed (never less than any state it
could have read).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from domain.model import Event
from engine import codec
from engine.actor import Submission
from engine.journal import Batch, Journal, RequestRecord, Row, checksum

log = logging.getLogger("turnstile.commit")


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
    ) -> None:
        self._journal = journal
        self._run_io = run_io
        self._on_committed = on_committed
        self._on_failed = on_failed
        self._on_refused = on_refused or on_failed
        self._max_batch = max_batch
        self._queue: list[Submission] = []
        self._wakeup = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self.last_seq = journal.last_seq()
        self.batches = 0
        self.rows_written = 0

    def submit(self, submission: Submission) -> None:
        self._queue.append(submission)
        self._idle = trio.Event() if self._idle.is_set() else self._idle
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
            if not self._queue:
                self._idle.set()
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            await self._commit(batch)

    async def _commit(self, batch: list[Submission]) -> None:
        rows: list[Row] = []
        requests: list[RequestRecord] = []
        seq = self.last_seq
        good: list[Submission] = []
        refused: list[Submission] = []
        tainted: set[int] = set()  # ids of actors whose working state built on a refusal
        error: BaseException | None = None
        for submission in batch:
            actors = _actors_of(submission)
            if actors & tainted:
                refused.append(submission)
                tainted |= actors
                continue
            try:
                encoded, record, last = _encode(submission, seq)
            except Exception as exc:
                log.error("a command's change cannot be encoded, refused: %r", exc)
                error = exc
                refused.append(submission)
                tainted |= actors
                continue
            rows += encoded
            if record is not None:
                requests.append(record)
            seq = submission.ts = last
            good.append(submission)
        if good:
            try:
                batch_rows = Batch(rows=rows, requests=requests)
                await self._run_io(lambda: self._journal.append(batch_rows))
            except Exception as io_error:
                log.error("journal append failed, %d commands refused: %r", len(batch), io_error)
                failed = good + self._queue
                self._queue = []
                if refused:
                    assert error is not None
                    self._on_refused(refused, error)
                self._on_failed(failed, io_error)
                return
            self.last_seq = seq
            self.batches += 1
            self.rows_written += len(rows)
            self._on_committed(good, seq)
        if refused:
            assert error is not None
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
            self._on_refused(refused, error)


def row_of(seq: int, event: Event) -> Row:
    """The journal row of `event` at sequence number `seq` (payload encoded, checksummed)."""
    payload = codec.encode_event(event)
    return Row(
        seq,
        event.stream,
        event.version,
        type(event).__name__,
        type(event).schema,
        payload,
        event.at,
        checksum(payload),
    )


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
