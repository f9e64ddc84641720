"""Scheduled functions: a mutation asks for a function to run later (Convex's `ctx.scheduler`).

`run_after(d, delay_ms, function, args)` and `run_at(d, at_ms, function, args)`, called in a
mutation's handler, create one `scheduled` aggregate (`sf_...`) by co-decision
(`Decision.co_decide`): its `FunctionScheduled` event is committed in the same transaction as
the mutation's own events, or not at all, so a refused mutation schedules nothing.
`cancel_scheduled(d, scheduled_id)` cancels a pending one the same way. The engine runs a due
function once, as its system caller, and records the outcome on the aggregate
(engine/scheduled.py has the protocol and its crash states).

The lifecycle is the table `TRANSITIONS`; a step it does not allow raises and changes nothing:

    (new) -> pending -> running -> done | failed
                     -> cancelled

What is checked when scheduling (`InvalidArgs`, nothing written): the function must be one the
engine can run (`Schedulable.check_schedulable`, through `Decision.committed_view`: a
registered mutation whose args fit `args`, or an action while a server serves), `args` a
JSON object of at most `MAX_ARGS_BYTES` bytes, the time not negative. At most
`MAX_SCHEDULED_PER_COMMAND` schedules per mutation, and at most `MAX_PENDING` pending in the
engine at once (read from committed state: a bound, not a serial rule, so racing mutations may
pass it by a few).

Tenancy: each schedule keeps who made it (`org_id`, `scheduled_by`: the scheduling identity's
organization and subject). `scheduled_functions(view, identity)` lists, and `cancel_scheduled`
reaches, only the caller's organization's schedules (a caller in no organization: its own);
admin callers reach all. Another's schedule is `NotFound`, as if it did not exist. A schedule
made by a scheduled function (the system caller: no organization) is reached by admin only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
import immutables

from domain.core import Aggregate, Decision, Event, Projection, TimerChange, View
from domain.errors import Conflict, Forbidden, InvalidArgs, NotFound, Overloaded
from domain.identity import Identity
from domain.ids import root_id
from domain.model import Module, QuerySpec
from domain.pagination import PaginationOpts, paginate, scope_of

#: The durable timer of a schedule (one per `scheduled` stream).
RUN = "run"

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (PENDING, RUNNING, DONE, FAILED, CANCELLED)
#: status -> the statuses it may move to ("" is a schedule not yet made).
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "": frozenset({PENDING}),
    PENDING: frozenset({RUNNING, CANCELLED}),
    RUNNING: frozenset({DONE, FAILED}),
    DONE: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}

#: Largest `args` of one schedule, as compact JSON, bytes.
MAX_ARGS_BYTES = 65_536
#: Schedules one mutation may make.
MAX_SCHEDULED_PER_COMMAND = 1_000
#: Schedules pending in the engine at once.
MAX_PENDING = 100_000


# -- events ---------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FunctionScheduled(Event):
    name: str
    args: immutables.Map[str, Any]
    due_at: int
    org_id: str | None
    scheduled_by: str | None

    def timer_changes(self) -> Iterator[TimerChange]:
        yield TimerChange(key=RUN, due_at=self.due_at)


@attrs.frozen(kw_only=True)
class ScheduledFunctionStarted(Event):
    """The engine began to run it. The timer stays armed: after a crash it fires again, and the
    run is repeated under the same idempotency key."""


@attrs.frozen(kw_only=True)
class ScheduledFunctionSucceeded(Event):
    result: Any

    def timer_changes(self) -> Iterator[TimerChange]:
        yield TimerChange(key=RUN, due_at=None)


@attrs.frozen(kw_only=True)
class ScheduledFunctionFailed(Event):
    code: str
    message: str

    def timer_changes(self) -> Iterator[TimerChange]:
        yield TimerChange(key=RUN, due_at=None)


@attrs.frozen(kw_only=True)
class ScheduledFunctionCancelled(Event):
    def timer_changes(self) -> Iterator[TimerChange]:
        yield TimerChange(key=RUN, due_at=None)


_STATUS_OF: Mapping[type[Event], str] = {
    FunctionScheduled: PENDING,
    ScheduledFunctionStarted: RUNNING,
    ScheduledFunctionSucceeded: DONE,
    ScheduledFunctionFailed: FAILED,
    ScheduledFunctionCancelled: CANCELLED,
}


# -- the aggregate --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ScheduledState:
    name: str = ""
    args: immutables.Map[str, Any] = attrs.field(factory=immutables.Map)
    status: str = ""
    #: When the schedule was committed, when it is due and when it ended (ms epoch; 0: not yet).
    scheduled_at: int = 0
    due_at: int = 0
    completed_at: int = 0
    org_id: str | None = None
    scheduled_by: str | None = None
    #: The function's result (done), as JSON values.
    result: Any = None
    #: The refusal's code and message (failed).
    error_code: str = ""
    error_message: str = ""


def evolve(state: ScheduledState, event: Event) -> ScheduledState:
    status = _STATUS_OF.get(type(event))
    if status is None:
        raise TypeError(f"not a scheduled function event: {type(event).__name__}")
    if isinstance(event, FunctionScheduled):
        return ScheduledState(
            name=event.name,
            args=event.args,
            status=status,
            scheduled_at=event.at,
            due_at=event.due_at,
            org_id=event.org_id,
            scheduled_by=event.scheduled_by,
        )
    if isinstance(event, ScheduledFunctionStarted):
        return attrs.evolve(state, status=status)
    if isinstance(event, ScheduledFunctionSucceeded):
        return attrs.evolve(state, status=status, completed_at=event.at, result=event.result)
    if isinstance(event, ScheduledFunctionFailed):
        return attrs.evolve(
            state,
            status=status,
            completed_at=event.at,
            error_code=event.code,
            error_message=event.message,
        )
    return attrs.evolve(state, status=status, completed_at=event.at)


SCHEDULED_FUNCTION: Aggregate[ScheduledState] = Aggregate(
    kind="scheduled",
    id_prefix="sf",
    state_type=ScheduledState,
    initial=ScheduledState(),
    evolve=evolve,
)


def _move(d: Decision[ScheduledState], event_type: type[Event], **fields: Any) -> None:
    """Emit `event_type` if the lifecycle allows its status from the current one."""
    to = _STATUS_OF[event_type]
    if to not in TRANSITIONS[d.state.status]:
        raise Conflict(
            f"A scheduled function that is {d.state.status or 'not made'} cannot become {to}.",
            status=d.state.status,
        )
    d.emit(event_type, **fields)


# -- the read model -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Schedules:
    """Every schedule's id by owner (`owner_key`), with its creation number (the listing's
    order: the journal's), how many were made and how many are pending. Statuses are read from
    the aggregates."""

    by_owner: immutables.Map[str, immutables.Map[str, int]] = attrs.field(factory=immutables.Map)
    made: int = 0
    pending: int = 0


#: The projection key every schedule's listing change is also told under (admin listings).
ALL = "*"


def owner_key(org_id: str | None, subject: str | None) -> str:
    """Whose a schedule is: its organization's, else its maker's, else "" (admin or
    anonymous makers: admin callers alone see those)."""
    if org_id is not None:
        return f"org:{org_id}"
    if subject is not None:
        return f"user:{subject}"
    return ""


def _reader_key(identity: Identity) -> str | None:
    """The owner key a non-admin caller reads; None for one who reads nothing."""
    if identity.org_id is None and identity.subject is None:
        return None
    return owner_key(identity.org_id, identity.subject)


def _apply(schedules: Schedules, event: Event) -> Schedules:
    if isinstance(event, FunctionScheduled):
        key = owner_key(event.org_id, event.scheduled_by)
        owned = schedules.by_owner.get(key, immutables.Map())
        made = schedules.made + 1
        return Schedules(
            by_owner=schedules.by_owner.set(key, owned.set(event.stream.partition("/")[2], made)),
            made=made,
            pending=schedules.pending + 1,
        )
    if isinstance(event, ScheduledFunctionStarted | ScheduledFunctionCancelled):
        return attrs.evolve(schedules, pending=schedules.pending - 1)
    return schedules


def _keys(event: Event) -> tuple[str, ...]:
    # Only a new schedule changes a listing's rows; a status is read from its aggregate.
    if isinstance(event, FunctionScheduled):
        return (owner_key(event.org_id, event.scheduled_by), ALL)
    return ()


SCHEDULES = Projection(
    name="scheduled_functions",
    state_type=Schedules,
    initial=Schedules(),
    apply=_apply,
    keys=_keys,
    event_types=(FunctionScheduled, ScheduledFunctionStarted, ScheduledFunctionCancelled),
)


# -- scheduling from a mutation -------------------------------------------------------------------


@runtime_checkable
class Schedulable(Protocol):
    """What the engine's `Decision.committed_view` also answers: which functions it runs."""

    def check_schedulable(self, function: str, args: Mapping[str, Any]) -> str:
        """The name `function` runs under (aliases resolved); `InvalidArgs` unless the engine
        can run it and `args` fit its arguments."""
        ...


