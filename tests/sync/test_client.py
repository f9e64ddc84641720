"""The trio client against a live in-process server: live queries, read-your-writes, errors,
and reconnecting by itself across a server restart."""

from __future__ import annotations

import gc
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio

from domain.identity import ADMIN
from engine import EngineConfig
from engine.client import FunctionError, open_client
from engine.server import Authenticator, RunningServer, mint_token, open_server

SECRET = "client-test-secret-long-enough-for-hs256"
#: Bounds a step against a hang only (it takes well under a second on a quiet machine).
HANG_GUARD = 120
EVENT = {
    "name": "Gig",
    "description": "",
    "location": "Hall",
    "eventDate": 1_900_000_000_000,
    "price": 100,
    "totalTickets": 2,
    "orgId": "org_a",
}


def serving(data_dir: Path, port: int = 0) -> AbstractAsyncContextManager[RunningServer]:
    """A server over an engine of its own on `data_dir`, for the block (`open_server`)."""
    return open_server(
        data_dir,
        engine_config=EngineConfig(),
        authenticator=Authenticator(admin_key="admin", jwt_secret=SECRET),
        port=port,
    )


async def serve_in_background(
    nursery: trio.Nursery, data_dir: Path, port: int = 0
) -> tuple[RunningServer, trio.Event]:
    """`serving(data_dir, port)` in a task of `nursery`, so that it can stop while a client
    opened after it lives on; the event is set once it has stopped and closed its engine."""
    closed = trio.Event()

    async def run(task_status: trio.TaskStatus[RunningServer]) -> None:
        try:
            async with serving(data_dir, port) as server:
                task_status.started(server)
                await server.wait_stopped()
        finally:
            closed.set()

    server: RunningServer = await nursery.start(run)
    return server, closed


async def test_client_reads_its_writes_and_sees_errors(tmp_path: Path) -> None:
    async with serving(tmp_path / "data") as server:
        url = server.url
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


async def test_a_refusal_the_client_raises_leaves_no_cyclic_garbage(tmp_path: Path) -> None:
    """The client keeps a refusal and raises a copy of it, so that no traceback holds the
    frame holding what keeps it (as the engine does, engine/refusals.py)."""
    async with serving(tmp_path / "data") as server:
        async with open_client(server.url, admin_key="admin") as admin:
            event_id = await admin.mutation("events:create", EVENT)
        async with open_client(server.url, token=mint_token(SECRET, "ann")) as ann:
            args = {"eventId": event_id, "userId": "bob"}  # ann may not join for bob

            async def refused() -> list[str]:
                codes = []
                try:
                    await ann.mutation("events:joinWaitingList", args)
                except FunctionError as error:  # (no ExceptionInfo kept: it would hold a cycle)
                    codes.append(error.code)
                try:
                    await ann.query("events:getUserTickets", {"userId": "bob"})
                except FunctionError as error:
                    codes.append(error.code)
                return codes

            for _ in range(2):  # warm: the first refusals build what every one reuses
                assert await refused() == ["Forbidden", "Forbidden"]
            gc.collect()
            gc.disable()
            try:
                assert await refused() == ["Forbidden", "Forbidden"]
                assert gc.collect() == 0
            finally:
                gc.enable()


async def test_client_reconnects_and_resubscribes_after_a_restart(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        server, closed = await serve_in_background(nursery, tmp_path / "data")
        url = server.url
        async with open_client(url, admin_key="admin") as client:
            event_id = await client.mutation("events:create", EVENT)
            async with client.subscribe("events:get", {"eventId": event_id}) as live:
                assert (await live.__anext__())["name"] == "Gig"
                server.stop()  # the server goes away (and its engine is closed)...
                await closed.wait()
                # ...stays away until the client was refused a reconnect (its drop counts one,
                # each attempt after it one more)...
                dropped_at = client.reconnects
                with trio.fail_after(HANG_GUARD):
                    # (a counter with no event to wait on: polled)
                    while client.reconnects < max(dropped_at, 1) + 1:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                # ...and comes back, on the same port and data dir
                server, _ = await serve_in_background(nursery, tmp_path / "data", server.port)
                with trio.fail_after(HANG_GUARD):
                    await client.mutation("events:update", {"eventId": event_id, "name": "Again"})
                    while (await live.__anext__())["name"] != "Again":
                        pass
            assert client.reconnects >= 1
        async with open_client(url, admin_key="admin") as fresh:
            assert (await fresh.query("events:get", {"eventId": event_id}))["name"] == "Again"
        server.stop()


async def test_admin_identity_constant_is_what_admin_key_gives() -> None:
    assert Authenticator(admin_key="k", jwt_secret=SECRET).admin("k") == ADMIN
