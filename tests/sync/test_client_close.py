"""Closing the trio client is prompt: the close handshake completes while its reader runs."""

from __future__ import annotations

from pathlib import Path

import trio

from engine.client import open_client
from tests.sync.test_client import serving


async def test_closing_a_client_takes_well_under_its_close_timeout(tmp_path: Path) -> None:
    async with serving(tmp_path / "data") as server:
        url = server.url
        async with open_client(url, admin_key="admin") as admin:
            await admin.query("events:list", {})
            closing_started = trio.current_time()
        # Before: the reader was cancelled first, so aclose() waited out its 1 s timeout.
        assert trio.current_time() - closing_started < 0.9
        assert admin.reconnects == 0
