"""The event-queue aggregate's state: one ticketed event, its waiting list, tickets and live queue.

Collections are `immutables.Map`s (HAMTs), so folding one event costs O(log n) and shares all
untouched structure with the previous state; the actor can keep its working and committed states
side by side for free. Hot-path figures are kept as counters instead of being counted per command:

- `purchased_count`: valid + used tickets; `live_offers`: the offered entries (its length is the
  number of active offers). `remaining_tickets = total - purchased_count - active offers`.
  `offer_blocks` groups the offered join numbers by `number // OFFER_BLOCK`, each block a bit
  mask (an int: an offer sets or clears one bit, and the collector has nothing to walk in it),
  so an offered entry's rank among the offers costs O(blocks holding offers), not O(offers).
- The waiting entries are exactly the join numbers `waiting_head .. entry_count - 1`: an entry
  joins at the tail and leaves the `waiting` status only from the head (an offer), or all at once
  when the event is cancelled. So the next entry to offer and a waiting user's position are O(1).
- The live queue's waiting entries are the numbers `queue_head .. queue_count - 1` except the
  sorted `queue_holes` (entries that left while not first); a position is O(log holes).

Lifecycles are the tables below; `require_transition` is the one place that refuses an illegal
step (with `Conflict`), before anything is emitted.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
import immutables

from domain.errors import Conflict
from domain.ids import child_id
from domain.model import Event, replace
from domain.ticketing.events import (
    EventCancelled,
    EventCreated,
    EventUpdated,
    OfferExpired,
    OfferMade,
    OfferReleased,
    QueueEntryCalled,
    QueueEntryCompleted,
    QueueJoined,
    QueueLeft,
    TicketCheckedIn,
    TicketPurchased,
    TicketRefunded,
    WaitingListJoined,
)

WaitingListStatus = Literal["waiting", "offered", "purchased", "expired"]
TicketStatus = Literal["valid", "used", "refunded", "cancelled"]
QueueStatus = Literal["waiting", "called", "completed", "cancelled"]

#: status -> the statuses it may become. Expired covers both a timed-out and a released offer.
WAITING_LIST_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "waiting": frozenset({"offered", "expired"}),
    "offered": frozenset({"purchased", "expired"}),
    "purchased": frozenset(),
    "expired": frozenset(),
}
TICKET_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "valid": frozenset({"used", "refunded", "cancelled"}),
    "used": frozenset(),
    "refunded": frozenset(),
    "cancelled": frozenset(),
}
QUEUE_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "waiting": frozenset({"called", "cancelled"}),
    "called": frozenset({"completed", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}

OPEN_ENTRY_STATUSES = frozenset({"waiting", "offered"})
HELD_TICKET_STATUSES = frozenset({"valid", "used"})
OPEN_QUEUE_STATUSES = frozenset({"waiting", "called"})

#: An offer lasts exactly this long (30 minutes; docs/reference/limits.md).
OFFER_DURATION_MS = 30 * 60 * 1000
DEFAULT_AVERAGE_SERVICE_MINUTES = 5
#: Join numbers per `offer_blocks` bucket: 63, so that a block's mask (bits 0-62) is within the
#: signed 64-bit integers the journal's codec holds (snapshots store the states).
OFFER_BLOCK = 63


def require_transition(
    table: Mapping[str, frozenset[str]], what: str, current: str, target: str, **details: Any
) -> None:
    """Raise `Conflict` unless `table` lets `current` become `target`; changes nothing."""
    if target not in table[current]:
        raise Conflict(
            f"{what} is {current} and cannot become {target}.", status=current, **details
        )


def _empty() -> immutables.Map[Any, Any]:
    return immutables.Map()


@attrs.frozen(kw_only=True)
class EventInfo:
    """The event's own record; `user_id` is its creator, `org_id` the owning organization."""

    id: str
    created_at: int
    name: str
    description: str
    location: str
    event_date: int
    price: int
    total_tickets: int
    org_id: str
    location_id: str | None
    user_id: str | None
    average_service_minutes: int
    is_cancelled: bool = False
    image_storage_id: str | None = None


