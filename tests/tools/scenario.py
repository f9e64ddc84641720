"""A data dir written by the real engine (ticketing), with what its queries answered at one
journal position, for the replay tool's tests to check, damage and recover.

Timeline (virtual time, from the harness's epoch):
- t0: two events (A: 2 seats, B: 1), four joins on A (two offers, two waiting), ann buys on A;
  this is `cut_seq`, where every query in `QUERIES` is recorded;
- t0 + 10 min: bob gives his offer back (cat is offered), ann and bob join B;
- t0 + 41 min: the offers of cat (A) and ann (B) expire, dan and bob are offered;
  a snapshot is written here (`snapshot_seq`);
- t0 + 42 min: dan buys on A, bob buys on B, the organizer refunds ann's ticket (`end_seq`).
Several mutations carry a session and request id, so the journal holds idempotency records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from domain.identity import Identity
from engine.testing import EngineHarness, open_harness, user

MINUTE = 60_000
ORGANIZER = Identity(
    subject="u_org", org_id="org_a", caps=frozenset({"events:manage", "tickets:checkin"})
)
USERS = ("ann", "bob", "cat", "dan")


@attrs.frozen(kw_only=True)
class Reference:
    data_dir: Path
    event_a: str
    event_b: str
    cut_seq: int
    #: A time strictly between the decision of row `cut_seq` and the next row's.
    between_ms: int
    #: (function, args, caller) -> value, all read at `cut_seq`.
    answers_at_cut: list[tuple[str, dict[str, Any], Identity, Any]]
    snapshot_seq: int
    end_seq: int
    requests_at_cut: int
    requests_total: int


def queries(event_a: str, event_b: str) -> list[tuple[str, dict[str, Any], Identity]]:
    asked: list[tuple[str, dict[str, Any], Identity]] = [("events:list", {}, ORGANIZER)]
    for event_id in (event_a, event_b):
        asked.append(("events:get", {"eventId": event_id}, ORGANIZER))
        asked.append(("events:getEventAvailability", {"eventId": event_id}, ORGANIZER))
        asked.append(("tickets:listForEvent", {"eventId": event_id}, ORGANIZER))
        for who in USERS:
            args = {"eventId": event_id, "userId": who}
            asked.append(("waitingList:getQueuePosition", args, user(who)))
    for who in USERS:
        asked.append(("events:getUserTickets", {"userId": who}, user(who)))
    return asked


async def answers(
    t: EngineHarness, asked: list[tuple[str, dict[str, Any], Identity]]
) -> list[tuple[str, dict[str, Any], Identity, Any]]:
    return [(name, args, caller, await t.query(name, args, caller)) for name, args, caller in asked]


async def _create(t: EngineHarness, name: str, seats: int) -> str:
    event_id = await t.mutation(
        "events:create",
        {
            "name": name,
            "description": "Live",
            "location": "Hall",
            "eventDate": t.now_ms() + 7 * 24 * 60 * MINUTE,
            "price": 2500,
            "totalTickets": seats,
        },
        ORGANIZER,
    )
    assert isinstance(event_id, str)
    return event_id


async def _join(t: EngineHarness, event_id: str, who: str) -> dict[str, Any]:
    reply = await t.mutation(
        "events:joinWaitingList", {"eventId": event_id, "userId": who}, user(who)
    )
    assert isinstance(reply, dict)
    return reply


async def _buy(t: EngineHarness, event_id: str, who: str, offer: str, request: int) -> str:
    ticket = await t.mutation(
        "events:purchaseTicket",
        {
            "eventId": event_id,
            "userId": who,
            "waitingListId": offer,
            "paymentInfo": {"paymentIntentId": f"pi_{who}_{event_id}", "amount": 2500},
        },
        user(who),
        session_id=f"session-{who}",
        request_id=request,
    )
    assert isinstance(ticket, str)
    return ticket


async def _offer_of(t: EngineHarness, event_id: str, who: str) -> str:
    entry = await t.query(
        "waitingList:getQueuePosition", {"eventId": event_id, "userId": who}, user(who)
    )
    assert entry is not None and entry["status"] == "offered", entry
    return str(entry["_id"])


async def build(data_dir: Path) -> Reference:
    async with open_harness(data_dir) as t:
        a = await _create(t, "Concert A", 2)
        b = await _create(t, "Concert B", 1)
        joined = {who: await _join(t, a, who) for who in USERS}
        ann_ticket = await _buy(t, a, "ann", joined["ann"]["waitingListId"], 1)
        cut_seq = t.engine.committed_seq
        cut_at = t.now_ms()
        answers_at_cut = await answers(t, queries(a, b))

        await t.advance(minutes=10)
        await t.mutation(
            "waitingList:releaseTicket",
            {"eventId": a, "waitingListId": joined["bob"]["waitingListId"]},
            user("bob"),
            session_id="session-bob",
            request_id=1,
        )
        await _join(t, b, "ann")
        await _join(t, b, "bob")

        await t.advance(minutes=31)
        info = await t.engine.snapshot_now()
        assert info is not None
        snapshot_seq = info.seq

        await t.advance(minutes=1)
        await _buy(t, a, "dan", await _offer_of(t, a, "dan"), 1)
        await _buy(t, b, "bob", await _offer_of(t, b, "bob"), 2)
        await t.mutation("tickets:refund", {"ticketId": ann_ticket}, ORGANIZER)
        end_seq = t.engine.committed_seq
    assert cut_seq < snapshot_seq < end_seq
    return Reference(
        data_dir=data_dir,
        event_a=a,
        event_b=b,
        cut_seq=cut_seq,
        between_ms=cut_at + 5 * MINUTE,
        answers_at_cut=answers_at_cut,
        snapshot_seq=snapshot_seq,
        end_seq=end_seq,
        requests_at_cut=1,
        requests_total=4,
    )


def build_reference(data_dir: Path) -> Reference:
    """Run the scenario in virtual time (outside any test's event loop)."""
    return trio.run(build, data_dir, clock=trio.testing.MockClock(autojump_threshold=0))
