"""The argument objects of the ticketing and live-queue functions.

Field names are snake_case; the engine's codec maps them to and from the wire's camelCase
(`event_id` <-> `eventId`) and checks types strictly before a handler runs. Optional fields
default to None, meaning "not given". Rules beyond types (non-empty names, amounts >= 0) are
the handlers' to check.
"""

from __future__ import annotations

import attrs

from domain.pagination import PaginationOpts


@attrs.frozen(kw_only=True)
class CreateEventArgs:
    name: str
    description: str
    location: str
    event_date: int
    price: int
    total_tickets: int
    location_id: str | None = None
    org_id: str | None = None
    #: Live queue: minutes one person takes to serve (default 5), for `estimatedTime`.
    average_service_minutes: int | None = None
    #: A stored file (`storage:generateUploadUrl`'s upload) of the caller's organization.
    image_storage_id: str | None = None


@attrs.frozen(kw_only=True)
class UpdateEventArgs:
    event_id: str
    name: str | None = None
    description: str | None = None
    location: str | None = None
    event_date: int | None = None
    price: int | None = None
    total_tickets: int | None = None
    location_id: str | None = None
    org_id: str | None = None
    average_service_minutes: int | None = None
    image_storage_id: str | None = None


@attrs.frozen(kw_only=True)
class EventIdArgs:
    """`{eventId}`: events:cancelEvent, events:get, events:getEventAvailability, and others."""

    event_id: str


@attrs.frozen(kw_only=True)
class ListEventsArgs:
    """`{paginationOpts?}`: events:list (a page of the list when `paginationOpts` is given)."""

    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class EventListArgs:
    """`{eventId, paginationOpts?}`: tickets:listForEvent, queue:getEventQueue."""

    event_id: str
    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class EventUserArgs:
    """`{eventId, userId}`: joining or leaving a line, positions, a user's ticket."""

    event_id: str
    user_id: str


@attrs.frozen(kw_only=True)
class UserListArgs:
    """`{userId, paginationOpts?}`: events:getUserTickets, queue:getUserQueue."""

    user_id: str
    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class PaymentInfo:
    payment_intent_id: str
    amount: int


@attrs.frozen(kw_only=True)
class PurchaseTicketArgs:
    event_id: str
    user_id: str
    waiting_list_id: str
    payment_info: PaymentInfo


@attrs.frozen(kw_only=True)
class ReleaseTicketArgs:
    event_id: str
    waiting_list_id: str


@attrs.frozen(kw_only=True)
class TicketIdArgs:
    """`{ticketId}`: tickets:checkIn, tickets:refund."""

    ticket_id: str