@attrs.frozen(kw_only=True)
class WaitingListEntry:
    """One user's place in line; `number` is its join order (0-based) within the event."""

    id: str
    user_id: str
    number: int
    status: WaitingListStatus
    joined_at: int
    offer_expires_at: int | None = None


@attrs.frozen(kw_only=True)
class Ticket:
    id: str
    number: int
    user_id: str
    waiting_list_id: str
    status: TicketStatus
    purchased_at: int
    payment_intent_id: str
    amount: int


@attrs.frozen(kw_only=True)
class QueueEntry:
    """One visit to the live queue; `called_at` is set when staff call it."""

    id: str
    user_id: str
    number: int
    status: QueueStatus
    joined_at: int
    called_at: int | None = None


# Not slotted: `replace` copies a dict-backed instance in one step, and this state is copied on
# every event of a hot event.
@attrs.frozen(kw_only=True, slots=False)
class EventQueueState:
    """Everything one event-queue actor owns. `event` is None until `EventCreated`."""

    event: EventInfo | None = None
    entries: immutables.Map[str, WaitingListEntry] = attrs.field(factory=_empty)
    #: user id -> that user's entry ids in join order (only the last can be open).
    entries_by_user: immutables.Map[str, tuple[str, ...]] = attrs.field(factory=_empty)
    entry_count: int = 0
    waiting_head: int = 0
    #: offered entry id -> its join number.
    live_offers: immutables.Map[str, int] = attrs.field(factory=_empty)
    #: str(number // OFFER_BLOCK) -> the offered join numbers in that block, as a bit mask: bit
    #: `number % OFFER_BLOCK` set for each (`offer_bit`); no key for a block without offers.
    offer_blocks: immutables.Map[str, int] = attrs.field(factory=_empty)
    tickets: immutables.Map[str, Ticket] = attrs.field(factory=_empty)
    tickets_by_user: immutables.Map[str, tuple[str, ...]] = attrs.field(factory=_empty)
    ticket_by_payment_intent: immutables.Map[str, str] = attrs.field(factory=_empty)
    ticket_count: int = 0
    purchased_count: int = 0
    queue: immutables.Map[str, QueueEntry] = attrs.field(factory=_empty)
    #: user id -> that user's latest live-queue entry id.
    queue_entry_by_user: immutables.Map[str, str] = attrs.field(factory=_empty)
    queue_count: int = 0
    queue_head: int = 0
    queue_holes: tuple[int, ...] = ()
    last_called_at: int | None = None

    @property
    def active_offers(self) -> int:
        return len(self.live_offers)

    @property
    def remaining_tickets(self) -> int:
        """Seats neither sold (valid or used) nor held by a live offer; never negative."""
        if self.event is None:
            return 0
        return max(0, self.event.total_tickets - self.purchased_count - self.active_offers)

    @property
    def waiting_count(self) -> int:
        return self.entry_count - self.waiting_head

    @property
    def queue_waiting_count(self) -> int:
        return self.queue_count - self.queue_head - len(self.queue_holes)


INITIAL = EventQueueState()


def waiting_list_id(event_id: str, number: int) -> str:
    return child_id("wl", event_id, number)


def ticket_id(event_id: str, number: int) -> str:
    return child_id("tk", event_id, number)


def queue_entry_id(event_id: str, number: int) -> str:
    return child_id("qe", event_id, number)


# -- evolve ---------------------------------------------------------------------------------------


def evolve(state: EventQueueState, event: Event) -> EventQueueState:
    """The state after `event`: pure, O(log n) per event (O(k log n) for a cancellation that
    closes k records). Raises TypeError for an event type this aggregate does not own."""
    fold = _FOLDS.get(type(event))
    if fold is None:
        raise TypeError(f"{type(event).__name__} is not an event-queue event")
    return fold(state, event)


def event_info_of(e: EventCreated) -> EventInfo:
    """The event record `e` creates (shared with the catalog projection)."""
    return EventInfo(
        id=e.stream.partition("/")[2],
        created_at=e.at,
        name=e.name,
        description=e.description,
        location=e.location,
        event_date=e.event_date,
        price=e.price,
        total_tickets=e.total_tickets,
        org_id=e.org_id,
        location_id=e.location_id,
        user_id=e.user_id,
        average_service_minutes=e.average_service_minutes,
        image_storage_id=e.image_storage_id,
    )


