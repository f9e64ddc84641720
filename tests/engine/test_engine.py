"""The engine's guarantees, on a minimal domain (tests/engine/counters.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing

from domain.errors import Conflict, InvalidArgs, NotFound, Overloaded, TurnstileError
from engine import EngineConfig
from engine.engine import PendingMutation
from engine.journal import open_reader
from engine.testing.harness import EngineHarness, open_harness
from tests.engine.counters import COUNTER, COUNTERS


def journal_rows(data_dir: Path) -> list[tuple[object, ...]]:
    journal = open_reader(data_dir)
    try:
        return [tuple(row) for row in journal.scan()]
    finally:
        journal.close()


async def test_mutation_is_durable_and_numbered(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    created = await h.outcome("counters:create", {"label": "a"})
    assert created.ts == 1
    added = await h.outcome("counters:add", {"counterId": created.value, "amount": 5})
    assert (added.value, added.ts) == (5, 2)
    await h.restart()
    assert await h.query("counters:get", {"counterId": created.value}) == {"total": 5, "rang": 0}
    assert len(journal_rows(h.data_dir)) == 2


async def test_rejected_command_leaves_no_trace(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    await h.mutation("counters:add", {"counterId": cid, "amount": 3})
    before = journal_rows(h.data_dir)
    with pytest.raises(Conflict):
        await h.mutation("counters:add", {"counterId": cid, "amount": -4})
    with pytest.raises(Conflict):
        await h.mutation("counters:broken", {"counterId": cid, "amount": 100})
    with pytest.raises(InvalidArgs) as bad:
        await h.mutation("counters:add", {"counterId": cid, "amount": "7"})
    assert bad.value.data()["path"] == "amount"
    with pytest.raises(NotFound):
        await h.mutation("counters:add", {"counterId": "ct_nosuchcounter", "amount": 1})
    with pytest.raises(NotFound):
        await h.mutation("counters:nope", {})
    assert journal_rows(h.data_dir) == before
    assert h.engine.committed_state(COUNTER, cid).total == 3
    # The next accepted command continues exactly after the last accepted one.
    assert (await h.outcome("counters:add", {"counterId": cid, "amount": 1})).ts == 3


async def test_co_decision_commits_both_aggregates_or_neither(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    a = await h.mutation("counters:create", {"label": "a"})
    b = await h.mutation("counters:create", {"label": "b"})
    await h.mutation("counters:add", {"counterId": a, "amount": 5})
    before = journal_rows(h.data_dir)
    with pytest.raises(Conflict):  # the target's part was emitted, then the source refused
        await h.mutation("counters:transfer", {"counterId": a, "toCounterId": b, "amount": 9})
    with pytest.raises(NotFound):
        await h.mutation("counters:transfer", {"counterId": a, "toCounterId": "nope", "amount": 1})
    assert journal_rows(h.data_dir) == before
    assert h.engine.committed_state(COUNTER, b).total == 0
    moved = await h.outcome("counters:transfer", {"counterId": a, "toCounterId": b, "amount": 2})
    rows = journal_rows(h.data_dir)
    assert len(rows) == len(before) + 2 and moved.ts == rows[-1][0]  # one commit, ts = the last
    await h.restart()
    assert await h.query("counters:get", {"counterId": a}) == {"total": 3, "rang": 0}
    assert await h.query("counters:get", {"counterId": b}) == {"total": 2, "rang": 0}
    # The target decides its own next command on top of the co-decided state.
    assert await h.mutation("counters:add", {"counterId": b, "amount": -2}) == 0


async def test_repeated_request_returns_original_result_across_restart(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    first = await h.engine.mutation(
        "counters:add", {"counterId": cid, "amount": 2}, h.admin, session_id="s1", request_id=7
    )
    again = await h.engine.mutation(
        "counters:add", {"counterId": cid, "amount": 2}, h.admin, session_id="s1", request_id=7
    )
    assert (again.value, again.ts) == (first.value, first.ts)
    await h.restart()
    after = await h.engine.mutation(
        "counters:add", {"counterId": cid, "amount": 2}, h.admin, session_id="s1", request_id=7
    )
    assert (after.value, after.ts) == (first.value, first.ts)
    assert await h.query("counters:get", {"counterId": cid}) == {"total": 2, "rang": 0}


async def test_a_repeat_after_the_first_waiter_gave_up_still_executes_once(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """A client whose connection dropped stops waiting; its reconnect re-sends the request
    while the first execution is still in flight, and must be given that execution."""
    cid = await h.mutation("counters:create", {"label": "a"})
    args = {"counterId": cid, "amount": 1}
    first = h.engine.begin_mutation("counters:add", args, h.admin, session_id="s", request_id=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(first.outcome)
        await trio.lowlevel.checkpoint()  # the waiter is waiting...
        nursery.cancel_scope.cancel()  # ...and gives up before the command has run
    again = h.engine.begin_mutation("counters:add", args, h.admin, session_id="s", request_id=1)
    outcome = await again.outcome()
    assert outcome == await first.outcome()
    assert await h.query("counters:get", {"counterId": cid}) == {"total": 1, "rang": 0}


async def test_concurrent_repeats_of_one_request_execute_once(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    results = []

    async def send() -> None:
        out = await h.engine.mutation(
            "counters:add", {"counterId": cid, "amount": 1}, h.admin, session_id="s", request_id=1
        )
        results.append((out.value, out.ts))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(send)
    assert len(set(results)) == 1
    assert await h.query("counters:get", {"counterId": cid}) == {"total": 1, "rang": 0}


async def test_full_mailbox_answers_overloaded(tmp_path: Path, autojump_clock: object) -> None:
    async with open_harness(
        tmp_path / "d", modules=(COUNTERS,), config=EngineConfig(mailbox_size=2, offload_io=False)
    ) as h:
        cid = await h.mutation("counters:create", {"label": "a"})
        outcomes: list[object] = []

        async def add() -> None:
            try:
                outcomes.append(
                    (await h.outcome("counters:add", {"counterId": cid, "amount": 1})).value
                )
            except Overloaded as exc:
                outcomes.append(exc.code)

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(add)
        accepted = [o for o in outcomes if o != "Overloaded"]
        assert "Overloaded" in outcomes
        assert await h.query("counters:get", {"counterId": cid}) == {
            "total": len(accepted),
            "rang": 0,
        }


async def test_passivated_actors_come_back_with_their_state(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with open_harness(
        tmp_path / "d",
        modules=(COUNTERS,),
        config=EngineConfig(max_resident_actors=10, offload_io=False),
    ) as h:
        ids = [await h.mutation("counters:create", {"label": str(i)}) for i in range(50)]
        for i, cid in enumerate(ids):
            await h.mutation("counters:add", {"counterId": cid, "amount": i + 1})
        assert h.engine.resident_actors() <= 10
        for i, cid in enumerate(ids):
            assert (await h.query("counters:get", {"counterId": cid}))["total"] == i + 1
        assert h.engine.resident_actors() <= 10
        assert h.engine.stats["passivated"] >= 40


async def test_timer_fires_exactly_on_time_and_survives_restart(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    due = await h.mutation("counters:setAlarm", {"counterId": cid, "inMinutes": 30})
    await h.advance(minutes=29, seconds=59)
    assert (await h.query("counters:get", {"counterId": cid}))["rang"] == 0
    await h.advance(seconds=1)
    assert (await h.query("counters:get", {"counterId": cid}))["rang"] == 1
    assert h.now_ms() >= due
    # Armed before a restart, due while "down": fires once on recovery.
    await h.mutation("counters:setAlarm", {"counterId": cid, "inMinutes": 10})
    await h.stop()
    await trio.sleep(3600)
    await h.start()
    await h.advance(seconds=1)
    assert (await h.query("counters:get", {"counterId": cid}))["rang"] == 2
    await h.advance(minutes=60)
    assert (await h.query("counters:get", {"counterId": cid}))["rang"] == 2


async def test_subscription_sees_each_commit_at_its_ts(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    async with h.engine.subscribe("counters:get", {"counterId": cid}, h.admin) as updates:
        ts, value = await updates.__anext__()
        assert (ts, value) == (1, {"total": 0, "rang": 0})
        out = await h.outcome("counters:add", {"counterId": cid, "amount": 4})
        ts, value = await updates.__anext__()
        assert (ts, value) == (out.ts, {"total": 4, "rang": 0})
        # A slow reader gets the newest value only.
        for _ in range(5):
            last = await h.outcome("counters:add", {"counterId": cid, "amount": 1})
        ts, value = await updates.__anext__()
        assert (ts, value) == (last.ts, {"total": 9, "rang": 0})
    async with h.engine.subscribe("counters:total", {}, h.admin) as totals:
        assert (await totals.__anext__())[1] == 9


async def test_failed_commit_refuses_and_recovers(
    h: EngineHarness, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    journal = h.engine.journal
    real_append = journal.append
    failures = {"left": 1}

    def flaky(batch: object) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("disk I/O error")
        real_append(batch)  # type: ignore[arg-type]

    monkeypatch.setattr(journal, "append", flaky)
    with pytest.raises(Overloaded):
        await h.mutation("counters:add", {"counterId": cid, "amount": 5})
    assert h.engine.committed_state(COUNTER, cid).total == 0
    out = await h.outcome("counters:add", {"counterId": cid, "amount": 2})
    assert (out.value, out.ts) == (2, 2)
    await h.restart()
    assert await h.query("counters:get", {"counterId": cid}) == {"total": 2, "rang": 0}


async def test_snapshot_plus_tail_equals_full_replay(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    ids = [await h.mutation("counters:create", {"label": str(i)}) for i in range(5)]
    for i, cid in enumerate(ids):
        await h.mutation("counters:add", {"counterId": cid, "amount": i + 1})
    info = await h.engine.snapshot_now()
    assert info is not None and info.seq == 10
    for cid in ids:
        await h.mutation("counters:add", {"counterId": cid, "amount": 10})
    await h.restart()
    assert h.engine.recovery is not None and h.engine.recovery.snapshot_seq == 10
    from_snapshot = [await h.query("counters:get", {"counterId": c}) for c in ids]
    assert await h.query("counters:total", {}) == 15 + 50
    # Without the snapshot, the journal alone gives the same states.
    for path in (h.data_dir / "snapshots").iterdir():
        path.unlink()
    await h.restart()
    assert h.engine.recovery.snapshot_seq == 0
    assert [await h.query("counters:get", {"counterId": c}) for c in ids] == from_snapshot
    assert await h.query("counters:total", {}) == 65


async def test_damaged_snapshot_is_skipped(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    await h.mutation("counters:add", {"counterId": cid, "amount": 3})
    info = await h.engine.snapshot_now()
    assert info is not None
    await h.stop()
    data = bytearray(info.path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    info.path.write_bytes(bytes(data))
    await h.start()
    assert h.engine.recovery is not None and h.engine.recovery.snapshot_seq == 0
    assert await h.query("counters:get", {"counterId": cid}) == {"total": 3, "rang": 0}


async def test_close_answers_every_command_in_flight(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    answers: list[object] = []

    async def add() -> None:
        try:
            answers.append((await h.outcome("counters:add", {"counterId": cid, "amount": 1})).ts)
        except Overloaded:
            answers.append("Overloaded")

    async with trio.open_nursery() as nursery:
        for _ in range(200):
            nursery.start_soon(add)
        await trio.lowlevel.checkpoint()
        await h.stop()
    assert len(answers) == 200
    acknowledged = [a for a in answers if a != "Overloaded"]
    await h.start()
    assert (await h.query("counters:get", {"counterId": cid}))["total"] == len(acknowledged)


async def test_a_change_that_cannot_be_encoded_is_refused_before_anything_builds_on_it(
    h: EngineHarness, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One command whose events the codec refuses, decided while a batch waits to be written:
    it is refused (Internal) as it is decided, before its actor accepts it, so the commands
    decided after it on the same counter, or co-deciding it, build on the state it left
    untouched and commit like every other; also after a restart."""
    bad = await h.mutation("counters:create", {"label": "bad"})
    others = [await h.mutation("counters:create", {"label": f"ok{i}"}) for i in range(3)]
    await h.mutation("counters:add", {"counterId": bad, "amount": 5})
    # Hold the journal write of the next batch, so that everything after it is decided
    # (in a known order) while it waits.
    gate = trio.Event()
    commit = h.engine._commit
    write = commit._run_io

    async def gated(work: Callable[[], None]) -> None:
        await gate.wait()
        await write(work)

    monkeypatch.setattr(commit, "_run_io", gated)
    begun: dict[str, PendingMutation] = {}

    def begin(key: str, name: str, args: dict[str, object]) -> None:
        begun[key] = h.engine.begin_mutation(name, args, h.admin)  # queued in this order

    begin("first", "counters:add", {"counterId": others[0], "amount": 1})
    await trio.testing.wait_all_tasks_blocked()  # its batch waits at the gate
    begin("bad", "counters:overflow", {"counterId": bad, "amount": 1})
    assert begun["bad"].done  # refused as it was decided
    begin("after", "counters:add", {"counterId": bad, "amount": 2})
    for i, cid in enumerate(others[1:]):
        begin(f"other{i}", "counters:add", {"counterId": cid, "amount": 1})
    begin(
        "transfer", "counters:transfer", {"counterId": others[0], "toCounterId": bad, "amount": 1}
    )
    await trio.testing.wait_all_tasks_blocked()
    gate.set()
    outcomes: dict[str, object] = {}
    for key, pending in begun.items():
        try:
            outcomes[key] = (await pending.outcome()).value
        except TurnstileError as error:
            outcomes[key] = error.code
    assert outcomes == {
        "first": 1,
        "bad": "Internal",
        "after": 7,
        "other0": 1,
        "other1": 1,
        "transfer": 0,
    }
    expected = {bad: 8, others[0]: 0, others[1]: 1, others[2]: 1}

    async def totals() -> dict[str, int]:
        return {
            cid: (await h.query("counters:get", {"counterId": cid}))["total"] for cid in expected
        }

    assert await totals() == expected
    await h.restart()
    assert await totals() == expected


async def test_after_answers_hooks_run_once_per_batch_after_every_caller_is_answered(
    h: EngineHarness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    engine = h.engine
    pending = [
        engine.begin_mutation("counters:add", {"counterId": cid, "amount": 1}, h.admin)
        for _ in range(3)
    ]
    seen: list[tuple[bool, ...]] = []

    def failing() -> None:
        raise RuntimeError("a broken hook")

    remove_failing = engine.after_answers(failing)
    remove = engine.after_answers(lambda: seen.append(tuple(p.done for p in pending)))
    with caplog.at_level("ERROR", logger="turnstile.engine"):
        for p in pending:
            await p.outcome()
    # One batch: the hook ran once, with all three answered already; a hook that raised was
    # logged and stopped neither the next hook nor the callers.
    assert seen == [(True, True, True)]
    assert "a hook after a batch's answers failed" in caplog.text
    remove()
    remove_failing()
    remove()  # (removing twice is harmless)
    await h.mutation("counters:add", {"counterId": cid, "amount": 1})
    assert seen == [(True, True, True)]
