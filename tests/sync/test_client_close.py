"""Closing the trio client is prompt: the close handshake completes while its reader runs."""

from __future__ import annotations

from pathlib import Path

import trio

from engine.sync.client import open_client
from tests.sync.test_client import start_server


async def test_closing_a_client_takes_well_under_its_close_timeout(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        stop, port = await start_server(nursery, tmp_path / "data")
        url = f"http://127.0.0.1:{port}"
        async with open_client(url, admin_key="admin") as admin:
            await admin.query("events:list", {})
            closing_started = trio.current_time()
        # Before: the reader was cancelled first, so aclose() waited out its 1 s timeout.
        assert trio.current_time() - closing_started < 0.9
        assert admin.reconnects == 0
        stop.set()
