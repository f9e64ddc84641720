"""Tables (domain.tables) through an app: documents written and read through `db`, indexes as
live read models, tenancy by declaration, one commit for a document and its audit entry."""

from __future__ import annotations

import pytest
import trio

from domain.errors import Conflict, Forbidden, InvalidArgs, NotFound
from engine.testing import EngineHarness, staff
from tools.cli import main

APP = "tests.apps.workspaces"
ANN = staff("ann", "org_a", "locations:manage")
BO = staff("bo", "org_b", "locations:manage")


@pytest.fixture
def turnstile_apps() -> list[str]:
    return [APP]


async def test_documents_are_written_read_and_listed_by_index(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    ids = []
    for slug in ("zeta", "alpha", "mid"):
        ids.append(
            await turnstile.mutation("workspaces:create", {"name": slug.title(), "slug": slug}, ANN)
        )
    listed = await turnstile.query("workspaces:list", {}, ANN)
    assert [doc["slug"] for doc in listed] == ["alpha", "mid", "zeta"]  # by_slug order
    await turnstile.advance(seconds=1)  # entries of one millisecond are ordered by their ids
    await turnstile.mutation("workspaces:rename", {"workspaceId": ids[0], "name": "Zed"}, ANN)
    doc = await turnstile.query("workspaces:get", {"workspaceId": ids[0]}, ANN)
    assert (doc["name"], doc["_id"]) == ("Zed", ids[0])
    assert await turnstile.query("workspaces:audit", {"workspaceId": ids[0]}, ANN) == [
        "create",
        "rename",
    ]
    await turnstile.mutation("workspaces:delete", {"workspaceId": ids[1]}, ANN)
    assert await turnstile.query("workspaces:get", {"workspaceId": ids[1]}, ANN) is None
    with pytest.raises(NotFound):
        await turnstile.mutation("workspaces:rename", {"workspaceId": ids[1], "name": "X"}, ANN)
    await turnstile.restart()
    assert [d["slug"] for d in await turnstile.query("workspaces:list", {}, ANN)] == ["mid", "zeta"]


async def test_a_nested_object_is_checked_written_and_kept(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    made = await turnstile.mutation("workspaces:create", {"name": "N", "slug": "n"}, ANN)
    doc = await turnstile.query("workspaces:get", {"workspaceId": made}, ANN)
    assert doc["settings"] == {"timezone": "UTC", "features": []}  # the nested default
    settings = {"timezone": "Europe/Oslo", "features": ["waitlist", "passes"]}
    await turnstile.mutation(
        "workspaces:configure", {"workspaceId": made, "settings": settings}, ANN
    )
    with pytest.raises(InvalidArgs) as refused:  # the nested object's own fields are typed
        await turnstile.mutation(
            "workspaces:configure", {"workspaceId": made, "settings": {"timezone": 5}}, ANN
        )
    assert "timezone" in str(refused.value.details.get("path"))
    await turnstile.engine.snapshot_now()
    await turnstile.restart()
    doc = await turnstile.query("workspaces:get", {"workspaceId": made}, ANN)
    assert doc["settings"] == settings


async def test_another_organization_neither_sees_nor_writes(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    mine = await turnstile.mutation("workspaces:create", {"name": "A", "slug": "a"}, ANN)
    await turnstile.mutation("workspaces:create", {"name": "B", "slug": "b"}, BO)
    assert await turnstile.query("workspaces:get", {"workspaceId": mine}, BO) is None
    assert [d["slug"] for d in await turnstile.query("workspaces:list", {}, BO)] == ["b"]
    # Naming another organization in the args reads nothing of it.
    assert await turnstile.query("workspaces:list", {"orgId": "org_a"}, BO) == []
    with pytest.raises(NotFound):
        await turnstile.mutation("workspaces:rename", {"workspaceId": mine, "name": "Mine"}, BO)
    with pytest.raises(Forbidden):
        await turnstile.mutation(
            "workspaces:create", {"name": "C", "slug": "c", "orgId": "org_a"}, BO
        )


async def test_pages_in_convex_form_over_an_index(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    for n in range(5):
        await turnstile.mutation("workspaces:create", {"name": f"W{n}", "slug": f"s{n}"}, ANN)
    first = await turnstile.query(
        "workspaces:list", {"paginationOpts": {"numItems": 2, "cursor": None}}, ANN
    )
    rest = await turnstile.query(
        "workspaces:list",
        {"paginationOpts": {"numItems": 10, "cursor": first["continueCursor"]}},
        ANN,
    )
    assert [d["slug"] for d in first["page"] + rest["page"]] == [f"s{n}" for n in range(5)]
    assert rest["isDone"] is True


async def test_a_live_query_over_an_index_follows_its_range(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    first = await turnstile.mutation("workspaces:create", {"name": "A", "slug": "a"}, ANN)
    async with turnstile.engine.subscribe("workspaces:list", {}, ANN) as live:
        ts, value = await live.__anext__()
        assert [d["slug"] for d in value] == ["a"]
        # Another organization's change is outside the range: nothing is sent for it.
        await turnstile.mutation("workspaces:create", {"name": "B", "slug": "b"}, BO)
        made = await turnstile.engine.mutation("workspaces:create", {"name": "C", "slug": "c"}, ANN)
        ts, value = await live.__anext__()
        assert ts == made.ts  # the one consistent cut of that commit
        assert [d["slug"] for d in value] == ["a", "c"]
        await turnstile.mutation("workspaces:delete", {"workspaceId": first}, ANN)
        ts, value = await live.__anext__()
        assert [d["slug"] for d in value] == ["c"]


async def test_snapshots_restarts_verify_and_erasure_of_a_deleted_document(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    secret = "zq-confidential-plan-41"
    keep = await turnstile.mutation("workspaces:create", {"name": "K", "slug": "k"}, ANN)
    gone = await turnstile.mutation(
        "workspaces:create", {"name": "G", "slug": "g", "description": secret}, ANN
    )
    await turnstile.engine.snapshot_now()  # documents and index in the snapshot
    await turnstile.mutation("workspaces:rename", {"workspaceId": keep, "name": "Kept"}, ANN)
    await turnstile.restart()  # snapshot + tail
    assert [d["name"] for d in await turnstile.query("workspaces:list", {}, ANN)] == ["G", "Kept"]
    await turnstile.mutation("workspaces:delete", {"workspaceId": gone}, ANN)
    await turnstile.settle()  # the erasure of its personal fields runs in the background
    await turnstile.stop()
    files = [path for path in turnstile.data_dir.rglob("*") if path.is_file()]
    assert not [path for path in files if secret.encode() in path.read_bytes()]
    assert main(["replay", str(turnstile.data_dir), "--verify", "--app", APP]) == 0
    await turnstile.start()
    assert [d["name"] for d in await turnstile.query("workspaces:list", {}, ANN)] == ["Kept"]


async def test_a_unique_index_refuses_a_second_holder_of_its_values(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    first = await turnstile.mutation("workspaces:create", {"name": "A", "slug": "same"}, ANN)
    with pytest.raises(Conflict) as refused:
        await turnstile.mutation("workspaces:create", {"name": "B", "slug": "same"}, ANN)
    assert refused.value.details["existingId"] == first
    # Another organization's values are its own.
    await turnstile.mutation("workspaces:create", {"name": "C", "slug": "same"}, BO)
    # Racing writers of one value: exactly one wins, the rest are refused, nothing half-written.
    outcomes: list[str] = []

    async def race(n: int) -> None:
        try:
            await turnstile.mutation("workspaces:create", {"name": f"R{n}", "slug": "race"}, ANN)
            outcomes.append("won")
        except Conflict:
            outcomes.append("Conflict")

    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(race, n)
    assert sorted(outcomes) == ["Conflict"] * 3 + ["won"]
    slugs = [d["slug"] for d in await turnstile.query("workspaces:list", {}, ANN)]
    assert slugs == ["race", "same"]
    # A deleted document gives its values up.
    await turnstile.mutation("workspaces:delete", {"workspaceId": first}, ANN)
    await turnstile.mutation("workspaces:create", {"name": "D", "slug": "same"}, ANN)


async def test_search_finds_every_word_the_last_as_a_prefix_within_the_organization(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    names = ["Spring Gala Planning", "Gala Dinner", "Autumn fair", "galaxy night"]
    for n, name in enumerate(names):
        await turnstile.mutation("workspaces:create", {"name": name, "slug": f"w{n}"}, ANN)
        await turnstile.advance(seconds=1)
    await turnstile.mutation("workspaces:create", {"name": "Gala elsewhere", "slug": "x"}, BO)

    async def search(text: str) -> list[str]:
        found: list[str] = await turnstile.query("workspaces:search", {"text": text}, ANN)
        return found

    assert await search("gala") == ["galaxy night", "Gala Dinner", "Spring Gala Planning"]
    assert await search("GALA din") == ["Gala Dinner"]
    assert await search("planning spring") == ["Spring Gala Planning"]
    assert await search("nothing") == []
    assert await search("  ") == []
    ids = [d["_id"] for d in await turnstile.query("workspaces:list", {}, ANN)]
    await turnstile.mutation("workspaces:rename", {"workspaceId": ids[1], "name": "Harvest"}, ANN)
    assert "Gala Dinner" not in await search("gala")
