"""Schema evolution: a journal written by an app's first version (tests/fixtures/evolution,
checked in) is served by its current one (tests/apps/loyalty.py): events written at schema 1
are upcast wherever they are read, member states of the old state version in the snapshot are
folded again from their events, erasure rewrites old rows at the new schema, and `replay
--verify` stays clean."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import attrs
import pytest
import trio

from domain import Event
from domain.core import upcast
from engine.apps import load_apps
from engine.testing import open_harness
from tests.apps.loyalty import MemberJoined, PointsEarned
from tools.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "evolution" / "data"
LOYALTY = ["--app", "tests.apps.loyalty"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(FIXTURE, copy)
    return copy


def _members(data_dir: Path) -> list[str]:
    ids: list[str] = json.loads((data_dir / "members.json").read_text())
    return ids


def _files(data_dir: Path) -> list[Path]:
    return [path for path in data_dir.rglob("*") if path.is_file()]


def _rows(data_dir: Path, stream: str) -> list[tuple[str, int, bytes]]:
    with sqlite3.connect(data_dir / "journal.db") as db:
        return list(
            db.execute(
                "SELECT type, schema, payload FROM events WHERE stream = ? ORDER BY seq", (stream,)
            )
        )


def test_the_fixture_was_written_at_the_old_schemas() -> None:
    ann = _members(FIXTURE)[0]
    assert [(t, s) for t, s, _ in _rows(FIXTURE, f"member/{ann}")] == [
        ("loyalty.MemberJoined", 1),
        ("loyalty.PointsEarned", 1),
        ("loyalty.PointsEarned", 1),
    ]
    assert list((FIXTURE / "snapshots").iterdir()), "the fixture holds a snapshot"


async def test_the_current_version_serves_the_old_journal(
    data_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    ann, bo, cy = _members(data_dir)
    async with open_harness(data_dir, modules=load_apps(["tests.apps.loyalty"])) as h:
        # Upcast events, and states folded again: the snapshot's version-1 states are not read.
        assert await h.query("loyalty:get", {"memberId": ann}) == {
            "firstName": "Ann",
            "lastName": "Lee",
            "email": "ann.lee@example.com",
            "points": 1100,
            "tier": "gold",
            "reasons": ["purchase", "purchase"],
        }
        assert (
            await h.mutation("loyalty:earn", {"memberId": bo, "points": 5, "reason": "referral"})
            == 405
        )
        dee = await h.mutation(
            "loyalty:join", {"firstName": "Dee", "lastName": "Ray", "email": "DEE@y.net"}
        )
        await h.engine.snapshot_now()  # built on the old snapshot: members folded from the start
        await h.restart()  # activation now from the new snapshot's version-2 states
        bo_doc = await h.query("loyalty:get", {"memberId": bo})
        assert (bo_doc["lastName"], bo_doc["points"], bo_doc["reasons"]) == (
            "Chen",
            405,
            ["purchase", "referral"],
        )
        assert (await h.query("loyalty:get", {"memberId": dee}))["email"] == "dee@y.net"
        await h.mutation("loyalty:erase", {"memberId": cy})
        await h.settle()
        assert (await h.query("loyalty:get", {"memberId": cy}))["firstName"] == ""
    # Erasure rewrote the old row redacted, at the current schema; no byte of it is left.
    joined = _rows(data_dir, f"member/{cy}")[0]
    assert joined[:2] == ("loyalty.MemberJoined", 2)
    assert json.loads(joined[2]) == {"firstName": "", "lastName": "", "email": ""}
    assert not [path for path in _files(data_dir) if b"x.org" in path.read_bytes().lower()]
    assert main(["replay", str(data_dir), "--verify", *LOYALTY]) == 0


async def test_export_gives_old_rows_in_the_current_schema(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    assert main(["replay", str(data_dir), "--export", str(out), *LOYALTY]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    joined = [line["payload"] for line in lines if line["type"] == "loyalty.MemberJoined"]
    assert joined[0] == {"firstName": "Ann", "lastName": "Lee", "email": "ann.lee@example.com"}
    earned = [line["payload"] for line in lines if line["type"] == "loyalty.PointsEarned"]
    assert {p["reason"] for p in earned} == {"purchase"}


def test_verify_of_the_untouched_fixture_is_clean_and_notes_the_old_states(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["replay", str(FIXTURE), "--verify", "--json", *LOYALTY]) == 0
    report = json.loads(capsys.readouterr().out)
    assert any("not compared, of another state version" in note for note in report["notes"])


def test_a_row_no_upcaster_reaches_or_a_newer_builds_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="written with schema 3 by a newer build"):
        upcast(MemberJoined, 3, {})
    assert upcast(PointsEarned, 1, {"points": 2}) == {"points": 2, "reason": "purchase"}

    @attrs.frozen(kw_only=True)
    class Renamed(Event):
        namespace = "loyalty_test"
        schema = 3
        upcasters = {2: lambda body: body}

        label: str

    with pytest.raises(ValueError, match="no upcaster from schema 1"):
        upcast(Renamed, 1, {"label": "x"})


def test_upcasters_must_step_every_schema() -> None:
    with pytest.raises(TypeError, match="must step every schema"):

        class Gappy(Event):  # 1 -> 2 given, 2 -> 3 missing
            namespace = "loyalty_test"
            schema = 3
            upcasters = {1: lambda body: body}
