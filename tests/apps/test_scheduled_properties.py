"""A property of scheduled functions, in virtual time, through the reminders app: over random
scripts of reminders made (each schedules `reminders:fire`), dismissed (each cancels its
schedule), snoozed, time let pass and restarts, every schedule ends exactly one way: a reminder
fires once if its last schedule was never cancelled, and never otherwise; a dismissal is
refused only once the reminder has fired; the listing says the same; and the read model
recovered from the journal is the one the live engine kept."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from domain.errors import Conflict
from domain.scheduled import DONE, PENDING, SCHEDULED_FUNCTION, SCHEDULES
from engine import EngineConfig, open_engine
from engine.apps import load_apps
from engine.testing import EngineHarness, open_harness, staff
from tests.apps.reminders import REMINDER

MINUTE = 60_000
#: An engine that only recovers and looks (it runs no scheduled function).
INSPECT = EngineConfig(run_jobs=False, offload_io=False, snapshot_every=0)
ANNA = staff("anna", "org_a")
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, 30)),
        st.tuples(st.just("dismiss"), st.integers(0, 9)),
        # Dismissed as its schedule falls due, after that many scheduling points: racing the run.
        st.tuples(st.just("dismissAtDue"), st.integers(0, 9), st.integers(0, 12)),
        st.tuples(st.just("snooze"), st.integers(0, 9), st.integers(0, 30)),
        st.tuples(st.just("advance"), st.integers(0, 20)),
        st.tuples(st.just("restart")),
    ),
    max_size=25,
)


def fired(h: EngineHarness, reminder_id: str) -> int:
    count = h.engine.committed_state(REMINDER, reminder_id).fired
    assert isinstance(count, int)
    return count


@SETTINGS
@given(script=steps)
@example(script=[("create", 0), ("restart",)])  # stopped as the run begins
async def test_each_schedule_runs_once_unless_cancelled_first(
    autojump_clock: trio.testing.MockClock, script: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_harness(
            Path(tmp) / "data", modules=load_apps(["tests.apps.reminders"])
        ) as h:
            reminders: list[str] = []
            #: Per reminder, its live schedule.
            current: dict[str, str] = {}
            dismissed: set[str] = set()
            for step in script:
                kind = step[0]
                if kind == "create":
                    made = await h.mutation(
                        "reminders:create", {"text": "t", "delayMs": step[1] * MINUTE}, ANNA
                    )
                    reminders.append(made["reminderId"])
                    current[made["reminderId"]] = made["scheduledId"]
                elif kind in ("dismiss", "dismissAtDue", "snooze") and reminders:
                    reminder = reminders[step[1] % len(reminders)]
                    if reminder in dismissed:
                        continue
                    if kind == "dismissAtDue":
                        due = h.engine.committed_state(SCHEDULED_FUNCTION, current[reminder]).due_at
                        await trio.sleep(max(0, due - h.now_ms()) / 1000)
                        for _ in range(step[2]):
                            await trio.lowlevel.checkpoint()
                    was_fired = fired(h, reminder)
                    schedule = h.engine.committed_state(SCHEDULED_FUNCTION, current[reminder])
                    try:
                        if kind != "snooze":
                            await h.mutation("reminders:dismiss", {"reminderId": reminder}, ANNA)
                            dismissed.add(reminder)
                        else:
                            again = await h.mutation(
                                "reminders:snooze",
                                {"reminderId": reminder, "delayMs": step[2] * MINUTE},
                                ANNA,
                            )
                            current[reminder] = again
                    except Conflict:
                        # Too late: its schedule had begun to run; it finishes.
                        await h.settle()
                        ran = h.engine.committed_state(SCHEDULED_FUNCTION, current[reminder])
                        assert ran.status == DONE and fired(h, reminder) == 1
                        continue
                    assert was_fired == 0 and schedule.status == PENDING
                elif kind == "advance":
                    await h.advance(minutes=step[1])
                elif kind == "restart":
                    await h.stop()  # (what was decided is committed first)
                    live = h.engine.projection_state(SCHEDULES)
                    async with open_engine(h.data_dir, modules=h.modules, config=INSPECT) as seen:
                        assert seen.projection_state(SCHEDULES) == live
                    await h.start()
            await h.advance(minutes=61)
            listed = {row["_id"]: row["state"] for row in await h.query("scheduler:list", {})}
            for reminder in reminders:
                expected = 0 if reminder in dismissed else 1
                assert fired(h, reminder) == expected, reminder
                assert listed[current[reminder]] == ("done" if expected else "cancelled")
            assert set(listed.values()) <= {"done", "cancelled"}
            assert h.engine.projection_state(SCHEDULES).pending == 0