#: Nesting of arrays and objects in a schedule's args (as on the wire).
_MAX_DEPTH = 64
_INT64 = 2**63


def _json_value(value: Any, path: str, depth: int) -> Any:
    """`value` as plain JSON values (tuples become lists), or `InvalidArgs` naming `path`."""
    if depth > _MAX_DEPTH:
        raise InvalidArgs(f"{path} is nested too deeply.", path=path)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise InvalidArgs(f"{path} is an integer outside 64 bits.", path=path)
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidArgs(f"{path} is not a finite number.", path=path)
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgs(f"{path} has a key that is not a string.", path=path)
            out[key] = _json_value(item, f"{path}.{key}", depth + 1)
        return out
    raise InvalidArgs(f"{path} is not a JSON value ({type(value).__name__}).", path=path)


def checked_args(args: object) -> immutables.Map[str, Any]:
    """`args` as a schedule keeps them: a JSON object of at most `MAX_ARGS_BYTES` bytes (as
    compact JSON). `InvalidArgs` (path `args...`) for anything else."""
    if not isinstance(args, Mapping):
        raise InvalidArgs("A scheduled function's args must be an object.", path="args")
    plain = _json_value(args, "args", 0)
    size = len(json.dumps(plain, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_ARGS_BYTES:
        raise InvalidArgs(
            f"A scheduled function's args may take at most {MAX_ARGS_BYTES} bytes as JSON.",
            path="args",
            limit=MAX_ARGS_BYTES,
        )
    return immutables.Map(plain)


@attrs.frozen(kw_only=True)
class ScheduleArgs:
    name: str
    args: immutables.Map[str, Any]
    due_at: int
    org_id: str | None
    scheduled_by: str | None


def schedule(d: Decision[ScheduledState], args: ScheduleArgs) -> str:
    """Make the schedule on `d`'s new aggregate and arm its timer; its id. The checks of
    `run_at` are its caller's (the engine's `schedule_function` makes them too)."""
    _move(
        d,
        FunctionScheduled,
        name=args.name,
        args=args.args,
        due_at=args.due_at,
        org_id=args.org_id,
        scheduled_by=args.scheduled_by,
    )
    return d.aggregate_id


def check_capacity(schedules: Schedules, more: int = 1) -> None:
    """`Overloaded` if `more` schedules would pass `MAX_PENDING` pending ones."""
    if schedules.pending + more > MAX_PENDING:
        raise Overloaded(
            f"{MAX_PENDING} scheduled functions are pending; retry once some have run.",
            limit=MAX_PENDING,
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def run_at(d: Decision[Any], at_ms: int, function: str, args: Mapping[str, Any]) -> str:
    """Schedule mutation `function` (`"module:function"`) with wire args `args` to run at
    `at_ms` (ms since the epoch, UTC; a time already past runs at once); the schedule's id.

    Atomic with the calling mutation: committed with its events, or not at all if it is
    refused. Raises `InvalidArgs` (nothing scheduled) for an unknown function, args that are
    not a JSON object fitting its arguments, or a negative time; see the module's docstring
    for the bounds."""
    if not _is_int(at_ms) or at_ms < 0:
        raise InvalidArgs("A scheduled time must be an integer of ms since the epoch.", path="at")
    return _schedule(d, at_ms, function, args)


def run_after(d: Decision[Any], delay_ms: int, function: str, args: Mapping[str, Any]) -> str:
    """`run_at(d, d.now + delay_ms, function, args)`: `delay_ms` must be an integer >= 0."""
    if not _is_int(delay_ms) or delay_ms < 0:
        raise InvalidArgs("A delay must be an integer number of ms, at least 0.", path="delay")
    return _schedule(d, d.now + delay_ms, function, args)


def _schedule(d: Decision[Any], due_at: int, function: str, args: Mapping[str, Any]) -> str:
    if not isinstance(function, str):
        raise InvalidArgs("A scheduled function is named by a string.", path="function")
    kept = checked_args(args)
    view = d.committed_view()
    if not isinstance(view, Schedulable):
        raise RuntimeError("this decision's view cannot tell which functions may be scheduled")
    name = view.check_schedulable(function, kept)
    made = sum(
        1
        for part in d.co_decided()
        if any(isinstance(event, FunctionScheduled) for event in part.events)
    )
    if made >= MAX_SCHEDULED_PER_COMMAND:
        raise InvalidArgs(
            f"A mutation may schedule at most {MAX_SCHEDULED_PER_COMMAND} functions.",
            path="function",
            limit=MAX_SCHEDULED_PER_COMMAND,
        )
    check_capacity(view.projection(SCHEDULES, ALL), made + 1)
    scheduled_id = root_id(SCHEDULED_FUNCTION.id_prefix, d.new_token())
    return schedule(
        d.co_decide(SCHEDULED_FUNCTION, scheduled_id),
        ScheduleArgs(
            name=name,
            args=kept,
            due_at=due_at,
            org_id=d.identity.org_id,
            scheduled_by=d.identity.subject,
        ),
    )


@attrs.frozen(kw_only=True)
class CancelArgs:
    #: Who cancels (tenancy): the mutation's caller, or the identity an action passes on.
    identity: Identity


def cancel(d: Decision[ScheduledState], args: CancelArgs) -> None:
    """Cancel a pending schedule: its timer is disarmed and it never runs. `NotFound` for no
    such schedule (or another's), `Conflict` once it is running, done or failed; cancelling a
    cancelled one changes nothing."""
    state = d.state
    if not state.status or not may_see(args.identity, state):
        raise NotFound("Scheduled function not found.")
    if state.status != CANCELLED:
        _move(d, ScheduledFunctionCancelled)


def cancel_scheduled(d: Decision[Any], scheduled_id: str) -> None:
    """Cancel the schedule `scheduled_id` within the calling mutation (atomic with it), as
    `cancel` says: `NotFound`, `Conflict`, or nothing for one already cancelled."""
    if not isinstance(scheduled_id, str):
        raise InvalidArgs("A scheduled function's id is a string.", path="scheduledId")
    cancel(d.co_decide(SCHEDULED_FUNCTION, scheduled_id), CancelArgs(identity=d.identity))


# -- the engine's commands on a schedule ----------------------------------------------------------


def begin_run(d: Decision[ScheduledState], _: None) -> bool:
    """Mark a due schedule running; True if the engine is to run it now: it was pending, or
    was running already (a run cut short by a restart, repeated under the same key)."""
    if d.state.status == PENDING:
        _move(d, ScheduledFunctionStarted)
        return True
    return d.state.status == RUNNING


@attrs.frozen(kw_only=True)
class RunOutcome:
    """How a run ended: `result` (JSON values) if `code` is "", else the refusal's code and
    message."""

    result: Any = None
    code: str = ""
    message: str = ""


def record_outcome(d: Decision[ScheduledState], outcome: RunOutcome) -> None:
    """Record a running schedule's outcome (done or failed) and disarm its timer; a schedule
    no longer running (its outcome recorded already) is left as it is."""
    if d.state.status != RUNNING:
        return
    if outcome.code:
        _move(d, ScheduledFunctionFailed, code=outcome.code, message=outcome.message)
    else:
        _move(d, ScheduledFunctionSucceeded, result=outcome.result)


# -- reads ----------------------------------------------------------------------------------------


def may_see(identity: Identity, state: ScheduledState) -> bool:
    """Whether `identity` reaches this schedule (see the module's docstring, "Tenancy")."""
    if identity.is_admin:
        return True
    reader = _reader_key(identity)
    return reader is not None and reader == owner_key(state.org_id, state.scheduled_by)


def _doc(scheduled_id: str, state: ScheduledState) -> dict[str, Any]:
    return {
        "_id": scheduled_id,
        "_creationTime": state.scheduled_at,
        "name": state.name,
        "args": dict(state.args),
        "scheduledTime": state.due_at,
        "completedTime": state.completed_at or None,
        "state": state.status,
        "result": state.result,
        "error": (
            {"code": state.error_code, "message": state.error_message}
            if state.status == FAILED
            else None
        ),
        "orgId": state.org_id,
        "scheduledBy": state.scheduled_by,
    }


def scheduled_function(view: View, identity: Identity, scheduled_id: str) -> dict[str, Any] | None:
    """One schedule as `scheduled_functions` lists it; None if there is none the caller may
    see. Live in a query (it reads through `view`)."""
    state = view.aggregate(SCHEDULED_FUNCTION, scheduled_id)
    if state is None or not may_see(identity, state):
        return None
    return _doc(scheduled_id, state)


def _listed(
    view: View, identity: Identity, status: str | None
) -> list[tuple[tuple[int, str], ScheduledState]]:
    if status is not None and status not in STATUSES:
        raise InvalidArgs(f"status must be one of {', '.join(STATUSES)}.", path="status")
    if identity.is_admin:
        owners = list(view.projection(SCHEDULES, ALL).by_owner.values())
    else:
        reader = _reader_key(identity)
        if reader is None:
            return []
        owned = view.projection(SCHEDULES, reader).by_owner.get(reader)
        owners = [] if owned is None else [owned]
    keys = sorted((n, scheduled_id) for owned in owners for scheduled_id, n in owned.items())
    rows = []
    for key in keys:
        state = view.aggregate(SCHEDULED_FUNCTION, key[1])
        assert state is not None, "a listed schedule has events"
        if status is None or state.status == status:
            rows.append((key, state))
    return rows


def scheduled_functions(
    view: View, identity: Identity, *, status: str | None = None
) -> list[dict[str, Any]]:
    """The schedules the caller may see (its organization's; admin: all), oldest first, each
    `{_id, _creationTime, name, args, scheduledTime, completedTime, state, result, error,
    orgId, scheduledBy}` with `state` one of `STATUSES`; only those in `status` if given
    (`InvalidArgs` for another word). Live in a query: re-evaluated when a schedule is made
    or changes state."""
    return [_doc(key[1], state) for key, state in _listed(view, identity, status)]


@attrs.frozen(kw_only=True)
class ListArgs:
    status: str | None = None
    pagination_opts: PaginationOpts | None = None


def list_for_operators(
    view: View, args: ListArgs, identity: Identity
) -> list[dict[str, Any]] | dict[str, Any]:
    """scheduler:list (admin only) -> every schedule, oldest first, as `scheduled_functions`;
    a page of them with `paginationOpts`."""
    if not identity.is_admin:
        raise Forbidden("scheduler:list is for operators (the admin key).")
    rows = _listed(view, identity, args.status)
    if args.pagination_opts is None:
        return [_doc(key[1], state) for key, state in rows]
    page = paginate(
        rows,
        key=lambda row: row[0],
        opts=args.pagination_opts,
        scope=scope_of("scheduler:list", args),
    )
    return page.doc(lambda row: _doc(row[0][1], row[1]))


#: The engine's own declarations of scheduled functions (engine.registry.ENGINE_MODULE).
SCHEDULED = Module(
    aggregates=(SCHEDULED_FUNCTION,),
    projections=(SCHEDULES,),
    queries=(QuerySpec(name="scheduler:list", args_type=ListArgs, evaluate=list_for_operators),),
)
