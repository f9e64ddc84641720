"""The ticketing mutations (docs/reference/functions.md, "Ticketing") and the offer-expiry timer.

Each handler checks who is calling, then the rules of the current state, and only then emits;
a handler that raises leaves no trace (the engine discards the decision). Seats are handed out
by one rule, `offer_next`: whenever a seat frees (an offer expires or is released, a ticket is
refunded, `totalTickets` grows) the waiting entries are offered seats in join order while any
seat remains, each offer lasting exactly `OFFER_DURATION_MS` from the deciding command's `now`.
"""

from __future__ import annotations

from typing import Any, Protocol

from domain.customers.aggregate import CUSTOMER
from domain.customers.claims import CLAIM, require_location, user_claim_id
from domain.customers.reactions import record_ticket_purchase
from domain.errors import Conflict, Forbidden, InvalidArgs, NotFound
from domain.identity import (
    org_for_new_record,
    require_authenticated,
    require_cap,
    require_org,
    require_user,
)
from domain.ids import is_root_id, owner_of
from domain.model import Decision
from domain.storage import require_file
from domain.ticketing.args import (
    CreateEventArgs,
    EventIdArgs,
    EventUserArgs,
    PurchaseTicketArgs,
    ReleaseTicketArgs,
    TicketIdArgs,
    UpdateEventArgs,
)
from domain.ticketing.events import (
    EventCancelled,
    EventCreated,
    EventUpdated,
    OfferExpired,
    OfferMade,
    OfferReleased,
    TicketCheckedIn,
    TicketPurchased,
    TicketRefunded,
    WaitingListJoined,
)
from domain.ticketing.positions import held_ticket, open_entry
from domain.ticketing.state import (
    DEFAULT_AVERAGE_SERVICE_MINUTES,
    OFFER_DURATION_MS,
    OPEN_QUEUE_STATUSES,
    TICKET_TRANSITIONS,
    WAITING_LIST_TRANSITIONS,
    EventInfo,
    EventQueueState,
    Ticket,
    require_transition,
    ticket_id,
    waiting_list_id,
)

State = Decision[EventQueueState]


# -- routes and shared rules ----------------------------------------------------------------------


class NamesEvent(Protocol):
    @property
    def event_id(self) -> str: ...


def route_event(args: NamesEvent) -> str:
    """The aggregate id of `args.event_id`; a malformed id names no event (NotFound)."""
    if not is_root_id(args.event_id, "ev"):
        raise NotFound("Event not found.")
    return args.event_id


def route_ticket(args: TicketIdArgs) -> str:
    """The event owning `args.ticket_id`; an id that is not a ticket id is NotFound."""
    owner = owner_of(args.ticket_id, "tk", "ev")
    if owner is None:
        raise NotFound("Ticket not found.")
    return owner


def existing_event(state: EventQueueState, what: str = "Event") -> EventInfo:
    if state.event is None:
        raise NotFound(f"{what} not found.")
    return state.event


def require_not_cancelled(info: EventInfo) -> None:
    if info.is_cancelled:
        raise Conflict("The event is cancelled.", eventId=info.id)


def offer_next(d: State) -> None:
    """Offer free seats to the waiting entries, head first, while any seat remains."""
    state = d.state
    assert state.event is not None
    while state.remaining_tickets > 0 and state.waiting_count > 0:
        head = state.entries[waiting_list_id(state.event.id, state.waiting_head)]
        d.emit(
            OfferMade,
            waiting_list_id=head.id,
            user_id=head.user_id,
            offer_expires_at=d.now + OFFER_DURATION_MS,
        )
        state = d.state


