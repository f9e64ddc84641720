"""`SyncSession.flush()`: a session with one live query and nothing else due sends the
Transition that every session at the same versions shares (one bytes object), and anything
else due (a response, a removal, a new query set, a Ping) still goes the general way."""

from __future__ import annotations

from typing import Any

import orjson
import trio
import trio.testing

from engine.sync.session import SyncSession
from engine.testing import EngineHarness
from engine.wire.protocol import decode_ts
from tests.sync.conftest import ORG_ARGS
from tests.sync.fake_ws import FakeWebSocket, StubServer


class Recorder:
    """A `Sender` that keeps every payload written (the objects themselves), in order."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.pending = False
        self.broken = False

    def write_texts(self, payloads: list[bytes]) -> None:
        self.payloads.extend(payloads)

    async def drain(self) -> None:
        await trio.lowlevel.checkpoint()

    def messages(self) -> list[dict[str, Any]]:
        return [orjson.loads(payload) for payload in self.payloads]


async def start(
    nursery: trio.Nursery, h: EngineHarness, name: str
) -> tuple[FakeWebSocket, Recorder]:
    ws, out = FakeWebSocket(), Recorder()
    session = SyncSession(ws.connection, StubServer(h.engine), outbox=out)
    nursery.start_soon(session.run)
    await ws.send({"type": "Connect", "sessionId": name, "connectionCount": 0, "clientTs": 0})
    return ws, out


def modify(base: int, *changes: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": base + 1,
        "modifications": list(changes),
    }


def add(query_id: int, event_id: str) -> dict[str, Any]:
    return {
        "type": "Add",
        "queryId": query_id,
        "udfPath": "events:getEventAvailability",
        "args": [{"eventId": event_id}],
    }


def check_chain(messages: list[dict[str, Any]]) -> None:
    """Every Transition starts where the last ended (what Convex's client checks)."""
    end: dict[str, Any] = {"querySet": 0, "ts": "AAAAAAAAAAA=", "identity": 0}
    for message in messages:
        if message["type"] == "Transition":
            assert message["startVersion"] == end
            assert decode_ts(message["endVersion"]["ts"]) >= decode_ts(end["ts"])
            end = message["endVersion"]


async def test_sessions_at_the_same_versions_are_sent_one_shared_transition(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    event_id = await h.mutation("events:create", dict(ORG_ARGS, totalTickets=50))
    async with trio.open_nursery() as nursery:
        (a, out_a), (b, out_b) = [await start(nursery, h, name) for name in ("a", "b")]
        for ws in (a, b):
            await ws.send(modify(0, add(1, event_id)))
        await trio.testing.wait_all_tasks_blocked()
        for i in range(5):
            await h.mutation("events:joinWaitingList", {"eventId": event_id, "userId": f"u{i}"})
            await trio.testing.wait_all_tasks_blocked()
            assert out_a.payloads[-1] is out_b.payloads[-1]  # built once, for both
        for out in (out_a, out_b):
            messages = out.messages()
            assert [m["type"] for m in messages] == ["Transition"] * 6
            check_chain(messages)
            last = messages[-1]
            assert decode_ts(last["endVersion"]["ts"]) == h.engine.committed_seq
            assert last["modifications"][0]["value"]["remainingTickets"] == 45
        a.disconnect()
        b.disconnect()


async def test_with_other_things_due_one_query_goes_the_general_way(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    event_id = await h.mutation("events:create", dict(ORG_ARGS, totalTickets=50))
    other = await h.mutation("events:create", dict(ORG_ARGS, totalTickets=50))
    async with trio.open_nursery() as nursery:
        ws, out = await start(nursery, h, "s")
        await ws.send(
            {"type": "Authenticate", "tokenType": "Admin", "value": "admin-key", "baseVersion": 0}
        )
        await trio.testing.wait_all_tasks_blocked()
        await ws.send(modify(0, add(1, event_id)))
        await trio.testing.wait_all_tasks_blocked()
        # A response and the change it made: the response first, then one Transition.
        await ws.send(
            {
                "type": "Mutation",
                "requestId": 1,
                "udfPath": "events:joinWaitingList",
                "args": [{"eventId": event_id, "userId": "ann"}],
            }
        )
        await trio.testing.wait_all_tasks_blocked()
        # A swap of the one query: its removal and the new one in one Transition.
        await ws.send(modify(1, {"type": "Remove", "queryId": 1}, add(2, other)))
        await trio.testing.wait_all_tasks_blocked()
        # A new identity alone: a Transition that keeps ts.
        await ws.send({"type": "Authenticate", "tokenType": "None", "baseVersion": 1})
        await trio.testing.wait_all_tasks_blocked()
        messages = out.messages()
        check_chain(messages)
        kinds = [m["type"] for m in messages]
        assert kinds == [
            "Transition",
            "Transition",
            "MutationResponse",
            "Transition",
            "Transition",
            "Transition",
        ]
        response, reached = messages[2], messages[3]
        assert decode_ts(reached["endVersion"]["ts"]) >= decode_ts(response["ts"])
        swap = messages[4]
        assert [c["type"] for c in swap["modifications"]] == ["QueryRemoved", "QueryUpdated"]
        assert swap["endVersion"]["querySet"] == 2
        identity = messages[5]
        assert identity["endVersion"]["identity"] == 2
        assert identity["endVersion"]["ts"] == identity["startVersion"]["ts"]
        assert identity["modifications"][0]["queryId"] == 2  # re-evaluated for the new identity
        ws.disconnect()
