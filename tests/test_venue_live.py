"""The venue functions end to end in-process, through the `turnstile` pytest fixture: live
order listings and analytics, refusals that write nothing, restarts (with and without a
snapshot) that bring back every location, booking hold and read model, orders recorded on
their customers, and booking reminders sent by the cron job on the virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import trio
import trio.testing

from domain.errors import Conflict, Forbidden, NotFound
from domain.notifications import INBOX, inbox_id
from domain.scheduling import JOB, job_id
from domain.venue import REMINDER_TYPE
from engine import codec
from engine.scheduler import request_id
from engine.testing import EngineHarness, staff

ORG = "org_a"
MANAGER = staff("u_manager", ORG, "locations:manage", "orders:manage", "analytics:read")
CRM = staff("u_crm", ORG, "customers:read", "customers:write")
RIVAL = staff("u_rival", "org_b", "*")
ALICE = {"firstName": "Alice", "email": "alice@example.com", "phone": "+44 20 7946 0101"}
BOB = {"firstName": "Bob", "email": "bob@example.com", "phone": "+44 20 7946 0102"}
HOURS = {"open": "09:00", "close": "17:00"}
ALL_DAY = {"open": "00:00", "close": "24:00"}
WEEK = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTE = 60_000
HOUR = 60 * MINUTE


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


async def test_a_completed_order_reaches_its_customer_live_and_after_restart(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    location_id, massage, customer_id = await open_spa(t)
    order_id = await t.mutation(
        "orders:create", booking(location_id, massage, MONDAY_10, customer_id), MANAGER
    )
    # An order for a customer that does not exist writes nothing at all.
    seq = t.engine.committed_seq
    with pytest.raises(NotFound):
        await t.mutation(
            "orders:create", booking(location_id, massage, MONDAY_10, "cu_nobody01"), MANAGER
        )
    assert t.engine.committed_seq == seq
    await t.mutation("orders:updateStatus", {"orderId": order_id, "status": "confirmed"}, MANAGER)
    await t.advance(minutes=1)
    figures = ("clv", "avgOrderValue", "orderCount")
    async with t.engine.subscribe("customers:get", {"customerId": customer_id}, CRM) as live:
        ts, value = await live.__anext__()
        assert [value[f] for f in figures] == [0, 0, 0]
        done = await t.outcome(
            "orders:updateStatus", {"orderId": order_id, "status": "completed"}, MANAGER
        )
        ts, value = await live.__anext__()
        assert ts == done.ts  # the customer changed in the completion's own commit
        assert [value[f] for f in figures] == [5000, 5000, 1]
    exported = await t.query("customers:exportData", {"customerId": customer_id}, CRM)
    assert [(o["orderId"], o["status"]) for o in exported["orders"]] == [(order_id, "completed")]
    await t.restart()
    again = await t.query("customers:get", {"customerId": customer_id}, CRM)
    assert [again[f] for f in figures] == [5000, 5000, 1]
    assert await t.query("customers:exportData", {"customerId": customer_id}, CRM) == exported


# -- booking reminders ----------------------------------------------------------------------------


async def open_all_day(t: EngineHarness) -> tuple[str, str]:
    """A location open around the clock (UTC) and a 30-minute service needing no resource."""
    location_id = await t.mutation(
        "locations:create",
        {
            "name": "Night Owl Barbers",
            "address": {},
            "timezone": "UTC",
            "operatingHours": dict.fromkeys(WEEK, ALL_DAY),
            "settings": {},
        },
        MANAGER,
    )
    trim = await t.mutation(
        "services:create",
        {
            "locationId": location_id,
            "name": "Trim",
            "description": "",
            "duration": 30,
            "price": 1500,
            "isActive": True,
            "resources": [],
        },
        MANAGER,
    )
    return location_id, trim


async def book_at(
    t: EngineHarness, location_id: str, service_id: str, customer_id: str, at: int
) -> str:
    order_id = await t.mutation(
        "orders:create", booking(location_id, service_id, at, customer_id), MANAGER
    )
    assert isinstance(order_id, str)
    return order_id


def reminders_to(t: EngineHarness, user_id: str) -> list[str]:
    """The orders of every booking reminder that ever reached `user_id`'s inbox (from the
    journal: a notification itself leaves the inbox 24 hours after it arrived)."""
    rows = t.engine.journal.read_stream(INBOX.stream_of(inbox_id(user_id)))
    found = []
    for row in rows:
        if row.type == "NotificationAdded":
            payload = codec.loads(row.payload)
            assert payload["type"] == REMINDER_TYPE
            found.append(payload["data"]["orderId"])
    return found


async def reminded_at(t: EngineHarness, location_id: str) -> dict[str, int | None]:
    orders = await t.query("orders:listByLocation", {"locationId": location_id}, MANAGER)
    return {order["_id"]: order["remindedAt"] for order in orders}


def job_runs(t: EngineHarness) -> int:
    state = t.engine.committed_state(JOB, job_id("bookingReminders"))
    assert state.last_refusals == ()
    return int(state.runs)


async def test_each_booking_gets_one_reminder_once_it_is_within_24_hours(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    start = t.now_ms()  # Thursday 2026-01-01 00:00 UTC; the job ticks at :00, :15, :30, :45
    location_id, trim = await open_all_day(t)
    alice = await t.mutation("customers:create", {**ALICE, "userId": "user_alice"}, CRM)
    bob = await t.mutation("customers:create", BOB, CRM)  # no app user: his customer id's inbox
    soon = await book_at(t, location_id, trim, alice, start + 2 * HOUR)
    tomorrow = await book_at(t, location_id, trim, bob, start + 23 * HOUR)
    dropped = await book_at(t, location_id, trim, alice, start + 3 * HOUR)
    edge = await book_at(t, location_id, trim, bob, start + 24 * HOUR + 20 * MINUTE)
    ahead = await book_at(t, location_id, trim, alice, start + 48 * HOUR)  # two days ahead
    await t.mutation("orders:updateStatus", {"orderId": dropped, "status": "cancelled"}, MANAGER)

    await t.advance(minutes=15)  # 00:15: the bookings of the next 24 hours
    assert (reminders_to(t, "user_alice"), reminders_to(t, bob)) == ([soon], [tomorrow])
    assert reminders_to(t, alice) == []  # Alice is reached as her app user only
    marks = await reminded_at(t, location_id)
    assert marks[soon] == marks[tomorrow] == start + 15 * MINUTE
    await t.advance(minutes=15)  # 00:30: the edge booking is now 23 h 50 min ahead
    assert reminders_to(t, bob) == [tomorrow, edge]
    await t.advance(minutes=23 * 60 + 15)  # 23:45: the two-day booking is still beyond 24 h
    assert reminders_to(t, "user_alice") == [soon]
    await t.advance(minutes=15)  # Friday 00:00: now it is exactly 24 hours ahead
    assert reminders_to(t, "user_alice") == [soon, ahead]
    assert (await reminded_at(t, location_id))[ahead] == start + 24 * HOUR
    await t.advance(minutes=4 * 60)  # sixteen more ticks send nothing more
    assert reminders_to(t, "user_alice") == [soon, ahead]
    assert reminders_to(t, bob) == [tomorrow, edge]
    assert (await reminded_at(t, location_id))[dropped] is None
    assert job_runs(t) == 4 * 28
    # What Alice's app sees now: the earlier reminder has expired, the later one is live.
    alice_app = staff("user_alice", ORG)
    live = await t.query(
        "webhooks:getUserWebhookEvents", {"userId": "user_alice", "since": 0}, alice_app
    )
    assert [(n["type"], n["data"]["orderId"]) for n in live] == [(REMINDER_TYPE, ahead)]


async def test_reminders_due_while_the_server_was_down_go_once_on_start(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    start = t.now_ms()
    location_id, trim = await open_all_day(t)
    alice = await t.mutation("customers:create", ALICE, CRM)
    bob = await t.mutation("customers:create", BOB, CRM)
    first = await book_at(t, location_id, trim, alice, start + 5 * HOUR)
    second = await book_at(t, location_id, trim, bob, start + 30 * HOUR)
    await t.advance(minutes=10)  # before the first tick
    await t.stop()
    await trio.sleep(3 * 60 * 60)  # down from 00:10 to 03:10: twelve ticks missed
    await t.start()
    await t.settle()
    assert (reminders_to(t, alice), reminders_to(t, bob)) == ([first], [])
    assert (await reminded_at(t, location_id))[first] == start + 3 * HOUR + 10 * MINUTE
    assert job_runs(t) == 1  # once on start, not once per missed tick
    await t.restart()
    await t.advance(minutes=3 * 60)  # to 06:10; the 06:00 tick finds the second within 24 h
    assert (reminders_to(t, alice), reminders_to(t, bob)) == ([first], [second])
    assert (await reminded_at(t, location_id))[second] == start + 6 * HOUR


async def test_a_tick_rerun_after_a_crash_sends_no_reminder_twice(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """The tick's reminder is acknowledged but the job's `JobRan` never lands (as if the
    process died between them): the overdue tick runs again on start and sends nothing
    twice."""
    t = turnstile
    location_id, trim = await open_all_day(t)
    alice = await t.mutation("customers:create", ALICE, CRM)
    order_id = await book_at(t, location_id, trim, alice, t.now_ms() + 2 * HOUR)
    tick = t.engine.committed_state(JOB, job_id("bookingReminders")).next_due
    await t.mutation(
        "orders:sendReminder",
        {"orderId": order_id},
        session_id="job:bookingReminders",
        request_id=request_id(tick, order_id),
    )
    await t.stop()
    await trio.sleep((tick - t.now_ms()) / 1000 + 60)  # the tick falls due while down
    await t.start()
    await t.settle()
    assert t.engine.committed_state(JOB, job_id("bookingReminders")).last_tick == tick
    assert reminders_to(t, alice) == [order_id]


async def test_only_the_system_sends_a_reminder_and_a_second_call_writes_nothing(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    location_id, trim = await open_all_day(t)
    alice = await t.mutation("customers:create", ALICE, CRM)
    order_id = await book_at(t, location_id, trim, alice, t.now_ms() + 2 * HOUR)
    for caller in (MANAGER, staff("u_owner", ORG, "*")):
        with pytest.raises(Forbidden):
            await t.mutation("orders:sendReminder", {"orderId": order_id}, caller)
    assert reminders_to(t, alice) == []
    first = await t.outcome("orders:sendReminder", {"orderId": order_id}, t.admin)
    assert isinstance(first.value, str)
    again = await t.outcome("orders:sendReminder", {"orderId": order_id}, t.admin)
    assert again.value is None
    assert t.engine.journal.last_seq() == first.ts
    assert reminders_to(t, alice) == [order_id]
