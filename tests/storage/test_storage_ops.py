"""Stored files in operations: the start-up clean-up of what no record names, snapshots and
`replay --verify` checking each recorded file's size and sha256, and point-in-time copies
taking the files of their moment."""

from __future__ import annotations

import os
from pathlib import Path

import trio.testing

from domain.identity import Identity
from engine import EngineConfig
from engine.files import FileStore
from engine.testing.harness import open_harness
from tests.storage.helpers import store_file
from tools.replay import copy_until, verify

CONFIG = EngineConfig(run_jobs=False, offload_io=False, snapshot_every=0)
UPLOADER = Identity(subject="u_files", org_id="org_a")


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


async def test_start_removes_partial_and_unrecorded_files_and_keeps_recorded_ones(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    data_dir = tmp_path / "data"
    async with open_harness(data_dir, config=CONFIG) as t:
        kept = await store_file(t.engine, b"recorded bytes", UPLOADER)
        await t.engine.snapshot_now()  # the next start reads the records from it
        # What a crash leaves: an upload being received, and one renamed into place whose
        # record never committed.
        partial = t.engine.files.begin("kg_partialpartial")
        partial.write(b"half of it")
        unrecorded = t.engine.files.begin("kg_unrecordedfile")
        unrecorded.write(b"never recorded")
        unrecorded.finish()
        await t.restart()
        assert FileStore(data_dir).names() == [kept]
        assert not any((data_dir / "storage" / "incoming").iterdir())
        assert (data_dir / "storage" / kept).read_bytes() == b"recorded bytes"


async def test_verify_and_snapshots_report_a_flipped_byte_and_a_missing_file_by_name(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    data_dir = tmp_path / "data"
    async with open_harness(data_dir, config=CONFIG) as t:
        good = await store_file(t.engine, os.urandom(5000), UPLOADER)
        flipped = await store_file(t.engine, os.urandom(5000), UPLOADER)
        gone = await store_file(t.engine, b"soon missing", UPLOADER)
        info = await t.engine.snapshot_now()
        assert info is not None and info.file_problems == ()
        assert verify(data_dir).ok
        flip_byte(data_dir / "storage" / flipped, 1234)
        (data_dir / "storage" / gone).unlink()
        await t.engine.mutation("storage:generateUploadUrl", {}, UPLOADER)  # a row to snapshot
        info = await t.engine.snapshot_now()
        assert info is not None
        assert sorted((p.storage_id, p.problem) for p in info.file_problems) == sorted(
            [(flipped, "sha256"), (gone, "missing")]
        )
    report = verify(data_dir)
    assert not report.ok
    assert report.counts == {"stored-file": 2}
    messages = " ".join(finding.message for finding in report.findings)
    assert flipped in messages and gone in messages and good not in messages
    assert {f.stream for f in report.findings} == {f"file/{flipped}", f"file/{gone}"}


async def test_a_point_in_time_copy_takes_the_files_of_its_moment(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    data_dir = tmp_path / "data"
    async with open_harness(data_dir, config=CONFIG) as t:
        first = await store_file(t.engine, b"first file", UPLOADER)
        moment = t.engine.committed_seq
        second = await store_file(t.engine, b"second file", UPLOADER)
        await t.engine.mutation("storage:delete", {"storageId": first}, UPLOADER)
    early = copy_until(data_dir, tmp_path / "early", until_seq=moment)
    assert early.ok
    # The first file was deleted after that moment: its bytes are gone, and the copy says so.
    assert FileStore(tmp_path / "early").names() == []
    assert any(first in note for note in early.notes)
    late = copy_until(data_dir, tmp_path / "late")
    assert late.ok
    assert FileStore(tmp_path / "late").names() == [second]
    assert (tmp_path / "late" / "storage" / second).read_bytes() == b"second file"
    assert verify(tmp_path / "late").ok


async def test_a_copy_before_a_deletion_holds_the_file(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    data_dir = tmp_path / "data"
    async with open_harness(data_dir, config=CONFIG) as t:
        first = await store_file(t.engine, b"first file", UPLOADER)
        moment = t.engine.committed_seq
        await store_file(t.engine, b"second file", UPLOADER)
    copy = copy_until(data_dir, tmp_path / "copy", until_seq=moment)
    assert copy.ok
    assert FileStore(tmp_path / "copy").names() == [first]
    report = verify(tmp_path / "copy")
    assert report.ok, report.findings
    async with open_harness(tmp_path / "copy", config=CONFIG) as t:
        assert await t.query("storage:getMetadata", {"storageId": first}) is not None
        assert FileStore(tmp_path / "copy").names() == [first]  # recorded: kept at start
