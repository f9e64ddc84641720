"""The group commit's threaded path (engine/group_commit.py): a burst is split so the writer
starts while the loop still decides, batches are written one at a time and numbered in order,
and a failed append refuses its batch and everything queued behind it. Its writer-process path:
two batches in flight, each saying what it follows, committed in order; a failed one refuses
the one in flight behind it, once.

The journal here is a stand-in whose `append` the test holds on a `threading.Event`, so which
submissions land in which batch is decided by the test, never by timing. Last, what a caller sees
of a batch's outcome without a task: `PendingMutation.add_done_callback`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import trio
import trio.testing

from domain.errors import TurnstileError
from engine.actor import Actor, Reply, Submission
from engine.engine import PendingMutation
from engine.group_commit import GroupCommit
from engine.journal import Batch, Journal
from engine.testing.harness import open_harness
from tests.engine.conftest import CONFIG
from tests.engine.counters import COUNTERS, CounterAdded


class HeldJournal:
    """Records each batch; `append` waits for `release` (set it to let writes through) and
    raises `fail_next` once if set."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.fail_next: Exception | None = None
        #: call number (from 1) -> the error that append raises
        self.fail_at: dict[int, Exception] = {}
        self.calls = 0

    def last_seq(self) -> int:
        return 0

    def append(self, batch: Batch) -> None:
        self.calls += 1
        self.started.release()
        self.release.wait()
        if self.calls in self.fail_at:
            raise self.fail_at[self.calls]
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.batches.append(batch)


class Recorder:
    def __init__(self) -> None:
        self.committed: list[tuple[list[Submission], int]] = []
        self.failed: list[tuple[list[Submission], BaseException]] = []

    def on_committed(self, batch: list[Submission], last_seq: int) -> None:
        self.committed.append((batch, last_seq))
        for submission in batch:
            submission.reply.resolve(None, submission.ts)

    def on_failed(self, batch: list[Submission], error: BaseException) -> None:
        self.failed.append((batch, error))


async def no_io(work: Any) -> None:
    raise AssertionError("the threaded path does not use run_io")


def submission(actor: object, n: int) -> Submission:
    event = CounterAdded(stream=f"counter/ct_{id(actor)}", version=n, at=0, amount=1)
    return Submission(
        actor=cast(Actor, actor),
        events=(event,),
        state=None,
        version=n,
        value=None,
        reply=Reply(),
        request=None,
        decided_at=0,
    )


def threaded_commit(journal: HeldJournal, recorder: Recorder, **options: Any) -> GroupCommit:
    return GroupCommit(
        cast(Journal, journal),
        run_io=no_io,
        on_committed=recorder.on_committed,
        on_failed=recorder.on_failed,
        threaded=True,
        **options,
    )


async def wait_started(journal: HeldJournal) -> None:
    await trio.to_thread.run_sync(journal.started.acquire)


async def test_a_burst_is_split_and_batches_are_written_one_at_a_time_in_order() -> None:
    journal, recorder = HeldJournal(), Recorder()
    commit = threaded_commit(journal, recorder, min_cut=1)
    actor = object()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit.run)
        # (With min_cut=1, the server's default being larger: a burst of a few dozen is one
        # batch.) A burst of 10 within one pass of the scheduler: the first starts a batch at once
        # (the cut is 1 while nothing was written), the other 9 queue behind the write.
        first = [submission(actor, n) for n in range(1, 11)]
        for s in first:
            commit.submit(s)
        await wait_started(journal)
        assert commit.queued == 9
        journal.release.set()
        await commit.drained()
        assert [len(b.rows) for b in journal.batches] == [1, 9]
        # The next burst is cut at half the last batch (4): a write starts at the 4th.
        journal.release.clear()
        second = [submission(actor, n) for n in range(11, 21)]
        for s in second[:3]:
            commit.submit(s)
        assert commit.queued == 3  # below the cut: waits for the commit task or more work
        for s in second[3:]:
            commit.submit(s)
        await wait_started(journal)
        journal.release.set()
        await commit.drained()
        nursery.cancel_scope.cancel()
    sizes = [len(b.rows) for b in journal.batches]
    # The 4 went as one batch; the 6 that queued during its write, as the next.
    assert sizes == [1, 9, 4, 6]
    seqs = [row.seq for b in journal.batches for row in b.rows]
    assert seqs == list(range(1, 21))
    assert [s.ts for s in first + second] == list(range(1, 21))
    assert all(s.reply.is_done for s in first + second)
    assert [last for _, last in recorder.committed] == [
        sum(sizes[: i + 1]) for i in range(len(sizes))
    ]


