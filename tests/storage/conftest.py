"""A live server with file storage on 127.0.0.1, its data dir, and a clock the test can move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from engine import EngineConfig, open_engine
from engine.clock import Clock
from engine.server import Authenticator, RunningServer, ServerConfig, mint_token, open_server
from tests.server.client import HttpClient, Reply, call

ADMIN_KEY = "storage-admin-key"
JWT_SECRET = "storage-jwt-secret-long-enough-for-hs256-signatures"
#: Small limits, so that the tests of them move few bytes.
CONFIG = ServerConfig(max_upload_bytes=256 * 1024, upload_stall_timeout=0.5, read_timeout=2.0)


async def eventually(check: Callable[[], Awaitable[bool]], *, seconds: float = 10.0) -> None:
    """Poll until `check` holds: for what happens in the server's worker threads, which no
    event of the test's can wait on (bounded: `seconds`)."""
    with trio.fail_after(seconds):
        while True:
            if await check():
                return
            await trio.sleep(0.02)


class MovableClock(Clock):
    """The engine's clock, plus an offset a test adds to (an upload URL's hour in no time)."""

    def __init__(self) -> None:
        super().__init__()
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


@attrs.define
class Storage:
    server: RunningServer
    data_dir: Path
    clock: MovableClock

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def admin(self) -> str:
        return f"Convex {ADMIN_KEY}"

    def user(self, sub: str, org: str | None = "org_a", caps: tuple[str, ...] = ()) -> str:
        return f"Bearer {mint_token(JWT_SECRET, sub, org, caps)}"

    async def upload_url(self, auth: str | None = None) -> str:
        reply = await call(
            self.port, "mutation", "storage:generateUploadUrl", {}, auth or self.admin
        )
        assert reply.status == 200, reply.body
        url: str = reply.json()["value"]
        assert url.startswith(self.server.url + "/api/storage/upload?token=")
        return url

    def path_of(self, url: str) -> str:
        return url.removeprefix(self.server.url)

    async def request(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> Reply:
        client = await HttpClient.connect(self.port)
        try:
            pairs = [(name.replace("_", "-"), value) for name, value in headers.items()]
            return await client.request(method, self.path_of(path), body, pairs)
        finally:
            await client.aclose()

    async def upload(self, data: bytes, content_type: str = "image/png", **kw: Any) -> str:
        reply = await self.request(
            "POST", await self.upload_url(**kw), data, content_type=content_type
        )
        assert reply.status == 200, reply.body
        storage_id: str = reply.json()["storageId"]
        return storage_id

    async def query(self, name: str, args: dict[str, Any]) -> Any:
        reply = await call(self.port, "query", name, args, self.admin)
        assert reply.status == 200, reply.body
        return reply.json()["value"]

    def on_disk(self) -> list[str]:
        """Every file under the data dir's storage directory, incoming ones included."""
        root = self.data_dir / "storage"
        if not root.exists():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def _serving(tmp_path: Path, config: ServerConfig) -> AsyncIterator[Storage]:
    data_dir = tmp_path / "data"
    clock = MovableClock()
    async with (
        open_engine(data_dir, clock=clock, config=EngineConfig(run_jobs=False)) as engine,
        open_server(
            engine, authenticator=Authenticator(ADMIN_KEY, JWT_SECRET), config=config
        ) as server,
    ):
        yield Storage(server, data_dir, clock)
        server.stop()
        with trio.fail_after(30):
            await server.wait_stopped()


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    async for served in _serving(tmp_path, CONFIG):
        yield served


@pytest.fixture
async def big_storage(tmp_path: Path) -> AsyncIterator[Storage]:
    """Uploads up to 4 MiB: above `engine.server.files.DIRECT_ABOVE`."""
    async for served in _serving(tmp_path, attrs.evolve(CONFIG, max_upload_bytes=4 * 1024 * 1024)):
        yield served