def _created(state: EventQueueState, e: EventCreated) -> EventQueueState:
    return replace(state, event=event_info_of(e))


def apply_update(info: EventInfo, e: EventUpdated) -> EventInfo:
    """`info` with the fields `e` changed (shared with the catalog projection)."""
    changes = {name: value for name in _UPDATABLE if (value := getattr(e, name)) is not None}
    return replace(info, **changes)


_UPDATABLE = (
    "name",
    "description",
    "location",
    "event_date",
    "price",
    "total_tickets",
    "location_id",
    "average_service_minutes",
    "image_storage_id",
)


def _updated(state: EventQueueState, e: EventUpdated) -> EventQueueState:
    assert state.event is not None
    return replace(state, event=apply_update(state.event, e))


def _cancelled(state: EventQueueState, e: EventCancelled) -> EventQueueState:
    assert state.event is not None
    with state.tickets.mutate() as tickets:
        for tid in e.refunded_ticket_ids:
            tickets[tid] = replace(tickets[tid], status="refunded")
        new_tickets = tickets.finish()
    with state.entries.mutate() as entries:
        for wid in (*e.withdrawn_offer_ids, *e.expired_waiting_ids):
            entries[wid] = replace(entries[wid], status="expired")
        new_entries = entries.finish()
    with state.queue.mutate() as queue:
        for user_id in e.cancelled_queue_user_ids:
            qid = state.queue_entry_by_user[user_id]
            queue[qid] = replace(queue[qid], status="cancelled")
        new_queue = queue.finish()
    return replace(
        state,
        event=replace(state.event, is_cancelled=True),
        tickets=new_tickets,
        purchased_count=state.purchased_count - len(e.refunded_ticket_ids),
        entries=new_entries,
        live_offers=immutables.Map(),
        offer_blocks=immutables.Map(),
        waiting_head=state.entry_count,
        queue=new_queue,
        queue_head=state.queue_count,
        queue_holes=(),
    )


def _joined(state: EventQueueState, e: WaitingListJoined) -> EventQueueState:
    entry = WaitingListEntry(
        id=e.waiting_list_id, user_id=e.user_id, number=e.number, status="waiting", joined_at=e.at
    )
    mine = state.entries_by_user.get(e.user_id, ())
    return replace(
        state,
        entries=state.entries.set(entry.id, entry),
        entries_by_user=state.entries_by_user.set(e.user_id, (*mine, entry.id)),
        entry_count=e.number + 1,
    )


def _offered(state: EventQueueState, e: OfferMade) -> EventQueueState:
    entry = state.entries[e.waiting_list_id]
    offered = replace(entry, status="offered", offer_expires_at=e.offer_expires_at)
    return replace(
        state,
        entries=state.entries.set(entry.id, offered),
        live_offers=state.live_offers.set(entry.id, entry.number),
        offer_blocks=_with_offer(state.offer_blocks, entry.number),
        # Offers are made from the head of the line only.
        waiting_head=entry.number + 1,
    )


