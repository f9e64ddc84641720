"""Runs scheduled functions (domain/scheduled.py) when they fall due, each exactly once.

The aggregate: one `scheduled` stream per schedule (`sf_...`), made by the mutation that asks
for it (`run_after` / `run_at`, a co-decision committed with that mutation, or by
`Engine.schedule_function` for code outside a decision). Its events:

    FunctionScheduled      pending; arms the durable timer `run` at the due time
    ScheduledFunctionStarted   running; the timer stays armed
    ScheduledFunctionSucceeded done, with the result; disarms the timer
    ScheduledFunctionFailed    failed, with the refusal's code and message; disarms it
    ScheduledFunctionCancelled cancelled (only while pending); disarms it

The timer is derived from the journal like every other (engine/timers.py), so a schedule
survives restarts, and one that fell due while the server was down fires once, at start.

The run, when the timer fires (`ScheduledFunctions.fire`):
1. `begin_run` moves a pending schedule to running (a durable write). From then on a cancel
   is a `Conflict`, so a function that was cancelled never runs, and one that runs cannot
   be cancelled under it.
2. The dispatch runs the function with the system caller (`engine.actor.SYSTEM`, as cron job
   commands run) under the idempotency key `request_key(scheduled_id)`: session `scheduled`,
   a request id derived from the schedule's id.
3. `record_outcome` records done (the result, as JSON) or failed (a refusal's code and
   message; an unexpected error is `Internal`) and disarms the timer.

Crash states, and what the next start does (the timer is still armed in each):
- pending (before 1): the overdue timer fires; the run happens once.
- running, the function not run or its commit lost (between 1 and 2): it runs now.
- running, the function committed, its outcome not recorded (between 2 and 3): it "runs"
  again under the same key, and the engine answers the recorded result without executing it
  (engine invariant 4), which is then recorded. So a mutation's effects happen once.
- done, failed or cancelled: the timer is disarmed; nothing runs.
A refusal writes nothing, so a refused function re-run after a crash may meet another state;
its outcome is what that run says. `Overloaded` (the engine busy or closing) records nothing:
the timer is retried a second later, or fires again at the next start.

The dispatch is a seam (`Dispatch`): the default, `MutationDispatch`, reaches registered
mutations; a server that also serves actions replaces `ScheduledFunctions.dispatch` with one
that reaches them too. A target that is not idempotent by its request key (an action) gets the
same key, and a run repeated after a crash between 2 and 3 is its own to absorb.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from domain.errors import InvalidArgs, NotFound, Overloaded, TurnstileError
from domain.identity import Identity
from domain.ids import is_root_id, root_id
from domain.model import Aggregate, Decision, MutationSpec, Projection
from domain.scheduled import (
    SCHEDULED_FUNCTION,
    SCHEDULES,
    CancelArgs,
    RunOutcome,
    ScheduleArgs,
    Schedules,
    begin_run,
    cancel,
    check_capacity,
    checked_args,
    record_outcome,
    schedule,
)
from engine import codec
from engine.actor import SYSTEM, RequestKey
from engine.subscriptions import RecordingView

log = logging.getLogger("turnstile.scheduled")

#: The idempotency session of every scheduled run (`request_key`).
SESSION = "scheduled"

S = TypeVar("S")
A = TypeVar("A")


def request_key(scheduled_id: str) -> RequestKey:
    """The idempotency key a schedule's function runs under: the same on every attempt."""
    digest = hashlib.blake2b(scheduled_id.encode(), digest_size=8).digest()
    return SESSION, int.from_bytes(digest, "big") >> 1  # a positive 63-bit integer


class Dispatch(Protocol):
    """How scheduled functions are reached: checked when scheduled, run when due."""

    def check(self, function: str, args: Mapping[str, Any]) -> str:
        """The name `function` runs under; `InvalidArgs` (path `function`, or the argument's)
        unless it is one this dispatch runs and `args` fit its arguments. Synchronous: it runs
        inside the scheduling mutation's decision."""
        ...

    async def run(self, function: str, args: dict[str, Any], request: RequestKey) -> Any:
        """Run `function(args)` as the system caller under the idempotency key `request`; its
        result (JSON values), or the `TurnstileError` refusing it."""
        ...


class DispatchHost(Protocol):
    def mutation_spec(self, name: str) -> MutationSpec[Any, Any]: ...
    def serves_action(self, name: str) -> bool: ...
    async def mutation(
        self,
        name: str,
        args: Any,
        identity: Identity,
        *,
        session_id: str | None = None,
        request_id: int | None = None,
    ) -> Any: ...


class MutationDispatch:
    """The default dispatch: the engine's registered mutations (aliases included)."""

    def __init__(self, engine: DispatchHost) -> None:
        self._engine = engine

    def check(self, function: str, args: Mapping[str, Any]) -> str:
        try:
            spec = self._engine.mutation_spec(function)
        except (NotFound, InvalidArgs):
            raise InvalidArgs(
                f"{function!r} is no mutation that can be scheduled.", path="function"
            ) from None
        codec.decode_args(dict(args), spec.args_type)
        return spec.name

    async def run(self, function: str, args: dict[str, Any], request: RequestKey) -> Any:
        if self._engine.serves_action(function):
            # Scheduled while a server served (engine.actions.ActionDispatch); actions run only
            # in a server's runner: retried until one serves again, never failed for it.
            raise Overloaded("Scheduled actions run once a server serves.")
        outcome = await self._engine.mutation(
            function, args, SYSTEM, session_id=request[0], request_id=request[1]
        )
        return outcome.value


