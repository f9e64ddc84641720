"""The platform seed's records as an app of tables (tests/apps/platform), through the `turnstile`
fixture in virtual time: roles that grant capabilities, memberships found by index (or named) in
mutations and queries, tiers that are never oversold, passes that check in once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio

from domain.errors import Conflict, Forbidden, InvalidArgs, NotFound
from domain.identity import Identity
from engine.testing import EngineHarness, user
from tools.cli import main

APP = "tests.apps.platform"


@pytest.fixture
def turnstile_apps() -> list[str]:
    return [APP]


def person(subject: str, org: str) -> Identity:
    """A signed-in user of `org`: its token carries no capabilities; its role grants them."""
    return user(subject, org=org)


async def new_org(t: EngineHarness, org_id: str, owner: str) -> dict[str, Any]:
    made: dict[str, Any] = await t.mutation(
        "platform/organizations:create",
        {"orgId": org_id, "name": org_id.title(), "ownerUserId": owner},
    )
    return made


async def add_member(
    t: EngineHarness, owner: Identity, as_member: str, user_id: str, caps: list[str]
) -> str:
    role = await t.mutation(
        "platform/roles:create",
        {"name": f"{user_id}-role", "capabilities": caps, "asMember": as_member},
        owner,
    )
    member: str = await t.mutation(
        "platform/team:add", {"userId": user_id, "roleId": role, "asMember": as_member}, owner
    )
    return member


async def new_event(
    t: EngineHarness, caller: Identity, as_member: str, tiers: list[tuple[str, int, int]]
) -> str:
    event: str = await t.mutation(
        "platform/tiers:createEvent",
        {
            "name": "Launch night",
            "tiers": [{"name": n, "capacity": c, "price": p} for n, c, p in tiers],
            "asMember": as_member,
        },
        caller,
    )
    return event


async def test_an_organization_is_bootstrapped_and_its_roles_grant_capabilities(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    made = await new_org(turnstile, "org_a", "ann")
    ann = person("ann", "org_a")
    me = await turnstile.query("platform/team:me", {}, ann)
    assert me["memberId"] == made["ownerMemberId"]
    assert me["role"] == "owner" and "tickets:checkin" in me["capabilities"]
    owner = me["memberId"]

    door = await add_member(turnstile, ann, owner, "dee", ["tickets:checkin"])
    dee = person("dee", "org_a")
    assert (await turnstile.query("platform/team:me", {}, dee))["capabilities"] == [
        "tickets:checkin"
    ]
    # Dee's role does not grant workspaces:manage; a membership of another user is no pass.
    with pytest.raises(Forbidden, match="workspaces:manage"):
        await turnstile.mutation(
            "platform/workspaces:create", {"name": "Ops", "slug": "ops", "asMember": door}, dee
        )
    with pytest.raises(Forbidden):
        await turnstile.mutation(
            "platform/workspaces:create", {"name": "Ops", "slug": "ops", "asMember": owner}, dee
        )
    with pytest.raises(Forbidden, match="workspaces:manage"):  # found by index: same role
        await turnstile.mutation("platform/workspaces:create", {"name": "Ops", "slug": "ops"}, dee)
    with pytest.raises(Forbidden, match="not a member"):  # no membership in org_a at all
        await turnstile.mutation(
            "platform/workspaces:create", {"name": "Ops", "slug": "ops"}, person("eve", "org_a")
        )
    # A role changed by an owner takes effect at the next call, in mutations and queries alike.
    await turnstile.mutation(
        "platform/team:setRole",
        {"memberId": door, "roleId": made["ownerRoleId"], "asMember": owner},
        ann,
    )
    workspace = await turnstile.mutation(
        "platform/workspaces:create", {"name": "Ops", "slug": "ops", "asMember": door}, dee
    )
    # Without asMember, the mutation finds dee's membership through the team's index.
    await turnstile.mutation("platform/workspaces:create", {"name": "Web", "slug": "web"}, dee)
    await turnstile.mutation(
        "platform/workspaces:addMember",
        {"workspaceId": workspace, "memberId": owner, "access": "editor", "asMember": door},
        dee,
    )
    members = await turnstile.query("platform/workspaces:members", {"workspaceId": workspace}, dee)
    assert [(m["userId"], m["access"]) for m in members] == [("ann", "editor")]
    assert [w["slug"] for w in await turnstile.query("platform/workspaces:list", {}, ann)] == [
        "ops",
        "web",
    ]
    team = await turnstile.query("platform/team:list", {}, ann)
    assert sorted((m["userId"], m["role"]) for m in team) == [("ann", "owner"), ("dee", "owner")]
    assert (await turnstile.query("platform/organizations:get", {}, dee))["name"] == "Org_A"
    # Someone signed in to the organization without a membership reads nothing of it.
    with pytest.raises(Forbidden):
        await turnstile.query("platform/workspaces:list", {}, person("eve", "org_a"))
    with pytest.raises(InvalidArgs, match="not a platform capability"):
        await turnstile.mutation(
            "platform/roles:create",
            {"name": "x", "capabilities": ["root"], "asMember": owner},
            ann,
        )


async def test_orders_sell_tiers_issue_passes_and_refunds_release_them(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    owner = (await new_org(turnstile, "org_a", "ann"))["ownerMemberId"]
    ann = person("ann", "org_a")
    event = await new_event(turnstile, ann, owner, [("vip", 3, 5000), ("general", 10, 1500)])
    placed = await turnstile.mutation(
        "platform/orders:place",
        {
            "eventId": event,
            "tier": "vip",
            "quantity": 2,
            "buyerName": "Bo",
            "buyerEmail": "bo@example.com",
            "asMember": owner,
        },
        ann,
    )
    assert placed["total"] == 10000 and len(placed["passIds"]) == 2
    tiers = {
        t["name"]: t
        for t in (await turnstile.query("platform/tiers:get", {"eventId": event}, ann))["tiers"]
    }
    assert (tiers["vip"]["sold"], tiers["vip"]["remaining"]) == (2, 1)
    assert tiers["general"]["remaining"] == 10
    with pytest.raises(Conflict) as refused:
        await turnstile.mutation(
            "platform/orders:place",
            {
                "eventId": event,
                "tier": "vip",
                "quantity": 2,
                "buyerName": "Cy",
                "buyerEmail": "cy@example.com",
                "asMember": owner,
            },
            ann,
        )
    assert refused.value.details["remaining"] == 1
    order = await turnstile.query("platform/orders:get", {"orderId": placed["orderId"]}, ann)
    assert (order["status"], order["passIds"]) == ("paid", placed["passIds"])

    left = await turnstile.mutation(
        "platform/orders:refund", {"orderId": placed["orderId"], "asMember": owner}, ann
    )
    assert left == 3
    with pytest.raises(Conflict, match="refunded already"):
        await turnstile.mutation(
            "platform/orders:refund", {"orderId": placed["orderId"], "asMember": owner}, ann
        )
    with pytest.raises(Conflict, match="voided"):
        await turnstile.mutation(
            "platform/passes:checkIn", {"passId": placed["passIds"][0], "asMember": owner}, ann
        )
    listed = await turnstile.query("platform/orders:list", {"eventId": event}, ann)
    assert [o["status"] for o in listed] == ["refunded"]
    await turnstile.restart()
    tiers = {
        t["name"]: t
        for t in (await turnstile.query("platform/tiers:get", {"eventId": event}, ann))["tiers"]
    }
    assert tiers["vip"]["remaining"] == 3


async def test_a_pass_checks_in_once_and_a_second_scan_names_the_first(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    made = await new_org(turnstile, "org_a", "ann")
    ann, owner = person("ann", "org_a"), made["ownerMemberId"]
    door = await add_member(turnstile, ann, owner, "dee", ["tickets:checkin"])
    dee = person("dee", "org_a")
    event = await new_event(turnstile, ann, owner, [("general", 5, 1000)])
    placed = await turnstile.mutation(
        "platform/orders:place",
        {
            "eventId": event,
            "tier": "general",
            "quantity": 1,
            "buyerName": "Bo",
            "buyerEmail": "bo@example.com",
            "asMember": owner,
        },
        ann,
    )
    pass_id = placed["passIds"][0]
    with pytest.raises(Forbidden, match="orders:manage"):  # the door role sells nothing
        await turnstile.mutation(
            "platform/orders:refund", {"orderId": placed["orderId"], "asMember": door}, dee
        )
    first = await turnstile.mutation(
        "platform/passes:checkIn", {"passId": pass_id, "gate": "north", "asMember": door}, dee
    )
    at = turnstile.now_ms()
    await turnstile.advance(seconds=5)
    with pytest.raises(Conflict) as second:
        await turnstile.mutation(
            "platform/passes:checkIn", {"passId": pass_id, "gate": "south", "asMember": door}, dee
        )
    assert second.value.details == {"checkInId": first, "checkedInAt": at, "gate": "north"}
    shown = await turnstile.query("platform/passes:get", {"passId": pass_id}, dee)
    assert shown["checkIn"] == {"_id": first, "at": at, "gate": "north", "by": "dee"}
    with pytest.raises(Conflict) as refund:
        await turnstile.mutation(
            "platform/orders:refund", {"orderId": placed["orderId"], "asMember": owner}, ann
        )
    assert refund.value.details["checkInId"] == first


async def test_notifications_reach_their_recipient_only(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    made = await new_org(turnstile, "org_a", "ann")
    ann, owner = person("ann", "org_a"), made["ownerMemberId"]
    door = await add_member(turnstile, ann, owner, "dee", ["tickets:checkin"])
    dee = person("dee", "org_a")
    sent = await turnstile.mutation(
        "platform/notifications:send",
        {"memberId": door, "title": "Doors at 7", "body": "North gate", "asMember": owner},
        ann,
    )
    with pytest.raises(Forbidden, match="notifications:send"):
        await turnstile.mutation(
            "platform/notifications:send",
            {"memberId": owner, "title": "x", "body": "y", "asMember": door},
            dee,
        )
    assert [
        n["title"] for n in await turnstile.query("platform/notifications:listMine", {}, dee)
    ] == ["Doors at 7"]
    assert await turnstile.query("platform/notifications:listMine", {}, ann) == []
    with pytest.raises(NotFound):
        await turnstile.mutation("platform/notifications:markRead", {"notificationId": sent}, ann)
    await turnstile.mutation("platform/notifications:markRead", {"notificationId": sent}, dee)
    assert [
        n["read"] for n in await turnstile.query("platform/notifications:listMine", {}, dee)
    ] == [True]


async def test_release_history_is_recorded_by_the_backend_and_listed_newest_first(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    for n, service in enumerate(["web", "api", "web"]):
        await turnstile.mutation(
            "platform/releases:record",
            {
                "deploymentId": f"dep-{n}",
                "service": service,
                "commit": f"c0ffee{n}",
                "status": "SUCCESS",
                "deployedAt": 1_767_225_600_000 + n * 1000,
            },
        )
    await new_org(turnstile, "org_a", "ann")
    ann = person("ann", "org_a")
    with pytest.raises(Forbidden):
        await turnstile.mutation(
            "platform/releases:record",
            {"deploymentId": "x", "service": "web", "commit": "c", "status": "S", "deployedAt": 1},
            ann,
        )
    listed = await turnstile.query("platform/releases:list", {}, ann)
    assert [r["deploymentId"] for r in listed] == ["dep-2", "dep-1", "dep-0"]
    web = await turnstile.query("platform/releases:list", {"service": "web", "limit": 1}, ann)
    assert [r["deploymentId"] for r in web] == ["dep-2"]


async def test_the_journal_holds_the_apps_namespace_and_replays_clean(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    owner = (await new_org(turnstile, "org_a", "ann"))["ownerMemberId"]
    ann = person("ann", "org_a")
    event = await new_event(turnstile, ann, owner, [("general", 5, 1000)])
    placed = await turnstile.mutation(
        "platform/orders:place",
        {
            "eventId": event,
            "tier": "general",
            "quantity": 2,
            "buyerName": "Bo",
            "buyerEmail": "bo@example.com",
            "asMember": owner,
        },
        ann,
    )
    await turnstile.mutation(
        "platform/passes:checkIn", {"passId": placed["passIds"][0], "asMember": owner}, ann
    )
    await turnstile.engine.snapshot_now()
    await turnstile.stop()
    with sqlite3.connect(turnstile.data_dir / "journal.db") as journal:
        types = {
            row[0]
            for row in journal.execute(
                "SELECT DISTINCT type FROM events WHERE stream LIKE 'platform_seed.%'"
            )
        }
    assert {
        "platform_seed.EventOpened",
        "platform_seed.TierAdded",
        "platform_seed.TicketsSold",
        "platform_seed.OrdersInserted",
        "platform_seed.OrdersPatched",
        "platform_seed.PassesInserted",
        "platform_seed.CheckInsInserted",
        "platform_seed.TeamMembersInserted",
    } <= types
    assert all(name.startswith("platform_seed.") for name in types)
    assert main(["replay", str(turnstile.data_dir), "--verify", "--app", APP]) == 0


def test_the_doc_page_lists_every_function_of_the_app_once() -> None:
    from tests.apps.platform import app

    page = (Path(__file__).parents[2] / "docs" / "platform-app.md").read_text()
    listed = [
        line.split("|")[1].strip().strip("`")
        for line in page.splitlines()
        if line.startswith("| `platform/")
    ]
    served = [m.name for m in app.mutations] + [q.name for q in app.queries]
    assert sorted(listed) == sorted(served)
