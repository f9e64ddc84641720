"""The parties of the isolation test and a record of every kind for each of them.

`build_world(engine, orgs)` creates, as the admin and as the buyers themselves, for each
organization: a location with a service, customers (organization `i` has `i + 1`, so their
statistics tell the organizations apart), a membership, a booking, an event, and two ticket
buyers (no organization: they buy from anyone) of whom the first holds a ticket and the second
a live offer; both stand in the event's live queue and have a notification.

Every party has its *secrets*: each id and each marker string (`secret-<org>`, in names and
notes) of its records. A party's secret that shows up in an answer to somebody else is a leak.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from domain.identity import ADMIN, ANONYMOUS, Identity
from domain.notifications import inbox_id
from engine import Engine

#: 2026-01-02T10:00:00Z: a Friday morning inside the locations' hours (the engine's test
#: epoch is 2026-01-01T00:00Z), when each organization's booking is.
BOOKING_AT = 1_767_348_000_000
EVENT_DATE = 1_800_000_000_000
WEEK = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: Staff roles, each organization has one of each.
ROLES: dict[str, tuple[str, ...]] = {
    "boss": ("*",),
    "ops": ("events:manage", "queue:manage", "tickets:checkin", "locations:manage",
            "orders:manage"),
    "crm": ("customers:read", "customers:write", "customers:erase", "analytics:read"),
}  # fmt: skip


@attrs.frozen(kw_only=True)
class Buyer:
    """A ticket buyer and their records in one organization's event."""

    user_id: str
    org_id: str
    event_id: str
    waiting_list_id: str
    #: The buyer's ticket (the first buyer's; the second holds a live offer instead).
    ticket_id: str | None
    #: The payment of the buyer's ticket (the second buyer's: the one they are about to make).
    payment_intent_id: str
    queue_entry_id: str
    notification_id: str

    @property
    def identity(self) -> Identity:
        return Identity(subject=self.user_id)

    @property
    def event_records(self) -> frozenset[str]:
        """What the event's organization legitimately sees of the buyer (its ticket list)."""
        found = {self.user_id, self.waiting_list_id, self.payment_intent_id, self.queue_entry_id}
        if self.ticket_id is not None:
            found.add(self.ticket_id)
        return frozenset(found)

    @property
    def secrets(self) -> frozenset[str]:
        """Everything of the buyer's: their records in the event, their inbox."""
        inbox = {self.notification_id, inbox_id(self.user_id), f"secret-{self.user_id}"}
        return self.event_records | inbox


@attrs.frozen(kw_only=True)
class Org:
    org_id: str
    index: int
    event_id: str
    location_id: str
    service_id: str
    customer_id: str
    membership_id: str
    order_id: str
    ticket_id: str
    buyers: tuple[Buyer, ...]
    #: Every id and marker of the organization's own records (its buyers' are theirs).
    private: frozenset[str]

    @property
    def public(self) -> frozenset[str]:
        """What anyone may read: the event (`events:get`), which names its organization and
        its location."""
        return frozenset({self.org_id, self.event_id, self.location_id})

    @property
    def secrets(self) -> frozenset[str]:
        """What nobody outside the organization may learn: its records, and what its buyers
        hold in its event."""
        return self.private.union(*(b.event_records for b in self.buyers))

    def staff(self) -> dict[str, Identity]:
        return {
            role: Identity(subject=f"staff-{self.org_id}-{role}", org_id=self.org_id,
                           caps=frozenset(caps))
            for role, caps in ROLES.items()
        }  # fmt: skip


@attrs.frozen(kw_only=True)
class Party:
    """One caller of the test: `label` names it in reports; `home` is the organization whose
    records it may use as its own (staff: theirs; a buyer: the one they buy from; anonymous:
    none); `buyer` is the caller's own buyer record, if it is one."""

    label: str
    identity: Identity
    home: Org | None
    buyer: Buyer | None = None

    @property
    def claims(self) -> dict[str, Any]:
        """The JWT claims that give this identity (for the HTTP sample)."""
        identity = self.identity
        claims: dict[str, Any] = {"sub": identity.subject}
        if identity.org_id is not None:
            claims["org"] = identity.org_id
        claims["caps"] = sorted(identity.caps)
        return claims


@attrs.frozen(kw_only=True)
class World:
    orgs: tuple[Org, ...]

    def parties(self) -> list[Party]:
        found = [Party(label="anonymous", identity=ANONYMOUS, home=None)]
        for org in self.orgs:
            for role, identity in org.staff().items():
                found.append(Party(label=f"{org.org_id}/{role}", identity=identity, home=org))
            for buyer in org.buyers:
                found.append(
                    Party(label=buyer.user_id, identity=buyer.identity, home=org, buyer=buyer)
                )
        return found

    def buyers(self) -> Iterator[Buyer]:
        for org in self.orgs:
            yield from org.buyers


