"""The location aggregate's state: one location with its services and orders.

Collections are `immutables.Map`s, so folding an event costs O(log n) and the actor's working
and committed states share everything an event did not touch. Besides the records, the state
keeps the indexes the hot rules need:

- `booked`: the per-resource booking index (`domain.venue.bookings`) of the non-cancelled
  bookings, so a double booking is found by binary search;
- `orders_by_day`: order ids by the UTC day of their listing time (a booking's `scheduled_at`,
  any other order's `created_at`), so a date-ranged listing reads only the days it covers;
- `service_count` and `order_count`: the next child numbers, kept as counters so that replay
  makes the same ids (`sv_<core>_<n>`, `or_<core>_<n>`).

The order lifecycle is the table `ORDER_TRANSITIONS`; `require_transition` refuses any other
step with a Conflict before anything is emitted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import immutables

from domain.ids import child_id
from domain.model import Event, replace
from domain.ticketing.state import require_transition
from domain.venue.bookings import BookingIndex, Slot, adding, removing
from domain.venue.events import (
    LocationCreated,
    LocationUpdated,
    OrderNotesErased,
    OrderPaymentRecorded,
    OrderPlaced,
    OrderReminderSent,
    OrderStatusChanged,
    ServiceCreated,
    ServiceUpdated,
)
from domain.venue.hours import DAY_MS
from domain.venue.values import Address, OperatingHours, OrderLine

__all__ = [
    "INITIAL",
    "OPEN_STATUSES",
    "ORDER_STATUSES",
    "ORDER_TRANSITIONS",
    "ORDER_TYPES",
    "LocationInfo",
    "LocationState",
    "Order",
    "Service",
    "apply_location_update",
    "evolve",
    "location_info_of",
    "order_id",
    "require_transition",
    "service_id",
]

ORDER_TYPES: tuple[str, ...] = ("booking", "enquiry", "purchase")

#: status -> the statuses it may become.
ORDER_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "cancelled"}),
    "confirmed": frozenset({"completed", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}
ORDER_STATUSES: tuple[str, ...] = tuple(ORDER_TRANSITIONS)
#: The statuses an order may still leave: it is still to happen (a booking still holds its time).
OPEN_STATUSES: frozenset[str] = frozenset(s for s, then in ORDER_TRANSITIONS.items() if then)


def _empty() -> immutables.Map[Any, Any]:
    return immutables.Map()


@attrs.frozen(kw_only=True)
class LocationInfo:
    """The location's own record; `user_id` is its creator (None when an admin made it)."""

    id: str
    org_id: str
    created_at: int
    updated_at: int
    name: str
    address: Address
    timezone: str
    operating_hours: OperatingHours
    settings: immutables.Map[str, Any]
    user_id: str | None


@attrs.frozen(kw_only=True)
class Service:
    id: str
    number: int
    name: str
    description: str
    category_id: str | None
    duration: int
    price: int
    is_active: bool
    resources: tuple[str, ...]
    created_at: int
    updated_at: int


@attrs.frozen(kw_only=True)
class Order:
    """One order. A booking (`type == "booking"`) holds `resources` over
    `[scheduled_at, ends_at)` unless cancelled; other orders have `ends_at` None.
    `reminded_at` is when the booking's reminder went to its customer (None: not yet)."""

    id: str
    number: int
    customer_id: str
    type: str
    status: str
    lines: tuple[OrderLine, ...]
    total: int
    paid_amount: int
    scheduled_at: int | None
    ends_at: int | None
    resources: tuple[str, ...]
    notes: str | None
    created_at: int
    updated_at: int
    completed_at: int | None = None
    cancelled_at: int | None = None
    reminded_at: int | None = None

    @property
    def is_booking(self) -> bool:
        return self.type == "booking"

    @property
    def listed_at(self) -> int:
        """The time listings filter and sort by: a booking's start, else its creation."""
        if self.is_booking and self.scheduled_at is not None:
            return self.scheduled_at
        return self.created_at


# Not slotted: `replace` copies a dict-backed instance in one step.
@attrs.frozen(kw_only=True, slots=False)
class LocationState:
    """Everything one location actor owns. `location` is None until `LocationCreated`."""

    location: LocationInfo | None = None
    services: immutables.Map[str, Service] = attrs.field(factory=_empty)
    service_count: int = 0
    orders: immutables.Map[str, Order] = attrs.field(factory=_empty)
    order_count: int = 0
    booked: BookingIndex = attrs.field(factory=_empty)
    #: str(listed_at // DAY_MS) -> the ids of the orders listed that UTC day, in number order.
    orders_by_day: immutables.Map[str, tuple[str, ...]] = attrs.field(factory=_empty)


INITIAL = LocationState()


def service_id(location_id: str, number: int) -> str:
    return child_id("sv", location_id, number)


def order_id(location_id: str, number: int) -> str:
    return child_id("or", location_id, number)


# -- evolve ---------------------------------------------------------------------------------------


def evolve(state: LocationState, event: Event) -> LocationState:
    """The state after `event`: pure, O(log n). Raises TypeError for an event type this
    aggregate does not own."""
    fold = _FOLDS.get(type(event))
    if fold is None:
        raise TypeError(f"{type(event).__name__} is not a location event")
    return fold(state, event)


