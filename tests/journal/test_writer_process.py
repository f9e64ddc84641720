"""The journal's writer process (engine/journal/writer_process.py, writer_child.py): what the
child appends is what the parent sent, byte for byte; its refusals come back as the same errors;
of two batches in flight the second is written only after the first; a child gone before
committing refuses what it was sent and the next batch starts a new one; the data dir stays
locked while the child lives; closing ends it."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.journal import Batch, JournalLocked, RequestRecord, Row, checksum
from engine.journal.sqlite import SqliteJournal
from engine.journal.writer_child import (
    AppendFailed,
    decode_batch,
    encode_answer,
    encode_batch,
    error_of,
)
from engine.journal.writer_process import AppendProcess


def row(seq: int, stream: str, version: int, payload: bytes = b'{"n":1}') -> Row:
    return Row(seq, stream, version, "Noted", 1, payload, 1_000 + seq, checksum(payload))


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


@settings(max_examples=200, deadline=None)
@given(_rows, _records)
def test_a_batch_reaches_the_child_as_it_was_sent(
    rows: list[Row], records: list[RequestRecord]
) -> None:
    after, decoded = decode_batch(body(encode_batch(Batch(rows=rows, requests=records), 7)))
    assert after == 7
    assert list(decoded.rows) == rows
    assert list(decoded.requests) == records
    assert all(type(r) is Row for r in decoded.rows)


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
        assert not appender._committed(lost)
        await appended(appender, lost, 1)  # a new child takes it
        assert appender.started == 2 and appender.pid != pid
        assert journal.last_seq() == 2 and appender._committed(lost)


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
