"""The cron scheduler on a virtual clock: exact ticks, daylight-saving days, downtime, crashes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import trio
import trio.testing

from domain.model import Module, View
from domain.scheduling import JOB, CronJob, DailyAt, Every, JobCommand, Schedule, job_id
from engine import EngineConfig
from engine.scheduler import is_on_schedule, next_tick
from engine.testing.harness import EngineHarness, open_harness
from tests.engine.counters import COUNTER, COUNTERS

LONDON = ZoneInfo("Europe/London")
MINUTE = 60_000
CONFIG = EngineConfig(check_invariants=True, snapshot_every=0, offload_io=False)


def at(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=zone).timestamp() * 1000)


def wall(ms: int, zone: ZoneInfo = LONDON) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%Y-%m-%d %H:%M %Z")


class Recorder:
    """A job that adds 1 to one counter per tick and remembers when it planned."""

    def __init__(self, name: str, schedule: Schedule) -> None:
        self.counter_id = ""
        self.planned_at: list[int] = []
        self.job = CronJob(name=name, schedule=schedule, plan=self.plan)

    def plan(self, view: View, now: int) -> Iterable[JobCommand]:
        self.planned_at.append(now)
        if not self.counter_id:
            return []
        return [
            JobCommand(
                mutation="counters:add",
                args={"counterId": self.counter_id, "amount": 1},
                key=self.counter_id,
            )
        ]

    def module(self) -> Module:
        return Module(aggregates=(), projections=(), mutations=(), queries=(), jobs=(self.job,))


async def counter_total(h: EngineHarness, counter_id: str) -> Any:
    return h.engine.committed_state(COUNTER, counter_id).total


def test_next_tick_is_strictly_after_and_follows_wall_clock_across_dst() -> None:
    quarter = Every(minutes=15)
    assert next_tick(quarter, 0) == 15 * MINUTE
    assert next_tick(quarter, 15 * MINUTE - 1) == 15 * MINUTE
    assert next_tick(quarter, 15 * MINUTE) == 30 * MINUTE
    two_am = DailyAt(hour=2, minute=0, timezone="UTC")
    utc = ZoneInfo("UTC")
    assert next_tick(two_am, at(utc, 2026, 3, 1, 1, 59)) == at(utc, 2026, 3, 1, 2, 0)
    assert next_tick(two_am, at(utc, 2026, 3, 1, 2, 0)) == at(utc, 2026, 3, 2, 2, 0)
    # 03:30 London: 24 h apart except across a change (23 h in March, 25 h in October).
    half_three = DailyAt(hour=3, minute=30, timezone="Europe/London")
    before_spring = at(LONDON, 2026, 3, 28, 3, 30)
    spring = next_tick(half_three, before_spring)
    assert spring - before_spring == 23 * 60 * MINUTE
    assert wall(spring) == "2026-03-29 03:30 BST"
    before_autumn = at(LONDON, 2026, 10, 24, 3, 30)
    autumn = next_tick(half_three, before_autumn)
    assert autumn - before_autumn == 25 * 60 * MINUTE
    assert wall(autumn) == "2026-10-25 03:30 GMT"
    # 01:30 does not exist on the spring-forward day: the tick runs once, just after the gap.
    half_one = DailyAt(hour=1, minute=30, timezone="Europe/London")
    skipped = next_tick(half_one, at(LONDON, 2026, 3, 29, 0, 0))
    assert wall(skipped) == "2026-03-29 02:30 BST"
    assert is_on_schedule(half_one, next_tick(half_one, skipped))


async def test_interval_job_runs_on_each_tick_exactly(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    recorder = Recorder("quarterly", Every(minutes=15))
    async with open_harness(
        tmp_path / "data", modules=(COUNTERS, recorder.module()), config=CONFIG
    ) as h:
        recorder.counter_id = await h.mutation("counters:create", {"label": "c"})
        await h.advance(minutes=60)
        assert await counter_total(h, recorder.counter_id) == 4
        assert all(t % (15 * MINUTE) == 0 for t in recorder.planned_at)
        status = h.engine.committed_state(JOB, job_id("quarterly"))
        assert status.runs == 4 and status.next_due > h.now_ms()


async def test_daily_job_across_a_dst_change_runs_at_local_wall_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    recorder = Recorder("early", DailyAt(hour=3, minute=30, timezone="Europe/London"))
    start = at(LONDON, 2026, 3, 27, 12, 0)
    async with open_harness(
        tmp_path / "data", modules=(COUNTERS, recorder.module()), config=CONFIG, epoch_ms=start
    ) as h:
        recorder.counter_id = await h.mutation("counters:create", {"label": "c"})
        await h.advance(minutes=4 * 24 * 60)
    assert [wall(t) for t in recorder.planned_at] == [
        "2026-03-28 03:30 GMT",
        "2026-03-29 03:30 BST",
        "2026-03-30 03:30 BST",
        "2026-03-31 03:30 BST",
    ]


async def test_ticks_missed_while_down_run_once_on_start(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    recorder = Recorder("quarterly", Every(minutes=15))
    async with open_harness(
        tmp_path / "data", modules=(COUNTERS, recorder.module()), config=CONFIG
    ) as h:
        counter = recorder.counter_id = await h.mutation("counters:create", {"label": "c"})
        await h.advance(minutes=20)
        assert await counter_total(h, counter) == 1
        await h.stop()
        await trio.sleep(3 * 60 * 60)  # down for 3 hours: 12 ticks missed
        await h.start()
        await h.settle()
        assert await counter_total(h, counter) == 2  # once on start, not 12 times
        await h.advance(minutes=15)
        assert await counter_total(h, counter) == 3  # and then back on schedule
        assert all(t % (15 * MINUTE) == 0 for t in recorder.planned_at[:1])


async def test_a_tick_rerun_after_a_crash_repeats_no_acknowledged_command(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The job's commands are acknowledged but its `JobRan` never lands (as if the process
    died between them): the overdue tick runs again on start and the idempotency keys make
    the repeated commands no-ops."""
    recorder = Recorder("quarterly", Every(minutes=15))
    async with open_harness(
        tmp_path / "data", modules=(COUNTERS, recorder.module()), config=CONFIG
    ) as h:
        counter = recorder.counter_id = await h.mutation("counters:create", {"label": "c"})
        state = h.engine.committed_state(JOB, job_id("quarterly"))
        tick = state.next_due
        from engine.scheduler import request_id

        # What the tick's run would do first: its command, under its idempotency key.
        await h.mutation(
            "counters:add",
            {"counterId": counter, "amount": 1},
            session_id="job:quarterly",
            request_id=request_id(tick, counter),
        )
        await h.stop()
        await trio.sleep((tick - h.now_ms()) / 1000 + 60)  # the tick falls due while down
        await h.start()
        await h.settle()
        assert await counter_total(h, counter) == 1  # not 2
        assert h.engine.committed_state(JOB, job_id("quarterly")).last_tick == tick