def _validate(
    *,
    name: str | None,
    event_date: int | None,
    price: int | None,
    total_tickets: int | None,
    average_service_minutes: int | None,
) -> None:
    """Field rules shared by create and update; paths are the wire's names."""
    if name is not None and not name.strip():
        raise InvalidArgs("The event needs a name.", path="name")
    if event_date is not None and event_date < 0:
        raise InvalidArgs("eventDate must be a time in ms since the epoch.", path="eventDate")
    if price is not None and price < 0:
        raise InvalidArgs("price must be an integer >= 0 (minor units).", path="price")
    if total_tickets is not None and total_tickets < 0:
        raise InvalidArgs("totalTickets must be an integer >= 0.", path="totalTickets")
    if average_service_minutes is not None and average_service_minutes < 1:
        raise InvalidArgs(
            "averageServiceMinutes must be an integer >= 1.", path="averageServiceMinutes"
        )


# -- events ---------------------------------------------------------------------------------------


def create_event(d: State, args: CreateEventArgs) -> str:
    """events:create -> the new event's id (made by the engine: `d.aggregate_id`).

    Needs `events:manage`; the event belongs to the caller's organization (an admin names it in
    `orgId`) and records the caller as its creator; a `locationId` must name a location of that
    organization (NotFound otherwise, exactly as for a missing one). Conflict if the stream
    already has an event.
    """
    require_cap(d.identity, "events:manage")
    org_id = org_for_new_record(d.identity, args.org_id)
    _validate(
        name=args.name,
        event_date=args.event_date,
        price=args.price,
        total_tickets=args.total_tickets,
        average_service_minutes=args.average_service_minutes,
    )
    if d.state.event is not None:
        raise Conflict("An event with this id already exists.", eventId=d.aggregate_id)
    if args.location_id is not None:
        require_location(d, org_id, args.location_id)
    if args.image_storage_id is not None:
        require_file(d, args.image_storage_id, path="imageStorageId")
    d.emit(
        EventCreated,
        name=args.name,
        description=args.description,
        location=args.location,
        event_date=args.event_date,
        price=args.price,
        total_tickets=args.total_tickets,
        org_id=org_id,
        location_id=args.location_id,
        user_id=d.identity.subject,
        average_service_minutes=args.average_service_minutes or DEFAULT_AVERAGE_SERVICE_MINUTES,
        image_storage_id=args.image_storage_id,
    )
    return d.aggregate_id


def update_event(d: State, args: UpdateEventArgs) -> None:
    """events:update: change the fields given (None = keep). Needs `events:manage` in the
    event's organization; an event cannot move to another organization (`orgId`, InvalidArgs).

    `totalTickets` may not drop below valid + used tickets + live offers (Conflict with
    `minimum`); raising it offers the new seats to waiting users at once. A new `locationId`
    must name a location of the event's organization (NotFound otherwise, as for a missing
    one). A cancelled event cannot change (Conflict). Emits nothing when no field is given.
    """
    require_cap(d.identity, "events:manage")
    info = existing_event(d.state)
    require_org(d.identity, info.org_id, "Event")
    if args.org_id is not None and args.org_id != info.org_id:
        raise InvalidArgs("An event cannot move to another organization.", path="orgId")
    require_not_cancelled(info)
    _validate(
        name=args.name,
        event_date=args.event_date,
        price=args.price,
        total_tickets=args.total_tickets,
        average_service_minutes=args.average_service_minutes,
    )
    held = d.state.purchased_count + d.state.active_offers
    if args.total_tickets is not None and args.total_tickets < held:
        raise Conflict(
            f"totalTickets cannot go below the {held} tickets sold or on offer.", minimum=held
        )
    if args.location_id is not None and args.location_id != info.location_id:
        require_location(d, info.org_id, args.location_id)
    if args.image_storage_id is not None and args.image_storage_id != info.image_storage_id:
        require_file(d, args.image_storage_id, path="imageStorageId")
    changes = {
        "name": args.name,
        "description": args.description,
        "location": args.location,
        "event_date": args.event_date,
        "price": args.price,
        "total_tickets": args.total_tickets,
        "location_id": args.location_id,
        "average_service_minutes": args.average_service_minutes,
        "image_storage_id": args.image_storage_id,
    }
    if all(value is None for value in changes.values()):
        return
    d.emit(EventUpdated, **changes)
    offer_next(d)