def offer_bit(number: int) -> tuple[str, int]:
    """The `offer_blocks` key of join number `number` and its bit in that block's mask."""
    return str(number // OFFER_BLOCK), 1 << (number % OFFER_BLOCK)


def _with_offer(blocks: immutables.Map[str, int], number: int) -> immutables.Map[str, int]:
    key, bit = offer_bit(number)
    return blocks.set(key, blocks.get(key, 0) | bit)


def _without_offer(blocks: immutables.Map[str, int], number: int) -> immutables.Map[str, int]:
    key, bit = offer_bit(number)
    rest = blocks[key] & ~bit
    return blocks.set(key, rest) if rest else blocks.delete(key)


def _offer_ended(state: EventQueueState, e: OfferExpired | OfferReleased) -> EventQueueState:
    entry = state.entries[e.waiting_list_id]
    return replace(
        state,
        entries=state.entries.set(entry.id, replace(entry, status="expired")),
        live_offers=state.live_offers.delete(entry.id),
        offer_blocks=_without_offer(state.offer_blocks, entry.number),
    )


def _purchased(state: EventQueueState, e: TicketPurchased) -> EventQueueState:
    entry = state.entries[e.waiting_list_id]
    ticket = Ticket(
        id=e.ticket_id,
        number=state.ticket_count,
        user_id=e.user_id,
        waiting_list_id=e.waiting_list_id,
        status="valid",
        purchased_at=e.at,
        payment_intent_id=e.payment_intent_id,
        amount=e.amount,
    )
    mine = state.tickets_by_user.get(e.user_id, ())
    return replace(
        state,
        tickets=state.tickets.set(ticket.id, ticket),
        tickets_by_user=state.tickets_by_user.set(e.user_id, (*mine, ticket.id)),
        ticket_by_payment_intent=state.ticket_by_payment_intent.set(e.payment_intent_id, ticket.id),
        ticket_count=state.ticket_count + 1,
        purchased_count=state.purchased_count + 1,
        entries=state.entries.set(entry.id, replace(entry, status="purchased")),
        live_offers=state.live_offers.delete(entry.id),
        offer_blocks=_without_offer(state.offer_blocks, entry.number),
    )


def _checked_in(state: EventQueueState, e: TicketCheckedIn) -> EventQueueState:
    ticket = state.tickets[e.ticket_id]
    return replace(state, tickets=state.tickets.set(ticket.id, replace(ticket, status="used")))


def _refunded(state: EventQueueState, e: TicketRefunded) -> EventQueueState:
    ticket = state.tickets[e.ticket_id]
    return replace(
        state,
        tickets=state.tickets.set(ticket.id, replace(ticket, status="refunded")),
        purchased_count=state.purchased_count - 1,
    )


def _queue_joined(state: EventQueueState, e: QueueJoined) -> EventQueueState:
    entry = QueueEntry(
        id=e.queue_entry_id, user_id=e.user_id, number=e.number, status="waiting", joined_at=e.at
    )
    return replace(
        state,
        queue=state.queue.set(entry.id, entry),
        queue_entry_by_user=state.queue_entry_by_user.set(e.user_id, entry.id),
        queue_count=e.number + 1,
    )


def _stop_waiting(state: EventQueueState, number: int) -> dict[str, Any]:
    """The new head and holes once the waiting entry `number` stops waiting."""
    head, holes = state.queue_head, state.queue_holes
    if number != head:
        merged = list(holes)
        insort(merged, number)
        return {"queue_holes": tuple(merged)}
    head += 1
    skip = 0
    while skip < len(holes) and holes[skip] == head:
        skip += 1
        head += 1
    return {"queue_head": head, "queue_holes": holes[skip:]}


def _queue_left(state: EventQueueState, e: QueueLeft) -> EventQueueState:
    entry = state.queue[e.queue_entry_id]
    return replace(
        state,
        queue=state.queue.set(entry.id, replace(entry, status="cancelled")),
        **_stop_waiting(state, entry.number),
    )


def _queue_called(state: EventQueueState, e: QueueEntryCalled) -> EventQueueState:
    entry = state.queue[e.queue_entry_id]
    return replace(
        state,
        queue=state.queue.set(entry.id, replace(entry, status="called", called_at=e.at)),
        last_called_at=e.at,
        **_stop_waiting(state, entry.number),
    )


def _queue_completed(state: EventQueueState, e: QueueEntryCompleted) -> EventQueueState:
    entry = state.queue[e.queue_entry_id]
    return replace(state, queue=state.queue.set(entry.id, replace(entry, status="completed")))


_FOLDS: dict[type[Event], Callable[[EventQueueState, Any], EventQueueState]] = {
    EventCreated: _created,
    EventUpdated: _updated,
    EventCancelled: _cancelled,
    WaitingListJoined: _joined,
    OfferMade: _offered,
    OfferExpired: _offer_ended,
    OfferReleased: _offer_ended,
    TicketPurchased: _purchased,
    TicketCheckedIn: _checked_in,
    TicketRefunded: _refunded,
    QueueJoined: _queue_joined,
    QueueLeft: _queue_left,
    QueueEntryCalled: _queue_called,
    QueueEntryCompleted: _queue_completed,
}
