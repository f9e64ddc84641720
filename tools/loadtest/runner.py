"""One load-test run, start to finish: `run_loadtest(config) -> RunResult`.

Every phase is bounded: connecting by `connect_timeout`, the load by `duration` (it ends
sooner once every simulated user is done), convergence by `settle`, the read-back by
`settle + READ_BACK_SECONDS`. Nothing is sent before the URL is known to be loopback.
"""

from __future__ import annotations

import random
import secrets
import time
from contextlib import AsyncExitStack
from typing import Any, TextIO

import attrs
import trio
import trio.lowlevel

from engine.client import FunctionError
from tools.loadtest.checks import Check, all_passed, converged
from tools.loadtest.config import LoadConfig
from tools.loadtest.latency import CommitToUpdate, commit_to_update
from tools.loadtest.progress import show_progress
from tools.loadtest.recorder import Recorder
from tools.loadtest.scenarios import (
    Audience,
    RunContext,
    Scenario,
    ScenarioUnavailable,
    resolve_scenarios,
)
from tools.loadtest.users import MeasuredClient, leaves, open_measured_client

#: Seconds the read-back of acknowledged writes may take beyond `settle`.
READ_BACK_SECONDS = 30.0
#: Seconds between two looks at whether every subscriber has converged.
SETTLE_POLL = 0.05
#: Participants started per checkpoint (so a large run connects in waves, not one burst).
START_BATCH = 50


class SetupFailed(Exception):
    """The run could not start: the server is unreachable, refused the admin key, or lacks
    what the scenario needs. The message says which, for the command line."""


@attrs.define
class RunResult:
    config: LoadConfig
    run_id: str
    started_at_ms: int
    recorder: Recorder
    commit_to_update: CommitToUpdate
    checks: list[Check]
    scenarios: dict[str, dict[str, Any]]
    skipped: dict[str, str]
    participants: int
    connected: int
    settle_seconds: float

    @property
    def passed(self) -> bool:
        return all_passed(self.checks)


class _Phase:
    def __init__(self) -> None:
        self.name = "connect"

    def __call__(self) -> str:
        return self.name


async def run_loadtest(
    config: LoadConfig, progress: TextIO | None = None, *, recorder: Recorder | None = None
) -> RunResult:
    """Run `config` against its server; `progress` gets the live progress line. A `recorder`
    given by the caller is the run's (so the caller can follow the run as it goes: its
    `load_started`, its `sent` log).

    Raises `ConfigError` before sending anything if the config is unusable (a non-loopback URL
    among others, or a scenario no app in `config.apps` declares), and `SetupFailed` if the
    run cannot start.
    """
    config.validate()
    plan = resolve_scenarios(config)
    recorder = Recorder() if recorder is None else recorder
    failure: str | None = None
    result: RunResult | None = None
    release = trio.Event()

    async def hold_admin(task_status: trio.TaskStatus[MeasuredClient]) -> None:
        # Held in a task of its own so that it closes together with the participants'
        # connections (closing one takes a moment), not after them.
        async with open_measured_client(
            config.url,
            recorder,
            admin_key=config.admin_key,
            connect_timeout=config.connect_timeout,
            measured=False,
        ) as admin:
            task_status.started(admin)
            await release.wait()

    try:
        async with trio.open_nursery() as nursery:
            admin = await nursery.start(hold_admin)
            try:
                result = await _run(config, plan, recorder, admin, release, progress)
            finally:
                release.set()
    except* trio.TooSlowError:
        failure = f"could not connect to {config.url} within {config.connect_timeout:g} s"
    except* FunctionError as group:
        error = leaves(group)[0]
        assert isinstance(error, FunctionError)
        if error.code == "Unauthenticated":
            failure = f"the server refused the admin key: {error}"
        else:
            failure = f"setting up the run failed ({error.code}): {error}"
    except* ScenarioUnavailable as group:
        failure = f"cannot run {config.scenario}: {leaves(group)[0]}"
    if failure is not None:
        raise SetupFailed(failure)
    assert result is not None
    return result