def cancel_event(d: State, args: EventIdArgs) -> None:
    """events:cancelEvent: one `EventCancelled` that refunds every valid ticket (used ones stay
    used), expires every open waiting-list entry and cancels every live-queue entry still
    waiting or called. Needs `events:manage`; an already cancelled event is a Conflict."""
    require_cap(d.identity, "events:manage")
    info = existing_event(d.state)
    require_org(d.identity, info.org_id, "Event")
    require_not_cancelled(info)
    state = d.state
    valid = sorted(
        (t for t in state.tickets.values() if t.status == "valid"), key=lambda t: t.number
    )
    in_queue = sorted(
        (e for e in state.queue.values() if e.status in OPEN_QUEUE_STATUSES),
        key=lambda e: e.number,
    )
    d.emit(
        EventCancelled,
        refunded_ticket_ids=tuple(t.id for t in valid),
        withdrawn_offer_ids=tuple(sorted(state.live_offers, key=state.live_offers.__getitem__)),
        expired_waiting_ids=tuple(
            waiting_list_id(info.id, n) for n in range(state.waiting_head, state.entry_count)
        ),
        cancelled_queue_user_ids=tuple(e.user_id for e in in_queue),
    )


# -- waiting list ---------------------------------------------------------------------------------


def join_waiting_list(d: State, args: EventUserArgs) -> dict[str, Any]:
    """events:joinWaitingList -> {success, status: "offered" | "waiting", waitingListId}.

    The user (or admin) joins at the tail; while a seat is free the new entry is offered one at
    once (free seats and waiting users never coexist, so nobody is skipped). Conflict if the user
    already has an open entry (`waitingListId`) or a valid or used ticket (`ticketId`), or the
    event is cancelled. Rate limiting is the engine's.
    """
    require_user(d.identity, args.user_id)
    info = existing_event(d.state)
    require_not_cancelled(info)
    current = open_entry(d.state, args.user_id)
    if current is not None:
        raise Conflict(
            "Already in the waiting list for this event.",
            waitingListId=current.id,
            status=current.status,
        )
    ticket = held_ticket(d.state, args.user_id)
    if ticket is not None:
        raise Conflict("You already have a ticket for this event.", ticketId=ticket.id)
    number = d.state.entry_count
    wid = waiting_list_id(info.id, number)
    d.emit(WaitingListJoined, waiting_list_id=wid, user_id=args.user_id, number=number)
    offer_next(d)
    return {"success": True, "status": d.state.entries[wid].status, "waitingListId": wid}


def purchase_ticket(d: State, args: PurchaseTicketArgs) -> str:
    """events:purchaseTicket -> ticketId: turn the user's live offer into a valid ticket.

    Idempotent per `paymentIntentId`: a payment already used for a ticket of this event returns
    that ticket's id and emits nothing (Conflict if that ticket is another user's). Otherwise the
    entry must exist in this event (NotFound), be the user's (Forbidden), be offered (Conflict)
    and not be past its `offerExpiresAt` (Conflict; its timer is about to expire it). The
    amount is recorded as paid; the payment provider, not this rule, checks it against price.
    """
    require_user(d.identity, args.user_id)
    info = existing_event(d.state)
    payment = args.payment_info
    if not payment.payment_intent_id:
        raise InvalidArgs("paymentIntentId must not be empty.", path="paymentInfo.paymentIntentId")
    if payment.amount < 0:
        raise InvalidArgs("amount must be an integer >= 0.", path="paymentInfo.amount")
    state = d.state
    earlier = state.ticket_by_payment_intent.get(payment.payment_intent_id)
    if earlier is not None:
        if state.tickets[earlier].user_id != args.user_id:
            raise Conflict("This payment was already used for another ticket.")
        return earlier
    require_not_cancelled(info)
    entry = state.entries.get(args.waiting_list_id)
    if entry is None:
        raise NotFound("Waiting list entry not found.")
    if entry.user_id != args.user_id:
        raise Forbidden("This waiting-list entry belongs to another user.")
    require_transition(
        WAITING_LIST_TRANSITIONS,
        "The waiting-list entry",
        entry.status,
        "purchased",
        waitingListId=entry.id,
    )
    assert entry.offer_expires_at is not None
    if d.now >= entry.offer_expires_at:
        raise Conflict("The ticket offer has expired.", waitingListId=entry.id, status="expired")
    tid = ticket_id(info.id, state.ticket_count)
    d.emit(
        TicketPurchased,
        ticket_id=tid,
        waiting_list_id=entry.id,
        user_id=args.user_id,
        payment_intent_id=payment.payment_intent_id,
        amount=payment.amount,
    )
    _tell_customer(d, info, args.user_id, tid, payment.amount)
    return tid


