"""A projection added, or changed (its `version` bumped), after a snapshot was written is folded
from the whole journal at start and in the next snapshot: not only from the snapshot's tail."""

from __future__ import annotations

from pathlib import Path

import attrs
import immutables
import trio.testing

from domain.model import Event
from engine import EngineConfig
from engine.testing.harness import open_harness
from tests.engine.counters import COUNTERS, TOTALS, CounterAdded

CONFIG = EngineConfig(check_invariants=True, snapshot_every=0, offload_io=False)
WITHOUT_TOTALS = attrs.evolve(
    COUNTERS,
    projections=(),
    queries=tuple(q for q in COUNTERS.queries if q.name != "counters:total"),
)


def doubled(state: immutables.Map[str, int], event: Event) -> immutables.Map[str, int]:
    if isinstance(event, CounterAdded):
        return state.set("sum", state.get("sum", 0) + 2 * event.amount)
    return state


TOTALS_V2 = attrs.evolve(TOTALS, apply=doubled, version=2)
WITH_TOTALS_V2 = attrs.evolve(COUNTERS, projections=(TOTALS_V2,))


async def test_a_new_and_then_a_changed_projection_cover_the_whole_journal(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    data = tmp_path / "data"
    async with open_harness(data, modules=(WITHOUT_TOTALS,), config=CONFIG) as h:
        counter = await h.mutation("counters:create", {"label": "a"})
        await h.mutation("counters:add", {"counterId": counter, "amount": 5})
        await h.engine.snapshot_now()  # knows no "totals"
        await h.mutation("counters:add", {"counterId": counter, "amount": 2})
    async with open_harness(data, modules=(COUNTERS,), config=CONFIG) as h:
        assert await h.query("counters:total", {}) == 7  # not 2: the snapshot's prefix too
        await h.mutation("counters:add", {"counterId": counter, "amount": 1})
        await h.engine.snapshot_now()  # built on the old snapshot: folds "totals" from 0
        await h.restart()
        assert await h.query("counters:total", {}) == 8
    async with open_harness(data, modules=(WITH_TOTALS_V2,), config=CONFIG) as h:
        assert await h.query("counters:total", {}) == 16  # version 2 over everything
