"""The peer benchmark (lab/peer_bench) at tiny sizes: each contender's side end to end on both
workloads with its final state checked, the rules of PostgreSQL's two designs, the checks every
contender's outcome goes through, and the table (its doc section is written by
`lab.figures.write_section`, tested in tests/lab/test_figures.py). `./dev test` installs what the
PostgreSQL and eventsourcing sides need (psycopg and eventsourcing with the `dev` extra, Debian's
postgresql where apt-get can); where they are still missing, those tests skip, saying what is
missing."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
    event_of,
    user_name,
)

REPO = Path(__file__).resolve().parents[2]
TINY = Sizes(tickets=6, users=40, clients=5, rounds=1, deadline_s=60.0)
#: 8 events of 3 seats, 40 users: some events fill up (and have waiters), some do not.
TINY_SPREAD = Sizes(
    tickets=3, users=40, clients=5, rounds=1, deadline_s=60.0, events=8, workload="spread"
)
BOTH = pytest.mark.parametrize("sizes", [TINY, TINY_SPREAD], ids=["onsale", "spread"])


def assert_correct_round(result: dict[str, Any], sizes: Sizes) -> None:
    assert result["problems"] == []
    assert result["complete"]
    assert result["workload"] == sizes.workload
    assert result["joins"] == sizes.users
    assert result["purchases"] == sizes.offers
    assert result["commands"] == sizes.users + sizes.offers
    assert result["cmds_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


def require_postgres() -> None:
    try:
        postgres_side.require_available()
    except postgres_side.Unavailable as exc:
        pytest.skip(str(exc))


# -- the contenders -------------------------------------------------------------------------------


def test_the_spread_workload_fills_some_events_and_not_others() -> None:
    joined = [sum(event_of(TINY_SPREAD, i) == e for i in range(40)) for e in range(8)]
    assert sum(joined) == 40
    assert any(n > 3 for n in joined) and any(n < 3 for n in joined)
    assert TINY_SPREAD.offers == sum(min(3, n) for n in joined) < 40
    assert TINY.offers == 6
    assert [event_of(TINY, i) for i in range(40)] == [0] * 40


@BOTH
async def test_turnstile_side_runs_the_workload_and_passes_its_checks(
    tmp_path: Path, sizes: Sizes
) -> None:
    result = await turnstile_side.run_workload(tmp_path / "data", sizes)
    assert_correct_round(result, sizes)
    assert "synchronous=FULL" in result["durability"]


@BOTH
@pytest.mark.parametrize("mode", ["for-update", "plpgsql"])
def test_postgres_side_runs_the_workload_and_passes_its_checks(mode: str, sizes: Sizes) -> None:
    require_postgres()
    result = postgres_side.run(sizes, mode)
    assert_correct_round(result, sizes)
    assert result["mode"] == mode
    assert "fsync=on" in result["durability"]
    assert "synchronous_commit=on" in result["durability"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[postgres_side.Server]:
    """One server for the rules tests, with the schema, the functions and four events of one
    seat each (ids 1-4)."""
    require_postgres()
    import psycopg

    with postgres_side.running_postgres() as server:
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            for statement in postgres_side.SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement.encode())
            conn.execute(postgres_side.FUNCTIONS_SQL.encode())
        yield server


async def _rules(server: postgres_side.Server, mode: str, first: int) -> list[Any]:
    """Drive one store through each rule on events first..first+3 (fresh users per mode); the
    list of what each step answered (a reply, or the refusal's code)."""
    conn = await postgres_side.open_connection(server.conninfo, mode)
    store: Any = (
        postgres_side.FunctionStore(conn) if mode == "plpgsql" else postgres_side.Store(conn, mode)
    )
    seen: list[Any] = []

    async def step(op: Any, *args: Any) -> Any:
        try:
            answer = await op(*args)
        except postgres_side.Refused as exc:
            answer = exc.code
        seen.append(answer)
        return answer

    try:
        await conn.execute(
            "INSERT INTO events (id, name, total_tickets, price)"
            " SELECT g, 'e', 1, 100 FROM generate_series(%s::bigint, %s::bigint) AS g",
            (first, first + 3),
        )
        if mode != "plpgsql":
            await conn.commit()
        a, b, c = (f"{mode}-{x}" for x in "abc")
        await step(store.join, first, a)  # the one seat: offered
        await step(store.join, first, a)  # one open entry per user per event
        await step(store.join, first, b)  # no seat left: waiting
        wid = f"wl_{first}_0"
        await step(store.purchase, first, b, wid, "pi_b", 100)  # not b's offer
        await step(store.purchase, first, a, wid, "pi_a", 100)
        await step(store.purchase, first, a, wid, "pi_a", 100)  # the same intent: same ticket
        await step(store.purchase, first, a, f"wl_{first}_1", "pi_a2", 100)  # b's entry
        await step(store.join, first + 99, c)  # no such event
        for event in range(first, first + 4):  # the 4th join within 30 minutes: refused
            await step(store.join, event, c)
        if mode != "plpgsql":
            await conn.rollback()
        cur = await conn.execute(
            "SELECT purchased_count, active_offers, entry_count FROM events"
            " WHERE id BETWEEN %s AND %s ORDER BY id",
            (first, first + 3),
        )
        seen.append(await cur.fetchall())
    finally:
        await conn.close()
    return seen


@pytest.mark.parametrize("mode", ["for-update", "plpgsql"])
def test_postgres_designs_enforce_the_same_rules(postgres: postgres_side.Server, mode: str) -> None:
    first = {"for-update": 10, "plpgsql": 20}[mode]
    seen = asyncio.run(_rules(postgres, mode, first))
    assert seen == [
        (OFFERED, f"wl_{first}_0"),
        "Conflict",
        (WAITING, f"wl_{first}_1"),
        "Forbidden",
        f"tk_wl_{first}_0",
        f"tk_wl_{first}_0",
        "Forbidden",
        "NotFound",
        (WAITING, f"wl_{first}_2"),
        (OFFERED, f"wl_{first + 1}_0"),
        (OFFERED, f"wl_{first + 2}_0"),
        "RateLimited",
        # Counters: sold, live offers, entries; the refused join changed nothing.
        [(1, 0, 3), (0, 1, 1), (0, 1, 1), (0, 0, 0)],
    ]


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
    monkeypatch.setattr(postgres_side, "DEBIAN_BINARIES", "/nonexistent/*/bin")
    skipped = run_round("postgres", Path("/nonexistent"), TINY, 4, "plpgsql")
    assert skipped["skipped"].startswith("PostgreSQL not found")
    assert "apt-get install postgresql" in skipped["skipped"]


def test_debian_binaries_are_found_off_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Debian's package puts them in /usr/lib/postgresql/<major>/bin, not on PATH: the newest wins.
    for major in ("9", "13", "15"):
        for name in ("initdb", "postgres"):
            binary = tmp_path / major / "bin" / name
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
    (tmp_path / "15" / "bin" / "postgres").chmod(0o644)  # not executable: 15 is incomplete
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres_side, "DEBIAN_BINARIES", str(tmp_path / "*" / "bin"))
    assert postgres_side.find_binaries() == (
        str(tmp_path / "13" / "bin" / "initdb"),
        str(tmp_path / "13" / "bin" / "postgres"),
    )


