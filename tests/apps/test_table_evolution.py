"""A table's schema evolution: the journal and snapshot its first version wrote
(tests/fixtures/table_evolution) served by its current one (tests/apps/boards.py): a renamed
field through an upcaster, a new field by its default, a resumable backfill run at start,
`replay --verify` clean."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import trio

from engine.apps import load_apps
from engine.testing import open_harness
from engine.testing.harness import TEST_EPOCH_MS
from tools.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "table_evolution" / "data"
BOARDS = ["--app", "tests.apps.boards"]
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(FIXTURE, copy)
    return copy


def _rows(data_dir: Path) -> int:
    """The journal rows of the cards table."""
    with sqlite3.connect(data_dir / "journal.db") as db:
        [(count,)] = db.execute("SELECT count(*) FROM events WHERE stream LIKE 'boards.cards/%'")
    return int(count)


async def test_the_current_version_serves_and_migrates_the_old_table(
    data_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    org = json.loads((data_dir / "ids.json").read_text())["org"]
    before = _rows(data_dir)
    modules = load_apps(["tests.apps.boards"])
    async with open_harness(data_dir, modules=modules, epoch_ms=TEST_EPOCH_MS + DAY_MS) as h:
        # Upcast (title -> name), defaulted (archived), and trimmed by the backfill at start.
        assert await h.query("cards:list", {"orgId": org}) == [
            {"name": name, "archived": False} for name in ("buy milk", "call Ann", "plan", "zebra")
        ]
        await h.mutation("cards:add", {"name": "  new one ", "orgId": org})
    migrated = _rows(data_dir)
    assert migrated == before + 3 + 1  # three names patched, one card added
    async with open_harness(data_dir, modules=modules, epoch_ms=TEST_EPOCH_MS + 2 * DAY_MS) as h:
        assert len(await h.query("cards:list", {"orgId": org})) == 5
    assert _rows(data_dir) == migrated  # nothing left to migrate: the job wrote nothing
    assert main(["replay", str(data_dir), "--verify", *BOARDS]) == 0


def test_verify_of_the_untouched_fixture_is_clean() -> None:
    assert main(["replay", str(FIXTURE), "--verify", *BOARDS]) == 0
