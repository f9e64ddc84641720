"""The documents replies and query results carry: plain JSON-able dicts with camelCase keys,
shaped like Convex documents (`_id`, `_creationTime`, fields).

Each is a pure function of the state it is given (no clock), so a query's result changes only
when the state it read does.
"""

from __future__ import annotations

from typing import Any, TypedDict

from domain.ticketing.positions import estimated_time, queue_position, waiting_position
from domain.ticketing.state import EventInfo, EventQueueState, QueueEntry, Ticket, WaitingListEntry

Doc = dict[str, Any]


class EventDoc(TypedDict):
    """What `event_doc` returns, as generated clients type it (`turnstile codegen`)."""

    _id: str
    _creationTime: int
    name: str
    description: str
    location: str
    eventDate: int
    price: int
    totalTickets: int
    userId: str | None
    orgId: str
    locationId: str | None
    averageServiceMinutes: int
    isCancelled: bool
    imageStorageId: str | None
    imageUrl: str | None


class AvailabilityDoc(TypedDict):
    """What `availability_doc` returns, as generated clients type it."""

    isSoldOut: bool
    totalTickets: int
    purchasedCount: int
    activeOffers: int
    remainingTickets: int


def event_doc(info: EventInfo, image_url: str | None = None) -> Doc:
    """The event; `userId` is its creator (null when an admin created it); `imageUrl` the URL
    of its image (`domain.storage.file_url`: null without one, or once the file is deleted)."""
    return {
        "_id": info.id,
        "_creationTime": info.created_at,
        "name": info.name,
        "description": info.description,
        "location": info.location,
        "eventDate": info.event_date,
        "price": info.price,
        "totalTickets": info.total_tickets,
        "userId": info.user_id,
        "orgId": info.org_id,
        "locationId": info.location_id,
        "averageServiceMinutes": info.average_service_minutes,
        "isCancelled": info.is_cancelled,
        "imageStorageId": info.image_storage_id,
        "imageUrl": image_url,
    }


def availability_doc(state: EventQueueState) -> Doc:
    assert state.event is not None
    total = state.event.total_tickets
    return {
        "isSoldOut": state.purchased_count + state.active_offers >= total,
        "totalTickets": total,
        "purchasedCount": state.purchased_count,
        "activeOffers": state.active_offers,
        "remainingTickets": state.remaining_tickets,
    }


def ticket_doc(event_id: str, ticket: Ticket) -> Doc:
    return {
        "_id": ticket.id,
        "_creationTime": ticket.purchased_at,
        "eventId": event_id,
        "userId": ticket.user_id,
        "waitingListId": ticket.waiting_list_id,
        "purchasedAt": ticket.purchased_at,
        "status": ticket.status,
        "paymentIntentId": ticket.payment_intent_id,
        "amount": ticket.amount,
    }


def entry_doc(state: EventQueueState, entry: WaitingListEntry) -> Doc:
    """A waiting-list entry with its `position` (1 = next in line)."""
    assert state.event is not None
    return {
        "_id": entry.id,
        "_creationTime": entry.joined_at,
        "eventId": state.event.id,
        "userId": entry.user_id,
        "status": entry.status,
        "offerExpiresAt": entry.offer_expires_at,
        "position": waiting_position(state, entry),
    }


def queue_doc(state: EventQueueState, entry: QueueEntry) -> Doc:
    """A live-queue entry. A waiting entry has its rank and estimate; a called one has
    position 0 and the time it was called as its `estimatedTime`."""
    assert state.event is not None
    position = queue_position(state, entry)
    when = estimated_time(state, position) if entry.status == "waiting" else entry.called_at
    return {
        "_id": entry.id,
        "_creationTime": entry.joined_at,
        "eventId": state.event.id,
        "userId": entry.user_id,
        "status": entry.status,
        "position": position,
        "estimatedTime": when,
    }
