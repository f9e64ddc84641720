"""pytest plugin `turnstile` (registered by the package): fixtures for testing app logic
against an in-process engine.

- `turnstile` : an `EngineHarness` on a fresh temporary data dir, started, with invariant checks
  on, in virtual time: the test must also take pytest-trio's `autojump_clock` (pytest-trio only
  honours a clock the test function itself asks for), so `advance()` and every engine timer
  run in milliseconds. `await turnstile.restart()` recovers from disk.
- `turnstile_data_dir` : the data dir it uses (override to share one between fixtures).
- `turnstile_apps` : the apps it serves beside the built-in one, as `--app` import paths; by
  default the ini setting `turnstile_apps` (one per line), so a project sets it once:

      [tool.pytest.ini_options]
      turnstile_apps = ["shop.backend"]

  and a test module overrides the fixture to serve others. A wrong app fails the test with
  the `AppError` that `turnstile serve --app` would print.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio.testing

from engine.apps import load_apps
from engine.testing.harness import EngineHarness, open_harness


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "turnstile_apps",
        "apps the `turnstile` fixture serves beside the built-in one (import paths)",
        type="linelist",
        default=[],
    )


@pytest.fixture
def turnstile_apps(request: pytest.FixtureRequest) -> list[str]:
    return list(request.config.getini("turnstile_apps"))


@pytest.fixture
def turnstile_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def turnstile(
    turnstile_data_dir: Path, turnstile_apps: list[str]
) -> AsyncIterator[EngineHarness]:
    if not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock):
        pytest.fail(
            "the turnstile fixture runs in virtual time: add `autojump_clock` to the test's "
            "arguments (async def test_x(turnstile, autojump_clock): ...)"
        )
    modules = load_apps(turnstile_apps)
    async with open_harness(turnstile_data_dir, modules=modules) as harness:
        yield harness
