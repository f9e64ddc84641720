"""What the engine tests share: an engine over the test module `counters` (tests/engine/counters.py)
that checks invariants after every command, takes no snapshots on its own and does its I/O on
the event loop's thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import EngineConfig
from engine.testing.harness import EngineHarness, open_harness
from tests.engine.counters import COUNTERS

CONFIG = EngineConfig(check_invariants=True, snapshot_every=0, offload_io=False)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[EngineHarness]:
    async with open_harness(tmp_path / "data", modules=(COUNTERS,), config=CONFIG) as harness:
        yield harness
