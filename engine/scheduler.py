"""Runs the domain's cron jobs (domain/scheduling.py) on the engine's clock.

Plan:
- At start (after recovery) every declared job whose aggregate has no next tick, or one that is
  not on its current schedule, is scheduled for its next tick after `now`. Each job's next tick
  is a durable timer armed by its own events, so it survives restarts. An `AtStart` job runs
  right there instead, before the engine serves anyone, at every start, and arms no next tick
  (it writes nothing at all when its plan is empty).
- When a job's timer falls due the timer service calls `tick(stream)`: the job's `plan` reads
  committed state at one cut, the planned commands run as the system caller, each with the
  idempotency key `("job:<name>", hash(tick, key))`, a bounded number at a time; then `JobRan`
  records the tick and arms the next one, computed from `now`. So a server that was down across
  several ticks runs the job once on start, and a tick re-run after a crash (its `JobRan` not
  yet durable) repeats none of the commands that had already been acknowledged.
- A refused command (a rule said no, e.g. the record changed meanwhile) is logged and counted in
  `JobRan.refusals`; it does not stop the tick. `Overloaded` is retried with a short backoff.

The scheduler sits beside the engine, not above it: it reaches the engine only through
`JobHost`, the few methods it needs, so engine/engine.py imports this module and not the reverse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import trio

from domain.errors import Overloaded, TurnstileError
from domain.identity import Identity
from domain.model import Aggregate, Decision, View
from domain.scheduling import (
    JOB,
    AtStart,
    CronJob,
    Every,
    JobCommand,
    RanArgs,
    Schedule,
    ScheduleArgs,
    job_id,
    ran,
    schedule,
)
from engine.actor import SYSTEM

log = logging.getLogger("turnstile.scheduler")

#: Planned commands of one tick in flight at once.
CONCURRENCY = 64
MINUTE_MS = 60_000

S = TypeVar("S")
A = TypeVar("A")


class JobHost(Protocol):
    """What the scheduler needs of the engine (engine/engine.py's `Engine` is one)."""

    @property
    def closing(self) -> bool: ...
    def now_ms(self) -> int: ...
    def committed_state(self, aggregate: Aggregate[Any], aggregate_id: str) -> Any: ...
    def read_view(self) -> View: ...
    async def run_internal(
        self,
        aggregate: Aggregate[S],
        aggregate_id: str,
        handle: Callable[[Decision[S], A], Any],
        args: A,
    ) -> object: ...
    async def mutation(
        self,
        name: str,
        args: Any,
        identity: Identity,
        *,
        session_id: str | None = None,
        request_id: int | None = None,
    ) -> object: ...


def next_tick(plan: Schedule, after_ms: int) -> int:
    """The first tick of `plan` strictly after `after_ms` (ms since the epoch); 0 for none (an
    `AtStart` job ticks only when the server starts)."""
    if isinstance(plan, AtStart):
        return 0
    if isinstance(plan, Every):
        period = plan.minutes * MINUTE_MS
        return (after_ms // period + 1) * period
    zone = ZoneInfo(plan.timezone)
    after = dt.datetime.fromtimestamp(after_ms / 1000, tz=zone)
    day = after.date()
    while True:
        wall = dt.datetime.combine(day, dt.time(plan.hour, plan.minute), tzinfo=zone)
        # A wall time skipped by a spring-forward runs at the same offset as before the gap
        # (zoneinfo's fold=0 rule), i.e. just after the change; a repeated one, the first time.
        at_ms = int(wall.timestamp() * 1000)
        if at_ms > after_ms:
            return at_ms
        day += dt.timedelta(days=1)


def is_on_schedule(plan: Schedule, due_ms: int) -> bool:
    return not isinstance(plan, AtStart) and next_tick(plan, due_ms - 1) == due_ms


def request_id(tick: int, key: str) -> int:
    digest = hashlib.blake2b(f"{tick}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # a positive 63-bit integer (SQLite INTEGER)


class Scheduler:
    """The cron jobs of one engine. With `run_jobs` off (an engine opened only to inspect a
    data dir) it schedules and runs nothing, so nothing is written but what its caller asks."""

    def __init__(self, engine: JobHost, jobs: dict[str, CronJob], *, run_jobs: bool) -> None:
        self._engine = engine
        self._run_jobs = run_jobs
        self._jobs = {JOB.stream_of(job_id(name)): job for name, job in jobs.items()}

    @property
    def jobs(self) -> list[CronJob]:
        return list(self._jobs.values())

    def owns(self, stream: str) -> bool:
        return stream.partition("/")[0] == JOB.kind

    async def start(self) -> None:
        """Schedule every job that has no valid next tick (first start, or a changed plan)."""
        engine = self._engine
        if not self._run_jobs:
            return
        for job in self._jobs.values():
            if isinstance(job.schedule, AtStart):
                await self._run_tick(job, engine.now_ms(), record_nothing=False)
                continue
            state = engine.committed_state(JOB, job_id(job.name))
            due = 0 if state is None else state.next_due
            if due and is_on_schedule(job.schedule, due):
                continue
            due = next_tick(job.schedule, engine.now_ms())
            await engine.run_internal(
                JOB, job_id(job.name), schedule, ScheduleArgs(name=job.name, next_due=due)
            )

    async def tick(self, stream: str) -> bool:
        """Run the job of `stream` for its due tick; False if it must be retried later."""
        engine = self._engine
        if not self._run_jobs:
            return True  # not run, and not retried: this engine only inspects the data dir
        job = self._jobs.get(stream)
        if job is None:
            log.warning("timer for unknown job stream %s ignored", stream)
            return True
        state = engine.committed_state(JOB, job_id(job.name))
        if state is None or not state.next_due:
            return True
        return await self._run_tick(job, state.next_due)

    async def run_now(self, name: str) -> tuple[int, tuple[str, ...]]:
        """Run job `name`'s plan now, beside its schedule, which stays as it is (an operator's
        `POST /cron/JOB`): the number of commands planned and the codes of those refused.
        Each command's idempotency key is made of this run's millisecond, so two runs asked in
        the same millisecond run each command once. KeyError for a job nobody declared."""
        job = self._jobs[JOB.stream_of(job_id(name))]
        engine = self._engine
        tick = engine.now_ms()
        planned = list(job.plan(engine.read_view(), tick))
        refusals = await self._run_planned(job, tick, planned)
        log.info("job %s run now: %d commands, %d refused", name, len(planned), len(refusals))
        return len(planned), tuple(sorted(set(refusals)))

    async def _run_tick(self, job: CronJob, tick: int, *, record_nothing: bool = True) -> bool:
        """Plan and run `job`'s tick `tick`, then record it and arm the next one (a tick that
        planned nothing is recorded only if `record_nothing`: an `AtStart` job with nothing
        left to do writes nothing)."""
        engine = self._engine
        planned = list(job.plan(engine.read_view(), engine.now_ms()))
        if not planned and not record_nothing:
            return True
        refusals = await self._run_planned(job, tick, planned)
        if engine.closing:
            return False  # the run was cut short: the overdue tick runs again on start
        await engine.run_internal(
            JOB,
            job_id(job.name),
            ran,
            RanArgs(
                tick=tick,
                next_due=next_tick(job.schedule, engine.now_ms()),
                commands=len(planned),
                refusals=tuple(sorted(set(refusals))),
            ),
        )
        log.info(
            "job %s ran tick %d: %d commands, %d refused",
            job.name,
            tick,
            len(planned),
            len(refusals),
        )
        return True

    async def _run_planned(self, job: CronJob, tick: int, planned: list[JobCommand]) -> list[str]:
        """Run a tick's planned commands, `CONCURRENCY` at a time; the codes of the refused."""
        refusals: list[str] = []
        limiter = trio.CapacityLimiter(CONCURRENCY)

        async def run_one(command: JobCommand) -> None:
            async with limiter:
                code = await self._run(job, tick, command)
                if code is not None:
                    refusals.append(code)

        async with trio.open_nursery() as nursery:
            for command in planned:
                nursery.start_soon(run_one, command)
        return refusals

    async def _run(self, job: CronJob, tick: int, command: JobCommand) -> str | None:
        for attempt in range(5):
            try:
                if command.keyed:
                    await self._engine.mutation(
                        command.mutation,
                        command.args,
                        SYSTEM,
                        session_id=f"job:{job.name}",
                        request_id=request_id(tick, command.key),
                    )
                else:
                    await self._engine.mutation(command.mutation, command.args, SYSTEM)
                return None
            except Overloaded as error:
                if self._engine.closing:
                    return error.code
                await trio.sleep(0.1 * 2**attempt)
            except TurnstileError as error:
                log.info("job %s: %s refused: %s", job.name, command.mutation, error.message)
                return error.code
        return Overloaded.code
