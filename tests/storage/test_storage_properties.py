"""Stored files as a property: over random histories of uploads, deletions, what a crash leaves
in the storage directory (an upload cut off while received, one renamed into place whose record
never committed), snapshots and restarts, after each start the bytes on disk are exactly the
files the journal records as stored, each byte for byte as uploaded, and `replay --verify` is
clean at the end.

Each example opens its own harness (Hypothesis runs each example in its own trio run), in
virtual time."""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.identity import Identity
from engine import EngineConfig
from engine.files import FileStore
from engine.testing import open_harness
from tests.storage.helpers import store_file
from tools.replay import verify

UPLOADER = Identity(subject="u_prop", org_id="org_a")
CONFIG = EngineConfig(run_jobs=False, offload_io=False, snapshot_every=0)

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("upload"), st.integers(0, 4)),
        st.tuples(st.just("delete"), st.integers(0, 4)),
        st.tuples(st.just("partial"), st.integers(0, 4)),
        st.tuples(st.just("unrecorded"), st.integers(0, 4)),
        st.tuples(st.just("snapshot"), st.just(0)),
        st.tuples(st.just("restart"), st.just(0)),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(STEPS)
def test_the_bytes_on_disk_are_exactly_the_recorded_files_after_every_start(
    steps: list[tuple[str, int]],
) -> None:
    live: dict[int, tuple[str, bytes]] = {}  # slot -> (storage id, its bytes)

    def check(data_dir: Path) -> None:
        store = FileStore(data_dir)
        assert store.names() == sorted(storage_id for storage_id, _ in live.values())
        for storage_id, data in live.values():
            assert store.path(storage_id).read_bytes() == data
        incoming = data_dir / "storage" / "incoming"
        assert not incoming.exists() or not any(incoming.iterdir())

    async def run(data_dir: Path) -> None:
        async with open_harness(data_dir, config=CONFIG) as t:
            for n, (step, slot) in enumerate(steps):
                files = t.engine.files
                if step == "upload" and slot not in live:
                    data = f"file {n} of slot {slot} ".encode() * (n + 1)
                    live[slot] = (await store_file(t.engine, data, UPLOADER), data)
                elif step == "delete" and slot in live:
                    storage_id, _ = live.pop(slot)
                    await t.mutation("storage:delete", {"storageId": storage_id}, UPLOADER)
                    assert not files.path(storage_id).exists()
                elif step == "partial":
                    files.begin(f"kg_partial{n:08d}").write(b"cut off")
                elif step == "unrecorded":
                    left = files.begin(f"kg_unrecorded{n:08d}")
                    left.write(b"never recorded")
                    left.finish()
                elif step == "snapshot":
                    await t.engine.snapshot_now()
                elif step == "restart":
                    await t.restart()
                    check(data_dir)
            await t.restart()
            check(data_dir)

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        trio.run(run, data_dir, clock=trio.testing.MockClock(autojump_threshold=0))
        report = verify(data_dir)
        assert report.ok, report.findings