async def test_timer_sweep_fires_an_overdue_timer_whose_firing_was_lost(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=CONFIG) as h:
        counter = await h.mutation("counters:create", {"label": "c"})
        await h.advance(seconds=30)
        await h.mutation("counters:setAlarm", {"counterId": counter, "inMinutes": 5})
        h.engine._timers._heap.clear()  # the firing is lost
        await h.advance(minutes=5, seconds=15)  # due at 5:30; the sweeps come at whole minutes
        assert h.engine.committed_state(COUNTER, counter).rang == 0
        await h.advance(minutes=1)  # the 6:00 sweep finds it 30 s late
        assert h.engine.committed_state(COUNTER, counter).rang == 1


async def test_an_inspecting_engine_runs_no_job(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    recorder = Recorder("quarterly", Every(minutes=15))
    data = tmp_path / "data"
    async with open_harness(data, modules=(COUNTERS, recorder.module()), config=CONFIG) as h:
        recorder.counter_id = await h.mutation("counters:create", {"label": "c"})
        await h.stop()
        await trio.sleep(3600)  # ticks fall due while it is down
    quiet = EngineConfig(check_invariants=True, snapshot_every=0, offload_io=False, run_jobs=False)
    async with open_harness(data, modules=(COUNTERS, recorder.module()), config=quiet) as h:
        seq = h.engine.committed_seq
        await h.advance(minutes=60)
        assert h.engine.committed_seq == seq and recorder.planned_at == []
