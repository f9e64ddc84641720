"""Reminders: the worked example of scheduled functions (docs/apps.md, "Scheduled functions").

`turnstile serve --app tests.apps.reminders` serves it. Creating a reminder schedules
`reminders:fire` for later in the same commit (`run_after`); dismissing it cancels that
schedule (`cancel_scheduled`); snoozing does both. `reminders:fire` counts its runs, so a test
sees that a scheduled function ran exactly once. `reminders:schedules` is the organization's
live listing of its schedules (`scheduled_functions`).
"""

from __future__ import annotations

import attrs

from domain import (
    Aggregate,
    App,
    Conflict,
    Decision,
    Event,
    Identity,
    InvalidArgs,
    MutationSpec,
    NotFound,
    QuerySpec,
    View,
    cancel_scheduled,
    require_authenticated,
    require_org,
    run_after,
    scheduled_functions,
)


class ReminderEvent(Event):
    namespace = "reminders"


@attrs.frozen(kw_only=True)
class ReminderSet(ReminderEvent):
    org_id: str | None
    text: str
    scheduled_id: str


@attrs.frozen(kw_only=True)
class ReminderFired(ReminderEvent):
    pass


@attrs.frozen(kw_only=True)
class ReminderDismissed(ReminderEvent):
    pass


@attrs.frozen(kw_only=True)
class ReminderSnoozed(ReminderEvent):
    scheduled_id: str


@attrs.frozen(kw_only=True)
class Reminder:
    org_id: str | None = None
    text: str = ""
    #: The schedule that fires it next.
    scheduled_id: str = ""
    fired: int = 0
    dismissed: bool = False


def evolve(reminder: Reminder, event: Event) -> Reminder:
    match event:
        case ReminderSet():
            return Reminder(org_id=event.org_id, text=event.text, scheduled_id=event.scheduled_id)
        case ReminderFired():
            return attrs.evolve(reminder, fired=reminder.fired + 1)
        case ReminderDismissed():
            return attrs.evolve(reminder, dismissed=True)
        case ReminderSnoozed():
            return attrs.evolve(reminder, scheduled_id=event.scheduled_id)
    raise TypeError(f"{type(event).__name__} is not a reminder event")


REMINDER = Aggregate(
    kind="reminder", id_prefix="rm", state_type=Reminder, initial=Reminder(), evolve=evolve
)


@attrs.frozen(kw_only=True)
class CreateArgs:
    text: str
    delay_ms: int


@attrs.frozen(kw_only=True)
class ReminderIdArgs:
    reminder_id: str


@attrs.frozen(kw_only=True)
class SnoozeArgs:
    reminder_id: str
    delay_ms: int


@attrs.frozen(kw_only=True)
class NoArgs:
    pass


def create(d: Decision[Reminder], args: CreateArgs) -> dict[str, str]:
    """reminders:create -> `{reminderId, scheduledId}`. The text is checked after the
    schedule is made: a refused reminder leaves no schedule behind either."""
    require_authenticated(d.identity)
    scheduled_id = run_after(d, args.delay_ms, "reminders:fire", {"reminderId": d.aggregate_id})
    if not args.text.strip():
        raise InvalidArgs("A reminder needs some text.", path="text")
    d.emit(ReminderSet, org_id=d.identity.org_id, text=args.text, scheduled_id=scheduled_id)
    return {"reminderId": d.aggregate_id, "scheduledId": scheduled_id}


def _own(d: Decision[Reminder]) -> Reminder:
    reminder = d.state
    if not reminder.text:
        raise NotFound("Reminder not found.")
    require_org(d.identity, reminder.org_id, "Reminder")
    return reminder


def fire(d: Decision[Reminder], args: ReminderIdArgs) -> int:
    """reminders:fire (the scheduled function; admin only) -> how often it fired."""
    if not d.identity.is_admin:
        raise NotFound("Reminder not found.")
    if _own(d).dismissed:
        raise Conflict("This reminder was dismissed.")
    d.emit(ReminderFired)
    return d.state.fired


def dismiss(d: Decision[Reminder], args: ReminderIdArgs) -> None:
    """reminders:dismiss: cancels the pending schedule (a `Conflict` once it has run)."""
    reminder = _own(d)
    if not reminder.dismissed:
        cancel_scheduled(d, reminder.scheduled_id)
        d.emit(ReminderDismissed)


def snooze(d: Decision[Reminder], args: SnoozeArgs) -> str:
    """reminders:snooze -> the new schedule's id: the old one cancelled, a new one made, in
    one commit."""
    reminder = _own(d)
    cancel_scheduled(d, reminder.scheduled_id)
    scheduled_id = run_after(d, args.delay_ms, "reminders:fire", {"reminderId": d.aggregate_id})
    d.emit(ReminderSnoozed, scheduled_id=scheduled_id)
    return scheduled_id


def schedules(view: View, args: NoArgs, identity: Identity) -> list[dict[str, object]]:
    """reminders:schedules -> the caller's organization's scheduled functions, oldest first."""
    return scheduled_functions(view, identity)


app = App(
    name="reminders",
    aggregates=(REMINDER,),
    mutations=(
        MutationSpec(
            name="reminders:create",
            args_type=CreateArgs,
            aggregate=REMINDER,
            route=None,
            handle=create,
        ),
        MutationSpec(
            name="reminders:fire",
            args_type=ReminderIdArgs,
            aggregate=REMINDER,
            route=lambda args: args.reminder_id,
            handle=fire,
        ),
        MutationSpec(
            name="reminders:dismiss",
            args_type=ReminderIdArgs,
            aggregate=REMINDER,
            route=lambda args: args.reminder_id,
            handle=dismiss,
        ),
        MutationSpec(
            name="reminders:snooze",
            args_type=SnoozeArgs,
            aggregate=REMINDER,
            route=lambda args: args.reminder_id,
            handle=snooze,
        ),
    ),
    queries=(QuerySpec(name="reminders:schedules", args_type=NoArgs, evaluate=schedules),),
)
