"""The venue functions end to end in-process, through the `turnstile` pytest fixture: live
order listings and analytics, refusals that write nothing, restarts (with and without a
snapshot) that bring back every location, booking hold and read model, orders recorded on
their customers, and booking reminders sent by the cron job on the virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import trio.testing

from domain.errors import Conflict, NotFound
from engine.testing import EngineHarness, staff

ORG = "org_a"
MANAGER = staff("u_manager", ORG, "locations:manage", "orders:manage", "analytics:read")
CRM = staff("u_crm", ORG, "customers:read", "customers:write")
RIVAL = staff("u_rival", "org_b", "*")
ALICE = {"firstName": "Alice", "email": "alice@example.com", "phone": "+44 20 7946 0101"}
HOURS = {"open": "09:00", "close": "17:00"}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


MONDAY = utc(2026, 1, 5)
MONDAY_10 = utc(2026, 1, 5, 10)


async def open_spa(t: EngineHarness) -> tuple[str, str, str]:
    """A location open Monday and Tuesday 09:00-17:00, its massage (room1) and a customer."""
    location_id = await t.mutation(
        "locations:create",
        {
            "name": "Soho Spa",
            "address": {"city": "London"},
            "timezone": "Europe/London",
            "operatingHours": {"monday": HOURS, "tuesday": HOURS},
            "settings": {},
        },
        MANAGER,
    )
    massage = await t.mutation(
        "services:create",
        {
            "locationId": location_id,
            "name": "Massage",
            "description": "",
            "duration": 60,
            "price": 5000,
            "isActive": True,
            "resources": ["room1"],
        },
        MANAGER,
    )
    customer_id = await t.mutation("customers:create", ALICE, CRM)
    return location_id, massage, customer_id


def booking(location_id: str, service_id: str, at: int, customer_id: str) -> dict[str, Any]:
    return {
        "customerId": customer_id,
        "locationId": location_id,
        "type": "booking",
        "items": [{"serviceId": service_id, "quantity": 1}],
        "scheduledAt": at,
    }


async def everything(t: EngineHarness, location_id: str, customer_id: str) -> dict[str, Any]:
    """Every venue read of the location, and its customer, as the staff see them."""
    analytics = {
        metric: await t.query(
            "analytics:daily",
            {
                "locationId": location_id,
                "metric": metric,
                "from": MONDAY - 5 * 86_400_000,
                "to": MONDAY,
            },
            MANAGER,
        )
        for metric in ("orders", "bookings", "revenue")
    }
    return {
        "location": await t.query("locations:get", {"locationId": location_id}, MANAGER),
        "locations": await t.query("locations:list", {}, MANAGER),
        "services": await t.query("services:list", {"locationId": location_id}, MANAGER),
        "orders": await t.query("orders:listByLocation", {"locationId": location_id}, MANAGER),
        "customerOrders": await t.query(
            "orders:listByCustomer", {"customerId": customer_id}, MANAGER
        ),
        "customer": await t.query("customers:get", {"customerId": customer_id}, CRM),
        "analytics": analytics,
    }


async def test_bookings_live_listing_refusals_and_restarts(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    location_id, massage, customer_id = await open_spa(t)
    monday = {"locationId": location_id, "from": MONDAY, "to": MONDAY + 86_400_000 - 1}
    async with t.engine.subscribe("orders:listByLocation", monday, MANAGER) as live:
        ts, value = await live.__anext__()
        assert value == []
        first = await t.outcome(
            "orders:create", booking(location_id, massage, MONDAY_10, customer_id), MANAGER
        )
        ts, value = await live.__anext__()
        assert ts == first.ts
        assert [(o["_id"], o["status"], o["endsAt"]) for o in value] == [
            (first.value, "pending", MONDAY_10 + 3_600_000)
        ]

        # A clash is refused and writes nothing at all.
        seq = t.engine.committed_seq
        with pytest.raises(Conflict) as clash:
            await t.mutation(
                "orders:create",
                booking(location_id, massage, MONDAY_10 + 1_800_000, customer_id),
                MANAGER,
            )
        assert clash.value.data()["orderId"] == first.value
        assert t.engine.committed_seq == seq

        # An order listed on another day leaves the subscription's result as it was: the next
        # value delivered is the second Monday booking's.
        await t.mutation(
            "orders:create",
            {
                "customerId": customer_id,
                "locationId": location_id,
                "type": "purchase",
                "items": [{"name": "Oil", "quantity": 1, "price": 900}],
            },
            MANAGER,
        )
        second = await t.outcome(
            "orders:create",
            booking(location_id, massage, MONDAY_10 + 3_600_000, customer_id),
            MANAGER,
        )
        ts, value = await live.__anext__()
        assert ts == second.ts
        assert [o["_id"] for o in value] == [first.value, second.value]

        confirmed = await t.outcome(
            "orders:updateStatus", {"orderId": first.value, "status": "confirmed"}, MANAGER
        )
        ts, value = await live.__anext__()
        assert (ts, value[0]["status"]) == (confirmed.ts, "confirmed")

    await t.mutation(
        "orders:updateStatus", {"orderId": second.value, "status": "cancelled"}, MANAGER
    )
    paid = await t.mutation(
        "orders:recordPayment", {"orderId": first.value, "amount": 2000}, MANAGER
    )
    assert paid == 2000
    before = await everything(t, location_id, customer_id)
    assert [o["status"] for o in before["orders"]] == ["pending", "confirmed", "cancelled"]
    assert sum(point["value"] for point in before["analytics"]["orders"]) == 3

    await t.restart()
    assert await everything(t, location_id, customer_id) == before
    # The booking index came back: the hold of the first booking stands, the cancelled
    # second one's is free, and numbering goes on.
    with pytest.raises(Conflict):
        await t.mutation(
            "orders:create", booking(location_id, massage, MONDAY_10, customer_id), MANAGER
        )
    third = await t.mutation(
        "orders:create", booking(location_id, massage, MONDAY_10 + 3_600_000, customer_id), MANAGER
    )
    assert third.endswith("_3")

    await t.engine.snapshot_now()
    await t.mutation("orders:updateStatus", {"orderId": third, "status": "confirmed"}, MANAGER)
    after_snapshot = await everything(t, location_id, customer_id)
    await t.restart()
    assert await everything(t, location_id, customer_id) == after_snapshot
    with pytest.raises(NotFound):
        await t.query("orders:listByLocation", {"locationId": location_id}, RIVAL)
    assert await t.query("orders:listByCustomer", {"customerId": customer_id}, RIVAL) == []


async def test_revenue_and_ticket_sales_update_live(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    location_id, massage, customer_id = await open_spa(t)
    order_id = await t.mutation(
        "orders:create", booking(location_id, massage, MONDAY_10, customer_id), MANAGER
    )
    await t.mutation("orders:updateStatus", {"orderId": order_id, "status": "confirmed"}, MANAGER)
    today = {"locationId": location_id, "from": t.now_ms(), "to": t.now_ms()}
    async with t.engine.subscribe(
        "analytics:daily", {**today, "metric": "revenue"}, MANAGER
    ) as live:
        ts, value = await live.__anext__()
        assert value == [{"date": "2026-01-01", "value": 0, "dimensions": {}}]
        done = await t.outcome(
            "orders:updateStatus", {"orderId": order_id, "status": "completed"}, MANAGER
        )
        ts, value = await live.__anext__()
        assert ts == done.ts
        assert value == [
            {"date": "2026-01-01", "value": 5000, "dimensions": {"type": {"booking": 5000}}}
        ]

    organizer = staff("u_org", ORG, "events:manage")
    event_id = await t.mutation(
        "events:create",
        {
            "name": "Open day",
            "description": "",
            "location": "Soho Spa",
            "eventDate": MONDAY,
            "price": 0,
            "totalTickets": 5,
            "locationId": location_id,
        },
        organizer,
    )
    async with t.engine.subscribe(
        "analytics:daily", {**today, "metric": "ticketsSold"}, MANAGER
    ) as live:
        ts, value = await live.__anext__()
        assert value[0]["value"] == 0
        ann = staff("ann", ORG)
        offer = await t.mutation(
            "events:joinWaitingList", {"eventId": event_id, "userId": "ann"}, ann
        )
        bought = await t.outcome(
            "events:purchaseTicket",
            {
                "eventId": event_id,
                "userId": "ann",
                "waitingListId": offer["waitingListId"],
                "paymentInfo": {"paymentIntentId": "pi_ann", "amount": 0},
            },
            ann,
        )
        ts, value = await live.__anext__()
        assert ts == bought.ts
        assert value == [
            {"date": "2026-01-01", "value": 1, "dimensions": {"eventId": {event_id: 1}}}
        ]
    await t.restart()
    series = await t.query("analytics:daily", {**today, "metric": "ticketsSold"}, MANAGER)
    assert series[0]["value"] == 1
