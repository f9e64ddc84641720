"""The WebSocket upgrade on the HTTP port, handed to the sync session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio
import trio.testing
import trio_websocket

import engine.sync.session
from engine.server.context import ServerContext
from tests.server.client import read_until_closed
from tests.server.conftest import LiveServer


@asynccontextmanager
async def open_ws(
    port: int, resource: str = "/api/1.17.0/sync"
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    # We hold the TCP stream ourselves and close it: trio-websocket's client never closes its
    # socket when the server closes first.
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(nursery, stream, "127.0.0.1", resource)
            try:
                yield ws
            finally:
                with trio.move_on_after(5):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


def close_code(closed: trio_websocket.ConnectionClosed) -> int | None:
    """The code the server closed the connection with (None: closed without a reason)."""
    return closed.reason.code if closed.reason is not None else None


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the sync session by an echo; records the sessions-open gauge it saw."""
    seen: list[int] = []

    async def run_sync_session(
        ws: trio_websocket.WebSocketConnection, server: Any, *, outbox: Any
    ) -> None:
        assert isinstance(server, ServerContext)
        seen.append(int(server.metrics.ws_sessions._value.get()))
        while True:
            message = await ws.get_message()
            assert isinstance(message, str)  # the tests send text frames
            if message == "boom":
                raise RuntimeError("a bug in the session")
            await ws.send_message(f"echo {message}")

    monkeypatch.setattr(engine.sync.session, "run_sync_session", run_sync_session)
    return seen


async def test_the_upgrade_reaches_the_session(live: LiveServer, echo: list[int]) -> None:
    async with open_ws(live.port) as ws:
        await ws.send_message("hello")
        assert await ws.get_message() == "echo hello"
    assert echo == [1]
    with trio.fail_after(5):
        while live.metrics.ws_sessions._value.get() != 0:  # the server sees the close soon
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)


async def test_a_frame_above_the_limit_closes_the_connection(
    live: LiveServer, echo: list[int]
) -> None:
    async with open_ws(live.port) as ws:
        await ws.send_message("x" * (1024 * 1024 + 1))
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await ws.get_message()
        assert close_code(closed.value) == 1009


async def test_a_failing_session_ends_only_its_connection(
    live: LiveServer, echo: list[int]
) -> None:
    async with open_ws(live.port) as ws:
        await ws.send_message("boom")
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await ws.get_message()
        assert close_code(closed.value) == 1011
    async with open_ws(live.port) as ws:
        await ws.send_message("still here")
        assert await ws.get_message() == "echo still here"


async def test_shutdown_closes_sessions_as_going_away(live: LiveServer, echo: list[int]) -> None:
    async with open_ws(live.port) as ws:
        await ws.send_message("hello")
        assert await ws.get_message() == "echo hello"
        live.server.stop()
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await ws.get_message()
        assert close_code(closed.value) == 1001


async def test_upgrades_elsewhere_or_malformed_are_refused(live: LiveServer) -> None:
    for resource, key, status in (
        ("/api/query", "dGhlIHNhbXBsZSBub25jZQ==", b"404"),
        ("/api/1.17.0/sync", None, b"400"),
    ):
        stream = await trio.open_tcp_stream("127.0.0.1", live.port)
        head = (
            f"GET {resource} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            "sec-websocket-version: 13\r\n"
        )
        if key:
            head += f"sec-websocket-key: {key}\r\n"
        await stream.send_all((head + "\r\n").encode())
        answer = await read_until_closed(stream)
        await stream.aclose()
        assert answer.startswith(b"HTTP/1.1 " + status)


async def test_the_real_sync_session_answers_a_query(live: LiveServer) -> None:
    async with open_ws(live.port) as ws:
        await ws.send_message(
            orjson.dumps(
                {"type": "Connect", "sessionId": "s-1", "connectionCount": 0, "clientTs": 0}
            ).decode()
        )
        await ws.send_message(
            orjson.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {"type": "Add", "queryId": 0, "udfPath": "events:list", "args": [{}]}
                    ],
                }
            ).decode()
        )
        with trio.fail_after(10):
            transition = orjson.loads(await ws.get_message())
        assert transition["type"] == "Transition"
        assert transition["modifications"][0]["value"] == []


async def test_an_upgrade_after_a_keep_alive_request_on_the_same_connection(
    live: LiveServer, echo: list[int]
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    try:
        await stream.send_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        with trio.fail_after(10):
            while not received.endswith(b"}"):
                received += await stream.receive_some(4096)
        assert received.startswith(b"HTTP/1.1 200 ")
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, "127.0.0.1", "/api/1.17.0/sync"
            )
            await ws.send_message("again")
            assert await ws.get_message() == "echo again"
            await ws.aclose()
            nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)
