"""The ticketing queries: pure functions of what they read through the View (no clock).

Public reads (events:get, events:list, events:getEventAvailability)
work without identity and across organizations: the marketplace is public. A malformed event id
reads nothing and is treated as a missing event.

The lists (events:list, events:getUserTickets, tickets:listForEvent) answer one page
(`domain.pagination`) when `paginationOpts` is given, read exactly as the whole list is.
"""

from __future__ import annotations

from domain.errors import NotFound
from domain.identity import Identity, require_cap, require_org, require_user
from domain.ids import is_root_id
from domain.model import View
from domain.pagination import paginate, scope_of
from domain.storage import file_url
from domain.ticketing.aggregate import EVENT_QUEUE
from domain.ticketing.args import (
    EventIdArgs,
    EventListArgs,
    EventUserArgs,
    ListEventsArgs,
    UserListArgs,
)
from domain.ticketing.positions import held_ticket
from domain.ticketing.projections import CATALOG_KEY, EVENT_CATALOG, USER_TICKETS
from domain.ticketing.state import EventInfo, EventQueueState
from domain.ticketing.wire import Doc, availability_doc, entry_doc, event_doc, ticket_doc


def read_event(view: View, event_id: str) -> EventQueueState | None:
    """The committed state of an existing event, else None (nothing is read for a bad id)."""
    if not is_root_id(event_id, "ev"):
        return None
    state = view.aggregate(EVENT_QUEUE, event_id)
    if state is None or state.event is None:
        return None
    return state


def get_event(view: View, args: EventIdArgs, identity: Identity) -> Doc | None:
    """events:get -> the event (cancelled ones too), or null."""
    state = read_event(view, args.event_id)
    return None if state is None else _event_doc(view, _info(state))


def _event_doc(view: View, info: EventInfo) -> Doc:
    return event_doc(info, file_url(view, info.image_storage_id))


def list_events(view: View, args: ListEventsArgs, identity: Identity) -> list[Doc] | Doc:
    """events:list -> every event not cancelled, soonest `eventDate` first (ties by id); with
    `paginationOpts`, a page of them keyed by `(eventDate, id)` (an event whose date changes
    moves to its new place, as if deleted and inserted there)."""
    catalog = view.projection(EVENT_CATALOG, CATALOG_KEY)
    ordered = sorted(catalog.events.values(), key=_event_key)
    if args.pagination_opts is not None:
        page = paginate(
            ordered,
            key=_event_key,
            opts=args.pagination_opts,
            scope=scope_of("events:list", args),
        )
        return page.doc(lambda info: _event_doc(view, info))
    return [_event_doc(view, info) for info in ordered]


def _event_key(info: EventInfo) -> tuple[int, str]:
    return (info.event_date, info.id)


def get_event_availability(view: View, args: EventIdArgs, identity: Identity) -> Doc:
    """events:getEventAvailability -> {isSoldOut, totalTickets, purchasedCount, activeOffers,
    remainingTickets}; NotFound for a missing event."""
    state = read_event(view, args.event_id)
    if state is None:
        raise NotFound("Event not found.")
    return availability_doc(state)


def get_user_tickets(view: View, args: UserListArgs, identity: Identity) -> list[Doc] | Doc:
    """events:getUserTickets -> the user's tickets (every status), each with its `event`,
    oldest purchase first. Only the user (or admin) may ask. With `paginationOpts`, a page of
    them keyed by `(purchasedAt, ticket id)`."""
    require_user(identity, args.user_id)
    index = view.projection(USER_TICKETS, args.user_id)
    found: list[Doc] = []
    for event_id in index.of(args.user_id):
        state = read_event(view, event_id)
        if state is None:
            continue
        event = _event_doc(view, _info(state))
        for tid in state.tickets_by_user.get(args.user_id, ()):
            found.append({**ticket_doc(event_id, state.tickets[tid]), "event": event})
    if args.pagination_opts is None:
        found.sort(key=lambda doc: doc["purchasedAt"])
        return found
    found.sort(key=_purchase_key)  # (ties in purchase time by ticket id)
    return paginate(
        found,
        key=_purchase_key,
        opts=args.pagination_opts,
        scope=scope_of("events:getUserTickets", args),
    ).doc(lambda doc: doc)


def _purchase_key(doc: Doc) -> tuple[int, str]:
    return (doc["purchasedAt"], doc["_id"])


def get_queue_position(view: View, args: EventUserArgs, identity: Identity) -> Doc | None:
    """waitingList:getQueuePosition -> the user's latest entry that is not expired, with its
    `position` (1 = next: the people ahead + 1), or null.

    The user, admin, or an `events:manage` holder of the event's organization may ask; for
    another organization's manager the answer is null, exactly as for a missing event.
    """
    require_user(identity, args.user_id, or_cap="events:manage")
    state = read_event(view, args.event_id)
    if state is None:
        return None
    acting_for_other = not identity.is_admin and identity.subject != args.user_id
    if acting_for_other and identity.org_id != _info(state).org_id:
        return None
    for wid in reversed(state.entries_by_user.get(args.user_id, ())):
        entry = state.entries[wid]
        if entry.status != "expired":
            return entry_doc(state, entry)
    return None


def get_user_ticket_for_event(view: View, args: EventUserArgs, identity: Identity) -> Doc | None:
    """tickets:getUserTicketForEvent -> the user's valid or used ticket for the event, else
    their latest ticket there (refunded or cancelled), else null."""
    require_user(identity, args.user_id)
    state = read_event(view, args.event_id)
    if state is None:
        return None
    ticket = held_ticket(state, args.user_id)
    if ticket is None:
        mine = state.tickets_by_user.get(args.user_id, ())
        if not mine:
            return None
        ticket = state.tickets[mine[-1]]
    return ticket_doc(_info(state).id, ticket)


def list_tickets_for_event(view: View, args: EventListArgs, identity: Identity) -> list[Doc] | Doc:
    """tickets:listForEvent -> every ticket of the event in purchase order. Needs
    `events:manage` in the event's organization. With `paginationOpts`, a page of them keyed
    by purchase number."""
    require_cap(identity, "events:manage")
    state = read_event(view, args.event_id)
    if state is None:
        raise NotFound("Event not found.")
    info = _info(state)
    require_org(identity, info.org_id, "Event")
    ordered = sorted(state.tickets.values(), key=lambda t: t.number)
    if args.pagination_opts is not None:
        page = paginate(
            ordered,
            key=lambda t: (t.number,),
            opts=args.pagination_opts,
            scope=scope_of("tickets:listForEvent", args),
        )
        return page.doc(lambda t: ticket_doc(info.id, t))
    return [ticket_doc(info.id, t) for t in ordered]


def _info(state: EventQueueState) -> EventInfo:
    assert state.event is not None
    return state.event
