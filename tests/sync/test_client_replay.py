"""The client's reconnect replay and its live sends never overlap: a query or mutation is in
each connection's stream exactly once, and the query-set versions stay chained."""

from __future__ import annotations

from typing import Any, cast

import orjson
import trio
import trio.testing
import trio_websocket

from engine.client import Client


class RecordingSocket:
    """What the client's handshake uses of a connection: it records what is sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_message(self, message: str) -> None:
        self.sent.append(orjson.loads(message))

    @property
    def connection(self) -> trio_websocket.WebSocketConnection:
        """This recorder, typed as the connection it stands in for."""
        return cast(trio_websocket.WebSocketConnection, self)


def kinds(sent: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in sent]


async def test_a_subscription_made_while_reconnecting_is_sent_once_with_chained_versions() -> None:
    client = Client("http://127.0.0.1:9", token=None, admin_key="k")
    first = RecordingSocket()
    async with client.subscribe("events:list", {}):  # disconnected: nothing sent yet
        await client._handshake(first.connection)
        # The replay carries it; the subscriber's own send (had it waited for the lock) is a
        # no-op now: one Add, versions 0 -> 1.
        await client._send_if_connected(lambda: None)
        adds = [m for m in first.sent if m["type"] == "ModifyQuerySet"]
        assert [(m["baseVersion"], m["newVersion"]) for m in adds] == [(0, 1)]
    # Leaving sends the Remove on the same connection, chained on version 1.
    assert first.sent[-1]["type"] == "ModifyQuerySet"
    assert (first.sent[-1]["baseVersion"], first.sent[-1]["newVersion"]) == (1, 2)
    assert first.sent[-1]["modifications"] == [{"type": "Remove", "queryId": 0}]
    # A new connection replays nothing of it.
    second = RecordingSocket()
    await client._handshake(second.connection)
    assert "ModifyQuerySet" not in kinds(second.sent)


async def test_a_mutation_sent_by_the_replay_is_not_sent_again() -> None:
    client = Client("http://127.0.0.1:9", token=None, admin_key="k")
    socket = RecordingSocket()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.mutation, "events:create", {"name": "x"})
        await trio.testing.wait_all_tasks_blocked()
        async with client._send_lock:  # a handshake in progress holds the lock...
            nursery.start_soon(client._handshake, socket.connection)
            await trio.testing.wait_all_tasks_blocked()
        await trio.testing.wait_all_tasks_blocked()
        mutations = [m for m in socket.sent if m["type"] == "Mutation"]
        assert [m["requestId"] for m in mutations] == [0]
        nursery.cancel_scope.cancel()
