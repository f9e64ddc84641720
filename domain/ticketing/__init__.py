"""Ticketing and the live queue (docs/reference/functions.md): one event-queue actor per event.

`TICKETING` declares the aggregate, the projections and every client-callable function;
`check_invariants` is the aggregate's full invariant check; the event classes are the journal's
vocabulary for the `event/ev_...` streams.
"""

from domain.ticketing.aggregate import EVENT_QUEUE
from domain.ticketing.events import (
    EVENT_QUEUE_EVENTS,
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
from domain.ticketing.invariants import check_invariants
from domain.ticketing.module import MUTATIONS, QUERIES, TICKETING
from domain.ticketing.projections import (
    EVENT_CATALOG,
    USER_QUEUE,
    USER_TICKETS,
    EventCatalog,
    UserEventIndex,
)
from domain.ticketing.state import (
    OFFER_DURATION_MS,
    QUEUE_TRANSITIONS,
    TICKET_TRANSITIONS,
    WAITING_LIST_TRANSITIONS,
    EventInfo,
    EventQueueState,
    QueueEntry,
    Ticket,
    WaitingListEntry,
    evolve,
)

__all__ = [
    "EVENT_CATALOG",
    "EVENT_QUEUE",
    "EVENT_QUEUE_EVENTS",
    "MUTATIONS",
    "OFFER_DURATION_MS",
    "QUERIES",
    "QUEUE_TRANSITIONS",
    "TICKETING",
    "TICKET_TRANSITIONS",
    "USER_QUEUE",
    "USER_TICKETS",
    "WAITING_LIST_TRANSITIONS",
    "EventCancelled",
    "EventCatalog",
    "EventCreated",
    "EventInfo",
    "EventQueueState",
    "EventUpdated",
    "OfferExpired",
    "OfferMade",
    "OfferReleased",
    "QueueEntry",
    "QueueEntryCalled",
    "QueueEntryCompleted",
    "QueueJoined",
    "QueueLeft",
    "Ticket",
    "TicketCheckedIn",
    "TicketPurchased",
    "TicketRefunded",
    "UserEventIndex",
    "WaitingListEntry",
    "WaitingListJoined",
    "check_invariants",
    "evolve",
]
