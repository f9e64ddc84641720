"""The trio client against a live in-process server: live queries, read-your-writes, errors,
and reconnecting by itself across a server restart."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from domain.identity import ADMIN
from engine import EngineConfig, open_engine
from engine.server.auth import Authenticator, mint_token
from engine.server.http import serve
from engine.sync.client import FunctionError, open_client

SECRET = "client-test-secret-long-enough-for-hs256"
EVENT = {
    "name": "Gig",
    "description": "",
    "location": "Hall",
    "eventDate": 1_900_000_000_000,
    "price": 100,
    "totalTickets": 2,
    "orgId": "org_a",
}


async def start_server(
    nursery: trio.Nursery, data_dir: Path, port: int = 0
) -> tuple[trio.Event, int]:
    stop = trio.Event()

    async def run(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        async with open_engine(data_dir, config=EngineConfig()) as engine:
            await serve(
                engine,
                port=port,
                authenticator=Authenticator(admin_key="admin", jwt_secret=SECRET),
                stop=stop,
                task_status=task_status,
            )

    bound = await nursery.start(run)
    return stop, bound


async def test_client_reads_its_writes_and_sees_errors(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        stop, port = await start_server(nursery, tmp_path / "data")
        url = f"http://127.0.0.1:{port}"
        async with open_client(url, admin_key="admin") as admin:
            event_id = await admin.mutation("events:create", EVENT)
        async with open_client(url, token=mint_token(SECRET, "ann")) as ann:
            async with ann.subscribe("events:getEventAvailability", {"eventId": event_id}) as live:
                assert (await live.__anext__())["remainingTickets"] == 2
                joined = await ann.mutation(
                    "events:joinWaitingList", {"eventId": event_id, "userId": "ann"}
                )
                assert joined["status"] == "offered"
                assert (await live.__anext__())["activeOffers"] == 1
            with pytest.raises(FunctionError) as refused:
                await ann.mutation("events:joinWaitingList", {"eventId": event_id, "userId": "bob"})
            assert refused.value.code == "Forbidden"
            with pytest.raises(FunctionError) as missing:
                await ann.query("events:nope", {})
            assert missing.value.code == "NotFound"
        stop.set()


async def test_client_reconnects_and_resubscribes_after_a_restart(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        stop, port = await start_server(nursery, tmp_path / "data")
        url = f"http://127.0.0.1:{port}"
        async with open_client(url, admin_key="admin") as client:
            event_id = await client.mutation("events:create", EVENT)
            async with client.subscribe("events:get", {"eventId": event_id}) as live:
                assert (await live.__anext__())["name"] == "Gig"
                stop.set()  # the server goes away...
                await trio.sleep(0.3)
                stop, _ = await start_server(nursery, tmp_path / "data", port)  # ...and comes back
                with trio.fail_after(10):
                    await client.mutation("events:update", {"eventId": event_id, "name": "Again"})
                    while (await live.__anext__())["name"] != "Again":
                        pass
            assert client.reconnects >= 1
        async with open_client(url, admin_key="admin") as fresh:
            assert (await fresh.query("events:get", {"eventId": event_id}))["name"] == "Again"
        stop.set()


async def test_admin_identity_constant_is_what_admin_key_gives() -> None:
    assert Authenticator(admin_key="k", jwt_secret=SECRET).admin("k") == ADMIN