def test_command_line_quick_run_prints_a_table_per_workload(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    command = [sys.executable, "-m", "lab.peer_bench", "--quick", "--only", "turnstile"]
    command += ["--tickets", "5", "--users", "30", "--clients", "4", "--events", "6"]
    command += ["--event-tickets", "2", "--json", str(out)]
    command += ["--rounds", "2", "--budget", "0"]  # the budget is spent: one round only
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "quick sizes, 1 of 2 round(s)" in done.stdout
    assert "workload `onsale`: one event with 5 tickets, 30 users" in done.stdout
    assert "workload `spread`: 6 events of 2 tickets each, 30 users" in done.stdout
    assert done.stdout.count("Turnstile, 4 tasks") == 4  # a row and a note per workload
    results = json.loads(out.read_text())["results"]
    assert [(r["contender"], r["workload"]) for r in results] == [
        ("Turnstile, 4 tasks", "onsale"),
        ("Turnstile, 4 tasks", "spread"),
    ]
    assert [r["problems"] for r in results] == [[], []]
    assert results[0]["commands"] == 35
    spread = Sizes(tickets=2, users=30, clients=4, rounds=1, deadline_s=60, events=6)
    assert results[1]["commands"] == 30 + spread.offers


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


def spread_run() -> tuple[Sizes, Replies, list[FinalState]]:
    """A correct run of TINY_SPREAD, built from its picks: each event's first 3 joiners offered
    and purchased, the rest waiting."""
    replies = Replies()
    finals: list[dict[str, Any]] = [{"entries": {}, "tickets": []} for _ in range(8)]
    for i in range(TINY_SPREAD.users):
        user, state = user_name(i), finals[event_of(TINY_SPREAD, i)]
        number = len(state["entries"])
        if number < TINY_SPREAD.tickets:
            replies.joined[user] = OFFERED
            replies.purchased[user] = f"tk_{i}"
            state["entries"][user] = [PURCHASED]
            state["tickets"].append((user, f"wl_{i}"))
        else:
            replies.joined[user] = WAITING
            state["entries"][user] = [WAITING]
    return (
        TINY_SPREAD,
        replies,
        [
            FinalState(
                total_tickets=3,
                purchased_count=len(f["tickets"]),
                entries=f["entries"],
                tickets=f["tickets"],
            )
            for f in finals
        ],
    )


def test_check_judges_each_event_of_the_spread_workload() -> None:
    sizes, replies, finals = spread_run()
    assert check(sizes, replies, finals, complete=True) == []
    assert check(sizes, replies, finals[:-1], complete=True) == ["final state of 7 events, not 8"]
    # One event oversold: that event is named; the others pass.
    full = next(e for e in range(8) if len(finals[e].tickets) == 3)
    bad = finals[full]
    extra = next(u for u, s in bad.entries.items() if s == [WAITING])
    finals[full] = FinalState(
        total_tickets=3,
        purchased_count=4,
        entries={**bad.entries, extra: [PURCHASED]},
        tickets=[*bad.tickets, (extra, "wl_x")],
    )
    problems = check(sizes, replies, finals, complete=True)
    assert f"event {full}: oversold: 4 tickets for 3 seats" in problems
    assert all(p.startswith(f"event {full}: ") for p in problems)


def test_check_catches_an_entry_in_another_event() -> None:
    sizes, replies, finals = spread_run()
    user = user_name(0)
    home = event_of(sizes, 0)
    other = (home + 1) % 8
    moved = finals[other]
    finals[other] = FinalState(
        total_tickets=3,
        purchased_count=moved.purchased_count,
        entries={**moved.entries, user: [WAITING]},
        tickets=moved.tickets,
    )
    problems = check(sizes, replies, finals, complete=True)
    assert f"event {other}: 1 entries of users whose join was never acknowledged" in problems


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
        report.Line(key="postgres", rounds=[round_of("PG64", 150)]),
        report.Line(key="postgres", rounds=[round_of("PG8", 250)]),
        report.Line(key="postgres", rounds=[round_of("PG16", 400, ["oversold"])]),
        report.Line(key="eventsourcing", rounds=[round_of("ES", 190)]),
    ]
    table, notes = report.render(lines, {"x": "not installed"})
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert "1,000" in rows["T"]  # the median round
    assert rows["PG64"].endswith("6.7x                passed")  # every row's ratio
    assert rows["PG8"].endswith("4.0x  >= 5x MISSED  passed")  # the best valid row: the aim
    assert rows["PG16"].endswith("2.5x                FAILED")  # failed checks: never the best
    assert rows["ES"].endswith("5.3x  >= 5x met     passed")
    assert notes[:2] == [
        "aim: Turnstile >= 5x PostgreSQL at its best: MISSED (80% of the aim); "
        "1,000 / 250 commands/s = 4.0x (its best row: PG8)",
        "aim: Turnstile >= 5x eventsourcing at its best: met; "
        "1,000 / 190 commands/s = 5.3x (its best row: ES)",
    ]
    assert any(n.startswith("PG16:") and "CHECKS FAILED: oversold" in n for n in notes)
    assert "skipped" in rows["x"]


