"""Erasure: personal data leaves the journal, its WAL and every snapshot, and replay still
gives the live state (engine/erasure.py; tests/engine/counters.py marks `label` personal)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio.testing

from engine import EngineConfig, erasure
from engine.snapshotting import build_snapshot
from engine.testing.harness import EngineHarness, open_harness
from snapshots.store import Snapshot, newest_valid, snapshot_dir
from tests.engine.counters import COUNTER, COUNTERS

SECRET = "zq-secret-label-91"
CONFIG = EngineConfig(check_invariants=True, snapshot_every=0, offload_io=False)


def files_holding(data_dir: Path, needle: bytes) -> list[str]:
    return sorted(
        str(path.relative_to(data_dir))
        for path in data_dir.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


async def make_counter(h: EngineHarness) -> str:
    counter = await h.mutation("counters:create", {"label": SECRET})
    await h.mutation("counters:add", {"counterId": counter, "amount": 7})
    await h.engine.snapshot_now()
    await h.mutation("counters:add", {"counterId": counter, "amount": 1})
    other = await h.mutation("counters:create", {"label": "keep-me"})
    assert other
    assert files_holding(h.data_dir, SECRET.encode())  # it is there before
    return str(counter)


async def test_erasure_removes_personal_data_from_every_file(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=CONFIG) as h:
        counter = await make_counter(h)
        await h.mutation("counters:erase", {"counterId": counter})
        await h.engine.wait_erasures()
        assert files_holding(h.data_dir, SECRET.encode()) == []
        assert files_holding(h.data_dir, b"keep-me")  # nothing else was touched
        state = h.engine.committed_state(COUNTER, counter)
        assert (state.label, state.total) == ("", 8)  # the figures stay right
        # One snapshot remains, built afresh, and it equals a fold of the scrubbed journal.
        snapshots = sorted(snapshot_dir(h.data_dir).glob("snapshot-*.db"))
        assert len(snapshots) == 1
        await h.mutation("counters:add", {"counterId": counter, "amount": 2})
        await h.restart()
        assert h.engine.committed_state(COUNTER, counter).total == 10
        assert h.engine.committed_state(COUNTER, counter).label == ""
    # Replay from nothing gives the same states as snapshot + tail.
    info = build_snapshot(tmp_path / "data", h.engine.registry, fresh=True)
    assert info is not None
    snap = newest_valid(snapshot_dir(tmp_path / "data"))
    assert isinstance(snap, Snapshot)
    try:
        row = snap.state(COUNTER.stream_of(counter))
        assert row is not None and SECRET.encode() not in row.payload
    finally:
        snap.close()


async def test_an_interrupted_erasure_is_finished_at_the_next_start(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=CONFIG) as h:
        counter = await make_counter(h)

        def crash(*args: object) -> int:
            raise OSError("disk went away")

        with monkeypatch.context() as patch:
            patch.setattr(erasure, "scrub_stream", crash)
            await h.mutation("counters:erase", {"counterId": counter})
            await h.engine.wait_erasures()
        assert files_holding(h.data_dir, SECRET.encode())  # not done yet
        await h.restart()  # the pending erasure is completed before serving
        assert files_holding(h.data_dir, SECRET.encode()) == []
        assert erasure.pending(h.engine.journal, ["CounterErased"]) == []
        assert h.engine.committed_state(COUNTER, counter).total == 8
