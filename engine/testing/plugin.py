"""pytest plugin `turnstile` (registered by the package): fixtures for testing app logic
against an in-process engine.

- `turnstile` : an `EngineHarness` on a fresh temporary data dir, started, with invariant checks
  on, in virtual time: the test must also take pytest-trio's `autojump_clock` (pytest-trio only
  honours a clock the test function itself asks for), so `advance()` and every engine timer
  run in milliseconds. `await turnstile.restart()` recovers from disk.
- `turnstile_data_dir` : the data dir it uses (override to share one between fixtures).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio.testing

from engine.testing.harness import EngineHarness, open_harness


@pytest.fixture
def turnstile_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def turnstile(turnstile_data_dir: Path) -> AsyncIterator[EngineHarness]:
    if not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock):
        pytest.fail(
            "the turnstile fixture runs in virtual time: add `autojump_clock` to the test's "
            "arguments (async def test_x(turnstile, autojump_clock): ...)"
        )
    async with open_harness(turnstile_data_dir) as harness:
        yield harness
