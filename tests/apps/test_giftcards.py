"""The example app of docs/apps.md, tested the way an app team tests theirs: the `turnstile`
fixture of the pytest plugin, serving the app beside the built-in one, in virtual time."""

from __future__ import annotations

import sqlite3

import pytest
import trio

from domain.errors import Conflict, InvalidArgs, NotFound
from engine.testing import EngineHarness, staff

ORG = "org_gifts"
CLERK = staff("clerk-1", ORG, "orders:manage")
OTHER_ORG = staff("clerk-2", "org_other", "orders:manage")


@pytest.fixture
def turnstile_apps() -> list[str]:
    return ["tests.apps.giftcards"]


async def test_a_card_is_issued_redeemed_and_listed(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    card = await turnstile.mutation("giftcards:issue", {"amount": 5000, "recipient": "Ann"}, CLERK)
    assert (
        await turnstile.mutation("giftcards:redeem", {"giftCardId": card, "amount": 1200}, CLERK)
        == 3800
    )
    listed = await turnstile.query("giftcards:list", {}, CLERK)
    assert [(doc["_id"], doc["balance"]) for doc in listed] == [(card, 3800)]
    # The built-in app is served beside it, unchanged.
    assert await turnstile.query("events:list", {}, CLERK) == []


async def test_two_redemptions_racing_for_one_balance_never_overspend(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    card = await turnstile.mutation("giftcards:issue", {"amount": 1000, "recipient": "Bo"}, CLERK)
    outcomes: list[object] = []

    async def redeem() -> None:
        try:
            outcomes.append(
                await turnstile.mutation(
                    "giftcards:redeem", {"giftCardId": card, "amount": 700}, CLERK
                )
            )
        except Conflict as exc:
            outcomes.append(exc.code)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(redeem)
    assert sorted(map(str, outcomes)) == ["300", "Conflict", "Conflict"]
    assert (await turnstile.query("giftcards:get", {"giftCardId": card}, CLERK))["balance"] == 300


async def test_another_organization_sees_no_card(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    card = await turnstile.mutation("giftcards:issue", {"amount": 100, "recipient": "Cy"}, CLERK)
    assert await turnstile.query("giftcards:get", {"giftCardId": card}, OTHER_ORG) is None
    assert await turnstile.query("giftcards:list", {}, OTHER_ORG) == []
    with pytest.raises(NotFound):
        await turnstile.mutation("giftcards:redeem", {"giftCardId": card, "amount": 1}, OTHER_ORG)


async def test_the_daily_job_expires_cards_past_their_date_across_a_restart(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    card = await turnstile.mutation(
        "giftcards:issue", {"amount": 100, "recipient": "Di", "validDays": 2}, CLERK
    )
    await turnstile.advance(24 * 60)
    assert (await turnstile.query("giftcards:get", {"giftCardId": card}, CLERK))["expired"] is False
    await turnstile.restart()
    await turnstile.advance(2 * 24 * 60)
    doc = await turnstile.query("giftcards:get", {"giftCardId": card}, CLERK)
    assert (doc["expired"], doc["balance"]) == (True, 0)
    with pytest.raises(Conflict):
        await turnstile.mutation("giftcards:redeem", {"giftCardId": card, "amount": 1}, CLERK)
    assert [d["expired"] for d in await turnstile.query("giftcards:list", {}, CLERK)] == [True]


async def test_the_apps_events_are_journaled_in_its_namespace(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    card = await turnstile.mutation("giftcards:issue", {"amount": 100, "recipient": "Ed"}, CLERK)
    await turnstile.mutation("giftcards:redeem", {"giftCardId": card, "amount": 40}, CLERK)
    await turnstile.stop()
    with sqlite3.connect(turnstile.data_dir / "journal.db") as db:
        types = [
            row[0]
            for row in db.execute("SELECT type FROM events WHERE stream = ?", (f"giftcard/{card}",))
        ]
    assert types == ["giftcards.GiftCardIssued", "giftcards.GiftCardRedeemed"]
    await turnstile.start()
    assert (await turnstile.query("giftcards:get", {"giftCardId": card}, CLERK))["balance"] == 60


async def test_the_list_pages_in_convex_form_and_a_pinned_page_keeps_its_range(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    cards = []
    for n in range(5):
        cards.append(
            await turnstile.mutation("giftcards:issue", {"amount": 10, "recipient": f"R{n}"}, CLERK)
        )
        await turnstile.advance(seconds=1)  # issue times apart: the list's order is theirs
    first = await turnstile.query(
        "giftcards:list", {"paginationOpts": {"numItems": 2, "cursor": None}}, CLERK
    )
    assert [doc["_id"] for doc in first["page"]] == cards[:2]
    assert first["isDone"] is False
    rest = await turnstile.query(
        "giftcards:list",
        {"paginationOpts": {"numItems": 10, "cursor": first["continueCursor"]}},
        CLERK,
    )
    assert [doc["_id"] for doc in rest["page"]] == cards[2:]
    assert rest["isDone"] is True
    # Pinned at its end, the first page keeps its range while cards are issued after it.
    await turnstile.mutation("giftcards:issue", {"amount": 10, "recipient": "Late"}, CLERK)
    pinned = await turnstile.query(
        "giftcards:list",
        {
            "paginationOpts": {
                "numItems": 2,
                "cursor": None,
                "endCursor": first["continueCursor"],
            }
        },
        CLERK,
    )
    assert [doc["_id"] for doc in pinned["page"]] == cards[:2]
    with pytest.raises(InvalidArgs, match="InvalidCursor"):
        await turnstile.query(
            "giftcards:list", {"paginationOpts": {"numItems": 2, "cursor": "garbage"}}, CLERK
        )
