"""References across organizations: an id in a command's args that names another
organization's record is refused exactly as an id that names nothing (the same `NotFound`,
message and data alike), and leaves no trace; the same reference within the organization works.

Each case runs the command three ways on one world: naming a record of the caller's own
organization (it works), one of another organization and one that does not exist (both
refused, with equal error data, and the world byte-for-byte as before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from domain.customers import CLAIM
from domain.customers.claims import location_claim_id
from domain.errors import NotFound
from domain.identity import ADMIN, Identity
from engine.codec import encode_event
from tests.domain.harness import MINUTE, World
from tests.domain.test_venue_support import (
    CUSTOMER,
    MANAGER,
    ORG,
    OTHER_ORG,
    RIVAL,
    RIVAL_CUSTOMER,
    VenueWorld,
    create_location,
    create_service,
    local,
    new_world,
    order_args,
    place,
)

WRITER = Identity(
    subject="u_staff", org_id=ORG, caps=frozenset({"customers:read", "customers:write"})
)
MISSING_LOCATION = "lo_nothere1"
MISSING_CUSTOMER = "cu_nothere1"
EVENT_ARGS = {
    "name": "Open day",
    "description": "",
    "location": "Spa",
    "eventDate": local("Europe/London", 2026, 2, 1, 10),
    "price": 1000,
    "totalTickets": 10,
}


def fingerprint(w: World) -> tuple[Any, ...]:
    """Everything a command could change: journal, states, versions, read models, timers."""
    return (
        [encode_event(event) for event in w.journal],
        dict(w.states),
        dict(w.versions),
        dict(w.projections),
        dict(w.timers),
    )


def refusal(w: World, name: str, args: dict[str, Any], who: Identity) -> dict[str, Any]:
    """Run a mutation that must be NotFound and leave no trace; its errorData."""
    before = fingerprint(w)
    with pytest.raises(NotFound) as failure:
        w.mutate(name, args, who)
    assert fingerprint(w) == before
    return failure.value.data()


def refused_like_missing(
    w: World,
    name: str,
    args_naming: Callable[[str], dict[str, Any]],
    theirs: str,
    missing: str,
    who: Identity,
) -> dict[str, Any]:
    """Another organization's id and a missing one are refused alike; the errorData."""
    foreign = refusal(w, name, args_naming(theirs), who)
    assert foreign == refusal(w, name, args_naming(missing), who)
    return foreign


@pytest.fixture
def world() -> tuple[VenueWorld, str, str]:
    """A world with a location of ours and one of the rival organization."""
    w = new_world()
    ours = create_location(w)
    theirs = create_location(w, RIVAL, name="Rival Spa")
    return w, ours, theirs


# -- a customer's location ------------------------------------------------------------------------


def test_customers_create_refuses_another_orgs_location_as_a_missing_one(
    world: tuple[VenueWorld, str, str],
) -> None:
    w, ours, theirs = world
    data = refused_like_missing(
        w,
        "customers:create",
        lambda location: {"firstName": "Dee", "locationId": location, "customerType": "new"},
        theirs,
        MISSING_LOCATION,
        WRITER,
    )
    assert data == {"code": "NotFound", "message": "Location not found."}
    # The message is the one a command on a missing location itself answers.
    missing = refusal(w, "locations:update", {"locationId": MISSING_LOCATION, "name": "X"}, MANAGER)
    assert data == missing
    made = w.mutate(
        "customers:create", {"firstName": "Dee", "locationId": ours, "customerType": "new"}, WRITER
    )
    assert w.query("customers:get", {"customerId": made}, WRITER)["locationId"] == ours


def test_an_admin_naming_one_org_cannot_attach_another_orgs_location(
    world: tuple[VenueWorld, str, str],
) -> None:
    w, _, theirs = world
    args = {"firstName": "Dee", "customerType": "new", "orgId": ORG}
    refused_like_missing(
        w,
        "customers:create",
        lambda location: {**args, "locationId": location},
        theirs,
        MISSING_LOCATION,
        ADMIN,
    )
    made = w.mutate("customers:create", {**args, "orgId": OTHER_ORG, "locationId": theirs}, ADMIN)
    assert w.query("customers:get", {"customerId": made})["locationId"] == theirs


def test_customers_update_refuses_another_orgs_location_and_keeps_its_own(
    world: tuple[VenueWorld, str, str],
) -> None:
    w, ours, theirs = world
    refused_like_missing(
        w,
        "customers:update",
        lambda location: {"customerId": CUSTOMER, "locationId": location, "notes": "moved"},
        theirs,
        MISSING_LOCATION,
        WRITER,
    )
    w.mutate("customers:update", {"customerId": CUSTOMER, "locationId": ours}, WRITER)
    assert w.query("customers:get", {"customerId": CUSTOMER}, WRITER)["locationId"] == ours
    # Naming the location it already has, or removing it, reads nothing more.
    w.mutate("customers:update", {"customerId": CUSTOMER, "locationId": ours}, WRITER)
    w.mutate("customers:update", {"customerId": CUSTOMER, "locationId": ""}, WRITER)
    assert w.query("customers:get", {"customerId": CUSTOMER}, WRITER)["locationId"] is None