async def test_a_failed_append_refuses_its_batch_and_what_queued_behind_it() -> None:
    journal, recorder = HeldJournal(), Recorder()
    commit = threaded_commit(journal, recorder)
    actor = object()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit.run)
        journal.fail_next = OSError(28, "No space left on device")
        burst = [submission(actor, n) for n in range(1, 6)]
        for s in burst:
            commit.submit(s)
        await wait_started(journal)
        journal.release.set()
        await commit.drained()
        assert journal.batches == []
        [(failed, error)] = recorder.failed
        assert failed == burst and isinstance(error, OSError)
        # Numbering restarts after the last durable seq: the next write is seq 1 again.
        again = submission(actor, 1)
        commit.submit(again)
        await commit.drained()
        nursery.cancel_scope.cancel()
    assert [row.seq for b in journal.batches for row in b.rows] == [1]
    assert again.ts == 1


async def test_a_pending_mutation_calls_back_once_its_outcome_is_known(tmp_path: Path) -> None:
    """`PendingMutation.add_done_callback`: called once with the durable result or the refusal,
    at once for an outcome already known, and a callback that raises disturbs nobody."""
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=CONFIG) as h:
        cid = await h.mutation("counters:create", {"label": "a"})
        seen: list[object] = []

        def record(pending: PendingMutation) -> None:
            try:
                seen.append(pending.result().value)
            except TurnstileError as exc:
                seen.append(exc.code)

        def broken(pending: PendingMutation) -> None:
            raise RuntimeError("a bug in a callback")

        good = h.engine.begin_mutation("counters:add", {"counterId": cid, "amount": 2}, h.admin)
        assert not good.done
        with pytest.raises(RuntimeError):
            good.result()
        good.add_done_callback(broken)
        good.add_done_callback(record)
        refused = h.engine.begin_mutation("counters:add", {"counterId": cid, "amount": -9}, h.admin)
        assert refused.done  # refused when decided: known at once
        refused.add_done_callback(record)
        assert len(seen) == 1 and isinstance(seen[0], str)  # the refusal's code
        await good.outcome()
        assert seen[-1] == 2 and len(seen) == 2
        good.add_done_callback(record)  # already known: called at once
        assert seen[-1] == 2 and len(seen) == 3


async def test_a_failed_append_of_a_later_batch_refuses_it_and_numbering_resumes() -> None:
    journal, recorder = HeldJournal(), Recorder()
    commit = threaded_commit(journal, recorder, min_cut=1)
    journal.fail_at[2] = OSError(5, "Input/output error")
    actor = object()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit.run)
        burst = [submission(actor, n) for n in range(1, 6)]
        for s in burst:
            commit.submit(s)  # 1 is written; 2-5 queue behind it and go as the next batch
        await wait_started(journal)
        journal.release.set()
        await commit.drained()
        assert [len(b.rows) for b in journal.batches] == [1]
        [(failed, error)] = recorder.failed
        assert failed == burst[1:] and isinstance(error, OSError)
        # Numbering restarts after the last durable seq (1): the next write is seq 2.
        again = submission(actor, 2)
        commit.submit(again)
        await commit.drained()
        nursery.cancel_scope.cancel()
    assert [row.seq for b in journal.batches for row in b.rows] == [1, 2]
    assert again.ts == 2


async def test_a_queue_past_max_batch_goes_in_batches_with_their_own_rows_and_records() -> None:
    journal, recorder = HeldJournal(), Recorder()
    journal.release.set()
    commit = GroupCommit(
        cast(Journal, journal),
        run_io=trio.to_thread.run_sync,
        on_committed=recorder.on_committed,
        on_failed=recorder.on_failed,
        max_batch=3,
    )
    actor, limiter = object(), object()
    burst = []
    for n in range(1, 8):
        s = submission(actor, n)
        if n % 2:  # a companion's row before its own, and a request record
            s.companions = (submission(limiter, n),)
            s.request = ("session", n)
        burst.append(s)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit.run)
        for s in burst:
            commit.submit(s)
        await commit.drained()
        nursery.cancel_scope.cancel()
    assert [len(batch) for batch, _ in recorder.committed] == [3, 3, 1]
    for (batch, _), written in zip(recorder.committed, journal.batches, strict=True):
        # Each batch holds exactly its submissions' rows, and a record for each one with a
        # request id, pointing at that submission's last row.
        assert len(written.rows) == sum(1 + len(s.companions) for s in batch)
        assert [(r.request_id, r.seq) for r in written.requests] == [
            (s.request[1], s.ts) for s in batch if s.request is not None
        ]
        assert [row.seq for row in written.rows][-1] == batch[-1].ts
    assert [row.seq for b in journal.batches for row in b.rows] == list(range(1, 12))


