"""`turnstile replay DATA_DIR --stats`, checked against counts taken from the journal
directly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.journal import open_journal
from tests.tools import damage
from tests.tools.cli import replay, replay_json
from tests.tools.scenario import Reference

MINUTE = 60_000


def expected_counts(rows: list[tuple[Any, ...]], key: Any) -> list[dict[str, Any]]:
    events: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for row in rows:
        events[key(row)] += 1
        size[key(row)] += len(row[4])
    ordered = sorted(events, key=lambda name: (-events[name], -size[name], name))
    return [{"name": name, "events": events[name], "bytes": size[name]} for name in ordered]


def test_stats_count_types_kinds_streams_and_rate(
    reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = damage.rows(reference.data_dir)
    status, stats = replay_json(capsys, reference.data_dir, "--stats")
    assert status == 0
    assert (stats["events"], stats["firstSeq"], stats["lastSeq"]) == (
        reference.end_seq,
        1,
        reference.end_seq,
    )
    assert stats["payloadBytes"] == sum(len(row[4]) for row in rows)
    assert stats["streams"] == len({row[1] for row in rows})
    assert stats["byType"] == expected_counts(rows, lambda row: row[3])
    assert stats["byStreamKind"] == expected_counts(rows, lambda row: row[1].split("/")[0])
    assert {k["name"] for k in stats["byStreamKind"]} == {"event", "job"}
    assert stats["biggestStreams"] == expected_counts(rows, lambda row: row[1])[:10]
    # 42 minutes of history: one-minute buckets, each counted, empty ones included.
    assert stats["bucketMinutes"] == 1
    per_minute = Counter(row[5] // MINUTE for row in rows)
    first, last = min(per_minute), max(per_minute)
    assert [(b["start"], b["events"], b["perMinute"]) for b in stats["rate"]] == [
        (m * MINUTE, per_minute[m], float(per_minute[m])) for m in range(first, last + 1)
    ]
    assert stats["rate"][0]["startTime"] == "2026-01-01T00:00:00.000Z"


def test_stats_options_and_the_readable_form(
    reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = damage.rows(reference.data_dir)
    status, stats = replay_json(
        capsys, reference.data_dir, "--stats", "--top", "2", "--bucket-minutes", "15"
    )
    assert status == 0 and len(stats["biggestStreams"]) == 2
    per_quarter = Counter(row[5] // (15 * MINUTE) for row in rows)
    assert [b["events"] for b in stats["rate"]] == [
        per_quarter[q] for q in range(min(per_quarter), max(per_quarter) + 1)
    ]
    assert [b["perMinute"] for b in stats["rate"]] == [b["events"] / 15 for b in stats["rate"]]

    status, text, _ = replay(capsys, reference.data_dir, "--stats")
    assert status == 0
    lines = text.splitlines()
    header = lines.index("by event type") + 1
    assert lines[header].split() == ["TYPE", "EVENTS", "BYTES"]
    table = lines[header : lines.index("", header)]
    # Numbers right-aligned: every row of the table ends in the same column.
    assert len({len(line) for line in table}) == 1
    purchased = [row for row in rows if row[3] == "TicketPurchased"]
    [line] = [line for line in table if line.split()[0] == "TicketPurchased"]
    assert line.split()[1:] == [str(len(purchased)), f"{sum(len(r[4]) for r in purchased):,}"]
    assert f"events     {reference.end_seq} in " in text


def test_stats_of_an_empty_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    open_journal(tmp_path / "empty").close()
    status, stats = replay_json(capsys, tmp_path / "empty", "--stats")
    assert status == 0
    assert (stats["events"], stats["byType"], stats["rate"]) == (0, [], [])
    status, text, _ = replay(capsys, tmp_path / "empty", "--stats")
    assert status == 0 and "events     0 in 0 streams" in text
