"""A page subscribed without `endCursor` keeps the range of its first answer (Convex's query
journal, domain/pagination.py), however rows come and go, and again when the client subscribes
to it with that journal after a reconnect."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from engine.sync.session import run_sync_session
from engine.testing import EngineHarness
from tests.sync.conftest import ORG_ARGS
from tests.sync.fake_ws import FakeWebSocket, StubServer

DAY = 86_400_000
FIRST_DAY = 1_900_000_000_000


class PageClient:
    """The session's client end: each query's latest value and journal."""

    def __init__(self, ws: FakeWebSocket) -> None:
        self.ws = ws
        self.values: dict[int, Any] = {}
        self.journals: dict[int, Any] = {}
        self.query_set = 0

    async def add(self, query_id: int, args: dict[str, Any], journal: str | None = None) -> None:
        change: dict[str, Any] = {
            "type": "Add",
            "queryId": query_id,
            "udfPath": "events:list",
            "args": [args],
        }
        if journal is not None:
            change["journal"] = journal
        await self.ws.send(
            {
                "type": "ModifyQuerySet",
                "baseVersion": self.query_set,
                "newVersion": self.query_set + 1,
                "modifications": [change],
            }
        )
        self.query_set += 1
        await self.settle()

    async def settle(self) -> None:
        """Read every Transition the session has sent by the time it is quiet."""
        while True:
            with trio.move_on_after(1) as waited:
                message = await self.ws.receive()
            if waited.cancelled_caught:
                return
            if message["type"] != "Transition":
                continue
            for change in message["modifications"]:
                if change["type"] == "QueryUpdated":
                    self.values[change["queryId"]] = change["value"]
                    self.journals[change["queryId"]] = change["journal"]
                elif change["type"] == "QueryFailed":
                    self.values[change["queryId"]] = change["errorData"]

    def names(self, query_id: int) -> list[str]:
        return [event["name"] for event in self.values[query_id]["page"]]


async def open_client(h: EngineHarness, nursery: trio.Nursery, session_id: str) -> PageClient:
    ws = FakeWebSocket()
    nursery.start_soon(run_sync_session, ws.connection, StubServer(h.engine))
    await ws.send({"type": "Connect", "sessionId": session_id, "connectionCount": 0, "clientTs": 0})
    return PageClient(ws)


async def create(h: EngineHarness, name: str, day: int) -> str:
    args = {**ORG_ARGS, "name": name, "eventDate": FIRST_DAY + day * DAY}
    event_id: str = await h.mutation("events:create", args)
    return event_id


def page_args(num_items: int, cursor: str | None) -> dict[str, Any]:
    return {"paginationOpts": {"numItems": num_items, "cursor": cursor, "id": -1}}


async def test_a_page_keeps_the_range_of_its_first_answer_and_its_journal_says_so(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    ids = {name: await create(h, name, day) for name, day in (("a", 1), ("c", 3), ("e", 5))}
    async with trio.open_nursery() as nursery:
        client = await open_client(h, nursery, "s-pages")
        await client.add(1, page_args(2, None))
        first = client.values[1]
        assert client.names(1) == ["a", "c"] and not first["isDone"]
        assert client.journals[1] == first["continueCursor"]
        await client.add(2, page_args(2, first["continueCursor"]))
        assert client.names(2) == ["e"] and client.values[2]["isDone"]
        assert client.journals[2] == client.values[2]["continueCursor"]

        await create(h, "b", 2)  # into the first page's range: it grows, nothing moves on
        await create(h, "f", 6)  # past the end: the last page takes it
        await client.settle()
        assert client.names(1) == ["a", "b", "c"] and client.names(2) == ["e", "f"]

        await h.mutation("events:cancelEvent", {"eventId": ids["c"]})  # the boundary row
        await client.settle()
        assert client.names(1) == ["a", "b"] and client.names(2) == ["e", "f"]
        await create(h, "d", 4)  # between the deleted boundary and the next page's first row
        await client.settle()
        assert client.names(1) == ["a", "b"] and client.names(2) == ["d", "e", "f"]
        assert client.values[1]["continueCursor"] == first["continueCursor"]
        journals = dict(client.journals)

        # Another connection subscribes the same pages with their journals: the same ranges,
        # although a page of two asked for afresh would end elsewhere.
        again = await open_client(h, nursery, "s-again")
        await again.add(1, page_args(2, None), journal=journals[1])
        await again.add(2, page_args(2, first["continueCursor"]), journal=journals[2])
        assert again.names(1) == ["a", "b"] and again.names(2) == ["d", "e", "f"]
        await again.add(3, page_args(2, None))
        assert again.names(3) == ["a", "b"]
        assert again.values[3]["continueCursor"] != first["continueCursor"]
        nursery.cancel_scope.cancel()


async def test_a_garbage_journal_fails_the_page_with_invalid_cursor(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    await create(h, "a", 1)
    async with trio.open_nursery() as nursery:
        client = await open_client(h, nursery, "s-garbage")
        await client.add(1, page_args(2, None), journal="not-a-cursor")
        failed = client.values[1]
        assert failed["code"] == "InvalidArgs" and "InvalidCursor" in failed["message"]
        await client.add(2, {})  # not a page: the whole list, no journal
        assert [event["name"] for event in client.values[2]] == ["a"]
        assert client.journals[2] is None
        nursery.cancel_scope.cancel()
