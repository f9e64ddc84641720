"""`turnstile replay DATA_DIR --export FILE.jsonl` with its filters, checked against the
journal's rows read directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.tools import damage
from tests.tools.cli import replay, replay_json
from tests.tools.scenario import Reference
from tools.cli import main

MINUTE = 60_000
T0 = 1_767_225_600_000  # the harness's epoch: 2026-01-01T00:00:00Z


def exported(path: Path) -> list[dict[str, Any]]:
    lines = path.read_bytes().splitlines()
    return [json.loads(line) for line in lines]


def expected(data_dir: Path, sql: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [
        {
            "seq": seq,
            "stream": stream,
            "version": version,
            "type": type_,
            "at": at,
            "payload": json.loads(payload),
        }
        for seq, stream, version, type_, payload, at in damage.rows(data_dir, sql, params)
    ]


def test_export_everything_as_json_lines(
    reference: Reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "all.jsonl"
    status, summary = replay_json(capsys, reference.data_dir, "--export", str(out))
    assert status == 0
    assert summary == {
        "ok": True,
        "exported": reference.end_seq,
        "lastSeq": reference.end_seq,
        "followed": False,
        "endedBy": "end",
        "damaged": 0,
        "findings": [],
    }
    events = exported(out)
    assert events == expected(reference.data_dir)
    purchase = next(e for e in events if e["type"] == "TicketPurchased")
    assert purchase["payload"]["userId"] == "ann" and purchase["payload"]["amount"] == 2500


def test_export_filters(
    reference: Reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream_a = f"event/{reference.event_a}"
    out = tmp_path / "offers.jsonl"
    status, summary = replay_json(
        capsys,
        reference.data_dir,
        "--export",
        str(out),
        "--stream",
        stream_a,
        "--type",
        "OfferMade",
        "--type",
        "OfferExpired",
    )
    want = expected(
        reference.data_dir,
        "WHERE stream = ? AND type IN ('OfferMade', 'OfferExpired')",
        (stream_a,),
    )
    assert status == 0 and summary["exported"] == len(want) > 2
    assert exported(out) == want

    # --since/--until bound the decision time, inclusive, as ISO 8601 or milliseconds.
    since, until = T0 + 10 * MINUTE, T0 + 40 * MINUTE
    for bounds in (
        ("2026-01-01T00:10:00Z", "2026-01-01T01:40:00+01:00"),
        (str(since), str(until)),
    ):
        out = tmp_path / "window.jsonl"
        status, _, _ = replay(
            capsys,
            reference.data_dir,
            "--export",
            str(out),
            "--since",
            bounds[0],
            "--until",
            bounds[1],
        )
        window = expected(reference.data_dir, "WHERE at BETWEEN ? AND ?", (since, until))
        assert status == 0 and exported(out) == window
        assert {since, until} <= {e["at"] for e in window}  # both bounds are inclusive

    streams_b = f"event/{reference.event_b}"
    out = tmp_path / "two-streams.jsonl"
    replay(
        capsys,
        reference.data_dir,
        "--export",
        str(out),
        "--stream",
        stream_a,
        "--stream",
        streams_b,
    )
    assert exported(out) == expected(reference.data_dir, "WHERE stream LIKE 'event/%'")


def test_export_to_stdout_keeps_the_summary_off_it(
    reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = replay(capsys, reference.data_dir, "--export", "-", "--type", "EventCreated")
    assert status == 0
    assert [json.loads(line)["type"] for line in out.splitlines()] == ["EventCreated"] * 2
    assert "exported   2 events to stdout" in err


def test_a_damaged_row_is_reported_and_the_export_goes_on(
    data_dir: Path, reference: Reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = damage.flip_payload_byte(data_dir, reference.cut_seq)
    out = tmp_path / "all.jsonl"
    status, summary = replay_json(capsys, data_dir, "--export", str(out))
    assert status == 1 and summary["ok"] is False
    assert (summary["exported"], summary["damaged"]) == (reference.end_seq - 1, 1)
    assert [(f["kind"], f["seq"], f["stream"]) for f in summary["findings"]] == [
        ("damaged-row", reference.cut_seq, stream)
    ]
    assert [e["seq"] for e in exported(out)] == [
        seq for seq in range(1, reference.end_seq + 1) if seq != reference.cut_seq
    ]
    status, text, _ = replay(capsys, data_dir, "--export", str(out))
    assert status == 1 and "FAILED: 1 row(s) could not be exported" in text


def test_follow_stops_after_its_time_bound(
    reference: Reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "followed.jsonl"
    status, summary = replay_json(
        capsys, reference.data_dir, "--export", str(out), "--follow", "--follow-seconds", "0.3"
    )
    assert status == 0
    assert (summary["followed"], summary["endedBy"], summary["exported"]) == (
        True,
        "time",
        reference.end_seq,
    )
    assert len(exported(out)) == reference.end_seq


@pytest.mark.parametrize(
    "wrong",
    [
        ["--stats", "--type", "OfferMade"],
        ["--verify", "--follow"],
        ["--export", "x.jsonl", "--follow-seconds", "1"],
        ["--export", "-", "--json"],
        ["--export", "x.jsonl", "--since", "yesterday"],
    ],
)
def test_options_that_do_not_fit_are_refused(reference: Reference, wrong: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay", str(reference.data_dir), *wrong])
    assert exited.value.code == 2
