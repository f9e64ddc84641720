"""The client leaves a connection that ends during the WebSocket opening handshake at once.

A server SIGKILLed after accepting a connection but before its 101 answer: trio-websocket alone
waits for that answer until the client's `HANDSHAKE_SECONDS` bound, so a client caught so by
a kill sat out ten seconds after the server was back, with its mutations in flight (the chaos
run's `unfinished` mutations). Here the connections are in-memory streams and the clock is
trio's MockClock: the first server ends the connection after reading the upgrade request, the
second accepts it, and the client must be connected again well inside `HANDSHAKE_SECONDS`.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
import trio.testing
import trio_websocket

from engine.client import HANDSHAKE_SECONDS, open_client


async def test_a_connection_ended_before_the_servers_answer_is_left_at_once(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    connections = 0
    opened: list[str] = []
    received: list[dict[str, Any]] = []

    async with trio.open_nursery() as servers:

        async def serve(number: int, stream: trio.abc.HalfCloseableStream) -> None:
            if number == 1:
                request = await stream.receive_some()
                assert request.startswith(b"GET /api/1.0/sync ")
                await stream.aclose()  # killed before its 101 answer
                opened.append("ended before answering")
                return
            upgrade = await trio_websocket.wrap_server_stream(servers, stream)
            ws = await upgrade.accept()
            opened.append("accepted")
            try:
                while True:
                    received.append(orjson.loads(await ws.get_message()))
            except trio_websocket.ConnectionClosed:
                pass

        async def open_stream(host: str, port: int, **_: Any) -> trio.abc.HalfCloseableStream:
            nonlocal connections
            connections += 1
            client_end, server_end = trio.testing.memory_stream_pair()
            servers.start_soon(serve, connections, server_end)
            return client_end

        monkeypatch.setattr(trio, "open_tcp_stream", open_stream)
        with trio.fail_after(HANDSHAKE_SECONDS / 2):
            async with open_client("http://127.0.0.1:9") as client:
                assert client.reconnects == 1
        servers.cancel_scope.cancel()

    assert opened == ["ended before answering", "accepted"]
    assert received[0]["type"] == "Connect"
