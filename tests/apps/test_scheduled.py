"""Scheduled functions (domain/scheduled.py, engine/scheduled.py) in virtual time, through the
reminders app: made in the scheduling mutation's commit, run once when due and not before,
across restarts and a crash between running and recording, cancelled for good, listed with
their states within their organization, and replayed clean."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from domain import (
    App,
    AppError,
    Conflict,
    Forbidden,
    InvalidArgs,
    NotFound,
    Overloaded,
    QuerySpec,
    TurnstileError,
    run_at,
)
from domain.model import Decision, Module, MutationSpec
from domain.scheduled import (
    FAILED,
    MAX_ARGS_BYTES,
    MAX_SCHEDULED_PER_COMMAND,
    SCHEDULED_FUNCTION,
    run_after,
)
from engine.actor import RequestKey
from engine.apps import load_apps
from engine.registry import Registry
from engine.scheduled import Dispatch, request_key
from engine.testing import EngineHarness, open_harness, staff, user
from tests.apps.reminders import REMINDER
from tools.cli import main

MINUTE = 60_000
ROOT = Path(__file__).resolve().parents[2]
ANNA = staff("anna", "org_a")
BORIS = staff("boris", "org_b")


@attrs.frozen(kw_only=True)
class ProbeArgs:
    function: Any
    delay_ms: Any
    args: Any
    count: int = 1


@attrs.frozen(kw_only=True)
class Nothing:
    pass


def _probe(d: Decision[Any], args: ProbeArgs) -> list[str]:
    """Schedules whatever it is given, `count` times (for the refusals of bad input)."""
    return [run_after(d, args.delay_ms, args.function, args.args) for _ in range(args.count)]


def _probe_at(d: Decision[Any], args: ProbeArgs) -> str:
    return run_at(d, args.delay_ms, args.function, args.args)


PROBE = Module(
    mutations=(
        MutationSpec(
            name="probe:schedule",
            args_type=ProbeArgs,
            aggregate=REMINDER,
            route=None,
            handle=_probe,
        ),
        MutationSpec(
            name="probe:scheduleAt",
            args_type=ProbeArgs,
            aggregate=REMINDER,
            route=None,
            handle=_probe_at,
        ),
    )
)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[EngineHarness]:
    async with open_harness(
        tmp_path / "data", modules=(*load_apps(["tests.apps.reminders"]), PROBE)
    ) as harness:
        yield harness


async def create(h: EngineHarness, delay_ms: int, who: Any = ANNA) -> tuple[str, str]:
    made = await h.mutation("reminders:create", {"text": "call", "delayMs": delay_ms}, who)
    return made["reminderId"], made["scheduledId"]


def fired(h: EngineHarness, reminder_id: str) -> int:
    state = h.engine.committed_state(REMINDER, reminder_id)
    assert isinstance(state.fired, int)
    return state.fired


async def status(h: EngineHarness, scheduled_id: str) -> dict[str, Any]:
    listed = {row["_id"]: row for row in await h.query("scheduler:list", {})}
    row: dict[str, Any] = listed[scheduled_id]
    return row


async def test_a_schedule_runs_once_when_due_and_not_before(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    start = h.now_ms()
    reminder, scheduled = await create(h, 10 * MINUTE)
    row = await status(h, scheduled)
    assert row["state"] == "pending" and row["scheduledTime"] == start + 10 * MINUTE
    assert row["name"] == "reminders:fire" and row["args"] == {"reminderId": reminder}
    assert (row["orgId"], row["scheduledBy"], row["completedTime"]) == ("org_a", "anna", None)
    await h.advance(seconds=599)
    assert fired(h, reminder) == 0
    await h.advance(seconds=2)
    assert fired(h, reminder) == 1
    row = await status(h, scheduled)
    assert row["state"] == "done" and row["result"] == 1
    assert start + 10 * MINUTE <= row["completedTime"] < start + 11 * MINUTE
    await h.advance(minutes=60)
    assert fired(h, reminder) == 1


async def test_it_survives_a_restart_before_it_is_due_and_runs_once_after(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    reminder, scheduled = await create(h, 10 * MINUTE)
    await h.restart()
    await h.advance(minutes=5)
    assert fired(h, reminder) == 0
    await h.restart()
    await h.advance(minutes=6)
    assert fired(h, reminder) == 1
    await h.restart()  # after it ran: not run again
    await h.advance(minutes=60)
    assert fired(h, reminder) == 1
    assert (await status(h, scheduled))["state"] == "done"


async def test_one_that_fell_due_while_the_server_was_down_runs_once_at_start(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    reminder, scheduled = await create(h, 5 * MINUTE)
    await h.stop()
    await trio.sleep(60 * 60)  # an hour down
    await h.start()
    await h.settle()
    assert fired(h, reminder) == 1
    row = await status(h, scheduled)
    assert row["state"] == "done" and row["completedTime"] >= row["scheduledTime"] + 55 * MINUTE


async def test_a_refused_mutation_schedules_nothing(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    seq = h.engine.committed_seq
    with pytest.raises(InvalidArgs):
        await h.mutation("reminders:create", {"text": " ", "delayMs": MINUTE}, ANNA)
    assert h.engine.committed_seq == seq
    assert await h.query("scheduler:list", {}) == []
    await h.advance(minutes=5)
    assert h.engine.committed_seq == seq


async def test_a_cancelled_schedule_never_runs(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    reminder, scheduled = await create(h, 10 * MINUTE)
    await h.mutation("reminders:dismiss", {"reminderId": reminder}, ANNA)
    row = await status(h, scheduled)
    assert row["state"] == "cancelled" and row["completedTime"] == h.now_ms()
    await h.restart()
    await h.advance(minutes=30)
    assert fired(h, reminder) == 0
    assert (await status(h, scheduled))["state"] == "cancelled"
    # Cancelling it again changes nothing; an unknown or malformed id is NotFound.
    seq = h.engine.committed_seq
    await h.engine.cancel_scheduled(scheduled, ANNA)
    assert h.engine.committed_seq == seq
    with pytest.raises(NotFound):
        await h.engine.cancel_scheduled("sf_nosuchschedule", ANNA)
    with pytest.raises(NotFound):
        await h.engine.cancel_scheduled("not an id", ANNA)


async def test_snoozing_cancels_one_schedule_and_makes_another_in_one_commit(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    reminder, first = await create(h, 10 * MINUTE)
    second = await h.mutation(
        "reminders:snooze", {"reminderId": reminder, "delayMs": 30 * MINUTE}, ANNA
    )
    assert (await status(h, first))["state"] == "cancelled"
    await h.advance(minutes=29)
    assert fired(h, reminder) == 0
    await h.advance(minutes=2)
    assert fired(h, reminder) == 1
    assert (await status(h, second))["state"] == "done"


async def test_cancelling_one_that_ran_is_a_conflict_and_another_orgs_is_not_found(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    reminder, scheduled = await create(h, MINUTE)
    with pytest.raises(NotFound):
        await h.engine.cancel_scheduled(scheduled, BORIS)
    with pytest.raises(NotFound):  # through another organization's mutation too
        await h.mutation("reminders:dismiss", {"reminderId": reminder}, BORIS)
    await h.advance(minutes=2)
    seq = h.engine.committed_seq
    with pytest.raises(Conflict):
        await h.engine.cancel_scheduled(scheduled, ANNA)
    with pytest.raises(Conflict):  # and the dismissal that would cancel it writes nothing
        await h.mutation("reminders:dismiss", {"reminderId": reminder}, ANNA)
    assert h.engine.committed_seq == seq
    assert fired(h, reminder) == 1


class Gate:
    """A dispatch around the engine's own that stops at a point of the run (`before` or after
    the function ran) and waits there, so that the test can restart the engine at that point."""

    def __init__(self, inner: Dispatch, *, before: bool) -> None:
        self.inner = inner
        self.before = before
        self.reached = trio.Event()
        self.runs: list[RequestKey] = []

    def check(self, function: str, args: Mapping[str, Any]) -> str:
        return self.inner.check(function, args)

    async def run(self, function: str, args: dict[str, Any], request: RequestKey) -> Any:
        self.runs.append(request)
        if not self.before:
            await self.inner.run(function, args, request)
        self.reached.set()
        await trio.sleep_forever()  # cut off here by the restart


@pytest.mark.parametrize("before", [True, False], ids=["before-running", "after-running"])
async def test_a_crash_between_running_and_recording_runs_it_exactly_once(
    h: EngineHarness, autojump_clock: trio.testing.MockClock, before: bool
) -> None:
    reminder, scheduled = await create(h, MINUTE)
    gate = Gate(h.engine.scheduled.dispatch, before=before)
    h.engine.scheduled.dispatch = gate
    await trio.sleep(61)
    await gate.reached.wait()
    assert (await status(h, scheduled))["state"] == "running"
    assert fired(h, reminder) == (0 if before else 1)
    with pytest.raises(Conflict):  # running: too late to cancel
        await h.engine.cancel_scheduled(scheduled, ANNA)
    await h.restart()  # the gated run is cut off, its outcome not recorded
    await h.settle()
    assert gate.runs == [request_key(scheduled)]
    assert fired(h, reminder) == 1
    row = await status(h, scheduled)
    assert row["state"] == "done" and row["result"] == 1
    await h.restart()
    await h.advance(minutes=10)
    assert fired(h, reminder) == 1


async def test_a_refused_run_is_failed_with_its_code_and_message(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    scheduled = await h.engine.schedule_function(
        "reminders:fire", {"reminderId": "rm_nosuchreminder"}, h.now_ms() + MINUTE, ANNA
    )
    assert (await status(h, scheduled))["state"] == "pending"
    await h.advance(minutes=2)
    row = await status(h, scheduled)
    assert row["state"] == FAILED
    assert row["error"] == {"code": "NotFound", "message": "Reminder not found."}
    assert await h.query("scheduler:list", {"status": "failed"}) == [row]
    assert await h.query("scheduler:list", {"status": "done"}) == []


async def test_the_listing_is_live_and_shows_each_state_within_its_organization(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    anna_reminder, anna_first = await create(h, MINUTE)
    _, anna_second = await create(h, 60 * MINUTE)
    _, boris_scheduled = await create(h, MINUTE, BORIS)
    loner = user("lone")  # a signed-in user of no organization sees only their own
    _, loner_scheduled = await create(h, MINUTE, loner)
    await h.mutation("reminders:dismiss", {"reminderId": anna_reminder}, ANNA)

    async with h.engine.subscribe("reminders:schedules", {}, ANNA) as updates:
        _, rows = await updates.__anext__()
        assert [(r["_id"], r["state"]) for r in rows] == [
            (anna_first, "cancelled"),
            (anna_second, "pending"),
        ]
        await h.advance(minutes=61)
        _, rows = await updates.__anext__()
        assert [(r["_id"], r["state"]) for r in rows] == [
            (anna_first, "cancelled"),
            (anna_second, "done"),
        ]
    boris = await h.query("reminders:schedules", {}, BORIS)
    assert [(r["_id"], r["state"]) for r in boris] == [(boris_scheduled, "done")]
    assert [r["_id"] for r in await h.query("reminders:schedules", {}, loner)] == [loner_scheduled]
    assert await h.query("reminders:schedules", {}, staff("carl", "org_c")) == []
    everything = await h.query("scheduler:list", {})
    assert [r["_id"] for r in everything] == [
        anna_first,
        anna_second,
        boris_scheduled,
        loner_scheduled,
    ]
    page = await h.query("scheduler:list", {"paginationOpts": {"numItems": 2, "cursor": None}})
    assert [r["_id"] for r in page["page"]] == [anna_first, anna_second]
    with pytest.raises(Forbidden):
        await h.query("scheduler:list", {}, staff("root", "org_a", "*"))
    with pytest.raises(InvalidArgs):
        await h.query("scheduler:list", {"status": "later"})


async def test_bad_input_is_refused_when_scheduling_and_writes_nothing(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    seq = h.engine.committed_seq
    fire = {"reminderId": "rm_x0000"}

    async def refused(args: dict[str, Any], name: str = "probe:schedule") -> TurnstileError:
        with pytest.raises(TurnstileError) as caught:
            await h.mutation(name, {"count": 1, **args}, ANNA)
        return caught.value

    unknown = await refused({"function": "reminders:nope", "delayMs": 0, "args": {}})
    assert (unknown.code, unknown.details["path"]) == ("InvalidArgs", "function")
    query = await refused({"function": "reminders:schedules", "delayMs": 0, "args": {}})
    assert (query.code, query.details["path"]) == ("InvalidArgs", "function")
    negative = await refused({"function": "reminders:fire", "delayMs": -1, "args": fire})
    assert (negative.code, negative.details["path"]) == ("InvalidArgs", "delay")
    fraction = await refused({"function": "reminders:fire", "delayMs": 1.5, "args": fire})
    assert (fraction.code, fraction.details["path"]) == ("InvalidArgs", "delay")
    before_epoch = await refused(
        {"function": "reminders:fire", "delayMs": -5, "args": fire}, "probe:scheduleAt"
    )
    assert (before_epoch.code, before_epoch.details["path"]) == ("InvalidArgs", "at")
    listed = await refused({"function": "reminders:fire", "delayMs": 0, "args": [1]})
    assert (listed.code, listed.details["path"]) == ("InvalidArgs", "args")
    misfit = await refused({"function": "reminders:fire", "delayMs": 0, "args": {"x": 1}})
    assert misfit.code == "InvalidArgs"
    huge = {"reminderId": "x" * MAX_ARGS_BYTES}
    too_big = await refused({"function": "reminders:fire", "delayMs": 0, "args": huge})
    assert (too_big.code, too_big.details["limit"]) == ("InvalidArgs", MAX_ARGS_BYTES)
    many = await refused(
        {
            "function": "reminders:fire",
            "delayMs": 0,
            "args": fire,
            "count": MAX_SCHEDULED_PER_COMMAND + 1,
        }
    )
    assert (many.code, many.details["limit"]) == ("InvalidArgs", MAX_SCHEDULED_PER_COMMAND)
    bad: list[tuple[str, dict[str, Any], int]] = [
        ("reminders:nope", {}, h.now_ms()),
        ("reminders:fire", {"reminderId": 1}, h.now_ms()),
        ("reminders:fire", fire, -1),
    ]
    for function, args, at_ms in bad:
        with pytest.raises(InvalidArgs):
            await h.engine.schedule_function(function, args, at_ms, ANNA)
    assert h.engine.committed_seq == seq
    assert await h.query("scheduler:list", {}) == []


async def test_the_pending_bound_refuses_one_more_and_writes_nothing(
    h: EngineHarness, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import domain.scheduled

    monkeypatch.setattr(domain.scheduled, "MAX_PENDING", 2)
    first, _ = await create(h, MINUTE)
    await create(h, MINUTE)
    seq = h.engine.committed_seq
    with pytest.raises(Overloaded):
        await create(h, MINUTE)
    with pytest.raises(Overloaded):
        await h.engine.schedule_function("reminders:fire", {"reminderId": first}, 0, ANNA)
    assert h.engine.committed_seq == seq
    await h.advance(minutes=2)  # once they have run there is room again
    await create(h, MINUTE)


async def test_an_engine_schedule_keeps_its_maker_and_runs_as_the_system(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    reminder, _ = await create(h, 60 * MINUTE)
    scheduled = await h.engine.schedule_function(
        "reminders.js:fire", {"reminderId": reminder}, h.now_ms() - 1, ANNA
    )
    await h.settle()
    row = await status(h, scheduled)
    # reminders:fire refuses anyone but admin: it ran as the system caller.
    assert (row["state"], row["name"], row["orgId"], row["scheduledBy"]) == (
        "done",
        "reminders:fire",
        "org_a",
        "anna",
    )
    assert fired(h, reminder) == 1
    state = h.engine.committed_state(SCHEDULED_FUNCTION, scheduled)
    assert state.result == 1


async def test_replay_verify_is_clean_on_a_data_dir_with_schedules(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    async with open_harness(data_dir, modules=load_apps(["tests.apps.reminders"])) as h:
        done, _ = await create(h, MINUTE)
        dismissed, _ = await create(h, MINUTE)
        await create(h, 90 * MINUTE)  # left pending
        await h.mutation("reminders:dismiss", {"reminderId": dismissed}, ANNA)
        await h.engine.schedule_function("reminders:fire", {"reminderId": "rm_gone0"}, 0, ANNA)
        await h.advance(minutes=2)
        assert fired(h, done) == 1
        await h.engine.snapshot_now()
        await create(h, MINUTE)  # after the snapshot
    capsys.readouterr()
    assert main(["replay", str(data_dir), "--verify", "--app", "tests.apps.reminders"]) == 0


def test_an_app_may_not_declare_a_function_in_the_module_scheduler() -> None:
    taker = App(
        name="taker",
        queries=(QuerySpec(name="scheduler:list", args_type=Nothing, evaluate=lambda v, a, i: 0),),
    )
    with pytest.raises(AppError, match="reserved"):
        Registry((taker,))


@pytest.mark.parametrize("point", ["before", "after"])
async def test_a_sigkill_between_running_and_recording_runs_it_exactly_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, point: str
) -> None:
    """A real kill -9 of an engine process parked in the run (tests/apps/scheduled_crash_worker.py),
    then a recovery: the function has run once, and its outcome is recorded."""
    data_dir = tmp_path / "data"
    worker = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.apps.scheduled_crash_worker", str(data_dir), point],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert worker.stdout is not None
        out = b""
        while b"\n" not in out:  # bounded: the worker gives up after a minute
            chunk = await worker.stdout.receive_some()
            assert chunk, "the worker ended before it reached its point"
            out += chunk
        reached = json.loads(out.partition(b"\n")[0])
    finally:
        worker.kill()  # SIGKILL
        await worker.wait()
        if worker.stdout is not None:
            await worker.stdout.aclose()
    assert reached["reached"] == point
    reminder = reached["reminderId"]
    now = int(time.time() * 1000)  # the worker ran on the real clock
    async with open_harness(
        data_dir, modules=load_apps(["tests.apps.reminders"]), epoch_ms=now
    ) as h:
        await h.settle()
        assert fired(h, reminder) == 1
        [row] = await h.query("scheduler:list", {})
        assert (row["state"], row["result"]) == ("done", 1)
    assert main(["replay", str(data_dir), "--verify", "--app", "tests.apps.reminders"]) == 0
