"""A user token's identity ends with the token: the session tells the client with Convex's
AuthError when `exp` plus the leeway has passed, sends nothing more for that identity, and is
restored by a new Authenticate. In virtual time (the deadline is on trio's clock)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from engine.server.auth import LEEWAY_SECONDS, Authenticator, mint_token
from engine.sync.limits import ServerConfig
from engine.sync.session import run_sync_session
from engine.testing import EngineHarness
from tests.sync.conftest import ORG_ARGS
from tests.sync.fake_ws import FakeWebSocket, StubServer
from tests.sync.test_session import Client, add_query

SECRET = "expiry-test-secret-of-32-bytes-at-least"
TTL = 600
LEEWAY = ServerConfig().token_leeway


def token(sub: str, ttl: int = TTL) -> str:
    return mint_token(SECRET, sub, ttl_seconds=ttl)


def authenticate(base: int, token_type: str = "User", value: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "Authenticate", "tokenType": token_type, "baseVersion": base}
    if value is not None:
        message["value"] = value
    return message


def join(request_id: int, event_id: str, user: str) -> dict[str, Any]:
    return {
        "type": "Mutation",
        "requestId": request_id,
        "udfPath": "events:joinWaitingList",
        "args": [{"eventId": event_id, "userId": user}],
    }


async def open_session(h: EngineHarness, nursery: trio.Nursery) -> Client:
    ws = FakeWebSocket()
    server = StubServer(h.engine, authenticator=Authenticator("admin-key", SECRET))
    nursery.start_soon(run_sync_session, ws.connection, server)
    await ws.send({"type": "Connect", "sessionId": "s-1", "connectionCount": 0, "clientTs": 0})
    return Client(ws)


async def read_all(client: Client) -> list[dict[str, Any]]:
    """Everything the session has written once it has nothing more to do now, Pings left out."""
    messages: list[dict[str, Any]] = []
    while True:
        await trio.testing.wait_all_tasks_blocked()  # (reading one may let the next be sent)
        if not client.ws.pending():
            return messages
        message = await client.next()
        if message["type"] != "Ping":
            messages.append(message)


def updates(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        change
        for message in messages
        if message["type"] == "Transition"
        for change in message["modifications"]
        if change["type"] in ("QueryUpdated", "QueryFailed")
    ]


def position_query(event_id: str, user: str, base: int) -> dict[str, Any]:
    return add_query(1, "waitingList:getQueuePosition", {"eventId": event_id, "userId": user}, base)


def test_the_session_leeway_is_the_verification_leeway() -> None:
    assert LEEWAY == LEEWAY_SECONDS


async def test_an_expired_token_ends_its_identity_until_a_new_authenticate(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    event_id = await h.mutation("events:create", ORG_ARGS)
    async with trio.open_nursery() as nursery:
        client = await open_session(h, nursery)
        await client.ws.send(authenticate(0, value=token("ann")))
        await client.ws.send(position_query(event_id, "ann", 0))
        await read_all(client)
        assert client.version["identity"] == 1
        assert client.results == {1: None}

        # Within exp + leeway the identity holds and its results are sent.
        await trio.sleep(TTL + LEEWAY - 5)
        await h.mutation("events:joinWaitingList", {"eventId": event_id, "userId": "ann"})
        before = await read_all(client)
        assert "AuthError" not in [message["type"] for message in before]
        assert client.results[1]["status"] == "offered"

        await trio.sleep(10)
        (error,) = await read_all(client)
        assert error == {
            "type": "AuthError",
            "error": "The token has expired.",
            "baseVersion": 1,
            "authUpdateAttempted": False,
        }

        # Nothing is evaluated or begun for the expired identity: a change to the query's
        # result is not sent, a query added is not answered, and a mutation waits.
        await h.mutation(
            "waitingList:releaseTicket",
            {"eventId": event_id, "waitingListId": client.results[1]["_id"]},
        )
        await client.ws.send(
            add_query(2, "events:getUserTickets", {"userId": "ann"}, client.version["querySet"])
        )
        await client.ws.send(join(7, event_id, "ann"))
        await trio.sleep(5)
        suspended = await read_all(client)
        assert updates(suspended) == []
        assert "MutationResponse" not in [message["type"] for message in suspended]
        assert client.ws.closed is None
        position = {"eventId": event_id, "userId": "ann"}
        assert await h.query("waitingList:getQueuePosition", position) is None

        # A fresh token restores the session: every query is evaluated for the new identity,
        # and the held mutation runs as it (a mutation of "ann" succeeds only for ann).
        await client.ws.send(authenticate(1, value=token("ann")))
        resumed = await read_all(client)
        (response,) = [message for message in resumed if message["type"] == "MutationResponse"]
        assert response["success"] is True
        assert response["result"]["status"] == "offered"
        assert client.version["identity"] == 2
        assert client.results[1]["status"] == "offered"
        assert client.results[2] == []
        client.ws.disconnect()


async def test_a_token_refreshed_before_expiry_moves_the_deadline(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    event_id = await h.mutation("events:create", ORG_ARGS)
    async with trio.open_nursery() as nursery:
        client = await open_session(h, nursery)
        await client.ws.send(authenticate(0, value=token("ann")))
        await client.ws.send(position_query(event_id, "ann", 0))
        await read_all(client)
        refreshed_at = TTL - 30
        await trio.sleep(refreshed_at)
        await client.ws.send(authenticate(1, value=token("ann", ttl=2 * TTL)))
        await read_all(client)
        assert client.version["identity"] == 2

        # Past the first token's deadline: the identity holds, results keep coming.
        await trio.sleep(TTL + LEEWAY + 10 - refreshed_at)
        await h.mutation("events:joinWaitingList", {"eventId": event_id, "userId": "ann"})
        held = await read_all(client)
        assert "AuthError" not in [message["type"] for message in held]
        assert [change["value"]["status"] for change in updates(held)] == ["offered"]

        # Past the second one's, it ends.
        await trio.sleep(refreshed_at + 2 * TTL + LEEWAY + 1 - trio.current_time())
        (error,) = await read_all(client)
        assert (error["type"], error["baseVersion"], error["authUpdateAttempted"]) == (
            "AuthError",
            2,
            False,
        )
        client.ws.disconnect()


@pytest.mark.parametrize(
    "signed_in",
    [
        [],
        [authenticate(0, "None")],
        [authenticate(0, "Admin", "admin-key")],
        [authenticate(0, value=token("ann")), authenticate(1, "None")],
    ],
    ids=["anonymous", "signed-out", "admin", "user-then-signed-out"],
)
async def test_admin_and_anonymous_sessions_never_expire(
    h: EngineHarness, autojump_clock: trio.testing.MockClock, signed_in: list[dict[str, Any]]
) -> None:
    event_id = await h.mutation("events:create", ORG_ARGS)
    async with trio.open_nursery() as nursery:
        client = await open_session(h, nursery)
        for message in signed_in:
            await client.ws.send(message)
        await client.ws.send(add_query(1, "events:getEventAvailability", {"eventId": event_id}, 0))
        await read_all(client)
        assert client.results[1]["remainingTickets"] == 1
        await trio.sleep(2 * 3600)
        await h.mutation("events:joinWaitingList", {"eventId": event_id, "userId": "ann"})
        later = await read_all(client)
        assert "AuthError" not in [message["type"] for message in later]
        assert client.results[1]["remainingTickets"] == 0
        client.ws.disconnect()


async def test_a_result_not_yet_sent_at_expiry_is_never_sent(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """A client that reads nothing for a while: its socket is full, so a newer result waits
    in its subscription when the token's time is up. What was written before is delivered,
    then the AuthError, and never that result."""
    event_id = await h.mutation("events:create", ORG_ARGS)
    ws = FakeWebSocket(buffer=1)
    server = StubServer(h.engine, authenticator=Authenticator("admin-key", SECRET))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_sync_session, ws.connection, server)
        await ws.send({"type": "Connect", "sessionId": "s-1", "connectionCount": 0, "clientTs": 0})
        # Accepted within the leeway: the identity ends about 10 s from now.
        await ws.send(authenticate(0, value=token("ann", ttl=10 - int(LEEWAY))))
        await trio.sleep(1)  # the Transition acknowledging it fills the socket
        await ws.send(position_query(event_id, "ann", 0))
        await trio.sleep(1)  # the query's first answer waits in the outbox
        await ws.send(add_query(2, "events:getUserTickets", {"userId": "ann"}, 1))
        await h.mutation("events:joinWaitingList", {"eventId": event_id, "userId": "ann"})
        await trio.sleep(1)  # a newer answer of query 1, and query 2's first, wait in their
        # subscriptions
        await trio.sleep(10)
        client = Client(ws)
        messages = await read_all(client)
        kinds = [message["type"] for message in messages]
        assert kinds[:3] == ["Transition", "Transition", "AuthError"]
        # (then, at most, the query set's new version acknowledged, with no result)
        assert updates(messages[2:]) == []
        assert client.version["identity"] == 1
        assert client.results == {1: None}
        ws.disconnect()
