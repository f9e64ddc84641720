"""`turnstile replay DATA_DIR --verify` on a journal written by the real engine: clean, then
damaged on purpose in each way a journal or a snapshot can be; each damage is reported with
its seq and stream, and the exit status is non-zero."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.tools import damage
from tests.tools.cli import kinds, replay, replay_json
from tests.tools.scenario import Reference
from tools.cli import main
from tools.replay import verify


def stream_of(reference: Reference, event_id: str) -> str:
    return f"event/{event_id}"


def test_a_clean_data_dir_verifies(
    data_dir: Path, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 0
    assert document["ok"] is True
    assert document["findings"] == [] and document["findingCounts"] == {}
    assert document["journal"] == {
        "rows": reference.end_seq,
        "lastSeq": reference.end_seq,
        "streams": len({row[1] for row in damage.rows(data_dir)}),
    }
    [snapshot] = document["snapshots"]
    assert (snapshot["seq"], snapshot["status"], snapshot["newestValid"]) == (
        reference.snapshot_seq,
        "matches",
        True,
    )
    assert snapshot["states"] == len(
        {row[1] for row in damage.rows(data_dir, "WHERE seq <= ?", (reference.snapshot_seq,))}
    )
    status, text, _ = replay(capsys, data_dir, "--verify")
    assert status == 0
    assert text.splitlines()[-1].startswith("OK:")


def test_flipped_bytes_in_payloads_are_reported_mid_journal_and_at_the_tail(
    data_dir: Path, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    middle = damage.flip_payload_byte(data_dir, reference.cut_seq)
    tail = damage.flip_payload_byte(data_dir, reference.end_seq)
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1 and document["ok"] is False
    assert kinds(document) == [
        ("checksum", reference.cut_seq, middle),
        ("checksum", reference.end_seq, tail),
    ]
    # The damaged stream cannot be compared with the snapshot; the report says so.
    assert any("not compared" in note for note in document["notes"])
    status, text, _ = replay(capsys, data_dir, "--verify")
    assert status == 1
    assert f"{reference.end_seq}  {tail}" in text and "checksum" in text


def test_a_truncated_tail_behind_a_newer_snapshot_is_reported(
    data_dir: Path, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    # Cut at a command boundary (a cut inside a command is also an invariant finding).
    end = reference.snapshot_seq - 4
    damage.execute(damage.journal(data_dir), "DELETE FROM events WHERE seq > ?", (end,))
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    assert document["journal"]["lastSeq"] == end
    [snapshot] = document["snapshots"]
    assert snapshot["status"] == "ahead"
    tail = {f["message"]: f["seq"] for f in document["findings"] if f["kind"] == "tail-missing"}
    assert list(tail.values()) == [end + 1, end + 1]
    # The snapshot and the idempotency records of the lost commands say how far it went.
    [(highest,)] = damage.execute(damage.journal(data_dir), "SELECT max(seq) FROM requests")
    expected = (
        f"rows {end + 1}..{reference.snapshot_seq} (at least) are missing",
        f"rows {end + 1}..{highest} are missing",
    )
    assert all(any(part in message for message in tail) for part in expected), tail
    assert {f["kind"] for f in document["findings"]} == {"tail-missing"}


def test_rate_limit_takes_past_the_end_are_evidence_of_a_lost_tail(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A join's take is written in its transaction, at its last event's seq: with the rows of
    the last join (and all after it) gone, the take still names them."""
    journal = damage.journal(data_dir)
    [(taken,)] = damage.execute(journal, "SELECT max(seq) FROM takes")
    [(kind,)] = damage.execute(journal, "SELECT type FROM events WHERE seq = ?", (taken,))
    end = taken - (2 if kind == "OfferMade" else 1)  # before the join's first event
    damage.execute(journal, "DELETE FROM events WHERE seq > ?", (end,))
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    messages = [f["message"] for f in document["findings"] if f["kind"] == "tail-missing"]
    assert any(
        f"rate-limit take(s) name seqs up to {taken}, past the journal's end at seq {end}" in m
        for m in messages
    ), messages


