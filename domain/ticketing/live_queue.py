"""The live queue (docs/reference/functions.md, "Live queue"): people lining up at an event, called
one at a time by staff. It lives in the event-queue aggregate beside the waiting list.

Entry lifecycle (`QUEUE_TRANSITIONS`): waiting -> called -> completed; waiting -> cancelled by
the user leaving; waiting or called -> cancelled by the event's cancellation. A user has at most
one waiting or called entry per event and may line up again once it is completed or cancelled.
`position` is the rank among waiting entries (1 = next to be called); `estimatedTime` is
`positions.estimated_time`, a pure function of the state, so queries never read a clock.
"""

from __future__ import annotations

from typing import Any

from domain.errors import Conflict, NotFound
from domain.identity import Identity, require_cap, require_org, require_user
from domain.model import Decision, View
from domain.pagination import paginate, scope_of
from domain.ticketing.args import EventIdArgs, EventListArgs, EventUserArgs, UserListArgs
from domain.ticketing.commands import existing_event, require_not_cancelled
from domain.ticketing.events import QueueEntryCalled, QueueEntryCompleted, QueueJoined, QueueLeft
from domain.ticketing.positions import estimated_time, open_queue_entry, queue_position
from domain.ticketing.projections import USER_QUEUE
from domain.ticketing.queries import read_event
from domain.ticketing.state import (
    QUEUE_TRANSITIONS,
    EventQueueState,
    QueueEntry,
    queue_entry_id,
    require_transition,
)
from domain.ticketing.wire import Doc, queue_doc

State = Decision[EventQueueState]


def _latest_entry(state: EventQueueState, user_id: str) -> QueueEntry:
    qid = state.queue_entry_by_user.get(user_id)
    if qid is None:
        raise NotFound("Queue entry not found.")
    return state.queue[qid]


def join_queue(d: State, args: EventUserArgs) -> dict[str, Any]:
    """queue:joinQueue -> {position, estimatedTime} of the new waiting entry (at the tail).

    The user (or admin) only; Conflict if they are already waiting or called, or the event is
    cancelled.
    """
    require_user(d.identity, args.user_id)
    info = existing_event(d.state)
    require_not_cancelled(info)
    current = open_queue_entry(d.state, args.user_id)
    if current is not None:
        raise Conflict("Already in the queue for this event.", status=current.status)
    number = d.state.queue_count
    qid = queue_entry_id(info.id, number)
    d.emit(QueueJoined, queue_entry_id=qid, user_id=args.user_id, number=number)
    position = queue_position(d.state, d.state.queue[qid])
    return {"position": position, "estimatedTime": estimated_time(d.state, position)}


def leave_queue(d: State, args: EventUserArgs) -> None:
    """queue:leaveQueue: the user's waiting entry becomes cancelled; everyone behind moves up.
    NotFound if the user never queued here; Conflict unless they are waiting."""
    require_user(d.identity, args.user_id)
    existing_event(d.state)
    entry = _latest_entry(d.state, args.user_id)
    if entry.status != "waiting":
        raise Conflict("Only a waiting user can leave the queue.", status=entry.status)
    d.emit(QueueLeft, queue_entry_id=entry.id, user_id=entry.user_id)


def call_next(d: State, args: EventIdArgs) -> Doc | None:
    """queue:callNext -> the first waiting entry, now called, or null (nothing emitted) when
    nobody waits. Needs `queue:manage` in the event's organization."""
    require_cap(d.identity, "queue:manage")
    info = existing_event(d.state)
    require_org(d.identity, info.org_id, "Event")
    if d.state.queue_waiting_count == 0:
        return None
    head = d.state.queue[queue_entry_id(info.id, d.state.queue_head)]
    d.emit(QueueEntryCalled, queue_entry_id=head.id, user_id=head.user_id)
    return queue_doc(d.state, d.state.queue[head.id])


def complete(d: State, args: EventUserArgs) -> None:
    """queue:complete: the user's called entry becomes completed. Needs `queue:manage` in the
    event's organization; NotFound if the user never queued here; Conflict unless called."""
    require_cap(d.identity, "queue:manage")
    info = existing_event(d.state)
    require_org(d.identity, info.org_id, "Event")
    entry = _latest_entry(d.state, args.user_id)
    require_transition(QUEUE_TRANSITIONS, "The queue entry", entry.status, "completed")
    d.emit(QueueEntryCompleted, queue_entry_id=entry.id, user_id=entry.user_id)


def get_event_queue(view: View, args: EventListArgs, identity: Identity) -> list[Doc] | Doc:
    """queue:getEventQueue -> the waiting entries in order, each with `position` and
    `estimatedTime`. Needs `queue:manage` in the event's organization. With `paginationOpts`,
    a page of them keyed by their number in the queue (an entry called or cancelled leaves its
    page; a new one joins the last)."""
    require_cap(identity, "queue:manage")
    state = read_event(view, args.event_id)
    if state is None or state.event is None:
        raise NotFound("Event not found.")
    require_org(identity, state.event.org_id, "Event")
    holes = set(state.queue_holes)
    event_id = state.event.id
    waiting = (n for n in range(state.queue_head, state.queue_count) if n not in holes)
    if args.pagination_opts is not None:
        page = paginate(
            waiting,
            key=lambda n: (n,),
            opts=args.pagination_opts,
            scope=scope_of("queue:getEventQueue", args),
        )
        return page.doc(lambda n: queue_doc(state, state.queue[queue_entry_id(event_id, n)]))
    return [queue_doc(state, state.queue[queue_entry_id(event_id, n)]) for n in waiting]


def get_user_queue(view: View, args: UserListArgs, identity: Identity) -> list[Doc] | Doc:
    """queue:getUserQueue -> the user's waiting or called entries in every event, in the order
    they joined those queues. The user (or admin) only. With `paginationOpts`, a page of them
    keyed by `(joinedAt, entry id)`."""
    require_user(identity, args.user_id)
    index = view.projection(USER_QUEUE, args.user_id)
    found: list[tuple[EventQueueState, QueueEntry]] = []
    for event_id in index.of(args.user_id):
        state = read_event(view, event_id)
        entry = None if state is None else open_queue_entry(state, args.user_id)
        if state is not None and entry is not None:
            found.append((state, entry))
    if args.pagination_opts is not None:
        found.sort(key=_joined_key)
        page = paginate(
            found,
            key=_joined_key,
            opts=args.pagination_opts,
            scope=scope_of("queue:getUserQueue", args),
        )
        return page.doc(lambda row: queue_doc(*row))
    return [queue_doc(state, entry) for state, entry in found]


def _joined_key(row: tuple[EventQueueState, QueueEntry]) -> tuple[int, str]:
    return (row[1].joined_at, row[1].id)
