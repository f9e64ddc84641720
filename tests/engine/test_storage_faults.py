"""Storage faults (issue "Hostile conditions"): a journal that cannot write refuses writes with a
clear code, keeps serving reads, acknowledges nothing that is not durable and resumes by itself;
a damaged journal tail at start-up is detected, reported and recovered up to the last good
commit. Faults are injected by a wrapper around the real journal's `append`."""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from domain.errors import Overloaded
from engine.journal import JOURNAL_FILE
from engine.testing.harness import EngineHarness
from snapshots.store import list_files, snapshot_dir
from tests.engine.counters import COUNTER
from tests.engine.test_engine import journal_rows

FAULTS: dict[str, Callable[[], BaseException]] = {
    "diskFull": lambda: sqlite3.OperationalError("database or disk is full"),
    "ioError": lambda: OSError(errno.EIO, "Input/output error"),
    "locked": lambda: sqlite3.OperationalError("database is locked"),
}


class FaultyDisk:
    """Wraps the journal's append: while `fault` is set, every append raises it."""

    def __init__(self, h: EngineHarness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fault: Callable[[], BaseException] | None = None
        real = h.engine.journal.append

        def append(batch: object) -> None:
            if self.fault is not None:
                raise self.fault()
            real(batch)  # type: ignore[arg-type]

        monkeypatch.setattr(h.engine.journal, "append", append)


@pytest.mark.parametrize("kind", sorted(FAULTS))
async def test_writes_are_refused_reads_go_on_and_writing_resumes(
    h: EngineHarness,
    monkeypatch: pytest.MonkeyPatch,
    autojump_clock: trio.testing.MockClock,
    kind: str,
) -> None:
    disk = FaultyDisk(h, monkeypatch)
    counter = await h.mutation("counters:create", {"label": "a"})
    await h.mutation("counters:add", {"counterId": counter, "amount": 5})
    before = journal_rows(h.data_dir)
    seq = h.engine.committed_seq
    disk.fault = FAULTS[kind]
    acknowledged: list[int] = []
    refusals: list[dict[str, object]] = []
    async with h.engine.subscribe("counters:get", {"counterId": counter}) as live:

        async def writer(amount: int) -> None:
            try:
                await h.mutation("counters:add", {"counterId": counter, "amount": amount})
                acknowledged.append(amount)
            except Overloaded as refused:
                refusals.append(refused.data())

        async with trio.open_nursery() as nursery:
            for amount in range(1, 21):
                nursery.start_soon(writer, amount)
        # Nothing acknowledged, every refusal says why; reads still answer, unchanged.
        assert acknowledged == []
        assert len(refusals) == 20
        assert {r["code"] for r in refusals} == {"Overloaded"}
        assert {r["fault"] for r in refusals} == {kind}
        assert await h.query("counters:get", {"counterId": counter}) == {"total": 5, "rang": 0}
        assert (await live.__anext__()) == (seq, {"total": 5, "rang": 0})
        assert h.engine.committed_seq == seq
        assert journal_rows(h.data_dir) == before
        # The fault clears: the next write goes through without any restart.
        disk.fault = None
        out = await h.outcome("counters:add", {"counterId": counter, "amount": 1})
        assert (out.value, out.ts) == (6, seq + 1)
        assert (await live.__anext__()) == (seq + 1, {"total": 6, "rang": 0})
    await h.restart()
    assert await h.query("counters:get", {"counterId": counter}) == {"total": 6, "rang": 0}


def corrupt_payload(data_dir: Path, seq: int) -> None:
    conn = sqlite3.connect(data_dir / JOURNAL_FILE)
    try:
        conn.execute(
            "UPDATE events SET payload = CAST(replace(CAST(payload AS TEXT), '1', '7') AS BLOB)"
            " WHERE seq = ?",
            (seq,),
        )
        conn.commit()
    finally:
        conn.close()


async def test_a_damaged_tail_is_set_aside_and_recovery_stops_at_the_last_good_commit(
    h: EngineHarness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    counter = await h.mutation("counters:create", {"label": "a"})
    for amount in (1, 10, 100):
        await h.mutation("counters:add", {"counterId": counter, "amount": amount})
    await h.engine.snapshot_now()  # a snapshot at the end, which includes the damaged row
    good = h.engine.committed_seq - 1
    await h.stop()
    corrupt_payload(h.data_dir, good + 1)  # the last row: +100 becomes something else
    with caplog.at_level(logging.ERROR, logger="turnstile.engine"):
        await h.start()
    repair = h.engine.tail_repair
    assert repair is not None and (repair.first_seq, repair.rows) == (good + 1, 1)
    assert "checksum" in repair.reason
    assert any("journal tail damaged" in r.getMessage() for r in caplog.records)
    assert h.engine.committed_seq == good
    assert h.engine.committed_state(COUNTER, counter).total == 11
    assert [seq for seq, _ in list_files(snapshot_dir(h.data_dir))] == []  # set aside too
    conn = sqlite3.connect(h.data_dir / JOURNAL_FILE)
    try:
        assert conn.execute("SELECT seq FROM quarantine").fetchall() == [(good + 1,)]
    finally:
        conn.close()
    # The journal goes on after the last good commit.
    out = await h.outcome("counters:add", {"counterId": counter, "amount": 1000})
    assert (out.value, out.ts) == (1011, good + 1)
    await h.restart()
    assert h.engine.tail_repair is None
    assert h.engine.committed_state(COUNTER, counter).total == 1011


async def test_a_missing_row_in_the_tail_is_a_gap_that_ends_the_journal(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    counter = await h.mutation("counters:create", {"label": "a"})
    for amount in (1, 10, 100):
        await h.mutation("counters:add", {"counterId": counter, "amount": amount})
    await h.stop()
    conn = sqlite3.connect(h.data_dir / JOURNAL_FILE)
    conn.execute("DELETE FROM events WHERE seq = 3")
    conn.commit()
    conn.close()
    await h.start()
    repair = h.engine.tail_repair
    assert repair is not None and (repair.first_seq, repair.rows) == (3, 1)  # row 4 set aside
    assert "missing" in repair.reason
    assert h.engine.committed_state(COUNTER, counter).total == 1


async def test_a_busy_engine_whose_disk_fails_on_and_off_loses_and_invents_nothing(
    tmp_path: Path,
) -> None:
    """The short form of `python -m lab.storage_faults` (real clock, two seconds)."""
    from lab.storage_faults import run

    figures = await run(tmp_path / "data", seconds=2.0, tasks=16, seed=3)
    assert figures["acknowledged"] > 0 and sum(figures["refused"].values()) > 0
    assert set(figures["refused"]) <= {"diskFull", "ioError", "locked"}
    assert (figures["lost"], figures["phantoms"]) == (0, 0)
