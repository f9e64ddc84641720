"""The journal's writer process (engine/journal/writer_process.py, writer_child.py): what the
child appends is what the parent sent, byte for byte; its refusals come back as the same errors;
of two batches in flight the second is written only after the first, also when neither moves the
seq (records or takes only, or nothing to write), and also when the first is lost with its
child or could not be handed to one; a child gone before committing refuses what it was sent and
the next batch starts a new one; the data dir stays locked while the child lives; closing ends
it; a batch of takes only is judged committed or not from the journal's takes when its child
ends unanswered."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.journal import Batch, JournalLocked, RequestRecord, Row, Take, checksum
from engine.journal.sqlite import SqliteJournal
from engine.journal.writer_child import (
    AppendFailed,
    decode_batch,
    encode_answer,
    encode_batch,
    error_of,
    position_of,
)
from engine.journal.writer_process import _F_SETPIPE_SZ, AppendProcess


def row(seq: int, stream: str, version: int, payload: bytes = b'{"n":1}') -> Row:
    return Row(seq, stream, version, "Noted", 1, payload, 1_000 + seq, checksum(payload))


def take(seq: int, limiter: str, count: int) -> Take:
    return Take(seq, limiter, 1_000 + seq, 1_000, count, 3_000 - 1_000 * count)


def body(frame: bytes) -> bytes:
    return frame[4:]


_text = st.text(min_size=1, max_size=12)
_int = st.integers(min_value=-(2**62), max_value=2**62)
_rows = st.lists(
    st.builds(Row, _int, _text, _int, _text, _int, st.binary(max_size=40), _int, _int),
    max_size=20,
)
_records = st.lists(
    st.builds(RequestRecord, _text, _int, st.binary(max_size=20), _int, _int), max_size=10
)
_takes = st.lists(st.builds(Take, _int, _text, _int, _int, _int, _int), max_size=10)


@settings(max_examples=200, deadline=None)
@given(_rows, _records, _takes)
def test_a_batch_reaches_the_child_as_it_was_sent(
    rows: list[Row], records: list[RequestRecord], takes: list[Take]
) -> None:
    sent = Batch(rows=rows, requests=records, takes=takes)
    after, follows, decoded = decode_batch(body(encode_batch(sent, 7, (7, 3, 9))))
    assert after == 7 and follows == (7, 3, 9)
    assert list(decoded.rows) == rows
    assert list(decoded.requests) == records
    assert list(decoded.takes) == takes
    assert all(type(r) is Row for r in decoded.rows)
    assert all(type(t) is Take for t in decoded.takes)


def test_an_answer_carries_the_childs_error_as_its_own_class() -> None:
    import marshal

    def back(error: BaseException | None) -> BaseException | None:
        return error_of(marshal.loads(body(encode_answer(error))))

    assert back(None) is None
    full = back(sqlite3.OperationalError("database or disk is full"))
    assert type(full) is sqlite3.OperationalError and str(full) == "database or disk is full"
    twice = back(sqlite3.IntegrityError("s: version 1 is already written (the stream is at 1)"))
    assert type(twice) is sqlite3.IntegrityError and "already written" in str(twice)
    io = back(OSError(errno.EIO, "Input/output error"))
    assert isinstance(io, OSError) and io.errno == errno.EIO and io.strerror == "Input/output error"
    other = back(ValueError("odd"))
    assert type(other) is AppendFailed and "ValueError: odd" in str(other)


@asynccontextmanager
async def open_writer(data_dir: Path) -> AsyncIterator[tuple[SqliteJournal, AppendProcess]]:
    journal = SqliteJournal.open(data_dir)
    appender = AppendProcess(journal, "FULL")
    try:
        yield journal, appender
    finally:
        await appender.aclose()
        journal.close()


async def appended(appender: AppendProcess, batch: Batch, after: int) -> None:
    appender.send(batch, after)
    await appender.reply()


async def stopped_child(appender: AppendProcess) -> int:
    """A child that has appended row 1 (`c/a` version 1), then stopped (SIGSTOP): its pid."""
    await appended(appender, Batch(rows=[row(1, "c/a", 1)], requests=()), 0)
    pid = appender.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    return pid


async def test_the_child_appends_and_refuses_as_the_journal_does(tmp_path: Path) -> None:
    async with open_writer(tmp_path) as (journal, appender):
        appender.start()
        record = RequestRecord("session", 1, b'"ok"', 2, 1_002)
        first = Batch(rows=[row(1, "c/a", 1), row(2, "c/b", 1, b"\x00\xff")], requests=[record])
        await appended(appender, first, 0)
        assert journal.last_seq() == 2  # durable, and read back by the parent's own reader
        assert journal.read_stream("c/b") == [row(2, "c/b", 1, b"\x00\xff")]
        assert journal.lookup_request("session", 1) == record
        with pytest.raises(sqlite3.IntegrityError, match="already written"):
            await appended(appender, Batch(rows=[row(3, "c/a", 1)], requests=()), 2)
        with pytest.raises(sqlite3.IntegrityError, match="already recorded"):
            await appended(appender, Batch(rows=[row(3, "c/c", 1)], requests=[record]), 2)
        assert journal.last_seq() == 2  # the refused batches wrote nothing
        await appended(appender, Batch(rows=[row(3, "c/a", 2)], requests=()), 2)
        assert journal.last_seq() == 3
        assert appender.started == 1


def _wait_gone(pid: int) -> None:
    for _ in range(500):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


async def test_a_child_gone_before_committing_refuses_its_batch_and_the_next_starts_anew(
    tmp_path: Path,
) -> None:
    async with open_writer(tmp_path) as (journal, appender):
        pid = await stopped_child(appender)  # it cannot read what is sent ...
        lost = Batch(rows=[row(2, "c/a", 2)], requests=())
        appender.send(lost, 1)
        os.kill(pid, signal.SIGKILL)  # ... and ends without having read it
        with pytest.raises(AppendFailed, match="before committing"):
            await appender.reply()
        assert journal.last_seq() == 1
        await appended(appender, lost, 1)  # a new child takes it
        assert appender.started == 2 and appender.pid != pid
        assert journal.last_seq() == 2


async def test_the_data_dir_stays_locked_while_the_child_lives_and_closing_ends_it(
    tmp_path: Path,
) -> None:
    journal = SqliteJournal.open(tmp_path)
    appender = AppendProcess(journal, "FULL")
    appender.start()
    await appended(appender, Batch(rows=[row(1, "c/a", 1)], requests=()), 0)
    pid = appender.pid
    assert pid is not None
    journal.close()  # the parent lets go of its lock: the child still holds it
    with pytest.raises(JournalLocked):
        SqliteJournal.open(tmp_path)
    await appender.aclose()
    _wait_gone(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    reopened = SqliteJournal.open(tmp_path)
    try:
        assert reopened.last_seq() == 1
    finally:
        reopened.close()


async def test_a_large_batch_goes_through_the_pipe_in_several_writes(tmp_path: Path) -> None:
    async with open_writer(tmp_path) as (journal, appender):
        payload = b"x" * 3_000
        rows = [row(seq, f"c/{seq}", 1, payload) for seq in range(1, 4_001)]  # ~12 MB framed
        await appended(appender, Batch(rows=rows, requests=()), 0)
        assert journal.last_seq() == 4_000
        assert journal.read_stream("c/4000") == [rows[-1]]


async def test_of_two_batches_in_flight_the_second_is_written_only_after_the_first(
    tmp_path: Path,
) -> None:
    async with open_writer(tmp_path) as (journal, appender):
        appender.send(Batch(rows=[row(1, "c/a", 1), row(2, "c/a", 2)], requests=()), 0)
        appender.send(Batch(rows=[row(3, "c/a", 3)], requests=()), 2)  # before any answer
        await appender.reply()
        await appender.reply()
        assert [r.version for r in journal.read_stream("c/a")] == [1, 2, 3]
        # The first refused: the second, decided on top of it, is refused too, unwritten.
        appender.send(Batch(rows=[row(4, "c/a", 3)], requests=()), 3)  # version 3 again
        appender.send(Batch(rows=[row(5, "c/b", 1)], requests=()), 4)
        with pytest.raises(sqlite3.IntegrityError, match="already written"):
            await appender.reply()
        with pytest.raises(AppendFailed, match="a batch before it was not written"):
            await appender.reply()
        assert journal.last_seq() == 3 and journal.read_stream("c/b") == []
        # What follows the durable end is written again, numbered from there.
        await appended(appender, Batch(rows=[row(4, "c/b", 1)], requests=()), 3)
        assert journal.last_seq() == 4


async def test_a_child_killed_with_two_batches_in_flight_answers_both_from_the_journal(
    tmp_path: Path,
) -> None:
    async with open_writer(tmp_path) as (journal, appender):
        pid = await stopped_child(appender)
        appender.send(Batch(rows=[row(2, "c/a", 2)], requests=()), 1)
        appender.send(Batch(rows=[row(3, "c/a", 3)], requests=()), 2)
        os.kill(pid, signal.SIGKILL)
        for _ in range(2):
            with pytest.raises(AppendFailed, match="before committing"):
                await appender.reply()
        await appended(appender, Batch(rows=[row(2, "c/b", 1)], requests=()), 1)
        assert journal.last_seq() == 2 and appender.started == 2


async def test_an_engine_writes_through_its_writer_process_and_ends_it_when_closed(
    tmp_path: Path,
) -> None:
    from domain.identity import ADMIN
    from engine import EngineConfig, open_engine
    from lab.bench import event_args

    config = EngineConfig(snapshot_every=0, run_jobs=False)
    async with open_engine(tmp_path, config=config) as engine:
        appender = engine._appender
        assert appender is not None
        created = await engine.mutation("events:create", event_args(0, 5), ADMIN)
        pid = appender.pid
        assert pid is not None and created.ts >= 1
    _wait_gone(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    async with open_engine(tmp_path, config=config) as engine:
        assert engine.committed_seq == created.ts


async def test_an_answer_in_is_taken_without_waiting_and_a_dead_child_is_left_to_reply(
    tmp_path: Path,
) -> None:
    async with open_writer(tmp_path) as (journal, appender):
        pid = await stopped_child(appender)
        appender.send(Batch(rows=[row(2, "c/a", 2)], requests=()), 1)
        assert not appender.answered()  # (the child cannot have answered)
        os.kill(pid, signal.SIGCONT)
        await appender.wait_answer()  # in, and not taken
        assert journal.last_seq() == 2
        assert appender.answered()
        appender.take_answer()
        assert not appender.answered()  # nothing in flight
        # An answered refusal raises from `take_answer` as from `reply`.
        appender.send(Batch(rows=[row(3, "c/a", 2)], requests=()), 2)
        await appender.wait_answer()
        assert appender.answered()
        with pytest.raises(sqlite3.IntegrityError, match="already written"):
            appender.take_answer()
        # A child gone before answering is never "answered": `reply` judges its batch.
        os.kill(pid, signal.SIGSTOP)
        appender.send(Batch(rows=[row(3, "c/a", 3)], requests=()), 2)
        os.kill(pid, signal.SIGKILL)
        await appender.wait_answer()  # (returns at the end of its pipe)
        assert not appender.answered()
        with pytest.raises(AppendFailed, match="before committing"):
            await appender.reply()
        assert journal.last_seq() == 2


async def test_the_child_appends_takes_with_their_batch(tmp_path: Path) -> None:
    async with open_writer(tmp_path) as (journal, appender):
        first = Batch(
            rows=[row(1, "c/a", 1)], requests=[], takes=[take(1, "rl/a", 1), take(1, "rl/b", 1)]
        )
        await appended(appender, first, 0)
        await appended(appender, Batch(rows=[], requests=[], takes=[take(1, "rl/a", 2)]), 1)
        assert journal.read_take("rl/a") == take(1, "rl/a", 2)
        assert journal.read_take("rl/b") == take(1, "rl/b", 1)
        assert list(journal.takes()) == [*first.takes, take(1, "rl/a", 2)]
        # A refused batch writes none of its takes.
        refused = Batch(rows=[row(2, "c/a", 1)], requests=[], takes=[take(2, "rl/a", 3)])
        with pytest.raises(sqlite3.IntegrityError, match="already written"):
            await appended(appender, refused, 1)
        assert journal.read_take("rl/a") == take(1, "rl/a", 2)
        assert journal.last_take_rid() == 3


async def test_a_batch_of_takes_only_lost_with_its_child_is_refused(tmp_path: Path) -> None:
    async with open_writer(tmp_path) as (journal, appender):
        await appended(appender, Batch(rows=[row(1, "c/a", 1)], requests=[], takes=[]), 0)
        await appended(appender, Batch(rows=[], requests=[], takes=[take(1, "rl/a", 1)]), 1)
        pid = appender.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # it cannot read what is sent ...
        lost = Batch(rows=[], requests=[], takes=[take(1, "rl/a", 2)])
        appender.send(lost, 1)
        os.kill(pid, signal.SIGKILL)  # it ends without having read it
        with pytest.raises(AppendFailed, match="before committing"):
            await appender.reply()
        assert journal.read_take("rl/a") == take(1, "rl/a", 1)
        await appended(appender, lost, 1)  # a new child takes it
        assert journal.read_take("rl/a") == take(1, "rl/a", 2)
        assert appender.started == 2


async def test_a_batch_of_takes_only_committed_by_a_child_that_ended_unanswered_is_committed(
    tmp_path: Path,
) -> None:
    """The child commits a batch and cannot answer it (its answer pipe is full: the parent
    reads nothing meanwhile), then ends: that batch is judged committed, the one sent after
    it (never read) is not, and every batch before it was answered."""
    journal = SqliteJournal.open(tmp_path)
    appender = AppendProcess(journal, "NORMAL")  # (the child's appends: no fsync each)
    try:
        await appended(appender, Batch(rows=[], requests=[], takes=[take(0, "rl/x", 1)]), 0)
        child = appender._child
        assert child is not None and appender.pid is not None
        try:
            room = fcntl.fcntl(child.stdout, _F_SETPIPE_SZ, 4096)
        except OSError:
            pytest.skip("the answer pipe cannot be shrunk here")
        answered = room // len(encode_answer(None))  # the answers the pipe holds unread
        batches = [
            Batch(rows=[], requests=[], takes=[take(0, f"rl/{n % 5}", n), take(0, "rl/x", n)])
            for n in range(answered + 2)
        ]
        for batch in batches:
            appender.send(batch, 0)
        stuck = 1 + 2 * (answered + 1)  # its last take's rid: committed, the answer not sent
        for _ in range(3_000):
            if journal.last_take_rid() >= stuck:
                break
            await trio.sleep(0.01)
        await trio.sleep(0.05)
        assert journal.last_take_rid() == stuck  # (and the child is stuck in its answer)
        os.kill(appender.pid, signal.SIGKILL)
        for _ in range(answered):
            await appender.reply()
        await appender.reply()  # no answer: judged from the journal, committed
        with pytest.raises(AppendFailed, match="before committing"):
            await appender.reply()  # never read
        assert journal.read_take("rl/x") == take(0, "rl/x", answered)
        # Writing goes on with a new child, and the count of takes still holds.
        last = Batch(rows=[], requests=[], takes=[take(0, "rl/x", answered + 7)])
        await appended(appender, last, 0)
        assert appender.started == 2
        assert journal.read_take("rl/x") == take(0, "rl/x", answered + 7)
        assert appender._expected == position_of(journal)  # (what the next batch follows)
    finally:
        await appender.aclose()
        journal.close()


def record(request_id: int, seq: int) -> RequestRecord:
    return RequestRecord("s", request_id, b'"ok"', seq, 1_000 + seq)


#: A take the child's append refuses (a number past 64 bits: `take_checksum` raises).
UNSTORABLE = Take(1, "rl/a", 1_000, 1_000, 2**64, 0)


async def test_of_two_batches_of_records_only_in_flight_the_second_is_refused_with_the_first(
    tmp_path: Path,
) -> None:
    """Neither moves the seq: only the count of records says the first was not written."""
    async with open_writer(tmp_path) as (journal, appender):
        await appended(appender, Batch(rows=[row(1, "c/a", 1)], requests=[record(1, 1)]), 0)
        appender.send(Batch(rows=[], requests=[record(2, 1), record(1, 1)]), 1)  # 1 again
        appender.send(Batch(rows=[], requests=[record(3, 1)]), 1)
        with pytest.raises(sqlite3.IntegrityError, match="already recorded"):
            await appender.reply()
        with pytest.raises(AppendFailed, match="a batch before it was not written"):
            await appender.reply()
        assert journal.lookup_request("s", 2) is None and journal.lookup_request("s", 3) is None
        assert journal.last_request_rid() == 1
        # Sent once the failure is answered: written.
        await appended(appender, Batch(rows=[], requests=[record(3, 1)]), 1)
        assert journal.lookup_request("s", 3) == record(3, 1)
        assert journal.last_request_rid() == 2 and appender.started == 1


async def test_of_two_batches_of_takes_only_in_flight_the_second_is_refused_with_the_first(
    tmp_path: Path,
) -> None:
    """Neither moves the seq: only the count of takes says the first was not written."""
    async with open_writer(tmp_path) as (journal, appender):
        first = Batch(rows=[row(1, "c/a", 1)], requests=[], takes=[take(1, "rl/a", 1)])
        await appended(appender, first, 0)
        appender.send(Batch(rows=[], requests=[], takes=[take(1, "rl/a", 2), UNSTORABLE]), 1)
        appender.send(Batch(rows=[], requests=[], takes=[take(1, "rl/b", 1)]), 1)
        with pytest.raises(AppendFailed, match="out of range"):
            await appender.reply()
        with pytest.raises(AppendFailed, match="a batch before it was not written"):
            await appender.reply()
        assert list(journal.takes()) == [take(1, "rl/a", 1)] and journal.read_take("rl/b") is None
        # Sent once the failure is answered: written.
        await appended(appender, Batch(rows=[], requests=[], takes=[take(1, "rl/b", 1)]), 1)
        assert list(journal.takes()) == [take(1, "rl/a", 1), take(1, "rl/b", 1)]
        assert journal.last_take_rid() == 2 and appender.started == 1


async def test_a_batch_with_nothing_to_write_behind_a_failed_one_is_refused(
    tmp_path: Path,
) -> None:
    """Nothing of the journal would say it was written: where it follows says it is not."""
    async with open_writer(tmp_path) as (journal, appender):
        await appended(appender, Batch(rows=[row(1, "c/a", 1)], requests=[record(1, 1)]), 0)
        appender.send(Batch(rows=[], requests=[record(1, 1)]), 1)  # already recorded
        appender.send(Batch(rows=[], requests=[]), 1)
        with pytest.raises(sqlite3.IntegrityError, match="already recorded"):
            await appender.reply()
        with pytest.raises(AppendFailed, match="a batch before it was not written"):
            await appender.reply()
        await appended(appender, Batch(rows=[], requests=[]), 1)
        await appended(appender, Batch(rows=[], requests=[record(2, 1)]), 1)
        assert journal.last_request_rid() == 2 and appender.started == 1


async def test_a_batch_with_nothing_to_write_cannot_fail(tmp_path: Path) -> None:
    """The child writes nothing for it (here another connection holds the journal's write
    lock, which any transaction would wait for and fail on): had it failed, the batch in
    flight behind it, which follows the same position, would have been written."""
    async with open_writer(tmp_path) as (journal, appender):
        await appended(appender, Batch(rows=[row(1, "c/a", 1)], requests=[]), 0)
        blocker = sqlite3.connect(journal.path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            await appended(appender, Batch(rows=[], requests=[]), 1)
        finally:
            blocker.close()
        await appended(appender, Batch(rows=[row(2, "c/a", 2)], requests=[]), 1)
        assert journal.last_seq() == 2 and appender.started == 1


async def _ended(appender: AppendProcess) -> None:
    """Kill the child and wait until it is gone (reaped: the next `send` sees it ended)."""
    child = appender._child
    assert child is not None
    child.proc.kill()
    await trio.to_thread.run_sync(child.proc.wait)


@pytest.mark.parametrize("kind", ["records", "takes"])
async def test_a_batch_sent_to_a_new_child_behind_one_its_dead_child_never_read_is_refused(
    tmp_path: Path, kind: str
) -> None:
    """The first batch is lost with its child; the second, sent before the first is answered
    (the group commit has decided it on top of the first), is not written by the next child,
    and a batch sent once the loss is answered is."""

    def batch(n: int) -> Batch:
        if kind == "records":
            return Batch(rows=[], requests=[record(n, 1)])
        return Batch(rows=[], requests=[], takes=[take(1, f"rl/{n}", 1)])

    async with open_writer(tmp_path) as (journal, appender):
        pid = await stopped_child(appender)  # it cannot read what is sent ...
        appender.send(batch(1), 1)
        await _ended(appender)  # ... and ends without having read it
        appender.send(batch(2), 1)
        with pytest.raises(AppendFailed, match="before committing"):
            await appender.reply()
        with pytest.raises(AppendFailed, match="a batch before it was not written"):
            await appender.reply()
        assert journal.last_request_rid() == 0 and journal.last_take_rid() == 0
        await appended(appender, batch(2), 1)
        assert appender.pid != pid
        if kind == "records":
            assert journal.lookup_request("s", 1) is None
            assert journal.lookup_request("s", 2) == record(2, 1)
        else:
            assert list(journal.takes()) == [take(1, "rl/2", 1)]


async def test_a_batch_sent_behind_one_no_child_could_be_started_for_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch has nothing to write, so no journal position tells the next child that
    it failed: the parent refuses the second itself."""

    def no_child(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    async with open_writer(tmp_path) as (journal, appender):
        with monkeypatch.context() as patched:
            patched.setattr(subprocess, "Popen", no_child)
            appender.send(Batch(rows=[], requests=[]), 0)
        appender.send(Batch(rows=[row(1, "c/a", 1)], requests=[]), 0)
        with pytest.raises(AppendFailed, match="could not be started"):
            await appender.reply()
        with pytest.raises(AppendFailed, match="a batch before it was not written"):
            await appender.reply()
        assert journal.last_seq() == 0
        await appended(appender, Batch(rows=[row(1, "c/a", 1)], requests=[]), 0)
        assert journal.last_seq() == 1 and appender.started == 1


async def test_a_task_waiting_on_a_child_judged_meanwhile_is_woken(tmp_path: Path) -> None:
    """The answers task waits on the child's pipe; the child ends and the next `send` judges
    what it owed and closes its pipes before that task runs again: it is woken, not left
    waiting on a closed pipe."""
    async with open_writer(tmp_path) as (journal, appender):
        await stopped_child(appender)  # it cannot answer what is sent
        appender.send(Batch(rows=[row(2, "c/a", 2)], requests=()), 1)
        woken = trio.Event()

        async def answers() -> None:
            await appender.wait_answer()
            woken.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answers)
            await trio.testing.wait_all_tasks_blocked()  # waiting on the pipe
            child = appender._child
            assert child is not None
            child.proc.kill()
            child.proc.wait()  # (no checkpoint since: the waiting task has not run)
            appender.send(Batch(rows=[row(3, "c/a", 3)], requests=()), 2)
            await trio.testing.wait_all_tasks_blocked()
            assert woken.is_set()
        with pytest.raises(AppendFailed, match="before committing"):
            await appender.reply()
        with pytest.raises(AppendFailed, match="a batch before it was not written"):
            await appender.reply()
        await appended(appender, Batch(rows=[row(2, "c/a", 2)], requests=()), 1)
        assert journal.last_seq() == 2 and appender.started == 2
