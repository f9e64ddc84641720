"""Point-in-time recovery: `turnstile replay DATA_DIR --until-seq N | --until-time T --into
NEW_DIR` makes a data dir that the engine starts from and that serves exactly the state of
that moment."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio.testing

from engine.journal import open_reader
from engine.testing import open_harness, user
from tests.tools import damage
from tests.tools.cli import replay, replay_json
from tests.tools.scenario import Reference
from tools.cli import main
from tools.replay import RecoveryRefused, copy_until, verify


def requests_in(data_dir: Path) -> list[tuple[str, int, int]]:
    conn = sqlite3.connect(data_dir / "journal.db")
    try:
        found = conn.execute("SELECT session_id, request_id, seq FROM requests ORDER BY seq")
        return [tuple(row) for row in found]
    finally:
        conn.close()


async def test_a_copy_serves_exactly_the_state_at_its_seq(
    reference: Reference, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    into = tmp_path / "recovered"
    copy = copy_until(reference.data_dir, into, until_seq=reference.cut_seq)
    assert copy.ok and copy.notes == ()
    assert (copy.until_seq, copy.rows, copy.requests) == (
        reference.cut_seq,
        reference.cut_seq,
        reference.requests_at_cut,
    )
    assert [seq for _, _, seq in requests_in(into)] == [
        seq for _, _, seq in requests_in(reference.data_dir) if seq <= reference.cut_seq
    ]
    # the journal, its index and its writer lock (an empty file)
    assert sorted(p.name for p in into.iterdir()) == ["journal.db", "journal.lock", "streams.db"]
    assert verify(into).ok
    # The rate limits' takes up to the cut came along too (each join took one).
    source, copied = open_reader(reference.data_dir), open_reader(into)
    try:
        assert list(copied.takes()) == list(source.takes(until_seq=reference.cut_seq))
        assert copy.takes == len(list(copied.takes())) > 0
    finally:
        source.close()
        copied.close()

    async with open_harness(into) as t:
        assert t.engine.committed_seq == reference.cut_seq
        for name, args, caller, then in reference.answers_at_cut:
            assert await t.query(name, args, caller) == then, (name, args)
        # The idempotency record came along: a re-sent purchase is answered, not re-run.
        again = await t.engine.mutation(
            "events:purchaseTicket", {}, user("ann"), session_id="session-ann", request_id=1
        )
        assert again.ts == reference.cut_seq and str(again.value).startswith("tk_")


def test_until_time_never_splits_a_command(
    reference: Reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = copy_until(reference.data_dir, tmp_path / "by-ms", until_ms=reference.between_ms)
    assert copy.ok and copy.until_seq == reference.cut_seq and copy.notes == ()
    iso = "2026-01-01T00:05:00Z"  # the harness's epoch + 5 minutes, as between_ms
    status, document = replay_json(
        capsys, reference.data_dir, "--into", str(tmp_path / "by-iso"), "--until-time", iso
    )
    assert status == 0 and document["ok"] is True
    assert (document["untilSeq"], document["untilTime"]) == (
        reference.cut_seq,
        "2026-01-01T00:05:00.000Z",
    )
    assert document["rows"] == reference.cut_seq


def test_a_cut_that_may_split_a_command_is_flagged(
    reference: Reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Row cut_seq - 1 (a join) and row cut_seq (a purchase) were decided in the same ms.
    status, text, _ = replay(
        capsys,
        reference.data_dir,
        "--into",
        str(tmp_path / "split"),
        "--until-seq",
        str(reference.cut_seq - 1),
    )
    assert status == 0
    assert f"note       row {reference.cut_seq} (TicketPurchased on event/" in text
    assert text.splitlines()[-1].startswith("OK: `turnstile serve --data-dir")


def test_refusals_leave_everything_as_it_was(
    reference: Reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    ran = replay(capsys, reference.data_dir, "--into", str(occupied), "--until-seq", "3")
    assert ran.status == 2 and "is not an empty directory" in ran.err
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]

    past = str(reference.end_seq + 1)
    ran = replay(capsys, reference.data_dir, "--into", str(tmp_path / "x"), "--until-seq", past)
    assert ran.status == 2 and f"the journal holds seq 1..{reference.end_seq}" in ran.err
    assert not (tmp_path / "x").exists()
    with pytest.raises(RecoveryRefused):
        copy_until(reference.data_dir, tmp_path / "y", until_seq=2, until_ms=1)
    inside = reference.data_dir / "recovered"
    ran = replay(capsys, reference.data_dir, "--into", str(inside))
    assert ran.status == 2 and "which is only ever read" in ran.err
    assert not inside.exists()

    for wrong in (
        ["--verify", "--until-seq", "3"],
        ["--into", str(tmp_path / "z"), "--until-seq", "3", "--until-time", "0"],
        ["--into", str(tmp_path / "z"), "--until-time", "2026-01-01T00:05:00"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(["replay", str(reference.data_dir), *wrong])
        assert exited.value.code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied"]


def test_a_damaged_prefix_is_refused_and_a_cut_before_the_damage_works(
    data_dir: Path, reference: Reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = damage.flip_payload_byte(data_dir, reference.cut_seq)
    into = tmp_path / "whole"
    status, document = replay_json(capsys, data_dir, "--into", str(into))
    assert status == 1 and document["ok"] is False and document["into"] is None
    assert [(f["kind"], f["seq"], f["stream"]) for f in document["findings"]] == [
        ("checksum", reference.cut_seq, stream)
    ]
    assert not into.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no partial copy left

    copy = copy_until(data_dir, into, until_seq=reference.cut_seq - 1)
    assert copy.ok and copy.rows == reference.cut_seq - 1
    assert verify(into).ok