class ScriptedAppender:
    """An `Appender` whose answers the test gives, batch by batch (`answer(i, error)`)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Batch, int]] = []
        self._gates: dict[int, trio.Event] = {}
        self._errors: dict[int, Exception | None] = {}
        self._replied = 0

    def _gate(self, i: int) -> trio.Event:
        return self._gates.setdefault(i, trio.Event())

    def send(self, batch: Batch, after_seq: int) -> None:
        self.sent.append((batch, after_seq))

    async def wait_answer(self) -> None:
        await self._gate(self._replied).wait()

    def answered(self) -> bool:
        return self._gate(self._replied).is_set()

    def take_answer(self) -> None:
        i = self._replied
        self._replied += 1
        error = self._errors[i]
        if error is not None:
            raise error

    async def reply(self) -> None:
        await self.wait_answer()
        self.take_answer()

    def answer(self, i: int, error: Exception | None = None) -> None:
        self._errors[i] = error
        self._gate(i).set()


def process_commit(appender: ScriptedAppender, recorder: Recorder) -> GroupCommit:
    return GroupCommit(
        cast(Journal, HeldJournal()),
        run_io=no_io,
        on_committed=recorder.on_committed,
        on_failed=recorder.on_failed,
        threaded=True,
        appender=appender,
        min_cut=1,
    )


def shape(appender: ScriptedAppender) -> list[tuple[list[int], int]]:
    return [([row.seq for row in batch.rows], after) for batch, after in appender.sent]


@asynccontextmanager
async def in_flight(
    count: int,
) -> AsyncIterator[tuple[ScriptedAppender, Recorder, GroupCommit, list[Submission]]]:
    """A running writer-process commit with `count` submissions of one actor just made."""
    appender, recorder = ScriptedAppender(), Recorder()
    commit = process_commit(appender, recorder)
    actor = object()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit.run)
        burst = [submission(actor, n) for n in range(1, count + 1)]
        for s in burst:
            commit.submit(s)
        yield appender, recorder, commit, burst
        nursery.cancel_scope.cancel()


async def test_two_batches_go_to_a_writer_process_at_once_and_commit_in_order() -> None:
    async with in_flight(3) as (appender, recorder, commit, _):
        # The second batch goes before the first is answered, each saying what it follows;
        # the third submission waits for room.
        assert shape(appender) == [([1], 0), ([2], 1)]
        assert commit.queued == 1
        appender.answer(0)
        await trio.testing.wait_all_tasks_blocked()
        assert [last for _, last in recorder.committed] == [1]
        assert shape(appender)[2:] == [([3], 2)]  # started as the first was answered
        appender.answer(1)
        appender.answer(2)
        await commit.drained()
    assert [last for _, last in recorder.committed] == [1, 2, 3]
    assert recorder.failed == []


async def test_poll_finishes_an_answered_batch_before_the_answers_task_runs() -> None:
    async with in_flight(3) as (appender, recorder, commit, _):
        commit.poll()  # nothing answered yet: nothing happens
        assert recorder.committed == []
        appender.answer(0)
        # No checkpoint between: the answers task has not run, `poll` does its work.
        commit.poll()
        assert [last for _, last in recorder.committed] == [1]
        await trio.testing.wait_all_tasks_blocked()
        assert shape(appender)[2:] == [([3], 2)]  # the next batch, by the commit task
        appender.answer(1)
        await trio.testing.wait_all_tasks_blocked()  # the answers task takes this one
        assert [last for _, last in recorder.committed] == [1, 2]
        appender.answer(2)
        await commit.drained()
    assert [last for _, last in recorder.committed] == [1, 2, 3]
    assert recorder.failed == []


async def test_a_failure_polled_refuses_as_one_the_answers_task_reads() -> None:
    async with in_flight(3) as (appender, recorder, commit, burst):
        appender.answer(0, OSError(28, "No space left on device"))
        commit.poll()
        [(failed, error)] = recorder.failed
        assert failed == burst and isinstance(error, OSError)
        appender.answer(1, RuntimeError("refused by the writer: it does not follow"))
        await trio.testing.wait_all_tasks_blocked()
        assert len(recorder.failed) == 1


async def test_a_failed_batch_refuses_the_one_in_flight_behind_it_once() -> None:
    async with in_flight(3) as (appender, recorder, commit, burst):
        appender.answer(0, OSError(28, "No space left on device"))
        await trio.testing.wait_all_tasks_blocked()
        # Refused together: the failed batch, the one in flight decided on top of it, and the
        # one queued; nothing new is sent while the doomed batch is still out.
        [(failed, error)] = recorder.failed
        assert failed == burst and isinstance(error, OSError)
        assert len(appender.sent) == 2
        appender.answer(1, RuntimeError("refused by the writer: it does not follow"))
        await trio.testing.wait_all_tasks_blocked()
        assert len(recorder.failed) == 1  # the doomed batch's answer refuses nothing again
        # Numbering starts again after what is durable (nothing): seq 1, following 0.
        again = submission(burst[0].actor, 1)
        commit.submit(again)
        assert shape(appender)[2:] == [([1], 0)]
        appender.answer(2)
        await commit.drained()
    assert [last for _, last in recorder.committed] == [1] and again.ts == 1


async def test_a_doomed_batch_that_commits_ends_the_engine() -> None:
    with pytest.raises(ExceptionGroup) as ended:
        async with in_flight(2) as (appender, _, _, _):
            appender.answer(0, OSError(5, "Input/output error"))
            appender.answer(1)  # (a writer that broke the order rule)
            await trio.sleep_forever()
    assert ended.group_contains(RuntimeError, match="decided on top of one that failed")
