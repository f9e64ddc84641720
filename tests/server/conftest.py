"""A live server on 127.0.0.1 (a free port) over an engine on a temporary data dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio

from engine import Engine, EngineConfig
from engine.server import (
    Authenticator,
    Metrics,
    RunningServer,
    ServerConfig,
    mint_token,
    open_server,
)

ADMIN_KEY = "test-admin-key"
JWT_SECRET = "test-jwt-secret-long-enough-for-hs256-and-for-the-hs512-forgery-test"
#: Short read timeout so the slow-client test ends soon; the other limits as shipped.
CONFIG = ServerConfig(read_timeout=0.5, drain_seconds=5.0)


@attrs.define
class LiveServer:
    server: RunningServer

    @property
    def engine(self) -> Engine:
        return self.server.engine

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def metrics(self) -> Metrics:
        return self.server.metrics

    @property
    def admin(self) -> str:
        return f"Convex {ADMIN_KEY}"

    def user(self, sub: str, org: str | None = None, caps: tuple[str, ...] = ()) -> str:
        return f"Bearer {mint_token(JWT_SECRET, sub, org, caps)}"


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    # No cron jobs: these tests compare exact journal positions on the wall clock.
    config = EngineConfig(offload_io=True, run_jobs=False)
    async with open_server(
        tmp_path / "data",
        engine_config=config,
        authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
        config=CONFIG,
    ) as server:
        yield LiveServer(server)
        server.stop()
        with trio.fail_after(30):
            await server.wait_stopped()
