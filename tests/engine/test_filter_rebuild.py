"""A journal filter past its capacity is rebuilt as soon as a commit takes it past, not at the
next housekeeping sweep (engine/journal_filter.py): the rebuilt filter holds every stream the
journal holds, and a second commit while the build runs starts no other."""

from __future__ import annotations

from pathlib import Path

from engine.journal_filter import BloomFilter, JournalFilter
from engine.testing.harness import open_harness
from tests.engine.conftest import CONFIG
from tests.engine.counters import COUNTERS


def building(target: JournalFilter) -> bool:
    return target._pending is not None


async def test_a_commit_past_capacity_rebuilds_the_filter_at_once(tmp_path: Path) -> None:
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=CONFIG) as h:
        ids = [await h.mutation("counters:create", {"label": str(i)}) for i in range(5)]
        await h.settle()
        written = h.engine._written
        full = written._bloom
        assert full is not None and not written.wants_rebuild
        full.count = full.capacity  # as if it held its capacity; the next key takes it past
        builds = 0
        build_filter = h.engine._build_filter

        async def counting(*args: object) -> None:
            nonlocal builds
            builds += 1
            await build_filter(*args)  # type: ignore[arg-type]

        h.engine._build_filter = counting  # type: ignore[method-assign,assignment]
        fresh = await h.mutation("counters:create", {"label": "past"})
        assert building(written)  # begun by the commit itself
        await h.mutation("counters:create", {"label": "during"})
        await h.settle()  # (real clock: the housekeeping sweep is a minute away)
        assert builds == 1
        rebuilt = written._bloom
        assert isinstance(rebuilt, BloomFilter) and rebuilt is not full
        assert not written.wants_rebuild and not building(written)
        for cid in (*ids, fresh):
            assert written.might_hold(f"counter/{cid}")
        assert rebuilt.count == len(ids) + 2
