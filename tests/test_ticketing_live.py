"""Ticketing end to end in-process, through the `turnstile` pytest fixture that app teams use:
durable timers, rate limits, live queries and restarts, all in virtual time."""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing

from domain.errors import Conflict, Forbidden, RateLimited
from domain.identity import Identity
from engine.testing import EngineHarness, user

MINUTE = 60_000
ORGANIZER = Identity(subject="u_org", org_id="org_a", caps=frozenset({"events:manage"}))


async def create_event(t: EngineHarness, total: int = 1) -> str:
    event_id = await t.mutation(
        "events:create",
        {
            "name": "Concert",
            "description": "Live",
            "location": "Hall",
            "eventDate": t.now_ms() + 7 * 24 * 60 * MINUTE,
            "price": 2500,
            "totalTickets": total,
        },
        ORGANIZER,
    )
    assert isinstance(event_id, str)
    return event_id


async def join(t: EngineHarness, event_id: str, who: str) -> dict[str, Any]:
    reply = await t.mutation(
        "events:joinWaitingList", {"eventId": event_id, "userId": who}, user(who)
    )
    assert isinstance(reply, dict)
    return reply


async def position(t: EngineHarness, event_id: str, who: str) -> dict[str, Any] | None:
    found = await t.query(
        "waitingList:getQueuePosition", {"eventId": event_id, "userId": who}, user(who)
    )
    return found  # type: ignore[no-any-return]


async def test_offer_expires_exactly_30_minutes_later_across_restart(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    event_id = await create_event(t, total=1)
    first = await join(t, event_id, "ann")
    offered_at = t.now_ms()
    assert first["status"] == "offered"
    assert (await join(t, event_id, "bob"))["status"] == "waiting"
    await t.advance(minutes=20)
    await t.restart()
    await t.advance(minutes=9, seconds=59)
    assert (await position(t, event_id, "ann"))["status"] == "offered"  # type: ignore[index]
    assert (await position(t, event_id, "bob"))["status"] == "waiting"  # type: ignore[index]
    await t.advance(seconds=1)
    assert t.now_ms() - offered_at == 30 * MINUTE
    assert await position(t, event_id, "ann") is None  # expired entries are not shown
    bob = await position(t, event_id, "bob")
    assert bob is not None and bob["status"] == "offered"
    assert bob["offerExpiresAt"] == t.now_ms() + 30 * MINUTE


async def test_overdue_offer_expires_on_recovery(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    event_id = await create_event(t, total=1)
    await join(t, event_id, "ann")
    await join(t, event_id, "bob")
    await t.stop()
    await trio.sleep(45 * 60)  # the server is down when the offer falls due
    await t.start()
    await t.settle()
    assert await position(t, event_id, "ann") is None
    assert (await position(t, event_id, "bob"))["status"] == "offered"  # type: ignore[index]


async def test_join_rate_limit_is_durable_and_per_user(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    events = [await create_event(t, total=5) for _ in range(5)]
    for event_id in events[:3]:
        await join(t, event_id, "ann")
    await t.restart()
    with pytest.raises(RateLimited) as limited:
        await join(t, events[3], "ann")
    retry_after = limited.value.data()["retryAfter"]
    assert 0 < retry_after <= 30 * MINUTE
    # Someone else's attempts for ann are refused before they could spend ann's quota...
    with pytest.raises(Forbidden):
        await t.mutation(
            "events:joinWaitingList", {"eventId": events[4], "userId": "ann"}, user("mallory")
        )
    # ...and other users are not affected.
    assert (await join(t, events[3], "bob"))["status"] == "offered"
    await t.advance(seconds=retry_after / 1000)
    assert (await join(t, events[3], "ann"))["status"] == "offered"


async def test_availability_subscription_follows_every_change(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    event_id = await create_event(t, total=2)
    async with t.engine.subscribe("events:getEventAvailability", {"eventId": event_id}) as live:
        ts, value = await live.__anext__()
        assert value["remainingTickets"] == 2
        joined = await t.outcome(
            "events:joinWaitingList", {"eventId": event_id, "userId": "ann"}, user("ann")
        )
        ts, value = await live.__anext__()
        assert ts == joined.ts
        assert (value["remainingTickets"], value["activeOffers"]) == (1, 1)
        offer = joined.value["waitingListId"]
        await t.mutation(
            "events:purchaseTicket",
            {
                "eventId": event_id,
                "userId": "ann",
                "waitingListId": offer,
                "paymentInfo": {"paymentIntentId": "pi_1", "amount": 2500},
            },
            user("ann"),
        )
        ts, value = await live.__anext__()
        assert (value["purchasedCount"], value["activeOffers"], value["remainingTickets"]) == (
            1,
            0,
            1,
        )
    tickets = await t.query("events:getUserTickets", {"userId": "ann"}, user("ann"))
    assert [ticket["status"] for ticket in tickets] == ["valid"]


async def test_refused_joins_spend_no_rate_limit(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    cancelled = await create_event(t)
    await t.mutation("events:cancelEvent", {"eventId": cancelled}, ORGANIZER)
    seq = t.engine.committed_seq
    for _ in range(5):
        with pytest.raises(Conflict):
            await join(t, cancelled, "ann")
    assert t.engine.committed_seq == seq  # nothing written, not even a rate-limit take
    open_events = [await create_event(t) for _ in range(3)]
    for event_id in open_events:
        assert (await join(t, event_id, "ann"))["status"] == "offered"


async def test_a_purchase_reaches_the_buyers_customer_timeline_once(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """A buyer who is a customer of the event's organization (by `userId`) gets the ticket on
    their timeline in the purchase's own commit; a buyer who is no customer there does not."""
    t = turnstile
    crm = Identity(
        subject="u_crm", org_id="org_a", caps=frozenset({"customers:read", "customers:write"})
    )
    customer = await t.mutation(
        "customers:create",
        {"firstName": "Ann", "email": "ann@example.com", "userId": "ann", "customerType": "new"},
        crm,
    )
    event_id = await create_event(t, total=2)
    for who in ("ann", "bob"):
        joined = await join(t, event_id, who)
        await t.mutation(
            "events:purchaseTicket",
            {
                "eventId": event_id,
                "userId": who,
                "waitingListId": joined["waitingListId"],
                "paymentInfo": {"paymentIntentId": f"pi_{who}", "amount": 2500},
            },
            user(who),
        )
    # The same payment again returns the same ticket and records nothing new.
    again = await t.mutation(
        "events:purchaseTicket",
        {
            "eventId": event_id,
            "userId": "ann",
            "waitingListId": "wl_x_0",
            "paymentInfo": {"paymentIntentId": "pi_ann", "amount": 2500},
        },
        user("ann"),
    )
    assert again.startswith("tk_")
    timeline = await t.query("activity:list", {"entityType": "customer", "entityId": customer}, crm)
    purchases = [entry for entry in timeline if "ticket" in entry["action"]]
    assert len(purchases) == 1
    exported = await t.query("customers:exportData", {"customerId": customer}, crm)
    assert [p["eventId"] for p in exported["ticketPurchases"]] == [event_id]
