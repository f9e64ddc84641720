"""An upload counts against the allowance of the user who asked for its URL, shared with that
user's function calls (docs/storage.md): past it, the upload waits for the allowance to refill,
as a call does (nothing asserted on time: the wait is seen in the counter of waits)."""

from __future__ import annotations

from pathlib import Path

import trio

from engine import EngineConfig
from engine.server import Authenticator, ServerConfig, mint_token, open_server
from tests.server.client import HttpClient, call
from tests.storage.conftest import ADMIN_KEY, JWT_SECRET

#: One message at once, then one a second: the URL's call spends it, the upload must wait.
CONFIG = ServerConfig(max_messages_per_identity_per_second=1.0, identity_message_burst=1)


async def test_an_upload_spends_the_uploaders_allowance(tmp_path: Path) -> None:
    token = f"Bearer {mint_token(JWT_SECRET, 'u_uploader', 'org_a', ())}"
    async with open_server(
        tmp_path / "data",
        authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
        config=CONFIG,
        engine_config=EngineConfig(run_jobs=False),
    ) as server:
        waits = server.metrics.identity_throttled
        reply = await call(server.port, "mutation", "storage:generateUploadUrl", {}, token)
        url = reply.json()["value"]
        assert waits._value.get() == 0
        client = await HttpClient.connect(server.port)
        try:
            with trio.fail_after(10):
                uploaded = await client.request("POST", url.removeprefix(server.url), b"bytes")
        finally:
            await client.aclose()
        assert uploaded.status == 200
        assert waits._value.get() == 1  # the upload waited for the user's allowance