def test_a_location_is_its_organizations_from_its_creation_on(
    world: tuple[VenueWorld, str, str],
) -> None:
    w, ours, theirs = world
    for location, org in ((ours, ORG), (theirs, OTHER_ORG)):
        claim = w.states[CLAIM.stream_of(location_claim_id(org, location))]
        assert claim.owner == location
        assert CLAIM.stream_of(location_claim_id(org, location)) not in {
            CLAIM.stream_of(location_claim_id(other, location))
            for other in (ORG, OTHER_ORG)
            if other != org
        }
    # Updating a location that has its claim writes no second one.
    claims = [e for e in w.journal if e.stream.startswith("claim/")]
    w.mutate("locations:update", {"locationId": ours, "name": "Soho Spa II"}, MANAGER)
    assert [e for e in w.journal if e.stream.startswith("claim/")] == claims


# -- a ticketing event's location -----------------------------------------------------------------


def test_events_create_and_update_refuse_another_orgs_location(
    world: tuple[VenueWorld, str, str],
) -> None:
    w, ours, theirs = world
    refused_like_missing(
        w,
        "events:create",
        lambda location: {**EVENT_ARGS, "locationId": location},
        theirs,
        MISSING_LOCATION,
        MANAGER,
    )
    refused_like_missing(
        w,
        "events:create",
        lambda location: {**EVENT_ARGS, "locationId": location, "orgId": ORG},
        theirs,
        MISSING_LOCATION,
        ADMIN,
    )
    event_id = w.mutate("events:create", {**EVENT_ARGS, "locationId": ours}, MANAGER)
    assert w.query("events:get", {"eventId": event_id})["locationId"] == ours
    unplaced = w.mutate("events:create", EVENT_ARGS, MANAGER)
    refused_like_missing(
        w,
        "events:update",
        lambda location: {"eventId": unplaced, "locationId": location, "price": 5},
        theirs,
        MISSING_LOCATION,
        MANAGER,
    )
    w.mutate("events:update", {"eventId": unplaced, "locationId": ours}, MANAGER)
    assert w.query("events:get", {"eventId": unplaced})["locationId"] == ours


# -- an order's customer, location and services ---------------------------------------------------


def test_orders_create_refuses_another_orgs_customer_as_a_missing_one(
    world: tuple[VenueWorld, str, str],
) -> None:
    w, ours, _ = world
    for who in (MANAGER, ADMIN):
        data = refused_like_missing(
            w,
            "orders:create",
            lambda customer: order_args(ours, customerId=customer),
            RIVAL_CUSTOMER,
            MISSING_CUSTOMER,
            who,
        )
        assert data == {"code": "NotFound", "message": "Customer not found."}
    order_id = place(w, ours)
    assert w.query("orders:listByCustomer", {"customerId": CUSTOMER}, MANAGER)[0]["_id"] == order_id


def test_orders_create_refuses_another_orgs_location_and_service(
    world: tuple[VenueWorld, str, str],
) -> None:
    w, ours, theirs = world
    refused_like_missing(
        w, "orders:create", lambda location: order_args(location), theirs, MISSING_LOCATION, MANAGER
    )
    their_service = create_service(w, theirs, RIVAL)
    our_service = create_service(w, ours)
    missing_service = our_service.replace("_0", "_9")
    at = local("Europe/London", 2026, 1, 5, 10)

    def booking(service: str) -> dict[str, Any]:
        items = [{"serviceId": service, "quantity": 1}]
        return order_args(ours, type="booking", items=items, scheduledAt=at)

    data = refused_like_missing(
        w, "orders:create", booking, their_service, missing_service, MANAGER
    )
    path = "items[0].serviceId"
    assert data == {"code": "NotFound", "message": "Service not found.", "path": path}
    w.now = at - 60 * MINUTE
    order_id = w.mutate("orders:create", booking(our_service), MANAGER)
    assert order_id.startswith("or_")


# -- memberships ----------------------------------------------------------------------------------


def test_memberships_refuse_another_orgs_customer_and_membership(
    world: tuple[VenueWorld, str, str],
) -> None:
    w, _, _ = world
    enroll = {"programId": "gold-club", "tier": "gold"}
    refused_like_missing(
        w,
        "memberships:enroll",
        lambda customer: {**enroll, "customerId": customer},
        RIVAL_CUSTOMER,
        MISSING_CUSTOMER,
        WRITER,
    )
    theirs = w.mutate("memberships:enroll", {**enroll, "customerId": RIVAL_CUSTOMER}, RIVAL)
    refused_like_missing(
        w,
        "memberships:addPoints",
        lambda membership: {"membershipId": membership, "points": 5},
        theirs,
        theirs.replace(RIVAL_CUSTOMER.removeprefix("cu_"), "nothere1"),
        WRITER,
    )
    ours = w.mutate("memberships:enroll", {**enroll, "customerId": CUSTOMER}, WRITER)
    assert (
        w.mutate("memberships:addPoints", {"membershipId": ours, "points": 5}, WRITER)["points"]
        == 5
    )
