"""The facts journaled on an event-queue stream (`event/ev_...`): the event's own lifecycle, its
waiting list and tickets, and its live queue (docs/reference/functions.md).

Every class name is its journal `type`, so names are unique across Turnstile and never renamed.
Each event names the records it touches (ids and user ids), so projections can tell which keys
it changes without reading the aggregate. Offer events arm and disarm the durable expiry timer,
keyed by the waiting-list id: an offer lives exactly until its `offer_expires_at` unless a
purchase, a release, an expiry or the event's cancellation ends it first.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from domain.model import Event, TimerChange


@attrs.frozen(kw_only=True)
class EventCreated(Event):
    """An organizer created the event; `user_id` is the creator (None when an admin key did)."""

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
    #: The event's image, a stored file (`domain.storage`); absent from rows written before.
    image_storage_id: str | None = None


@attrs.frozen(kw_only=True)
class EventUpdated(Event):
    """Some of the event's fields changed; a field that is None did not change."""

    name: str | None = None
    description: str | None = None
    location: str | None = None
    event_date: int | None = None
    price: int | None = None
    total_tickets: int | None = None
    location_id: str | None = None
    average_service_minutes: int | None = None
    image_storage_id: str | None = None


@attrs.frozen(kw_only=True)
class EventCancelled(Event):
    """The event is cancelled, and with it everything still open, in one atomic fact.

    The consequences are listed so that replay needs no scan and projections know whom the
    cancellation touched: `refunded_ticket_ids` were valid and are now refunded (used tickets
    stay used); `withdrawn_offer_ids` were offered and `expired_waiting_ids` were waiting, and
    all of them are now expired; `cancelled_queue_user_ids` had a waiting or called live-queue
    entry, now cancelled.
    """

    refunded_ticket_ids: tuple[str, ...]
    withdrawn_offer_ids: tuple[str, ...]
    expired_waiting_ids: tuple[str, ...]
    cancelled_queue_user_ids: tuple[str, ...]

    def timer_changes(self) -> Iterable[TimerChange]:
        return tuple(TimerChange(key=key, due_at=None) for key in self.withdrawn_offer_ids)


@attrs.frozen(kw_only=True)
class WaitingListJoined(Event):
    """A user joined the waiting list; the entry is `waiting` with join order `number`.

    An entry that can be served at once is followed by an `OfferMade` in the same command.
    """

    waiting_list_id: str
    user_id: str
    number: int


@attrs.frozen(kw_only=True)
class OfferMade(Event):
    """The waiting entry at the head of the line was offered a seat until `offer_expires_at`."""

    waiting_list_id: str
    user_id: str
    offer_expires_at: int

    def timer_changes(self) -> Iterable[TimerChange]:
        return (TimerChange(key=self.waiting_list_id, due_at=self.offer_expires_at),)


@attrs.frozen(kw_only=True)
class OfferExpired(Event):
    """The offer's time ran out before a purchase; the entry is `expired`."""

    waiting_list_id: str
    user_id: str

    def timer_changes(self) -> Iterable[TimerChange]:
        return (TimerChange(key=self.waiting_list_id, due_at=None),)


@attrs.frozen(kw_only=True)
class OfferReleased(Event):
    """The holder gave the offer back before it expired; the entry is `expired` as well."""

    waiting_list_id: str
    user_id: str

    def timer_changes(self) -> Iterable[TimerChange]:
        return (TimerChange(key=self.waiting_list_id, due_at=None),)


@attrs.frozen(kw_only=True)
class TicketPurchased(Event):
    """The holder of a live offer paid: a `valid` ticket exists and the entry is `purchased`."""

    ticket_id: str
    waiting_list_id: str
    user_id: str
    payment_intent_id: str
    amount: int

    def timer_changes(self) -> Iterable[TimerChange]:
        return (TimerChange(key=self.waiting_list_id, due_at=None),)


@attrs.frozen(kw_only=True)
class TicketCheckedIn(Event):
    """A valid ticket was used at the door."""

    ticket_id: str
    user_id: str


@attrs.frozen(kw_only=True)
class TicketRefunded(Event):
    """A valid ticket was refunded by the organizer; its seat is free again."""

    ticket_id: str
    user_id: str


@attrs.frozen(kw_only=True)
class QueueJoined(Event):
    """A user joined the event's live queue as `waiting`, with join order `number`."""

    queue_entry_id: str
    user_id: str
    number: int


@attrs.frozen(kw_only=True)
class QueueLeft(Event):
    """A waiting user left the live queue; the entry is `cancelled`."""

    queue_entry_id: str
    user_id: str


@attrs.frozen(kw_only=True)
class QueueEntryCalled(Event):
    """Staff called the first waiting user; the entry is `called` (being served)."""

    queue_entry_id: str
    user_id: str


@attrs.frozen(kw_only=True)
class QueueEntryCompleted(Event):
    """Staff finished serving a called user; the entry is `completed`."""

    queue_entry_id: str
    user_id: str


#: Every event type of the event-queue stream, in the order a reader meets them.
EVENT_QUEUE_EVENTS: tuple[type[Event], ...] = (
    EventCreated,
    EventUpdated,
    EventCancelled,
    WaitingListJoined,
    OfferMade,
    OfferExpired,
    OfferReleased,
    TicketPurchased,
    TicketCheckedIn,
    TicketRefunded,
    QueueJoined,
    QueueLeft,
    QueueEntryCalled,
    QueueEntryCompleted,
)
