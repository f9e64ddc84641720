"""Customers end to end in-process, through the `turnstile` pytest fixture: racing creates,
list paging and search, restarts (journal replay and snapshot) and live lists, in virtual
time."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from domain.customers import CLAIM, CUSTOMER, claim_id
from domain.errors import Conflict
from domain.identity import Identity
from engine.testing import EngineHarness

ORG = "org_a"
STAFF = Identity(
    subject="u_staff", org_id=ORG, caps=frozenset({"customers:read", "customers:write"})
)
RIVAL = Identity(subject="u_rival", org_id="org_b", caps=frozenset({"*"}))


def person(n: int, first: str = "Ann", **extra: Any) -> dict[str, Any]:
    return {
        "firstName": first,
        "lastName": f"Nr{n}",
        "email": f"{first.lower()}{n}@example.com",
        "phone": f"+44 20 7946 {n:04d}",
        **extra,
    }


async def create(t: EngineHarness, args: dict[str, Any], caller: Identity = STAFF) -> str:
    customer_id = await t.mutation("customers:create", args, caller)
    assert isinstance(customer_id, str)
    return customer_id


async def everything(t: EngineHarness, customer_ids: list[str]) -> list[Any]:
    """What clients can read about these customers and the organization."""
    out: list[Any] = [
        await t.query("customers:list", {"limit": 1000}, STAFF),
        await t.query("customers:typeStatistics", {}, STAFF),
        await t.query("customers:list", {"search": "nr1"}, STAFF),
    ]
    for customer_id in customer_ids:
        out.append(await t.query("customers:exportData", {"customerId": customer_id}, STAFF))
    return out


async def test_racing_creates_with_one_email_let_exactly_one_win(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    outcomes: dict[int, str | Conflict] = {}

    async def attempt(n: int, email: str) -> None:
        try:
            outcomes[n] = await create(t, person(n, email=email))
        except Conflict as conflict:
            outcomes[n] = conflict

    async with trio.open_nursery() as nursery:
        nursery.start_soon(attempt, 1, "ann@example.com")
        nursery.start_soon(attempt, 2, "ANN@example.com")
    winners = [o for o in outcomes.values() if isinstance(o, str)]
    losers = [o for o in outcomes.values() if isinstance(o, Conflict)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].data()["existingCustomerId"] == winners[0]
    assert losers[0].data()["field"] == "email"
    await t.restart()
    page = await t.query("customers:list", {}, STAFF)
    assert [doc["_id"] for doc in page["page"]] == winners
    claim = t.engine.committed_state(CLAIM, claim_id(ORG, "email", "ann@example.com"))
    assert claim.owner == winners[0]
    with pytest.raises(Conflict):
        await create(t, person(3, email="Ann@Example.com"))
    # The loser claimed nothing: its phone number is still free.
    loser = next(n for n, o in outcomes.items() if isinstance(o, Conflict))
    assert await create(t, person(loser, email="other@example.com"))


async def test_creates_queued_together_are_decided_one_after_the_other(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    # Both are decided, in the order begun, before either is committed: the second sees the
    # first's claim on the phone number in its working state.
    pending = [
        t.engine.begin_mutation("customers:create", person(1, phone="0207 946 0000"), STAFF),
        t.engine.begin_mutation("customers:create", person(2, phone="020-7946-0000"), STAFF),
    ]
    won: list[Any] = []
    lost: list[Conflict] = []
    for mutation in pending:
        try:
            won.append(await mutation.outcome())
        except Conflict as conflict:
            lost.append(conflict)
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].data()["field"] == "phone"
    assert lost[0].data()["existingCustomerId"] == won[0].value
    assert t.engine.committed_seq == won[0].ts


async def test_list_search_and_cursor_paging(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    ids = [await create(t, person(n, "Bea" if n % 2 else "Cal")) for n in range(12)]
    await create(t, person(99, "Bea"), RIVAL)
    await t.mutation("customers:delete", {"customerId": ids[3]}, STAFF)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await t.query("customers:list", {"limit": 4, "cursor": cursor}, STAFF)
        seen.extend(doc["_id"] for doc in page["page"])
        cursor, pages = page["continueCursor"], pages + 1
        if page["isDone"]:
            break
    assert seen == [customer_id for n, customer_id in enumerate(ids) if n != 3]
    assert pages == 3
    found = await t.query("customers:list", {"search": "BEA", "limit": 3}, STAFF)
    assert [doc["firstName"] for doc in found["page"]] == ["Bea"] * 3
    assert [doc["_id"] for doc in found["page"]] == [ids[1], ids[5], ids[7]]
    rest = await t.query(
        "customers:list", {"search": "bea", "cursor": found["continueCursor"]}, STAFF
    )
    assert [doc["_id"] for doc in rest["page"]] == [ids[9], ids[11]]
    assert rest["isDone"] is True


async def test_a_restart_keeps_everything(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    ann = await create(t, person(1, userId="user_ann"))
    bob = await create(t, person(2, "Bob", lifecycle="active"))
    await t.advance(minutes=5)
    await t.mutation("customers:update", {"customerId": ann, "lastName": "Nr10"}, STAFF)
    membership = await t.mutation(
        "memberships:enroll", {"customerId": ann, "programId": "gold", "tier": "1"}, STAFF
    )
    await t.mutation("memberships:addPoints", {"membershipId": membership, "points": 25}, STAFF)
    await t.mutation("customers:archive", {"customerId": bob, "reason": "Moved away"}, STAFF)
    before = await everything(t, [ann, bob])
    assert before[0]["page"][0]["lastName"] == "Nr10"

    await t.restart()  # from the journal alone
    assert await everything(t, [ann, bob]) == before
    await t.engine.snapshot_now()
    await t.restart()  # from the snapshot: the directory goes through the codec
    assert t.engine.recovery is not None and t.engine.recovery.events_folded == 0
    assert await everything(t, [ann, bob]) == before
    with pytest.raises(Conflict) as conflict:
        await create(t, person(3, userId="user_ann"))
    assert conflict.value.data()["existingCustomerId"] == ann
    assert t.engine.committed_state(CUSTOMER, ann).memberships[membership].points == 25


async def test_a_live_list_follows_creates_in_its_org(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    first = await create(t, person(1))
    async with t.engine.subscribe("customers:list", {"search": "ann"}, STAFF) as live:
        ts, value = await live.__anext__()
        assert [doc["_id"] for doc in value["page"]] == [first]
        await create(t, person(2, "Zoe"))  # no match: the same result is not sent again
        await create(t, person(3), RIVAL)  # another organization
        created = await t.engine.mutation("customers:create", person(4), STAFF)
        ts, value = await live.__anext__()
        assert ts == created.ts
        assert [doc["_id"] for doc in value["page"]] == [first, created.value]
        await t.mutation("customers:delete", {"customerId": first}, STAFF)
        ts, value = await live.__anext__()
        assert [doc["_id"] for doc in value["page"]] == [created.value]
