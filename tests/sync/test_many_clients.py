"""Many live subscribers over real WebSockets while many users join (issue: live sync).

Every client checks what Convex's client checks (each Transition starts exactly at the version
the previous one ended at, `ts` never goes back) and must converge to the final value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import trio
import trio_websocket

from domain.identity import ADMIN
from engine import EngineConfig, open_engine
from engine.wire.protocol import connect_message, decode_ts, subscribe_message
from tests.sync.live import create_rush, serving

CLIENTS = int(os.environ.get("TURNSTILE_MANY_CLIENTS", "1000"))
JOINS = int(os.environ.get("TURNSTILE_MANY_JOINS", "1000"))
TICKETS = 300


async def subscriber(
    port: int, event_id: str, final: dict[str, Any], ready: trio.Semaphore, report: list[int]
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, "127.0.0.1", "/api/1.0/sync"
            )
            await ws.send_message(orjson.dumps(connect_message(os.urandom(8).hex())).decode())
            await ws.send_message(
                orjson.dumps(
                    subscribe_message(0, "events:getEventAvailability", {"eventId": event_id})
                ).decode()
            )
            version = {"querySet": 0, "identity": 0, "ts": 0}
            value = None
            transitions = 0
            ready.release()
            while value != final:
                message = orjson.loads(await ws.get_message())
                if message["type"] != "Transition":
                    continue
                start = dict(message["startVersion"], ts=decode_ts(message["startVersion"]["ts"]))
                assert start == version, f"chain broken: {start} after {version}"
                end = dict(message["endVersion"], ts=decode_ts(message["endVersion"]["ts"]))
                assert end["ts"] >= version["ts"]
                version = end
                transitions += 1
                for change in message["modifications"]:
                    if change["type"] == "QueryUpdated":
                        value = change["value"]
            report.append(transitions)
            await ws.aclose()
    finally:
        await stream.aclose()


async def test_thousand_subscribers_converge_while_thousand_users_join(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "data", config=EngineConfig()) as engine:
        event_id = await create_rush(engine, TICKETS)
        final = {
            "isSoldOut": True,
            "totalTickets": TICKETS,
            "purchasedCount": 0,
            "activeOffers": TICKETS,
            "remainingTickets": 0,
        }
        report: list[int] = []
        with trio.fail_after(240):
            async with serving(engine) as server:
                port = server.port
                ready = trio.Semaphore(0, max_value=CLIENTS)
                async with trio.open_nursery() as clients:
                    for _ in range(CLIENTS):
                        clients.start_soon(subscriber, port, event_id, final, ready, report)
                    for _ in range(CLIENTS):
                        await ready.acquire()

                    async def join(first: int) -> None:
                        for i in range(first, JOINS, 20):
                            await engine.mutation(
                                "events:joinWaitingList",
                                {"eventId": event_id, "userId": f"user{i}"},
                                ADMIN,
                            )

                    async with trio.open_nursery() as joiners:
                        for first in range(20):
                            joiners.start_soon(join, first)
        assert len(report) == CLIENTS
        # Coalescing: nobody needed one Transition per join.
        assert max(report) < JOINS
