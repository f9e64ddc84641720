"""The journal filters (engine/journal_filter.py): never a false "nothing there", also for keys
committed while a filter is built; the engine reads a stream whenever it may hold rows, and
looks up a request whenever its session may have a record."""

from __future__ import annotations

import threading
from pathlib import Path

import attrs
import trio

from engine import open_engine
from engine.journal import Row
from engine.journal_filter import BloomFilter, JournalFilter, build
from engine.testing.harness import EngineHarness, open_harness
from tests.engine.conftest import CONFIG
from tests.engine.counters import COUNTERS


def test_a_bloom_filter_has_no_false_negatives_and_few_false_positives() -> None:
    bloom = BloomFilter(10_000)
    held = [f"ratelimit/rl_{i:024x}" for i in range(10_000)]
    for stream in held:
        bloom.add(stream)
    assert all(stream in bloom for stream in held)
    others = [f"events/ev_{i:020x}" for i in range(20_000)]
    false_positives = sum(stream in bloom for stream in others)
    assert false_positives < len(others) * 0.01


def test_the_filter_says_maybe_until_built_and_keeps_streams_committed_during_the_build() -> None:
    written = JournalFilter()
    assert written.might_hold("counter/ct_a") and written.expected == 0
    written.begin_build()
    bloom = build(["counter/ct_a"], 1)  # what the journal held when the build began
    written.add("counter/ct_b")  # committed while the build ran
    assert written.might_hold("counter/ct_b")
    written.install(bloom)
    assert written.ready
    assert written.might_hold("counter/ct_a") and written.might_hold("counter/ct_b")
    assert not written.might_hold("counter/ct_never")
    written.add("counter/ct_c")
    assert written.might_hold("counter/ct_c")


def test_a_failed_build_leaves_every_read_to_the_journal() -> None:
    written = JournalFilter()
    written.begin_build()
    written.abandon_build()
    assert written.might_hold("counter/ct_never") and not written.ready


def test_a_filter_past_its_capacity_asks_for_a_rebuild() -> None:
    written = JournalFilter()
    written.begin_build()
    written.install(build([], 0))
    bloom = written._bloom
    assert bloom is not None and not written.wants_rebuild
    for i in range(bloom.capacity + 1):
        written.add(f"counter/ct_{i}")
    assert written.wants_rebuild


async def test_streams_written_before_a_restart_are_read_after_it(tmp_path: Path) -> None:
    """A restart builds the filter from the journal: the counters come back with their values,
    and a stream never written is answered without a journal read."""
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=CONFIG) as h:
        ids = [await h.mutation("counters:create", {"label": str(i)}) for i in range(20)]
        for cid in ids:
            await h.mutation("counters:add", {"counterId": cid, "amount": 2})
        await restart_and_check(h, ids)


async def restart_and_check(h: EngineHarness, ids: list[str]) -> None:
    engine = await h.restart()
    await h.settle()
    assert engine._written.ready
    reads: list[str] = []
    read_stream = engine.journal.read_stream

    def counting(stream: str, after_version: int = 0) -> list[Row]:
        reads.append(stream)
        return read_stream(stream, after_version)

    engine.journal.read_stream = counting  # type: ignore[method-assign]
    for cid in ids:
        assert await h.mutation("counters:add", {"counterId": cid, "amount": 1}) == 3
    fresh = await h.mutation("counters:create", {"label": "new"})
    assert await h.mutation("counters:add", {"counterId": fresh, "amount": 1}) == 1
    # One read per counter written before the restart; none for the one created after it.
    assert sorted(reads) == sorted(f"counter/{cid}" for cid in ids)


async def test_a_request_is_looked_up_only_when_its_session_may_have_a_record(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=CONFIG) as h:
        cid = await h.mutation("counters:create", {"label": "a"})
        args = {"counterId": cid, "amount": 1}
        first = await h.engine.mutation(
            "counters:add", args, h.admin, session_id="old", request_id=1
        )
        engine = await h.restart()
        await h.settle()
        assert engine._recorded.ready
        lookups: list[tuple[str, int]] = []
        lookup = engine.journal.lookup_request

        def counting(session_id: str, request_id: int) -> object:
            lookups.append((session_id, request_id))
            return lookup(session_id, request_id)

        engine.journal.lookup_request = counting  # type: ignore[method-assign,assignment]
        again = await engine.mutation("counters:add", args, h.admin, session_id="old", request_id=1)
        assert (again.value, again.ts) == (first.value, first.ts)  # the original, not re-run
        for n in range(1, 4):
            await engine.mutation("counters:add", args, h.admin, session_id="new", request_id=n)
        again = await engine.mutation("counters:add", args, h.admin, session_id="new", request_id=2)
        assert again.value == 3  # the original result of request 2 (total 3), not a fifth add
        # Only re-sent requests are looked up: "old" 1, and "new" 2 (at or below the highest
        # id committed for its session); a new request id is never looked up.
        assert lookups == [("old", 1), ("new", 2)]
        assert await h.query("counters:get", {"counterId": cid}) == {"total": 4, "rang": 0}


async def test_closing_waits_for_a_stream_index_catch_up_in_its_worker_thread(
    tmp_path: Path,
) -> None:
    """The journal is closed only once the stream index's catch-up (in a worker thread) has
    returned: closing a SQLite connection another thread is using crashes the process."""
    config = attrs.evolve(CONFIG, offload_io=True)
    started, release = threading.Event(), threading.Event()
    order: list[str] = []
    async with (
        trio.open_nursery() as nursery,
        open_engine(tmp_path / "data", modules=(COUNTERS,), config=config) as engine,
    ):
        journal = engine.journal
        index_tail, close = journal.index_tail, journal.close

        def held_index_tail() -> int:
            started.set()
            release.wait()
            order.append("indexed")
            return index_tail()

        def recorded_close() -> None:
            order.append("closed")
            close()

        journal.index_tail = held_index_tail  # type: ignore[method-assign]
        journal.close = recorded_close  # type: ignore[method-assign]
        await engine.mutation("counters:create", {"label": "a"})
        await trio.to_thread.run_sync(started.wait)  # a catch-up is in its thread now
        nursery.start_soon(trio.to_thread.run_sync, release.set)
    assert order == ["indexed", "closed"]
