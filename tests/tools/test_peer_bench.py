"""The peer benchmark (lab/peer_bench) at tiny sizes: Turnstile's side end to end, the checks
every contender's outcome goes through, and the table (its doc section is written by
`lab.figures.write_section`, tested in tests/lab/test_figures.py). The PostgreSQL and
eventsourcing sides run only where they are installed (`pip install -e '.[peers]'`, Debian's
postgresql); elsewhere they skip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.peer_bench import eventsourcing_side, postgres_side, report, turnstile_side
from lab.peer_bench.__main__ import run_round
from lab.peer_bench.workload import (
    OFFERED,
    PURCHASED,
    WAITING,
    FinalState,
    Replies,
    Sizes,
    check,
    user_name,
)

REPO = Path(__file__).resolve().parents[2]
TINY = Sizes(tickets=6, users=40, clients=5, rounds=1, deadline_s=60.0)


def assert_correct_round(result: dict[str, Any], sizes: Sizes) -> None:
    assert result["problems"] == []
    assert result["complete"]
    assert result["joins"] == sizes.users
    assert result["purchases"] == sizes.tickets
    assert result["commands"] == sizes.users + sizes.tickets
    assert result["cmds_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


# -- the contenders -------------------------------------------------------------------------------


async def test_turnstile_side_runs_the_workload_and_passes_its_checks(tmp_path: Path) -> None:
    result = await turnstile_side.onsale(tmp_path / "data", TINY)
    assert_correct_round(result, TINY)
    assert "synchronous=FULL" in result["durability"]


def test_postgres_side_when_installed() -> None:
    try:
        postgres_side.require_available()
    except postgres_side.Unavailable as exc:
        pytest.skip(str(exc))
    result = postgres_side.run(TINY)
    assert_correct_round(result, TINY)
    assert "fsync=on" in result["durability"]
    assert "synchronous_commit=on" in result["durability"]


def test_eventsourcing_side_when_installed(tmp_path: Path) -> None:
    try:
        eventsourcing_side.require_available()
    except eventsourcing_side.Unavailable as exc:
        pytest.skip(str(exc))
    result = eventsourcing_side.run(tmp_path, TINY)
    assert_correct_round(result, TINY)
    assert "synchronous=FULL" in result["durability"]


def test_a_missing_postgres_is_skipped_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)  # the module postgres_side looks in
    assert run_round("postgres", Path("/nonexistent"), TINY, 4, "for-update") == {
        "skipped": "PostgreSQL not found"
    }


def test_command_line_quick_run_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    # A PATH without PostgreSQL's binaries: that side must be skipped, the others run.
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    command = [sys.executable, "-m", "lab.peer_bench", "--quick", "--only", "turnstile,postgres"]
    command += ["--tickets", "5", "--users", "30", "--clients", "4", "--json", str(out)]
    done = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "PostgreSQL not found: skipped" in done.stdout
    assert "Turnstile, 4 tasks" in done.stdout
    results = json.loads(out.read_text())["results"]
    assert [r["contender"] for r in results] == ["Turnstile, 4 tasks"]
    assert results[0]["problems"] == []
    assert results[0]["commands"] == 35


# -- the checks -----------------------------------------------------------------------------------

SMALL = Sizes(tickets=2, users=4, clients=1, rounds=1, deadline_s=60.0)


def good_run() -> tuple[Replies, FinalState]:
    u = [user_name(i) for i in range(4)]
    replies = Replies(
        joined={u[0]: OFFERED, u[1]: OFFERED, u[2]: WAITING, u[3]: WAITING},
        purchased={u[0]: "tk_0", u[1]: "tk_1"},
    )
    final = FinalState(
        total_tickets=2,
        purchased_count=2,
        entries={u[0]: [PURCHASED], u[1]: [PURCHASED], u[2]: [WAITING], u[3]: [WAITING]},
        tickets=[(u[0], "wl_0"), (u[1], "wl_1")],
    )
    return replies, final


def test_check_accepts_a_correct_run() -> None:
    replies, final = good_run()
    assert check(SMALL, replies, final, complete=True) == []


def test_check_catches_an_oversold_event() -> None:
    replies, final = good_run()
    u2 = user_name(2)
    replies.joined[u2] = OFFERED
    replies.purchased[u2] = "tk_2"
    oversold = FinalState(
        total_tickets=2,
        purchased_count=3,
        entries={**final.entries, u2: [PURCHASED]},
        tickets=[*final.tickets, (u2, "wl_2")],
    )
    problems = check(SMALL, replies, oversold, complete=True)
    assert any(p.startswith("oversold: 3 tickets for 2 seats") for p in problems)
    assert any(p.startswith("3 offers made for 2 seats") for p in problems)


def test_check_catches_a_seat_sold_twice_and_a_counter_that_disagrees() -> None:
    replies, final = good_run()
    u0 = user_name(0)
    doubled = FinalState(
        total_tickets=2,
        purchased_count=2,
        entries=final.entries,
        tickets=[*final.tickets, (u0, "wl_0")],
    )
    problems = check(SMALL, replies, doubled, complete=True)
    assert "purchased counter 2 != 3 tickets" in problems
    assert any("hold more than one ticket" in p for p in problems)
    assert "one waiting-list entry was sold more than one ticket" in problems


def test_check_catches_a_lost_acknowledged_command() -> None:
    replies, final = good_run()
    u1 = user_name(1)
    lost = FinalState(
        total_tickets=2,
        purchased_count=1,
        entries={**final.entries, u1: [OFFERED]},
        tickets=final.tickets[:1],
    )
    problems = check(SMALL, replies, lost, complete=True)
    assert "1 users: told 'offered', final status 'offered'" in problems


def test_check_catches_a_status_other_than_the_one_told() -> None:
    replies, final = good_run()
    replies.joined[user_name(3)] = OFFERED  # told offered, never purchased, final waiting
    problems = check(SMALL, replies, final, complete=True)
    assert "1 users: told 'offered', final status 'waiting'" in problems
    assert "3 users offered a seat, not 2" in problems
    assert "2 purchases for 3 offers" in problems


def test_check_catches_a_double_entry_and_refusals() -> None:
    replies, final = good_run()
    u3 = user_name(3)
    replies.errors["Conflict"] += 1
    twice = FinalState(
        total_tickets=2,
        purchased_count=2,
        entries={**final.entries, u3: [WAITING, WAITING]},
        tickets=final.tickets,
    )
    problems = check(SMALL, replies, twice, complete=True)
    assert "1 users: 2 entries instead of 1" in problems
    assert "refused commands: {'Conflict': 1}" in problems


def test_an_incomplete_run_is_judged_on_what_it_did() -> None:
    replies, final = good_run()
    u3 = user_name(3)
    del replies.joined[u3]
    del final.entries[u3]
    assert check(SMALL, replies, final, complete=True) == ["3 of 4 joins acknowledged"]
    assert check(SMALL, replies, final, complete=False) == []


# -- the report -----------------------------------------------------------------------------------


def round_of(contender: str, rate: float, problems: list[str] | None = None) -> dict[str, Any]:
    return {
        "contender": contender,
        "cmds_per_s": rate,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "commands": 11,
        "joins": 10,
        "purchases": 1,
        "seconds": 11 / rate,
        "retries": 0,
        "complete": True,
        "problems": problems or [],
        "durability": "d",
        "concurrency": "c",
    }


def test_table_ratios_aims_and_verdicts() -> None:
    lines = [
        report.Line(key="turnstile", rounds=[round_of("T", r) for r in (900, 1000, 1100)]),
        report.Line(key="postgres", rounds=[round_of("PG64", 400)]),
        report.Line(key="postgres", rounds=[round_of("PG4", 600)]),
        report.Line(key="eventsourcing", rounds=[round_of("ES", 250)]),
    ]
    table, notes = report.render(lines, {"x": "not installed"})
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert "1,000" in rows["T"]  # the median round
    assert "2.5x  >= 2x  met" in rows["PG64"]
    assert "1.7x  >= 2x  MISSED (83% of aim)" in rows["PG4"]
    assert "4.0x  >= 5x  MISSED (80% of aim)" in rows["ES"]
    assert "aim >= 2x postgres: MISSED (1.7x against its best row: PG4)" in notes
    assert "skipped" in rows["x"]
    invalid, _ = report.render(
        [lines[0], report.Line(key="postgres", rounds=[round_of("PG", 1, ["oversold"])])], {}
    )
    assert "INVALID: checks failed" in invalid
