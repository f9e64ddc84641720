"""Shared set-up for the hostile-client and flood tests: a live server on 127.0.0.1 (a free
port, real time: the sockets are real) whose logged failures are captured, and helpers to talk
to it. The short forms run here; the long forms are `python -m lab.hostile` (see
docs/reliability.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio_websocket

from engine.server import ServerConfig
from lab.hostile.target import Target, open_target
from lab.hostile.wire import SyncPeer

#: The shipped limits, with a short read timeout so that cut-short requests end soon.
CONFIG = ServerConfig(read_timeout=1.0, drain_seconds=5.0)


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[Target]:
    async with open_target(tmp_path / "data", CONFIG) as live:
        yield live
        live.assert_no_errors(" during the test")


@pytest.fixture
async def threaded_target(tmp_path: Path) -> AsyncIterator[Target]:
    """`target` appending through `engine.journal.append` in a worker thread, not the writer
    process: for a test that holds its appends there."""
    async with open_target(tmp_path / "data", CONFIG, writer_process=False) as live:
        yield live
        live.assert_no_errors(" during the test")


def connect(session_id: str = "s-1") -> dict[str, Any]:
    return {"type": "Connect", "sessionId": session_id, "connectionCount": 0}


def mutation(request_id: int, path: str, args: Any) -> dict[str, Any]:
    return {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}


def admin(target: Target, base: int = 0) -> dict[str, Any]:
    return {"type": "Authenticate", "tokenType": "Admin", "value": target.admin_key,
            "baseVersion": base}


def user(target: Target, sub: str, base: int = 0) -> dict[str, Any]:
    return {"type": "Authenticate", "tokenType": "User", "value": target.user_token(sub),
            "baseVersion": base}


EVENT = {
    "name": "Gig",
    "description": "",
    "location": "Hall",
    "eventDate": 1_900_000_000_000,
    "price": 100,
    "totalTickets": 100,
    "orgId": "org_a",
}


async def until(peer: SyncPeer, kind: str, seconds: float = 10) -> dict[str, Any]:
    """The next message of type `kind` (others are checked and applied on the way)."""
    with trio.fail_after(seconds):
        while True:
            message = await peer.next()
            if message["type"] == kind:
                return message


async def closed(peer: SyncPeer, seconds: float = 10) -> trio_websocket.CloseReason:
    """Read (and check) until the server closes; the close reason."""
    with trio.fail_after(seconds):
        try:
            while True:
                await peer.next()
        except trio_websocket.ConnectionClosed as ended:
            assert ended.reason is not None  # trio-websocket gives every closed connection one
            return ended.reason


def frame(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()