async def _run(
    config: LoadConfig,
    plan: list[tuple[type[Scenario], bool]],
    recorder: Recorder,
    admin: MeasuredClient,
    release: trio.Event,
    progress: TextIO | None,
) -> RunResult:
    run_id = secrets.token_hex(4)
    started_at_ms = int(time.time() * 1000)
    rng = random.Random(config.seed)
    context = RunContext(config, recorder, admin, run_id, rng, release)
    phase = _Phase()
    scenarios: list[Scenario] = []
    skipped: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        for cls, optional in plan:
            scenario = cls(context)
            try:
                await scenario.prepare(stack)
            except ScenarioUnavailable as why:
                if not optional:
                    raise
                skipped[cls.name] = str(why)
                continue
            scenarios.append(scenario)
        participants = [p for s in scenarios for p in s.participants()]
        context.enlist(len(participants))
        async with trio.open_nursery() as nursery:
            shown = trio.CancelScope()
            if progress is not None:

                async def show() -> None:
                    with shown:
                        await show_progress(recorder, phase, config.duration, progress)

                nursery.start_soon(show)
            for index, participant in enumerate(participants):
                nursery.start_soon(participant)
                if index % START_BATCH == START_BATCH - 1:
                    await trio.lowlevel.checkpoint()
            with trio.move_on_after(config.connect_timeout + 1.0):
                await context.all_arrived.wait()
            connected = recorder.open_connections
            phase.name = "load"
            context.begin_load()
            # Participants stop by themselves: at the deadline they start nothing new, and
            # what is in flight is cut short `config.grace` seconds later.
            with trio.move_on_at(context.load_deadline + config.grace + 1.0):
                await context.all_done.wait()
            recorder.end_load()
            phase.name = "settle"
            settle_started = trio.current_time()
            audiences = [a for s in scenarios for a in s.audiences()]
            finals = await _settle(admin, audiences, config.settle)
            settle_seconds = trio.current_time() - settle_started
            phase.name = "check"
            checks = [_convergence(a, finals) for a in audiences]
            for scenario in scenarios:
                checks.extend(await _verify(scenario, config))
            context.release.set()
            shown.cancel()
    return RunResult(
        config=config,
        run_id=run_id,
        started_at_ms=started_at_ms,
        recorder=recorder,
        commit_to_update=commit_to_update(recorder.markers, recorder.watches),
        checks=checks,
        scenarios={s.name: s.stats() for s in scenarios},
        skipped=skipped,
        participants=len(participants),
        connected=connected,
        settle_seconds=settle_seconds,
    )


async def _settle(
    admin: MeasuredClient, audiences: list[Audience], settle: float
) -> dict[str, Any]:
    """Read each audience's value fresh, again and again, until every subscriber holds it or
    `settle` seconds pass; the last values read (by topic)."""
    finals: dict[str, Any] = {}
    with trio.move_on_after(settle):
        while True:
            for audience in audiences:
                try:
                    finals[audience.topic] = await admin.query(audience.name, audience.args)
                except FunctionError as error:
                    finals[audience.topic] = error
            if all(all(w.latest == finals[a.topic] for w in a.members) for a in audiences):
                break
            await trio.sleep(SETTLE_POLL)
    return finals


def _convergence(audience: Audience, finals: dict[str, Any]) -> Check:
    name = f"{audience.label}: every subscriber converged"
    if audience.topic not in finals:
        return Check(name=name, passed=False, detail="the final value could not be read in time")
    final = finals[audience.topic]
    if isinstance(final, FunctionError):
        return Check(
            name=name,
            passed=False,
            detail=f"reading the final value failed ({final.code}): {final}",
        )
    return converged(name, final, audience.members)


async def _verify(scenario: Scenario, config: LoadConfig) -> list[Check]:
    """The scenario's checks; a read-back that is refused or too slow is a failed check."""
    limit = config.settle + READ_BACK_SECONDS
    failed = ""
    try:
        with trio.fail_after(limit):
            return await scenario.verify()
    except* FunctionError as group:
        error = leaves(group)[0]
        assert isinstance(error, FunctionError)
        failed = f"a read-back was refused ({error.code}): {error}"
    except* trio.TooSlowError:
        failed = f"the read-back took longer than {limit:g} s"
    return [Check(name=f"{scenario.name}: read back", passed=False, detail=failed)]


__all__ = ["RunResult", "SetupFailed", "run_loadtest"]
