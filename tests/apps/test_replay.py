"""`turnstile replay --verify --app` checks an app's journal as the server served it; without
the app, the app's streams are findings (a kind no loaded app declares), not silence."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine.apps import load_apps
from engine.testing import open_harness, staff
from tools.cli import main

CLERK = staff("clerk-1", "org_gifts", "orders:manage")


async def _write_gift_cards(data_dir: Path) -> None:
    async with open_harness(data_dir, modules=load_apps(["tests.apps.giftcards"])) as h:
        card = await h.mutation("giftcards:issue", {"amount": 900, "recipient": "Flo"}, CLERK)
        await h.mutation("giftcards:redeem", {"giftCardId": card, "amount": 100}, CLERK)
        await h.mutation("events:create", _EVENT, h.admin)


_EVENT = {
    "name": "Gala",
    "description": "",
    "location": "Hall",
    "eventDate": 1_900_000_000_000,
    "price": 1000,
    "totalTickets": 10,
    "orgId": "org_gifts",
}


async def test_verify_with_the_app_is_clean_and_without_it_names_the_apps_streams(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    await _write_gift_cards(data_dir)
    capsys.readouterr()
    assert main(["replay", str(data_dir), "--verify", "--app", "tests.apps.giftcards"]) == 0
    assert main(["replay", str(data_dir), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "giftcard" in out


def test_replay_with_a_wrong_app_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["replay", str(tmp_path), "--verify", "--app", "tests.apps.loose_events"])
    assert stopped.value.code == 2
