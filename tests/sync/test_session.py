"""The sync protocol session, driven message by message (no network)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from engine.sync.session import run_sync_session
from engine.testing import EngineHarness
from engine.wire.protocol import decode_ts
from tests.sync.conftest import ORG_ARGS
from tests.sync.fake_ws import FakeWebSocket, StubServer


async def open_session(
    h: EngineHarness, nursery: trio.Nursery, session_id: str = "s-1"
) -> FakeWebSocket:
    ws = FakeWebSocket()
    nursery.start_soon(run_sync_session, ws.connection, StubServer(h.engine))
    await ws.send({"type": "Connect", "sessionId": session_id, "connectionCount": 0, "clientTs": 0})
    return ws


def add_query(query_id: int, path: str, args: dict[str, Any], base: int) -> dict[str, Any]:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": base + 1,
        "modifications": [{"type": "Add", "queryId": query_id, "udfPath": path, "args": [args]}],
    }


class Client:
    """Checks what a Convex client checks: every Transition starts where the last ended."""

    def __init__(self, ws: FakeWebSocket) -> None:
        self.ws = ws
        self.version = {"querySet": 0, "ts": decode_ts("AAAAAAAAAAA="), "identity": 0}
        self.results: dict[int, Any] = {}
        self.max_ts = 0

    async def next(self) -> dict[str, Any]:
        message = await self.ws.receive()
        if message["type"] == "Transition":
            start = dict(message["startVersion"], ts=decode_ts(message["startVersion"]["ts"]))
            assert start == self.version, (start, self.version)
            end = dict(message["endVersion"], ts=decode_ts(message["endVersion"]["ts"]))
            assert end["ts"] >= self.version["ts"]
            self.version = end
            for change in message["modifications"]:
                if change["type"] == "QueryUpdated":
                    self.results[change["queryId"]] = change["value"]
                elif change["type"] == "QueryFailed":
                    self.results[change["queryId"]] = ("error", change["errorData"]["code"])
                else:
                    self.results.pop(change["queryId"], None)
        return message

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            message = await self.next()
            if message["type"] == kind:
                return message


async def test_subscribe_mutate_and_read_your_writes(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    event_id = await h.mutation("events:create", ORG_ARGS)
    async with trio.open_nursery() as nursery:
        client = Client(await open_session(h, nursery))
        await client.ws.send(add_query(1, "events:getEventAvailability", {"eventId": event_id}, 0))
        await client.until("Transition")
        assert client.results[1]["remainingTickets"] == 1
        assert client.version["querySet"] == 1
        await client.ws.send(
            {"type": "Authenticate", "tokenType": "User", "value": "user:ann", "baseVersion": 0}
        )
        await client.until("Transition")
        assert client.version["identity"] == 1
        await client.ws.send(
            {
                "type": "Mutation",
                "requestId": 0,
                "udfPath": "events:joinWaitingList",
                "args": [{"eventId": event_id, "userId": "ann"}],
            }
        )
        # The response, then a Transition reaching its ts (where Convex's client resolves it).
        message = await client.until("MutationResponse")
        assert message["success"] is True
        assert message["result"]["status"] == "offered"
        await client.until("Transition")
        assert client.version["ts"] >= decode_ts(message["ts"])
        assert client.results[1]["remainingTickets"] == 0
        # A re-sent request (as after a reconnect) returns the original answer.
        await client.ws.send(
            {
                "type": "Mutation",
                "requestId": 0,
                "udfPath": "events:joinWaitingList",
                "args": [{"eventId": event_id, "userId": "ann"}],
            }
        )
        again = await client.until("MutationResponse")
        assert (again["result"], again["ts"]) == (message["result"], message["ts"])
        client.ws.disconnect()


async def test_reconnect_transition_reaches_no_ts_before_the_query_results(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """A reconnecting Convex client sends Connect, Authenticate, then its whole query set. The
    Transition acknowledging the identity alone must not advance `ts`: the client would resolve
    a mutation completed on its old connection there, before its queries show that write."""
    event_id = await h.mutation("events:create", ORG_ARGS)
    await h.mutation("events:joinWaitingList", {"eventId": event_id, "userId": "ann"})
    async with trio.open_nursery() as nursery:
        client = Client(await open_session(h, nursery, "again"))
        await client.ws.send(
            {"type": "Authenticate", "tokenType": "User", "value": "user:ann", "baseVersion": 0}
        )
        await client.until("Transition")
        assert client.version["identity"] == 1
        assert client.version["ts"] == 0
        await client.ws.send(add_query(1, "events:getEventAvailability", {"eventId": event_id}, 0))
        await client.until("Transition")
        assert client.version["ts"] == h.engine.committed_seq
        assert client.results[1]["activeOffers"] == 1
        client.ws.disconnect()


async def test_failures_are_answered_not_fatal(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        client = Client(await open_session(h, nursery))
        await client.ws.send(add_query(1, "nope:missing", {}, 0))
        await client.until("Transition")
        assert client.results[1] == ("error", "NotFound")
        await client.ws.send(
            {"type": "Mutation", "requestId": 3, "udfPath": "events:create", "args": [{}]}
        )
        response = await client.until("MutationResponse")
        assert response["success"] is False
        assert response["errorData"]["code"] == "InvalidArgs"
        await client.ws.send(
            {"type": "Authenticate", "tokenType": "User", "value": "forged", "baseVersion": 0}
        )
        error = await client.until("AuthError")
        assert error["baseVersion"] == 0


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '{"type": "Teleport"}',
        '{"type": "ModifyQuerySet", "baseVersion": 5, "newVersion": 6, "modifications": []}',
        '{"type": "Mutation", "requestId": "x", "udfPath": "a:b", "args": [{}]}',
    ],
)
async def test_protocol_violations_end_only_that_session(
    h: EngineHarness, autojump_clock: trio.testing.MockClock, frame: str
) -> None:
    event_id = await h.mutation("events:create", ORG_ARGS)
    async with trio.open_nursery() as nursery:
        good = Client(await open_session(h, nursery, "good"))
        bad = Client(await open_session(h, nursery, "bad"))
        await good.ws.send(add_query(1, "events:get", {"eventId": event_id}, 0))
        await good.until("Transition")
        await bad.ws.send(frame)
        fatal = await bad.until("FatalError")
        assert fatal["error"]
        await trio.testing.wait_all_tasks_blocked()
        assert bad.ws.closed is not None
        await h.mutation("events:update", {"eventId": event_id, "name": "Renamed"})
        await good.until("Transition")
        assert good.results[1]["name"] == "Renamed"
        good.ws.disconnect()


async def test_slow_reader_gets_coalesced_latest_values(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    event_id = await h.mutation("events:create", dict(ORG_ARGS, totalTickets=500))
    async with trio.open_nursery() as nursery:
        ws = FakeWebSocket(buffer=0)  # the "network" holds nothing: the writer blocks
        client = Client(ws)
        nursery.start_soon(run_sync_session, ws.connection, StubServer(h.engine))
        await ws.send({"type": "Connect", "sessionId": "slow", "connectionCount": 0})
        await ws.send(add_query(1, "events:getEventAvailability", {"eventId": event_id}, 0))
        for i in range(200):
            await h.mutation("events:joinWaitingList", {"eventId": event_id, "userId": f"u{i}"})
        transitions = 0
        while client.results.get(1, {}).get("activeOffers") != 200:
            if (await client.next())["type"] == "Transition":
                transitions += 1
        assert transitions < 10  # not one per commit: the newest value only
        ws.disconnect()