def test_a_damaged_take_past_the_end_is_a_finding_not_a_crash(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = damage.journal(data_dir)
    [(taken,)] = damage.execute(journal, "SELECT max(seq) FROM takes")
    damage.execute(journal, "UPDATE takes SET count = count + 1 WHERE seq = ?", (taken,))
    damage.execute(journal, "DELETE FROM events WHERE seq >= ?", (taken,))
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    assert any(
        f["kind"] == "unreadable" and "rate-limit take" in f["message"]
        for f in document["findings"]
    ), document["findings"]


def test_rows_missing_in_the_middle_are_a_gap_with_its_range(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = damage.rows(data_dir, "WHERE seq BETWEEN 5 AND 7")
    damage.execute(damage.journal(data_dir), "DELETE FROM events WHERE seq BETWEEN 5 AND 7")
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    found = document["findings"]
    assert (found[0]["kind"], found[0]["seq"]) == ("seq-gap", 5)
    assert found[0]["message"] == "seq 5..7 missing"
    # Each stream that lost rows shows its own version gap at the next row it has.
    gap_streams = {f["stream"] for f in found if f["kind"] == "version-gap"}
    assert gap_streams <= {row[1] for row in gone} and gap_streams


def test_a_stream_version_gap_is_reported_with_its_seq_and_stream(
    data_dir: Path, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    [(stream, version)] = damage.execute(
        damage.journal(data_dir),
        "SELECT stream, version FROM events WHERE seq = ?",
        (reference.end_seq,),
    )
    damage.execute(
        damage.journal(data_dir),
        "UPDATE events SET version = version + 1 WHERE seq = ?",
        (reference.end_seq,),
    )
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    [finding] = document["findings"]
    assert (finding["kind"], finding["seq"], finding["stream"]) == (
        "version-gap",
        reference.end_seq,
        stream,
    )
    assert finding["message"] == (
        f"version {version + 1} follows {version - 1} (versions {version} missing)"
    )


def test_a_snapshot_file_cut_short_is_reported(
    data_dir: Path, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    path = damage.snapshot_file(data_dir)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    [finding] = document["findings"]
    assert (finding["kind"], finding["seq"]) == ("snapshot-damaged", reference.snapshot_seq)
    assert path.name in finding["message"]
    assert document["snapshots"][0]["status"] == "damaged"


def test_a_flipped_byte_in_a_snapshot_row_names_the_stream(
    data_dir: Path, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = stream_of(reference, reference.event_a)
    damage.flip_snapshot_payload_byte(data_dir, stream)
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    assert kinds(document) == [("snapshot-damaged", reference.snapshot_seq, stream)]
    assert "fails its checksum" in document["findings"][0]["message"]


def test_a_snapshot_that_disagrees_with_the_journal_says_where(
    data_dir: Path, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = stream_of(reference, reference.event_a)
    damage.forge_snapshot_state(data_dir, stream, ("event", "name"), "Concert Z")
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    assert kinds(document) == [("snapshot-differs", reference.snapshot_seq, stream)]
    assert "event.name: 'Concert Z' != 'Concert A'" in document["findings"][0]["message"]
    assert document["snapshots"][0]["status"] == "differs"


def test_a_forged_event_that_breaks_an_invariant_is_reported(
    data_dir: Path, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = stream_of(reference, reference.event_a)
    [(entries,)] = damage.execute(
        damage.journal(data_dir),
        "SELECT count(*) FROM events WHERE stream = ? AND type = 'WaitingListJoined'",
        (stream,),
    )
    token = reference.event_a.removeprefix("ev_")
    # A seat is free at the end (ann's ticket was refunded): nobody may be left waiting.
    seq = damage.append_row(
        data_dir,
        stream,
        "WaitingListJoined",
        {"waitingListId": f"wl_{token}_{entries}", "userId": "zed", "number": entries},
        at=damage.rows(data_dir)[-1][5] + 60_000,
    )
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    assert kinds(document) == [("invariant", seq, stream)]
    assert "wait while" in document["findings"][0]["message"]


def test_undecodable_rows_and_unknown_streams_are_reported(
    data_dir: Path, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = stream_of(reference, reference.event_b)
    at = damage.rows(data_dir)[-1][5] + 60_000
    missing_field = damage.append_row(data_dir, stream, "OfferMade", {"userId": "zed"}, at)
    unknown_type = damage.append_row(data_dir, stream, "NoSuchEvent", {}, at)
    unknown_kind = damage.append_row(data_dir, "nosuchkind/x_1", "OfferMade", {}, at)
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    assert kinds(document) == [
        ("decode", missing_field, stream),
        ("decode", unknown_type, stream),
        ("unknown-stream", unknown_kind, "nosuchkind/x_1"),
    ]
    assert "OfferMade" in document["findings"][0]["message"]
    assert "unknown event type 'NoSuchEvent'" in document["findings"][1]["message"]


def test_an_unreadable_journal_is_reported_not_hidden(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage.checkpoint(data_dir)
    path = damage.journal(data_dir)
    path.write_bytes(b"\0" * 100 + path.read_bytes()[100:])
    status, document = replay_json(capsys, data_dir, "--verify")
    assert status == 1
    [finding] = document["findings"]
    assert (finding["kind"], finding["seq"]) == ("unreadable", 1)


def test_a_dir_without_a_journal_cannot_be_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "nothing"), "--verify"]) == 2
    assert "no journal at" in capsys.readouterr().err


def digests(data_dir: Path) -> dict[str, str]:
    """Every file's content, except SQLite's WAL index files (any reader may create them)."""
    return {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data_dir.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_reading_modes_leave_the_data_dir_as_it_was(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage.checkpoint(data_dir)
    before = digests(data_dir)
    assert replay(capsys, data_dir, "--verify")[0] == 0
    assert replay(capsys, data_dir, "--stats")[0] == 0
    assert replay(capsys, data_dir, "--export", str(tmp_path / "all.jsonl"))[0] == 0
    assert replay(capsys, data_dir, "--into", str(tmp_path / "copy"))[0] == 0
    assert digests(data_dir) == before


def test_findings_past_the_limit_are_counted_not_listed(data_dir: Path) -> None:
    joins = [row[0] for row in damage.rows(data_dir, "WHERE type = 'WaitingListJoined'")][:3]
    for seq in joins:
        damage.flip_payload_byte(data_dir, seq)
    report = verify(data_dir, limit=2)
    assert [f.seq for f in report.findings] == joins[:2]
    assert report.counts == {"checksum": 3} and report.left_out == 1
