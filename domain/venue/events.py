"""The facts journaled on a location stream (`location/lo_...`): the location itself, its
services and its orders (docs/reference/functions.md).

Every class name is its journal `type`, unique across Turnstile and never renamed. Each event
carries what read models need without reading the aggregate: location events name the owning
organization (the location directory is keyed by it), order events the customer (the customer
order index is keyed by it), and an order's placement holds its resolved lines, total and
booked interval, so replay needs no lookup of the services as they were.
"""

from __future__ import annotations

from typing import Any

import attrs
import immutables

from domain.model import Erasure, Event
from domain.venue.values import Address, OperatingHours, OrderLine


@attrs.frozen(kw_only=True)
class LocationCreated(Event):
    """A location of `org_id` opened in the system; `user_id` is its creator (None for admin)."""

    org_id: str
    name: str
    address: Address
    timezone: str
    operating_hours: OperatingHours
    settings: immutables.Map[str, Any]
    user_id: str | None


@attrs.frozen(kw_only=True)
class LocationUpdated(Event):
    """Some of the location's fields were replaced; None means unchanged. `org_id` is the
    location's (unchanged) organization, named so the directory knows which key moved."""

    org_id: str
    name: str | None = None
    address: Address | None = None
    timezone: str | None = None
    operating_hours: OperatingHours | None = None
    settings: immutables.Map[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ServiceCreated(Event):
    """A service is offered at the location; `number` is its creation order (0-based) and the
    suffix of `service_id`. `duration` is in minutes, `price` in minor units, `resources` the
    names of what one booking of it occupies for its whole duration."""

    service_id: str
    number: int
    name: str
    description: str
    category_id: str | None
    duration: int
    price: int
    is_active: bool
    resources: tuple[str, ...]


@attrs.frozen(kw_only=True)
class ServiceUpdated(Event):
    """Some of a service's fields were replaced; None means unchanged. Orders already placed
    keep the lines, prices and resources they were placed with."""

    service_id: str
    name: str | None = None
    description: str | None = None
    category_id: str | None = None
    duration: int | None = None
    price: int | None = None
    is_active: bool | None = None
    resources: tuple[str, ...] | None = None


@attrs.frozen(kw_only=True)
class OrderPlaced(Event):
    """A customer's order was placed as `pending`. `total` is the sum of the lines' amounts.
    A booking occupies `resources` over `[scheduled_at, ends_at)`; other orders have no
    `ends_at` and occupy nothing (their `scheduled_at` is informative only)."""

    order_id: str
    number: int
    customer_id: str
    type: str
    lines: tuple[OrderLine, ...]
    total: int
    scheduled_at: int | None
    ends_at: int | None
    resources: tuple[str, ...]
    #: Free text about the customer's order: personal, erased with its customer
    #: (`OrderNotesErased`).
    notes: str | None

    personal_fields = ("notes",)


@attrs.frozen(kw_only=True)
class OrderNotesErased(Erasure):
    """The customer `customer_id` was erased (`customers:erase`): the notes of its orders at
    this location are forgotten. An erasure scoped to one customer in a stream shared with
    others: the engine rewrites this stream's earlier rows as `redact` returns them, blanking
    only that customer's orders' notes (engine/erasure.py)."""

    customer_id: str

    def redact(self, event: Event) -> Event:
        """`event` as this erasure leaves it in the journal."""
        if isinstance(event, OrderPlaced) and event.customer_id == self.customer_id:
            return event.redacted()
        return event


@attrs.frozen(kw_only=True)
class OrderStatusChanged(Event):
    """The order went from `previous` to `status` along `ORDER_TRANSITIONS`. A cancelled
    booking frees its resources; `total` is carried for revenue figures."""

    order_id: str
    customer_id: str
    type: str
    previous: str
    status: str
    total: int


@attrs.frozen(kw_only=True)
class OrderPaymentRecorded(Event):
    """`amount` was paid towards the order; `paid_amount` is the running total (<= total)."""

    order_id: str
    customer_id: str
    amount: int
    paid_amount: int


@attrs.frozen(kw_only=True)
class OrderReminderSent(Event):
    """The booking's reminder went to its customer's inbox (in the same transaction, as a
    `NotificationAdded` there); a booking is reminded at most once. `scheduled_at` is the
    start the reminder announced."""

    order_id: str
    customer_id: str
    scheduled_at: int


#: Every event type of the location stream, in the order a reader meets them.
LOCATION_EVENTS: tuple[type[Event], ...] = (
    LocationCreated,
    LocationUpdated,
    ServiceCreated,
    ServiceUpdated,
    OrderPlaced,
    OrderStatusChanged,
    OrderPaymentRecorded,
    OrderReminderSent,
    OrderNotesErased,
)