def test_the_doc_section_has_a_table_per_workload() -> None:
    lines = [
        report.Line(key="turnstile", rounds=[round_of("T", 1000)]),
        report.Line(key="postgres", rounds=[round_of("PG", 100)]),
    ]
    table, notes = report.render(lines, {})
    info = {
        "date": "2026-12-02 07:00 UTC",
        "cpus": 2,
        "cpus_usable": 2,
        "cpu_model": "cpu",
        "loadavg_start": (0.5, 0, 0),
        "loadavg_end": (1.5, 0, 0),
        "platform": "Linux",
        "commit": "abc1234",
        "dirty": [],
    }
    parts = [
        report.Table(workload="onsale", sizes=TINY, table=table, notes=notes),
        report.Table(workload="spread", sizes=TINY_SPREAD, table=table, notes=notes),
    ]
    text = report.section(parts, info, {"Python": "3.11"}, "python -m lab.peer_bench", 60, False)
    assert text.startswith(report.HEADING + "\n")
    assert text.count("```\n" + table + "\n```") == 2
    assert "### Workload `onsale`\n\n- `onsale`: one event with 6 tickets, 40 users" in text
    assert (
        f"### Workload `spread`\n\n- `spread`: 8 events of 3 tickets each, 40 users each joining "
        f"one of them at random ({TINY_SPREAD.offers} offered a seat)" in text
    )
    assert text.count("- aim: Turnstile >= 5x PostgreSQL at its best: met; ") == 2
