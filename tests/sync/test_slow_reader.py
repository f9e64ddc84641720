"""A client that stops reading must not hold up the others nor make the server queue for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import trio
import trio_websocket

from domain.identity import ADMIN
from engine import EngineConfig, open_engine
from engine.wire.protocol import connect_message, subscribe_message
from tests.sync.live import create_rush, serving

JOINS = 400


async def subscribe(ws: trio_websocket.WebSocketConnection, event_id: str, session: str) -> None:
    for message in (
        connect_message(session),
        subscribe_message(0, "events:getEventAvailability", {"eventId": event_id}),
    ):
        await ws.send_message(orjson.dumps(message).decode())


async def read_until(ws: trio_websocket.WebSocketConnection, want: int) -> int:
    """Read Transitions until activeOffers == want; return how many Transitions it took."""
    transitions = 0
    value: dict[str, Any] = {}
    while value.get("activeOffers") != want:
        message = orjson.loads(await ws.get_message())
        if message["type"] == "Transition":
            transitions += 1
            for change in message["modifications"]:
                if change["type"] == "QueryUpdated":
                    value = change["value"]
    return transitions


async def test_a_client_that_stops_reading_holds_nobody_up(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "data", config=EngineConfig()) as engine:
        event_id = await create_rush(engine, JOINS)
        async with serving(engine) as server:
            port = server.port
            slow_stream = await trio.open_tcp_stream("127.0.0.1", port)
            good_stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with trio.open_nursery() as clients:
                slow = await trio_websocket.wrap_client_stream(
                    clients, slow_stream, "127.0.0.1", "/api/1.0/sync", receive_buffer_size=256
                )
                good = await trio_websocket.wrap_client_stream(
                    clients, good_stream, "127.0.0.1", "/api/1.0/sync"
                )
                await subscribe(slow, event_id, "slow")
                await subscribe(good, event_id, "good")
                with trio.fail_after(60):
                    for i in range(JOINS):
                        await engine.mutation(
                            "events:joinWaitingList",
                            {"eventId": event_id, "userId": f"u{i}"},
                            ADMIN,
                        )
                    # The reader that keeps up sees the end while the other reads nothing.
                    await read_until(good, JOINS)
                    # The slow one, reading at last, still converges. (At this volume the kernel's
                    # socket buffers absorb its frames; coalescing once the socket is full is
                    # shown by tests/sync/test_session.py with a zero-buffer socket.)
                    taken = await read_until(slow, JOINS)
                assert taken <= JOINS + 1
                await slow.aclose()
                await good.aclose()
            await slow_stream.aclose()
            await good_stream.aclose()