def location_info_of(e: LocationCreated) -> LocationInfo:
    """The record `e` creates (shared with the location directory)."""
    return LocationInfo(
        id=e.stream.partition("/")[2],
        org_id=e.org_id,
        created_at=e.at,
        updated_at=e.at,
        name=e.name,
        address=e.address,
        timezone=e.timezone,
        operating_hours=e.operating_hours,
        settings=e.settings,
        user_id=e.user_id,
    )


_LOCATION_FIELDS = ("name", "address", "timezone", "operating_hours", "settings")


def apply_location_update(info: LocationInfo, e: LocationUpdated) -> LocationInfo:
    """`info` with the fields `e` replaced (shared with the location directory)."""
    changes = {name: value for name in _LOCATION_FIELDS if (value := getattr(e, name)) is not None}
    return replace(info, updated_at=e.at, **changes)


def _location_created(state: LocationState, e: LocationCreated) -> LocationState:
    return replace(state, location=location_info_of(e))


def _location_updated(state: LocationState, e: LocationUpdated) -> LocationState:
    assert state.location is not None
    return replace(state, location=apply_location_update(state.location, e))


def _service_created(state: LocationState, e: ServiceCreated) -> LocationState:
    service = Service(
        id=e.service_id,
        number=e.number,
        name=e.name,
        description=e.description,
        category_id=e.category_id,
        duration=e.duration,
        price=e.price,
        is_active=e.is_active,
        resources=e.resources,
        created_at=e.at,
        updated_at=e.at,
    )
    return replace(
        state,
        services=state.services.set(service.id, service),
        service_count=e.number + 1,
    )


_SERVICE_FIELDS = (
    "name",
    "description",
    "category_id",
    "duration",
    "price",
    "is_active",
    "resources",
)


def _service_updated(state: LocationState, e: ServiceUpdated) -> LocationState:
    service = state.services[e.service_id]
    changes = {name: value for name in _SERVICE_FIELDS if (value := getattr(e, name)) is not None}
    return replace(
        state, services=state.services.set(service.id, replace(service, updated_at=e.at, **changes))
    )


def _order_placed(state: LocationState, e: OrderPlaced) -> LocationState:
    order = Order(
        id=e.order_id,
        number=e.number,
        customer_id=e.customer_id,
        type=e.type,
        status="pending",
        lines=e.lines,
        total=e.total,
        paid_amount=0,
        scheduled_at=e.scheduled_at,
        ends_at=e.ends_at,
        resources=e.resources,
        notes=e.notes,
        created_at=e.at,
        updated_at=e.at,
    )
    booked = state.booked
    if order.is_booking:
        assert e.scheduled_at is not None and e.ends_at is not None
        slot = Slot(start=e.scheduled_at, end=e.ends_at, order_id=order.id)
        booked = adding(booked, order.resources, slot)
    day = str(order.listed_at // DAY_MS)
    return replace(
        state,
        orders=state.orders.set(order.id, order),
        order_count=e.number + 1,
        booked=booked,
        orders_by_day=state.orders_by_day.set(day, (*state.orders_by_day.get(day, ()), order.id)),
    )


def _order_status_changed(state: LocationState, e: OrderStatusChanged) -> LocationState:
    order = state.orders[e.order_id]
    changed = replace(order, status=e.status, updated_at=e.at)
    booked = state.booked
    if e.status == "completed":
        changed = replace(changed, completed_at=e.at)
    elif e.status == "cancelled":
        changed = replace(changed, cancelled_at=e.at)
        if order.is_booking:
            assert order.scheduled_at is not None
            booked = removing(booked, order.resources, order.id, order.scheduled_at)
    return replace(state, orders=state.orders.set(order.id, changed), booked=booked)


def _payment_recorded(state: LocationState, e: OrderPaymentRecorded) -> LocationState:
    order = state.orders[e.order_id]
    paid = replace(order, paid_amount=e.paid_amount, updated_at=e.at)
    return replace(state, orders=state.orders.set(order.id, paid))


def _reminder_sent(state: LocationState, e: OrderReminderSent) -> LocationState:
    order = state.orders[e.order_id]
    reminded = replace(order, reminded_at=e.at, updated_at=e.at)
    return replace(state, orders=state.orders.set(order.id, reminded))


def _notes_erased(state: LocationState, e: OrderNotesErased) -> LocationState:
    orders = state.orders
    for order in state.orders.values():
        if order.customer_id == e.customer_id and order.notes is not None:
            orders = orders.set(order.id, replace(order, notes=None))
    return replace(state, orders=orders)


_FOLDS: dict[type[Event], Callable[[LocationState, Any], LocationState]] = {
    LocationCreated: _location_created,
    LocationUpdated: _location_updated,
    ServiceCreated: _service_created,
    ServiceUpdated: _service_updated,
    OrderPlaced: _order_placed,
    OrderStatusChanged: _order_status_changed,
    OrderPaymentRecorded: _payment_recorded,
    OrderReminderSent: _reminder_sent,
    OrderNotesErased: _notes_erased,
}
