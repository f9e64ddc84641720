"""A live server on 127.0.0.1 (a free port) over an engine on a temporary data dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio

from engine import Engine, EngineConfig, open_engine
from engine.server import Authenticator, Metrics, ServerConfig, mint_token, serve

ADMIN_KEY = "test-admin-key"
JWT_SECRET = "test-jwt-secret-long-enough-for-hs256-and-for-the-hs512-forgery-test"
#: Short read timeout so the slow-client test ends soon; the other limits as shipped.
CONFIG = ServerConfig(read_timeout=0.5, drain_seconds=5.0)


@attrs.define
class LiveServer:
    engine: Engine
    port: int
    metrics: Metrics
    stop: trio.Event
    stopped: trio.Event

    @property
    def admin(self) -> str:
        return f"Convex {ADMIN_KEY}"

    def user(self, sub: str, org: str | None = None, caps: tuple[str, ...] = ()) -> str:
        return f"Bearer {mint_token(JWT_SECRET, sub, org, caps)}"


@pytest.fixture
async def live(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    # No cron jobs: these tests compare exact journal positions on the wall clock.
    config = EngineConfig(offload_io=True, run_jobs=False)
    async with open_engine(tmp_path / "data", config=config) as engine:
        metrics = Metrics()
        stop = trio.Event()
        stopped = trio.Event()

        async def run(task_status: trio.TaskStatus[int]) -> None:
            try:
                await serve(
                    engine,
                    host="127.0.0.1",
                    port=0,
                    authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
                    config=CONFIG,
                    metrics=metrics,
                    stop=stop,
                    task_status=task_status,
                )
            finally:
                stopped.set()

        port = await nursery.start(run)
        yield LiveServer(engine, port, metrics, stop, stopped)
        stop.set()
        with trio.fail_after(30):
            await stopped.wait()
