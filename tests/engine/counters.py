"""A minimal domain used to test the engine apart from the booking domain."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import immutables

from domain.errors import Conflict, InvalidArgs, NotFound
from domain.identity import Identity
from domain.model import (
    Aggregate,
    Decision,
    Erasure,
    Event,
    Module,
    MutationSpec,
    Projection,
    QuerySpec,
    TimerChange,
    View,
)


@attrs.frozen(kw_only=True)
class Counter:
    exists: bool = False
    label: str = ""
    total: int = 0
    alarm_at: int | None = None
    rang: int = 0


@attrs.frozen(kw_only=True)
class CounterCreated(Event):
    personal_fields = ("label",)

    label: str


@attrs.frozen(kw_only=True)
class CounterErased(Erasure):
    """The label is personal data: erasing forgets it everywhere; the total stays."""


@attrs.frozen(kw_only=True)
class CounterAdded(Event):
    amount: int


@attrs.frozen(kw_only=True)
class AlarmSet(Event):
    due_at: int

    def timer_changes(self) -> Iterable[TimerChange]:
        return (TimerChange(key="alarm", due_at=self.due_at),)


@attrs.frozen(kw_only=True)
class AlarmRang(Event):
    def timer_changes(self) -> Iterable[TimerChange]:
        return (TimerChange(key="alarm", due_at=None),)


def evolve(state: Counter, event: Event) -> Counter:
    match event:
        case CounterCreated(label=label):
            return attrs.evolve(state, exists=True, label=label)
        case CounterErased():
            return attrs.evolve(state, label="")
        case CounterAdded(amount=amount):
            return attrs.evolve(state, total=state.total + amount)
        case AlarmSet(due_at=due_at):
            return attrs.evolve(state, alarm_at=due_at)
        case AlarmRang():
            return attrs.evolve(state, alarm_at=None, rang=state.rang + 1)
    raise TypeError(event)


def on_timer(d: Decision[Counter], key: str) -> None:
    if key == "alarm" and d.state.alarm_at is not None and d.now >= d.state.alarm_at:
        d.emit(AlarmRang)


def check(state: Counter) -> None:
    assert state.total >= 0, "total went negative"


COUNTER = Aggregate(
    kind="counter",
    id_prefix="ct",
    state_type=Counter,
    initial=Counter(),
    evolve=evolve,
    on_timer=on_timer,
    check_invariants=check,
)


@attrs.frozen(kw_only=True)
class CreateArgs:
    label: str


@attrs.frozen(kw_only=True)
class AddArgs:
    counter_id: str
    amount: int


@attrs.frozen(kw_only=True)
class TransferArgs:
    counter_id: str
    to_counter_id: str
    amount: int


@attrs.frozen(kw_only=True)
class AlarmArgs:
    counter_id: str
    in_minutes: int


@attrs.frozen(kw_only=True)
class GetArgs:
    counter_id: str


@attrs.frozen(kw_only=True)
class NoArgs:
    pass


def create(d: Decision[Counter], args: CreateArgs) -> str:
    d.emit(CounterCreated, label=args.label)
    return d.aggregate_id


def _existing(d: Decision[Counter]) -> None:
    if not d.state.exists:
        raise NotFound("Counter not found.")


def add(d: Decision[Counter], args: AddArgs) -> int:
    _existing(d)
    if args.amount == 0:
        raise InvalidArgs("amount must not be zero", path="amount")
    if d.state.total + args.amount < 0:
        raise Conflict("Not enough in the counter.", total=d.state.total)
    d.emit(CounterAdded, amount=args.amount)
    return d.state.total


def add_twice_then_fail(d: Decision[Counter], args: AddArgs) -> int:
    """Emits, then refuses: the engine must throw the emitted events away."""
    d.emit(CounterAdded, amount=args.amount)
    raise Conflict("changed my mind")


def overflow(d: Decision[Counter], args: AddArgs) -> int:
    """A bug: emits an amount beyond 64 bits, which the journal's codec cannot encode."""
    _existing(d)
    d.emit(CounterAdded, amount=args.amount * 2**64)
    return d.state.total


def transfer(d: Decision[Counter], args: TransferArgs) -> int:
    """Moves `amount` to another counter in one command (a co-decision): both or neither."""
    to = d.co_decide(COUNTER, args.to_counter_id)
    if not to.state.exists:
        raise NotFound("Target counter not found.")
    to.emit(CounterAdded, amount=args.amount)  # emitted first: a refusal below must undo it
    _existing(d)
    if d.state.total < args.amount:
        raise Conflict("Not enough in the counter.", total=d.state.total)
    d.emit(CounterAdded, amount=-args.amount)
    return d.state.total


def erase(d: Decision[Counter], args: GetArgs) -> None:
    _existing(d)
    d.emit(CounterErased)


def set_alarm(d: Decision[Counter], args: AlarmArgs) -> int:
    _existing(d)
    due = d.now + args.in_minutes * 60_000
    d.emit(AlarmSet, due_at=due)
    return due


def get(view: View, args: GetArgs, identity: Identity) -> dict[str, int] | None:
    state = view.aggregate(COUNTER, args.counter_id)
    if state is None:
        return None
    return {"total": state.total, "rang": state.rang}


def apply_totals(state: immutables.Map[str, int], event: Event) -> immutables.Map[str, int]:
    if isinstance(event, CounterAdded):
        return state.set("sum", state.get("sum", 0) + event.amount)
    return state


def grand_total(view: View, args: NoArgs, identity: Identity) -> int:
    return int(view.projection(TOTALS, "sum").get("sum", 0))


TOTALS = Projection(
    name="totals",
    state_type=immutables.Map[str, int],
    initial=immutables.Map(),
    apply=apply_totals,
    keys=lambda event: ("sum",),
    event_types=(CounterAdded,),
)

ROUTE = attrs.fields(AddArgs).counter_id.name

COUNTERS = Module(
    aggregates=(COUNTER,),
    projections=(TOTALS,),
    mutations=(
        MutationSpec(
            name="counters:create",
            args_type=CreateArgs,
            aggregate=COUNTER,
            route=None,
            handle=create,
        ),
        MutationSpec(
            name="counters:add",
            args_type=AddArgs,
            aggregate=COUNTER,
            route=lambda a: a.counter_id,
            handle=add,
        ),
        MutationSpec(
            name="counters:broken",
            args_type=AddArgs,
            aggregate=COUNTER,
            route=lambda a: a.counter_id,
            handle=add_twice_then_fail,
        ),
        MutationSpec(
            name="counters:overflow",
            args_type=AddArgs,
            aggregate=COUNTER,
            route=lambda a: a.counter_id,
            handle=overflow,
        ),
        MutationSpec(
            name="counters:transfer",
            args_type=TransferArgs,
            aggregate=COUNTER,
            route=lambda a: a.counter_id,
            handle=transfer,
        ),
        MutationSpec(
            name="counters:erase",
            args_type=GetArgs,
            aggregate=COUNTER,
            route=lambda a: a.counter_id,
            handle=erase,
        ),
        MutationSpec(
            name="counters:setAlarm",
            args_type=AlarmArgs,
            aggregate=COUNTER,
            route=lambda a: a.counter_id,
            handle=set_alarm,
        ),
    ),
    queries=(
        QuerySpec(name="counters:get", args_type=GetArgs, evaluate=get),
        QuerySpec(name="counters:total", args_type=NoArgs, evaluate=grand_total),
    ),
)
