"""Callers and shortcuts shared by the venue tests (plain functions, no tests of its own).

`new_world()` is a whole backend in memory with co-decisions (the customers tests'
`CustomerWorld`, serving the venue, ticketing, customers and notifications modules), holding
two customers of `ORG` (`CUSTOMER`, `OTHER_CUSTOMER`) and one of `OTHER_ORG`
(`RIVAL_CUSTOMER`), since every order belongs to a real customer of its location's
organization.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from domain.customers import CUSTOMER as CUSTOMER_AGGREGATE
from domain.customers import CUSTOMERS, CustomerState
from domain.errors import TurnstileError
from domain.identity import ADMIN, Identity
from domain.notifications import NOTIFICATIONS
from domain.ticketing import TICKETING
from domain.venue import VENUE, LocationState
from domain.venue.values import WEEKDAYS
from tests.domain.harness import World, token_counter
from tests.domain.test_customers_world import CustomerWorld

ORG = "org_a"
OTHER_ORG = "org_b"
MANAGER = Identity(
    subject="u_manager",
    org_id=ORG,
    caps=frozenset({"locations:manage", "orders:manage", "analytics:read", "events:manage"}),
)
FRONT_DESK = Identity(subject="u_desk", org_id=ORG, caps=frozenset({"orders:manage"}))
ANALYST = Identity(subject="u_analyst", org_id=ORG, caps=frozenset({"analytics:read"}))
RIVAL = Identity(subject="u_rival", org_id=OTHER_ORG, caps=frozenset({"*"}))
NO_CAPS = Identity(subject="u_clerk", org_id=ORG, caps=frozenset({"customers:read"}))
LONER = Identity(subject="u_loner", caps=frozenset({"*"}))
ANON = Identity()
#: The customers every `new_world()` starts with (their ids drawn from tokens of their own, so
#: the ids of everything else are as in a world without them).
CUSTOMER = "cu_c0001"
OTHER_CUSTOMER = "cu_c0002"
RIVAL_CUSTOMER = "cu_c0003"
ALICE = {"firstName": "Alice", "email": "alice@example.com", "phone": "+44 20 7946 0101"}
BOB = {"firstName": "Bob", "email": "bob@example.com", "phone": "+44 20 7946 0102"}
CARLA = {"firstName": "Carla", "email": "carla@example.com", "phone": "+1 212 555 0103"}

NINE_TO_FIVE = {"open": "09:00", "close": "17:00"}
EVERY_DAY = {day: NINE_TO_FIVE for day in WEEKDAYS}
ADDRESS = {"line1": "1 High Street", "city": "London", "postalCode": "N1 1AA", "country": "GB"}


class VenueWorld(CustomerWorld):
    """`CustomerWorld` (co-decisions committed with their command, or dropped with it) over
    every module an order touches."""

    def __init__(self) -> None:
        World.__init__(self, VENUE, TICKETING, CUSTOMERS, NOTIFICATIONS)


def new_world() -> VenueWorld:
    w = VenueWorld()
    w.tokens = token_counter("c")
    for expected, profile, org in (
        (CUSTOMER, ALICE, ORG),
        (OTHER_CUSTOMER, BOB, ORG),
        (RIVAL_CUSTOMER, CARLA, OTHER_ORG),
    ):
        assert create_customer(w, org, **profile) == expected
    w.tokens = token_counter()
    return w


def create_customer(w: World, org: str = ORG, **profile: Any) -> str:
    """A customer of `org`, created by the backend (admin key, naming the organization)."""
    customer_id = w.mutate("customers:create", {**profile, "orgId": org}, ADMIN)
    assert isinstance(customer_id, str)
    return customer_id


def customer_of(w: World, customer_id: str) -> CustomerState:
    state = w.states[CUSTOMER_AGGREGATE.stream_of(customer_id)]
    assert isinstance(state, CustomerState)
    return state


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def local(
    timezone: str, year: int, month: int, day: int, hour: int, minute: int = 0, fold: int = 0
) -> int:
    """The instant the clock of `timezone` shows that time (`fold=1`: its second showing)."""
    moment = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(timezone), fold=fold)
    return int(moment.timestamp() * 1000)


def location_args(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Soho Spa",
        "address": ADDRESS,
        "timezone": "Europe/London",
        "operatingHours": EVERY_DAY,
        "settings": {"currency": "GBP", "bookingBufferMinutes": 0},
        **extra,
    }


def create_location(w: World, who: Identity = MANAGER, **extra: Any) -> str:
    location_id = w.mutate("locations:create", location_args(**extra), who)
    assert isinstance(location_id, str)
    return location_id


def service_args(location_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "locationId": location_id,
        "name": "Massage",
        "description": "Sixty minutes",
        "duration": 60,
        "price": 5000,
        "isActive": True,
        "resources": ["room1"],
        **extra,
    }


def create_service(w: World, location_id: str, who: Identity = MANAGER, **extra: Any) -> str:
    service_id = w.mutate("services:create", service_args(location_id, **extra), who)
    assert isinstance(service_id, str)
    return service_id


def order_args(location_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "customerId": CUSTOMER,
        "locationId": location_id,
        "type": "purchase",
        "items": [{"name": "Gift card", "quantity": 1, "price": 2500}],
        **extra,
    }


def place(w: World, location_id: str, who: Identity = MANAGER, **extra: Any) -> str:
    order_id = w.mutate("orders:create", order_args(location_id, **extra), who)
    assert isinstance(order_id, str)
    return order_id


def book(
    w: World,
    location_id: str,
    at: int,
    *service_ids: str,
    quantity: int = 1,
    customer: str = CUSTOMER,
) -> str:
    items = [{"serviceId": sid, "quantity": quantity} for sid in service_ids]
    return place(w, location_id, type="booking", items=items, scheduledAt=at, customerId=customer)


def set_status(w: World, order_id: str, status: str, who: Identity = MANAGER) -> None:
    w.mutate("orders:updateStatus", {"orderId": order_id, "status": status}, who)


def state_of(w: World, location_id: str) -> LocationState:
    state = w.states[f"location/{location_id}"]
    assert isinstance(state, LocationState)
    return state


def refused(
    w: World,
    name: str,
    args: dict[str, Any],
    who: Identity,
    error: type[TurnstileError],
) -> dict[str, Any]:
    """Run a mutation that must be refused with `error`; assert it left no trace (journal,
    states, projections) and return the error's wire data."""
    before = (list(w.journal), dict(w.states), dict(w.projections))
    with pytest.raises(error) as caught:
        w.mutate(name, args, who)
    assert (w.journal, w.states, w.projections) == before
    return caught.value.data()


def orders_at(w: World, location_id: str, **filters: Any) -> list[dict[str, Any]]:
    found = w.query("orders:listByLocation", {"locationId": location_id, **filters}, MANAGER)
    assert isinstance(found, list)
    return found
