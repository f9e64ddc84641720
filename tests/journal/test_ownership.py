"""The journal owns its SQL: no module the product ships (engine/, snapshots/, tools/) names one
of the journal's tables in SQL (keywords in capitals, as all of its SQL is written), except the
journal's own backend modules (engine/journal/)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("engine", "snapshots", "tools")
OWNER = ROOT / "engine" / "journal"
TABLES = (
    "events",
    "requests",
    "takes",
    "erasures_done",
    "quarantine",
    "quarantine_requests",
    "quarantine_takes",
)
SQL_ON_TABLE = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
    rf"({'|'.join(TABLES)})\b"
)  # SQL keywords in capitals, as every query in the code base writes them


def sql_on_journal_tables(text: str) -> list[str]:
    return [match.group(0) for match in SQL_ON_TABLE.finditer(text)]


def test_the_pattern_catches_sql_on_the_journal_tables() -> None:
    assert sql_on_journal_tables('conn.execute("SELECT max(seq) FROM events")') == ["FROM events"]
    assert sql_on_journal_tables('"INSERT INTO requests (session_id) VALUES (?)"')
    assert sql_on_journal_tables('"SELECT limiter FROM takes WHERE rid > ?"')
    assert sql_on_journal_tables('"UPDATE events SET payload = ?"')
    assert sql_on_journal_tables('"CREATE TABLE IF NOT EXISTS erasures_done (stream TEXT)"')
    assert not sql_on_journal_tables('"SELECT version FROM states WHERE stream = ?"')
    assert not sql_on_journal_tables("the requests in flight, from events of the day")


def test_no_shipped_module_but_the_journal_has_sql_on_its_tables() -> None:
    found: list[str] = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(OWNER):
                continue
            hits = sql_on_journal_tables(path.read_text(encoding="utf-8"))
            found += [f"{path.relative_to(ROOT)}: {hit}" for hit in hits]
    assert found == []
