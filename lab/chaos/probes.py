"""How the isolation test calls each function: its tenancy scope and an args generator.

Every mutation and query of the registry must have a `Probe` here (`missing_probes` names those
that do not; the test fails on any), so a function added later is tried as soon as it exists.

A probe's `build(pick)` returns the function's args (wire names), taking every id from
`pick(kind)`. Kinds are what a party owns:

- organization kinds (`ORG_KINDS`): `org` (an `orgId`), `event`, `location`, `service`,
  `customer`, `membership`, `order`, `ticket`;
- user kinds (`USER_KINDS`): `user` (a `userId`), `waitingList`, `paymentIntent`.

The runner decides, per kind, whether `pick` answers with the victim's id or the caller's own
(see `lab.chaos.isolation`); `pick.text()` gives a fresh string where a value must be unique.

Scopes, from docs/reference/functions.md ("who"):

- `ORG`: org-scoped (a capability inside the record's organization). Foreign callers: everyone
  outside the victim organization (other organizations' staff, whatever their capabilities,
  buyers, anonymous).
- `USER`: the user only. Foreign callers: everyone but the victim user (staff of any
  organization included). `manager_cap` widens "the user" to a holder of that capability in the
  organization of the event named (`waitingList:getQueuePosition`): such callers are skipped.
- `ADMIN`: the backend's key only. Foreign callers: everyone else.
- `PUBLIC`: anyone may call; the answer may hold public event data, never a buyer's or an
  organization's private records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs

from lab.chaos.world import BOOKING_AT

ORG, USER, ADMIN, PUBLIC = "org", "user", "admin", "public"
ORG_KINDS = frozenset(
    {"org", "event", "location", "service", "customer", "membership", "order", "ticket"}
)
USER_KINDS = frozenset({"user", "waitingList", "paymentIntent"})
#: What a refusal may say: what a missing record or a missing right gets.
REFUSALS = frozenset({"NotFound", "Forbidden", "Unauthenticated"})
DAY_MS = 24 * 3600 * 1000
#: A storage id no upload URL was issued for.
NO_FILE = "kg_probeprobeprobe"


class Pick(Protocol):
    def __call__(self, kind: str) -> str: ...

    def text(self) -> str: ...

    def choice(self, options: tuple[str, ...]) -> str: ...


@attrs.frozen(kw_only=True)
class Probe:
    name: str
    scope: str
    build: Callable[[Pick], dict[str, Any]]
    #: Refusal codes accepted besides `REFUSALS`, each with the reason it tells nothing.
    also_refused_with: dict[str, str] = attrs.field(factory=dict)
    manager_cap: str | None = None

    def owned(self) -> frozenset[str]:
        """The kinds a call must take from the victim (at least one) to be foreign."""
        if self.scope == ORG:
            return ORG_KINDS
        if self.scope == USER:
            return USER_KINDS
        return ORG_KINDS | USER_KINDS


def _event_fields(p: Pick) -> dict[str, Any]:
    return {
        "name": f"Probe {p.text()}",
        "description": "",
        "location": "Somewhere",
        "eventDate": 1_800_000_000_000,
        "price": 1000,
        "totalTickets": 5,
    }


def _location_fields(p: Pick) -> dict[str, Any]:
    return {
        "name": f"Probe {p.text()}",
        "address": {"line1": "2 Probe Road", "city": "Leeds", "country": "GB"},
        "timezone": "UTC",
        "operatingHours": {"monday": {"open": "09:00", "close": "17:00"}},
        "settings": {},
    }


def _service_fields(p: Pick) -> dict[str, Any]:
    return {
        "name": f"Probe {p.text()}",
        "description": "",
        "duration": 30,
        "price": 1000,
        "isActive": True,
        "resources": ["room-9"],
    }


def _customer_fields(p: Pick) -> dict[str, Any]:
    tag = p.text()
    return {"firstName": "Probe", "email": f"{tag}@probe.example", "customerType": "new"}


def _soft(name: str) -> Probe:
    return Probe(
        name=name,
        scope=ORG,
        build=lambda p: {"customerId": p("customer"), "reason": "probe"},
    )


def _by_customer(name: str) -> Probe:
    return Probe(name=name, scope=ORG, build=lambda p: {"customerId": p("customer")})


def _activity(p: Pick) -> dict[str, Any]:
    kind = p.choice(("customer", "membership"))
    return {"entityType": kind, "entityId": p(kind), "limit": 10}


def _event_user(name: str, scope: str = USER, manager_cap: str | None = None) -> Probe:
    return Probe(
        name=name,
        scope=scope,
        build=lambda p: {"eventId": p("event"), "userId": p("user")},
        manager_cap=manager_cap,
    )


PROBES: dict[str, Probe] = {
    probe.name: probe
    for probe in (
        # -- ticketing: organization records -------------------------------------------------
        Probe(
            name="events:create",
            scope=ORG,
            build=lambda p: {**_event_fields(p), "orgId": p("org"), "locationId": p("location")},
        ),
        Probe(
            name="events:update",
            scope=ORG,
            build=lambda p: {
                "eventId": p("event"),
                "description": f"probe {p.text()}",
                "locationId": p("location"),
                "orgId": p("org"),
            },
            also_refused_with={
                "InvalidArgs": "an event cannot move to another organization (orgId); the "
                "refusal names the field, never the other organization's records"
            },
        ),
        Probe(name="events:cancelEvent", scope=ORG, build=lambda p: {"eventId": p("event")}),
        Probe(name="tickets:listForEvent", scope=ORG, build=lambda p: {"eventId": p("event")}),
        Probe(name="tickets:checkIn", scope=ORG, build=lambda p: {"ticketId": p("ticket")}),
        Probe(name="tickets:refund", scope=ORG, build=lambda p: {"ticketId": p("ticket")}),
        Probe(name="queue:callNext", scope=ORG, build=lambda p: {"eventId": p("event")}),
        _event_user("queue:complete", scope=ORG),
        Probe(name="queue:getEventQueue", scope=ORG, build=lambda p: {"eventId": p("event")}),
        # -- ticketing: public ---------------------------------------------------------------
        Probe(name="events:get", scope=PUBLIC, build=lambda p: {"eventId": p("event")}),
        Probe(name="events:list", scope=PUBLIC, build=lambda p: {}),
        Probe(
            name="events:getEventAvailability",
            scope=PUBLIC,
            build=lambda p: {"eventId": p("event")},
        ),
        # -- ticketing: a user's own --------------------------------------------------------
        _event_user("events:joinWaitingList"),
        Probe(
            name="events:purchaseTicket",
            scope=USER,
            build=lambda p: {
                "eventId": p("event"),
                "userId": p("user"),
                "waitingListId": p("waitingList"),
                "paymentInfo": {"paymentIntentId": p("paymentIntent"), "amount": 2500},
            },
            also_refused_with={
                "Conflict": "a payment already used for another user's ticket is refused "
                "without naming the ticket or its holder"
            },
        ),
        Probe(
            name="waitingList:releaseTicket",
            scope=USER,
            build=lambda p: {"eventId": p("event"), "waitingListId": p("waitingList")},
        ),
        _event_user("waitingList:getQueuePosition", manager_cap="events:manage"),
        _event_user("tickets:getUserTicketForEvent"),
        Probe(name="events:getUserTickets", scope=USER, build=lambda p: {"userId": p("user")}),
        _event_user("queue:joinQueue"),
        _event_user("queue:leaveQueue"),
        Probe(name="queue:getUserQueue", scope=USER, build=lambda p: {"userId": p("user")}),
        # -- notifications -------------------------------------------------------------------
        Probe(
            name="webhooks:emitWebhookEvent",
            scope=ADMIN,
            build=lambda p: {"type": "probe", "userId": p("user"), "data": {"probe": p.text()}},
        ),
        Probe(
            name="webhooks:getUserWebhookEvents",
            scope=USER,
            build=lambda p: {"userId": p("user"), "since": 0},
        ),
        # -- releases (the platform's deployments: no organization's records) ----------------
        Probe(
            name="releases:record",
            scope=ADMIN,
            build=lambda p: {
                "deploymentId": p.text(),
                "service": "web",
                "commit": "c0ffee",
                "status": "ready",
                "deployedAt": 0,
            },
        ),
        Probe(name="releases:list", scope=PUBLIC, build=lambda p: {}),
        Probe(name="scheduler:list", scope=ADMIN, build=lambda p: {}),
        # -- venue ---------------------------------------------------------------------------
        Probe(
            name="locations:create",
            scope=ORG,
            build=lambda p: {**_location_fields(p), "orgId": p("org")},
        ),
        Probe(
            name="locations:update",
            scope=ORG,
            build=lambda p: {"locationId": p("location"), "name": f"Probe {p.text()}"},
        ),
        Probe(name="locations:get", scope=ORG, build=lambda p: {"locationId": p("location")}),
        Probe(name="locations:list", scope=ORG, build=lambda p: {"orgId": p("org")}),
        Probe(
            name="services:create",
            scope=ORG,
            build=lambda p: {**_service_fields(p), "locationId": p("location")},
        ),
        Probe(
            name="services:update",
            scope=ORG,
            build=lambda p: {"serviceId": p("service"), "name": f"Probe {p.text()}"},
        ),
        Probe(name="services:list", scope=ORG, build=lambda p: {"locationId": p("location")}),
        Probe(
            name="orders:create",
            scope=ORG,
            build=lambda p: {
                "customerId": p("customer"),
                "locationId": p("location"),
                "type": "booking",
                "items": [{"serviceId": p("service"), "quantity": 1}],
                "scheduledAt": BOOKING_AT + DAY_MS,
                "notes": "probe",
            },
        ),
        Probe(
            name="orders:updateStatus",
            scope=ORG,
            build=lambda p: {"orderId": p("order"), "status": "confirmed"},
        ),
        Probe(
            name="orders:recordPayment",
            scope=ORG,
            build=lambda p: {"orderId": p("order"), "amount": 100},
        ),
        Probe(name="orders:sendReminder", scope=ADMIN, build=lambda p: {"orderId": p("order")}),
        _by_customer("orders:listByCustomer"),
        Probe(
            name="orders:listByLocation",
            scope=ORG,
            build=lambda p: {"locationId": p("location")},
        ),
        Probe(
            name="analytics:daily",
            scope=ORG,
            build=lambda p: {
                "locationId": p("location"),
                "metric": p.choice(("orders", "bookings", "revenue", "newCustomers")),
                "from": BOOKING_AT - 2 * DAY_MS,
                "to": BOOKING_AT + 2 * DAY_MS,
            },
        ),
        # -- customers -----------------------------------------------------------------------
        Probe(
            name="customers:create",
            scope=ORG,
            build=lambda p: {
                **_customer_fields(p),
                "orgId": p("org"),
                "locationId": p("location"),
            },
        ),
        Probe(
            name="customers:update",
            scope=ORG,
            build=lambda p: {
                "customerId": p("customer"),
                "notes": f"probe {p.text()}",
                "locationId": p("location"),
            },
        ),
        _by_customer("customers:get"),
        _by_customer("customers:exportData"),
        Probe(
            name="customers:list",
            scope=ORG,
            build=lambda p: {"orgId": p("org"), "locationId": p("location"), "limit": 50},
        ),
        Probe(name="customers:typeStatistics", scope=ORG, build=lambda p: {"orgId": p("org")}),
        _by_customer("customers:calculateCLV"),
        _soft("customers:delete"),
        _soft("customers:restore"),
        _soft("customers:suspend"),
        _soft("customers:archive"),
        _by_customer("customers:erase"),
        Probe(
            name="customers:uploadPhoto",
            scope=ORG,
            build=lambda p: {"customerId": p("customer"), "storageId": NO_FILE},
        ),
        Probe(
            name="memberships:enroll",
            scope=ORG,
            build=lambda p: {"customerId": p("customer"), "programId": "probe", "tier": "gold"},
        ),
        Probe(
            name="memberships:addPoints",
            scope=ORG,
            build=lambda p: {"membershipId": p("membership"), "points": 5},
        ),
        _by_customer("memberships:list"),
        Probe(name="activity:list", scope=ORG, build=_activity),
        # File storage: a storage id is a capability of its own (whoever holds it may read the
        # file, as in Convex); the probes name one never issued.
        Probe(name="storage:generateUploadUrl", scope=PUBLIC, build=lambda p: {}),
        Probe(name="storage:getUrl", scope=PUBLIC, build=lambda p: {"storageId": NO_FILE}),
        Probe(name="storage:getMetadata", scope=PUBLIC, build=lambda p: {"storageId": NO_FILE}),
        Probe(name="storage:delete", scope=PUBLIC, build=lambda p: {"storageId": NO_FILE}),
    )
}


def missing_probes(functions: Iterable[str]) -> list[str]:
    """The functions among `functions` that have no probe (so would go untried)."""
    return sorted(set(functions) - set(PROBES))


__all__ = [
    "ADMIN",
    "ORG",
    "ORG_KINDS",
    "PROBES",
    "PUBLIC",
    "REFUSALS",
    "USER",
    "USER_KINDS",
    "Pick",
    "Probe",
    "missing_probes",
]