def _tell_customer(d: State, info: EventInfo, user_id: str, tid: str, amount: int) -> None:
    """A buyer who is a known customer of the event's organization (a customer record whose
    `userId` is this user) gets the purchase on their timeline, in this same command."""
    owner = d.co_decide(CLAIM, user_claim_id(info.org_id, user_id)).state.owner
    if owner is not None:
        record_ticket_purchase(
            d.co_decide(CUSTOMER, owner),
            org_id=info.org_id,
            event_id=info.id,
            ticket_id=tid,
            amount=amount,
        )


def release_ticket(d: State, args: ReleaseTicketArgs) -> None:
    """waitingList:releaseTicket: the holder (or admin) gives a live offer back; the entry
    becomes expired (journaled as `OfferReleased`) and the seat goes to the next in line.
    NotFound for an unknown entry; Conflict unless the entry is offered."""
    require_authenticated(d.identity)
    existing_event(d.state)
    entry = d.state.entries.get(args.waiting_list_id)
    if entry is None:
        raise NotFound("Waiting list entry not found.")
    require_user(d.identity, entry.user_id)
    if entry.status != "offered":
        raise Conflict("There is no live ticket offer to release.", status=entry.status)
    d.emit(OfferReleased, waiting_list_id=entry.id, user_id=entry.user_id)
    offer_next(d)


def on_timer(d: State, key: str) -> None:
    """The offer timer `key` (a waiting-list id) fell due: if that entry is still offered and
    `d.now` has reached its `offer_expires_at`, it expires and its seat goes to the next in
    line. A stale or early timer emits nothing."""
    entry = d.state.entries.get(key)
    if entry is None or entry.status != "offered":
        return
    assert entry.offer_expires_at is not None
    if d.now < entry.offer_expires_at:
        return
    d.emit(OfferExpired, waiting_list_id=entry.id, user_id=entry.user_id)
    offer_next(d)


# -- tickets --------------------------------------------------------------------------------------


def _existing_ticket(d: State, args: TicketIdArgs, cap: str) -> Ticket:
    require_cap(d.identity, cap)
    info = existing_event(d.state, "Ticket")
    require_org(d.identity, info.org_id, "Ticket")
    ticket = d.state.tickets.get(args.ticket_id)
    if ticket is None:
        raise NotFound("Ticket not found.")
    return ticket


def check_in(d: State, args: TicketIdArgs) -> None:
    """tickets:checkIn: valid -> used; any other status is a Conflict. Needs
    `tickets:checkin` in the event's organization."""
    ticket = _existing_ticket(d, args, "tickets:checkin")
    require_transition(TICKET_TRANSITIONS, "The ticket", ticket.status, "used", ticketId=ticket.id)
    d.emit(TicketCheckedIn, ticket_id=ticket.id, user_id=ticket.user_id)


def refund(d: State, args: TicketIdArgs) -> None:
    """tickets:refund: valid -> refunded, and the seat goes to the next in line. Needs
    `events:manage` in the event's organization; any other status is a Conflict."""
    ticket = _existing_ticket(d, args, "events:manage")
    require_transition(
        TICKET_TRANSITIONS, "The ticket", ticket.status, "refunded", ticketId=ticket.id
    )
    d.emit(TicketRefunded, ticket_id=ticket.id, user_id=ticket.user_id)
    offer_next(d)
