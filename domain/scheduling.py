"""Scheduled work as data: cron jobs that domain modules declare and the engine runs.

A `CronJob` names a schedule and a pure `plan(view, now)` that reads committed state (one
consistent cut, through the `View`) and returns the commands to run at that tick. The engine
runs each planned command as the system caller with an idempotency key made of the job, the
tick and the command's own `key`, so a tick re-run after a crash executes nothing twice.

Each job is a small aggregate of its own (stream `job/jb_<name>`), whose events arm its next
tick as a durable timer: the schedule survives restarts, and a job whose ticks were missed
while the server was down runs once when it comes back (the overdue timer fires once; the next
tick is computed from `now`, so missed ticks are not replayed one by one).

Schedules: `Every(minutes=N)` ticks at the multiples of N minutes since the epoch (UTC);
`DailyAt(hour, minute, timezone)` ticks at that wall-clock time in an IANA timezone, on
daylight-saving days included (the engine computes the instants with zoneinfo); `AtStart()`
ticks once at each start of the server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from domain.core import Aggregate, Decision, Event, TimerChange, View

TICK = "tick"


@attrs.frozen(kw_only=True)
class Every:
    minutes: int


@attrs.frozen(kw_only=True)
class DailyAt:
    hour: int
    minute: int = 0
    timezone: str = "UTC"


@attrs.frozen(kw_only=True)
class AtStart:
    """Once at each start of the server, soon after recovery, and not again until the next:
    for work that catches up after an upgrade (a backfill), whose plan finds nothing left to do
    once it is done."""


Schedule = Every | DailyAt | AtStart


@attrs.frozen(kw_only=True)
class JobCommand:
    """One mutation a job runs at a tick; `key` identifies it within the tick (for example the
    id of the record it acts on), so that a re-run of the tick does not repeat it. A command
    whose own rule makes a repeat change nothing (a recalculation) may set `keyed=False` and
    run without an idempotency record (which would otherwise be kept for every run)."""

    mutation: str
    args: dict[str, Any]
    key: str
    keyed: bool = True


@attrs.frozen(kw_only=True)
class CronJob:
    name: str
    schedule: Schedule
    plan: Callable[[View, int], Iterable[JobCommand]]


def job_id(name: str) -> str:
    return "jb_" + hashlib.blake2b(name.encode(), digest_size=10).hexdigest()


# -- the job aggregate ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class JobState:
    name: str = ""
    #: When the next tick is due (ms epoch); 0 before the job was first scheduled.
    next_due: int = 0
    last_tick: int = 0
    last_ran_at: int = 0
    runs: int = 0
    #: Commands planned by the last run.
    last_commands: int = 0
    #: Commands of the last run that were refused (their codes), for operators.
    last_refusals: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class JobScheduled(Event):
    name: str
    next_due: int

    def timer_changes(self) -> Iterator[TimerChange]:
        # No next tick (0): an `AtStart` job after its run.
        yield TimerChange(key=TICK, due_at=self.next_due or None)


@attrs.frozen(kw_only=True)
class JobRan(Event):
    tick: int
    next_due: int
    commands: int
    refusals: tuple[str, ...] = ()

    def timer_changes(self) -> Iterator[TimerChange]:
        # No next tick (0): an `AtStart` job after its run.
        yield TimerChange(key=TICK, due_at=self.next_due or None)


def evolve(state: JobState, event: Event) -> JobState:
    match event:
        case JobScheduled(name=name, next_due=next_due):
            return JobState(
                name=name,
                next_due=next_due,
                last_tick=state.last_tick,
                last_ran_at=state.last_ran_at,
                runs=state.runs,
                last_commands=state.last_commands,
                last_refusals=state.last_refusals,
            )
        case JobRan(tick=tick, next_due=next_due, commands=commands, refusals=refusals):
            return JobState(
                name=state.name,
                next_due=next_due,
                last_tick=tick,
                last_ran_at=event.at,
                runs=state.runs + 1,
                last_commands=commands,
                last_refusals=refusals,
            )
    raise TypeError(f"not a job event: {type(event).__name__}")


@attrs.frozen(kw_only=True)
class ScheduleArgs:
    name: str
    next_due: int


@attrs.frozen(kw_only=True)
class RanArgs:
    tick: int
    next_due: int
    commands: int
    refusals: tuple[str, ...] = ()


def schedule(d: Decision[JobState], args: ScheduleArgs) -> None:
    """(Re)schedule the job's next tick, unless it is already due at that time."""
    if d.state.next_due != args.next_due or d.state.name != args.name:
        d.emit(JobScheduled, name=args.name, next_due=args.next_due)


def ran(d: Decision[JobState], args: RanArgs) -> None:
    """Record the run of tick `tick` and arm the next. A tick already recorded is ignored."""
    if d.state.last_tick == args.tick and d.state.runs:
        return
    d.emit(
        JobRan,
        tick=args.tick,
        next_due=args.next_due,
        commands=args.commands,
        refusals=args.refusals,
    )


JOB: Aggregate[JobState] = Aggregate(
    kind="job",
    id_prefix="jb",
    state_type=JobState,
    initial=JobState(),
    evolve=evolve,
)
