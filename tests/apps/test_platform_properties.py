"""Properties of the platform app (tests/apps/platform) under concurrency, in virtual time:
- random interleavings of purchases and refunds, run as concurrent tasks, never oversell a
  tier, and what is sold is exactly what the paid orders hold;
- of any number of concurrent scans of one pass, exactly one checks it in and every other is a
  `Conflict` naming that check-in;
- another organization's records are None to its queries and NotFound to its mutations, and a
  refused write leaves the journal where it was.

The `turnstile` fixture's engine lives for one trio run, and Hypothesis runs each example in
its own: so each example opens the same harness the fixture does (`open_harness` on a fresh data
dir, serving `turnstile_apps`, invariant checks on), in virtual time."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import Conflict, NotFound
from domain.identity import Identity
from engine.apps import load_apps
from engine.testing import EngineHarness, open_harness, user

APP = "tests.apps.platform"
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_orgs = itertools.count()


@pytest.fixture
def turnstile_apps() -> list[str]:
    return [APP]


@asynccontextmanager
async def harness(apps: list[str]) -> AsyncIterator[EngineHarness]:
    """What the `turnstile` fixture gives, for one example."""
    with tempfile.TemporaryDirectory() as tmp:
        async with open_harness(Path(tmp) / "data", modules=load_apps(apps)) as t:
            yield t


async def org_with_event(t: EngineHarness, tiers: dict[str, int]) -> tuple[Identity, str, str, str]:
    """A fresh organization with an owner, and an event of `tiers` (name -> capacity):
    (owner's identity, its membership, the organization's id, the event's id)."""
    org_id = f"org_p{next(_orgs)}"
    made = await t.mutation(
        "platform/organizations:create", {"orgId": org_id, "name": org_id, "ownerUserId": "own"}
    )
    owner, member = user("own", org=org_id), made["ownerMemberId"]
    event = await t.mutation(
        "platform/tiers:createEvent",
        {
            "name": "E",
            "tiers": [{"name": n, "capacity": c, "price": 100} for n, c in tiers.items()],
            "asMember": member,
        },
        owner,
    )
    return owner, member, org_id, event


buys = st.tuples(st.just("buy"), st.sampled_from(["a", "b"]), st.integers(1, 3))
refunds = st.tuples(st.just("refund"), st.sampled_from(["a", "b"]), st.integers(0, 7))
rounds = st.lists(st.lists(st.one_of(buys, refunds), min_size=1, max_size=6), max_size=5)


@SETTINGS
@given(capacity_a=st.integers(1, 4), capacity_b=st.integers(1, 6), script=rounds)
async def test_tiers_are_never_oversold_across_concurrent_purchases_and_refunds(
    turnstile_apps: list[str],
    autojump_clock: trio.testing.MockClock,
    capacity_a: int,
    capacity_b: int,
    script: list[list[tuple[str, str, int]]],
) -> None:
    async with harness(turnstile_apps) as turnstile:
        capacity = {"a": capacity_a, "b": capacity_b}
        owner, member, _, event = await org_with_event(turnstile, capacity)
        paid: dict[str, tuple[str, int]] = {}  # order id -> (tier, quantity), as the replies say
        refunded: set[str] = set()

        async def buy(tier: str, quantity: int) -> None:
            try:
                placed = await turnstile.mutation(
                    "platform/orders:place",
                    {
                        "eventId": event,
                        "tier": tier,
                        "quantity": quantity,
                        "buyerName": "B",
                        "buyerEmail": "b@example.com",
                        "asMember": member,
                    },
                    owner,
                )
            except Conflict as refused:
                assert refused.details["remaining"] < quantity
                return
            assert len(placed["passIds"]) == quantity
            paid[placed["orderId"]] = (tier, quantity)

        refused_refunds: list[str] = []

        async def refund(order_id: str) -> None:
            try:
                await turnstile.mutation(
                    "platform/orders:refund", {"orderId": order_id, "asMember": member}, owner
                )
            except Conflict:
                refused_refunds.append(order_id)
                return
            assert order_id not in refunded  # a refund runs once
            refunded.add(order_id)

        for batch in script:
            known = sorted(paid)
            async with trio.open_nursery() as nursery:
                for kind, tier, n in batch:
                    if kind == "buy":
                        nursery.start_soon(buy, tier, n)
                    elif known:
                        nursery.start_soon(refund, known[n % len(known)])
            # Only a second refund of one order is refused (its first may be in this very
            # batch: a refusal is answered before the winner's commit is durable).
            assert set(refused_refunds) <= refunded
            doc = await turnstile.query("platform/tiers:get", {"eventId": event}, owner)
            for row in doc["tiers"]:
                held = sum(
                    q for o, (t, q) in paid.items() if t == row["name"] and o not in refunded
                )
                assert 0 <= row["sold"] <= capacity[row["name"]]
                assert row["sold"] == held
                assert row["remaining"] == capacity[row["name"]] - held

        orders = await turnstile.query("platform/orders:list", {"eventId": event}, owner)
        assert {o["_id"]: o["status"] for o in orders} == {
            o: "refunded" if o in refunded else "paid" for o in paid
        }
        for order in orders:
            statuses = set()
            for pass_id in order["passIds"]:
                shown = await turnstile.query("platform/passes:get", {"passId": pass_id}, owner)
                statuses.add(shown["status"])
            assert statuses == {"void" if order["status"] == "refunded" else "valid"}


@SETTINGS
@given(scanners=st.integers(2, 6), others=st.integers(0, 2), spread=st.booleans())
async def test_of_concurrent_scans_of_a_pass_exactly_one_wins(
    turnstile_apps: list[str],
    autojump_clock: trio.testing.MockClock,
    scanners: int,
    others: int,
    spread: bool,
) -> None:
    async with harness(turnstile_apps) as turnstile:
        owner, member, _, event = await org_with_event(turnstile, {"a": 5})
        placed = await turnstile.mutation(
            "platform/orders:place",
            {
                "eventId": event,
                "tier": "a",
                "quantity": 1 + others,
                "buyerName": "B",
                "buyerEmail": "b@example.com",
                "asMember": member,
            },
            owner,
        )
        target, *rest = placed["passIds"]
        won: list[str] = []
        named: list[str] = []
        other_wins: list[str] = []

        async def scan(gate: int, pass_id: str) -> None:
            if spread:
                await trio.sleep(gate * 0.001)
            try:
                got = await turnstile.mutation(
                    "platform/passes:checkIn",
                    {"passId": pass_id, "gate": f"g{gate}", "asMember": member},
                    owner,
                )
            except Conflict as refused:
                assert pass_id == target
                named.append(refused.details["checkInId"])
                return
            (won if pass_id == target else other_wins).append(got)

        async with trio.open_nursery() as nursery:
            for gate in range(scanners):
                nursery.start_soon(scan, gate, target)
            for gate, pass_id in enumerate(rest):
                nursery.start_soon(scan, scanners + gate, pass_id)
        assert len(won) == 1
        assert named == [won[0]] * (scanners - 1)
        assert len(other_wins) == len(rest)  # other passes check in beside it, unhindered
        shown = await turnstile.query("platform/passes:get", {"passId": target}, owner)
        assert shown["checkIn"]["_id"] == won[0]


def cross_org_ops(ids: dict[str, str], member: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every function a caller of another organization might aim at org A's records: (kind,
    name, args), with the caller's own membership as `asMember`."""
    return [
        ("query", "platform/orders:get", {"orderId": ids["order"]}),
        ("query", "platform/passes:get", {"passId": ids["pass"]}),
        ("query", "platform/tiers:get", {"eventId": ids["event"]}),
        ("query", "platform/workspaces:members", {"workspaceId": ids["workspace"]}),
        ("mutation", "platform/orders:refund", {"orderId": ids["order"], "asMember": member}),
        ("mutation", "platform/passes:checkIn", {"passId": ids["pass"], "asMember": member}),
        (
            "mutation",
            "platform/tiers:add",
            {"eventId": ids["event"], "name": "z", "capacity": 1, "price": 1, "asMember": member},
        ),
        (
            "mutation",
            "platform/orders:place",
            {
                "eventId": ids["event"],
                "tier": "a",
                "quantity": 1,
                "buyerName": "B",
                "buyerEmail": "b@example.com",
                "asMember": member,
            },
        ),
        (
            "mutation",
            "platform/team:setRole",
            {"memberId": ids["member"], "roleId": ids["role"], "asMember": member},
        ),
        (
            "mutation",
            "platform/workspaces:addMember",
            {"workspaceId": ids["workspace"], "memberId": ids["member"], "asMember": member},
        ),
        (
            "mutation",
            "platform/notifications:send",
            {"memberId": ids["member"], "title": "t", "body": "b", "asMember": member},
        ),
        ("mutation", "platform/notifications:markRead", {"notificationId": ids["notification"]}),
    ]


@SETTINGS
@given(picks=st.lists(st.integers(0, 11), min_size=1, max_size=12), concurrent=st.booleans())
async def test_another_organizations_records_are_none_and_not_found(
    turnstile_apps: list[str],
    autojump_clock: trio.testing.MockClock,
    picks: list[int],
    concurrent: bool,
) -> None:
    async with harness(turnstile_apps) as turnstile:
        owner, member, _, event = await org_with_event(turnstile, {"a": 3})
        placed = await turnstile.mutation(
            "platform/orders:place",
            {
                "eventId": event,
                "tier": "a",
                "quantity": 1,
                "buyerName": "B",
                "buyerEmail": "b@example.com",
                "asMember": member,
            },
            owner,
        )
        workspace = await turnstile.mutation(
            "platform/workspaces:create", {"name": "W", "slug": "w", "asMember": member}, owner
        )
        me = await turnstile.query("platform/team:me", {}, owner)
        roles = await turnstile.query("platform/roles:list", {}, owner)
        notification = await turnstile.mutation(
            "platform/notifications:send",
            {"memberId": member, "title": "t", "body": "b", "asMember": member},
            owner,
        )
        ids = {
            "order": placed["orderId"],
            "pass": placed["passIds"][0],
            "event": event,
            "workspace": workspace,
            "member": me["memberId"],
            "role": roles[0]["_id"],
            "notification": notification,
        }
        # The intruder is the owner of its own organization: every capability, in the wrong place.
        intruder, intruder_member, _, _ = await org_with_event(turnstile, {"a": 1})
        ops = cross_org_ops(ids, intruder_member)
        await turnstile.settle()
        before = turnstile.engine.committed_seq

        async def attempt(pick: int) -> None:
            kind, name, args = ops[pick]
            if kind == "query":
                assert await turnstile.query(name, args, intruder) is None
            else:
                with pytest.raises(NotFound):
                    await turnstile.mutation(name, args, intruder)

        if concurrent:
            async with trio.open_nursery() as nursery:
                for pick in picks:
                    nursery.start_soon(attempt, pick)
        else:
            for pick in picks:
                await attempt(pick)
        await turnstile.settle()
        assert turnstile.engine.committed_seq == before  # nothing refused was written
        # Org A's records are as they were, to org A.
        order = await turnstile.query("platform/orders:get", {"orderId": ids["order"]}, owner)
        assert order["status"] == "paid"
        shown = await turnstile.query("platform/passes:get", {"passId": ids["pass"]}, owner)
        assert shown["checkIn"] is None