def org_name(index: int) -> str:
    return f"org_iso_{chr(ord('a') + index)}"


async def build_world(engine: Engine, orgs: int) -> World:
    """Create the records of `orgs` organizations through `engine` (see the module doc)."""
    return World(orgs=tuple([await _build_org(engine, index) for index in range(orgs)]))


async def _build_org(engine: Engine, index: int) -> Org:
    org_id = org_name(index)
    marker = f"secret-{org_id}"

    async def run(name: str, args: dict[str, Any], identity: Identity = ADMIN) -> Any:
        return (await engine.mutation(name, args, identity)).value

    location_id = await run(
        "locations:create",
        {
            "name": f"Hall {marker}",
            "address": {"line1": f"1 {marker} Street", "city": "London", "country": "GB"},
            "timezone": "UTC",
            "operatingHours": {day: {"open": "08:00", "close": "20:00"} for day in WEEK},
            "settings": {},
            "orgId": org_id,
        },
    )
    service_id = await run(
        "services:create",
        {
            "locationId": location_id,
            "name": f"Massage {marker}",
            "description": marker,
            "duration": 30,
            "price": 4000,
            "isActive": True,
            "resources": ["room-1"],
        },
    )
    customers = []
    for n in range(index + 1):
        customers.append(
            await run(
                "customers:create",
                {
                    "firstName": "Ada",
                    "lastName": f"{marker}-{n}",
                    "email": f"ada{n}.{org_id}@example.com",
                    "phone": f"+44 20 7946 {index:02d}{n:02d}",
                    "notes": marker,
                    "lifecycle": "active",
                    "locationId": location_id,
                    "orgId": org_id,
                },
            )
        )
    customer_id = customers[0]
    membership_id = await run(
        "memberships:enroll", {"customerId": customer_id, "programId": marker, "tier": "gold"}
    )
    order_id = await run(
        "orders:create",
        {
            "customerId": customer_id,
            "locationId": location_id,
            "type": "booking",
            "items": [{"serviceId": service_id, "quantity": 1}],
            "scheduledAt": BOOKING_AT,
            "notes": marker,
        },
    )
    event_id = await run(
        "events:create",
        {
            "name": f"Concert of {org_id}",
            "description": "Public details.",
            "location": "The Hall",
            "eventDate": EVENT_DATE,
            "price": 2500,
            "totalTickets": 10,
            "locationId": location_id,
            "orgId": org_id,
        },
    )
    buyers = []
    for n in (1, 2):
        user_id = f"buyer-{org_id}-{n}"
        me = Identity(subject=user_id)
        joined = await run("events:joinWaitingList", {"eventId": event_id, "userId": user_id}, me)
        # The second buyer has not paid yet: theirs is the payment they are about to make.
        payment_intent_id = f"pi_{org_id}_{n}"
        ticket_id = None
        if n == 1:
            ticket_id = await run(
                "events:purchaseTicket",
                {
                    "eventId": event_id,
                    "userId": user_id,
                    "waitingListId": joined["waitingListId"],
                    "paymentInfo": {"paymentIntentId": payment_intent_id, "amount": 2500},
                },
                me,
            )
        await run("queue:joinQueue", {"eventId": event_id, "userId": user_id}, me)
        queued = (await engine.query("queue:getUserQueue", {"userId": user_id}, me)).value
        notification_id = await run(
            "webhooks:emitWebhookEvent",
            {"type": "ticket.reminder", "userId": user_id, "data": {"note": f"secret-{user_id}"}},
        )
        buyers.append(
            Buyer(
                user_id=user_id,
                org_id=org_id,
                event_id=event_id,
                waiting_list_id=joined["waitingListId"],
                ticket_id=ticket_id,
                payment_intent_id=payment_intent_id,
                queue_entry_id=queued[0]["_id"],
                notification_id=notification_id,
            )
        )
    assert buyers[0].ticket_id is not None
    private = {
        org_id, marker, event_id, location_id, service_id, membership_id, order_id, *customers,
        *(f"ada{n}.{org_id}@example.com" for n in range(index + 1)),
    }  # fmt: skip
    return Org(
        org_id=org_id,
        index=index,
        event_id=event_id,
        location_id=location_id,
        service_id=service_id,
        customer_id=customer_id,
        membership_id=membership_id,
        order_id=order_id,
        ticket_id=buyers[0].ticket_id,
        buyers=tuple(buyers),
        private=frozenset(private),
    )


__all__ = ["BOOKING_AT", "ROLES", "Buyer", "Org", "Party", "World", "build_world", "org_name"]
