"""An actor unused for `idle_seconds` is passivated by the housekeeping sweep (every
`idle_seconds / 4`), between `idle_seconds` and one sweep interval more after its last use;
an actor in use stays resident, and a passivated one comes back from the journal as it was."""

from __future__ import annotations

from pathlib import Path

import attrs
import trio
import trio.testing

from engine.testing.harness import open_harness
from tests.engine.conftest import CONFIG
from tests.engine.counters import COUNTERS

IDLE = attrs.evolve(CONFIG, idle_seconds=40.0)  # sweeps every 10 s


async def test_idle_actors_are_passivated_after_idle_seconds(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=IDLE) as h:
        start = trio.current_time()

        async def at(offset: float) -> None:
            await trio.sleep_until(start + offset)

        def resident(cid: str) -> bool:
            return f"counter/{cid}" in h.engine._actors

        a = await h.mutation("counters:create", {"label": "a"})
        b = await h.mutation("counters:create", {"label": "b"})
        await at(1)  # (between sweeps: a use at a sweep's own instant is a boundary case)
        await h.mutation("counters:add", {"counterId": a, "amount": 1})
        await at(25)
        await h.mutation("counters:add", {"counterId": b, "amount": 2})
        await at(45)  # a unused for 44 s, but not yet at the sweep at 40 s
        assert resident(a) and resident(b)
        await at(55)  # the sweep at 50 s
        assert not resident(a) and resident(b)
        await at(65)  # b unused for 40 s at the sweep at 60 s: not more than 40 s yet
        assert resident(b)
        await at(75)
        assert not resident(b)
        assert h.engine.stats["passivated"] == 2
        assert await h.mutation("counters:add", {"counterId": b, "amount": 1}) == 3
        assert resident(b)