class ScheduledHost(DispatchHost, Protocol):
    """What the runner needs of the engine (engine/engine.py's `Engine` is one)."""

    def now_ms(self) -> int: ...
    def new_token(self) -> str: ...
    def committed_state(self, aggregate: Aggregate[Any], aggregate_id: str) -> Any: ...
    def projection_state(self, projection: Projection[S]) -> S: ...
    async def run_internal(
        self,
        aggregate: Aggregate[S],
        aggregate_id: str,
        handle: Callable[[Decision[S], A], Any],
        args: A,
    ) -> Any: ...


class ScheduledFunctions:
    """The scheduled functions of one engine. With `run` off (an engine opened only to inspect
    a data dir) due ones are left pending and nothing is written."""

    def __init__(self, engine: ScheduledHost, *, run: bool) -> None:
        self._engine = engine
        self._run = run
        #: Replace to reach more than mutations (see the module's docstring).
        self.dispatch: Dispatch = MutationDispatch(engine)

    def owns(self, stream: str) -> bool:
        return stream.partition("/")[0] == SCHEDULED_FUNCTION.kind

    async def fire(self, stream: str) -> bool:
        """Run the due schedule of `stream` (see the module's docstring); False if it must be
        retried later (the engine was busy or closing)."""
        if not self._run:
            return True
        scheduled_id = stream.partition("/")[2]
        engine = self._engine
        try:
            began = await engine.run_internal(SCHEDULED_FUNCTION, scheduled_id, begin_run, None)
        except Overloaded:
            return False
        if not began.value:
            return True  # cancelled or finished meanwhile
        state = engine.committed_state(SCHEDULED_FUNCTION, scheduled_id)
        try:
            value = await self.dispatch.run(state.name, dict(state.args), request_key(scheduled_id))
            outcome = RunOutcome(result=codec.loads(codec.dumps(value)))
        except Overloaded:
            return False  # still running: retried, under the same key
        except TurnstileError as error:
            log.info("scheduled %s (%s) refused: %s", scheduled_id, state.name, error.message)
            outcome = RunOutcome(code=error.code, message=error.message)
        except Exception:
            log.exception("scheduled %s (%s) failed", scheduled_id, state.name)
            outcome = RunOutcome(code="Internal", message="The scheduled function failed.")
        try:
            await engine.run_internal(SCHEDULED_FUNCTION, scheduled_id, record_outcome, outcome)
        except Overloaded:
            return False  # recorded on a later firing (the run repeats under its key)
        return True

    def check(self, function: str, args: Mapping[str, Any]) -> str:
        return self.dispatch.check(function, args)

    async def schedule(
        self, function: str, args: Mapping[str, Any], at_ms: int, identity: Identity
    ) -> str:
        """See `Engine.schedule_function`."""
        if not isinstance(at_ms, int) or isinstance(at_ms, bool) or at_ms < 0:
            raise InvalidArgs(
                "A scheduled time must be an integer of ms since the epoch.", path="at"
            )
        if not isinstance(function, str):
            raise InvalidArgs("A scheduled function is named by a string.", path="function")
        kept = checked_args(args)
        name = self.check(function, kept)
        engine = self._engine
        pending: Schedules = engine.projection_state(SCHEDULES)
        check_capacity(pending)
        scheduled_id = root_id(SCHEDULED_FUNCTION.id_prefix, engine.new_token())
        made = ScheduleArgs(
            name=name,
            args=kept,
            due_at=at_ms,
            org_id=identity.org_id,
            scheduled_by=identity.subject,
        )
        await engine.run_internal(SCHEDULED_FUNCTION, scheduled_id, schedule, made)
        return scheduled_id

    async def cancel(self, scheduled_id: str, identity: Identity) -> None:
        """See `Engine.cancel_scheduled`."""
        if not isinstance(scheduled_id, str):
            raise InvalidArgs("A scheduled function's id is a string.", path="scheduledId")
        if not is_root_id(scheduled_id, SCHEDULED_FUNCTION.id_prefix):
            raise NotFound("Scheduled function not found.")
        await self._engine.run_internal(
            SCHEDULED_FUNCTION, scheduled_id, cancel, CancelArgs(identity=identity)
        )


class SchedulingView(RecordingView):
    """The view `Decision.committed_view` gives a handler: a query's view that also knows
    which functions may be scheduled (`domain.scheduled.Schedulable`)."""

    def __init__(
        self,
        read_aggregate: Callable[[Aggregate[Any], str], Any],
        projection_states: dict[str, Any],
        scheduled: ScheduledFunctions,
    ) -> None:
        super().__init__(read_aggregate, projection_states)
        self._scheduled = scheduled

    def check_schedulable(self, function: str, args: Mapping[str, Any]) -> str:
        return self._scheduled.check(function, args)
