"""A trio client for Turnstile's (Convex's) sync protocol.

    async with open_client("http://127.0.0.1:3210", token=jwt) as client:
        availability = await client.query("events:getEventAvailability", {"eventId": eid})
        joined = await client.mutation("events:joinWaitingList", {"eventId": eid, "userId": me})
        async with client.subscribe("events:getEventAvailability", {"eventId": eid}) as live:
            async for value in live:
                ...

Guarantees, as Convex's own client gives them:
- `mutation()` returns after the server has committed it *and* this client has applied a
  Transition reaching its `ts`, so a subscription read afterwards already shows the write.
- The connection is re-opened by itself after a drop (backoff up to 2 s); every live query is
  re-subscribed and every mutation still in flight is re-sent with its original request id, which
  the server answers from its durable record instead of executing it twice.
- A refused function raises `FunctionError` carrying the server's `errorData` (`code`, ...).

The client speaks only `engine.wire` (the protocol's messages and Convex's value encoding): it
imports nothing of the server side (`engine.sync`, `engine.server`, the engine's modules).
"""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import orjson
import trio
import trio_websocket

from engine.wire.protocol import decode_ts
from engine.wire.values import convex_to_json, json_to_convex

log = logging.getLogger("turnstile.client")


#: Seconds the WebSocket opening handshake may take before the client gives up and reconnects.
HANDSHAKE_SECONDS = 10.0
#: How long closing waits for the server's answer to the close handshake before cutting the
#: connection (it answers at once unless it is gone or stuck).
CLOSE_SECONDS = 1.0
_CONNECTION_LOST = (trio_websocket.HandshakeError, trio_websocket.ConnectionClosed, OSError)


class _OpeningStream(trio.abc.Stream):
    """The TCP stream as trio-websocket sees it. trio-websocket waits forever for the server's
    101 answer if the connection ends first (a server killed mid-handshake); the end of the
    connection (EOF, or the stream broken) cancels `opening`, the scope of that wait, so the
    client reconnects at once. Past the opening the scope is gone and this only delegates."""

    def __init__(self, stream: trio.abc.Stream, opening: trio.CancelScope) -> None:
        self._stream = stream
        self._opening = opening

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            data = bytes(await self._stream.receive_some(max_bytes))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._opening.cancel()
            raise
        if not data:
            self._opening.cancel()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._opening.cancel()
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


class FunctionError(Exception):
    """A query or mutation the server refused; `data` is its `errorData`."""

    def __init__(self, message: str, data: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.data = data or {}
        self.code = self.data.get("code", "Internal")


class _Mutation:
    def __init__(self, request_id: int, message: dict[str, Any]) -> None:
        self.request_id = request_id
        self.message = message
        self.done = trio.Event()
        self.result: Any = None
        self.error: FunctionError | None = None
        self.ts: int | None = None  # committed at; resolved once a Transition reaches it
        #: The connection (count) it was last sent on: sent at most once per connection.
        self.sent_on = -1


class _Query:
    def __init__(self, query_id: int, name: str, args: dict[str, Any]) -> None:
        self.query_id = query_id
        self.name = name
        self.args = args
        self.value: Any = None
        self.error: FunctionError | None = None
        self.has_value = False
        self.changed = trio.Event()
        #: The connection (count) whose query set holds it (-1: none yet).
        self.sent_on = -1


class _Values:
    """The values of one live query, newest first-come: an async iterator."""

    def __init__(self, query: _Query) -> None:
        self._query = query

    def __aiter__(self) -> _Values:
        return self

    async def __anext__(self) -> Any:
        query = self._query
        while not query.has_value:
            await query.changed.wait()
        query.has_value = False
        query.changed = trio.Event()
        if query.error is not None:
            raise query.error
        return query.value


class Client:
    """Use through `open_client`. Safe to use from many tasks at once."""

    def __init__(self, url: str, *, token: str | None, admin_key: str | None) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "ws") or parsed.hostname is None:
            raise ValueError(f"expected an http:// URL, not {url!r}")
        self._host = parsed.hostname
        self._port = parsed.port or 80
        self._resource = parsed.path.rstrip("/") + "/api/1.0/sync"
        self._token = token
        self._admin_key = admin_key
        self._session_id = str(uuid.uuid4())
        self._connections = 0
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._connected = trio.Event()
        self._next_request = 0
        self._next_query = 0
        self._query_set_version = 0
        self._identity_version = 0
        self._ts = 0
        self._queries: dict[int, _Query] = {}
        self._mutations: dict[int, _Mutation] = {}
        self._send_lock = trio.Lock()
        self._closing = False
        self.reconnects = 0

    # -- public -------------------------------------------------------------------------

    async def mutation(self, name: str, args: dict[str, Any]) -> Any:
        request_id = self._next_request
        self._next_request += 1
        pending = _Mutation(
            request_id,
            {
                "type": "Mutation",
                "requestId": request_id,
                "udfPath": name,
                "args": [convex_to_json(args)],
            },
        )
        self._mutations[request_id] = pending

        def message() -> dict[str, Any] | None:
            if pending.sent_on == self._connections:
                return None  # the reconnect's handshake sent it already
            pending.sent_on = self._connections
            return pending.message

        try:
            await self._send_if_connected(message)
            await pending.done.wait()
        finally:
            self._mutations.pop(request_id, None)
        if pending.error is not None:
            raise pending.error
        return pending.result

    async def query(self, name: str, args: dict[str, Any]) -> Any:
        async with self.subscribe(name, args) as live:
            async for value in live:
                return value
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def subscribe(self, name: str, args: dict[str, Any]) -> AsyncIterator[AsyncIterator[Any]]:
        """Live values of a query: the current one first, then each change (newest only)."""
        query = _Query(self._next_query, name, args)
        self._next_query += 1
        self._queries[query.query_id] = query

        def add() -> dict[str, Any] | None:
            if query.sent_on == self._connections:
                return None  # the reconnect's handshake replayed it already
            query.sent_on = self._connections
            return self._modify([self._add(query)])

        def remove() -> dict[str, Any] | None:
            if query.sent_on != self._connections:
                return None  # not in this connection's query set
            return self._modify([{"type": "Remove", "queryId": query.query_id}])

        await self._send_if_connected(add)
        try:
            yield _Values(query)
        finally:
            self._queries.pop(query.query_id, None)
            with trio.CancelScope(shield=True):
                await self._send_if_connected(remove)

    # -- internals ----------------------------------------------------------------------

    def _add(self, query: _Query) -> dict[str, Any]:
        return {
            "type": "Add",
            "queryId": query.query_id,
            "udfPath": query.name,
            "args": [convex_to_json(query.args)],
        }

    def _modify(self, changes: list[dict[str, Any]]) -> dict[str, Any]:
        base = self._query_set_version
        self._query_set_version += 1
        return {
            "type": "ModifyQuerySet",
            "baseVersion": base,
            "newVersion": base + 1,
            "modifications": changes,
        }

    async def _send_if_connected(self, build: Callable[[], dict[str, Any] | None]) -> None:
        """Build and send a message if connected, all under the send lock, so it can neither
        slip between a reconnect's replay and the connection becoming usable nor be sent
        twice (`build` returns None when the replay already covered it). Disconnected, the
        next handshake replays the state the message belongs to."""
        async with self._send_lock:
            ws = self._ws
            if ws is None:
                return
            message = build()
            if message is None:
                return
            with suppress(trio_websocket.ConnectionClosed):
                await ws.send_message(orjson.dumps(message).decode())

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        delay = 0.05
        started = False
        while True:
            stream: trio.SocketStream | None = None
            try:
                # We own the TCP stream and close it ourselves: trio-websocket leaves it open
                # when the server closes first.
                stream = await trio.open_tcp_stream(self._host, self._port)
                async with trio.open_nursery() as nursery:
                    # The opening ends when the connection does (`_OpeningStream`), and is
                    # bounded for a server that keeps it open without answering. (Typed for a
                    # socket stream, trio-websocket uses only the `Stream` interface.)
                    with trio.move_on_after(HANDSHAKE_SECONDS) as opening:
                        ws = await trio_websocket.wrap_client_stream(
                            nursery,
                            _OpeningStream(stream, opening),  # type: ignore[arg-type]
                            self._host,
                            self._resource,
                            max_message_size=16 * 1024 * 1024,
                        )
                    if opening.cancelled_caught:
                        nursery.cancel_scope.cancel()
                        raise OSError("the WebSocket handshake did not complete")
                    try:
                        await self._handshake(ws)
                        if not started:
                            started = True
                            task_status.started()
                        delay = 0.05
                        await self._read(ws)
                    finally:
                        self._ws = None
                        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_SECONDS):
                            await ws.aclose()
            except* _CONNECTION_LOST as lost:
                if not self._closing:
                    log.info("connection lost (%r); reconnecting", lost.exceptions[0])
            finally:
                self._ws = None
                if stream is not None:
                    with trio.CancelScope(shield=True):
                        await stream.aclose()
            if self._closing:
                return
            self.reconnects += 1
            await trio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _handshake(self, ws: trio_websocket.WebSocketConnection) -> None:
        """Connect, authenticate, replay the query set from version 0, re-send in-flight
        mutations: all before anything else can be sent on this connection."""
        async with self._send_lock:
            self._query_set_version = 0
            self._identity_version = 0
            self._ts = 0
            messages: list[dict[str, Any]] = [
                {
                    "type": "Connect",
                    "sessionId": self._session_id,
                    "connectionCount": self._connections,
                    "lastCloseReason": None,
                    "clientTs": int(trio.current_time() * 1000),
                }
            ]
            self._connections += 1
            if self._admin_key is not None or self._token is not None:
                messages.append(
                    {
                        "type": "Authenticate",
                        "tokenType": "Admin" if self._admin_key is not None else "User",
                        "value": self._admin_key if self._admin_key is not None else self._token,
                        "baseVersion": 0,
                    }
                )
                self._identity_version = 1
            if self._queries:
                messages.append(self._modify([self._add(q) for q in self._queries.values()]))
                for query in self._queries.values():
                    query.sent_on = self._connections
            for pending in self._mutations.values():
                if not pending.done.is_set():
                    messages.append(pending.message)
                    pending.sent_on = self._connections
            for message in messages:
                await ws.send_message(orjson.dumps(message).decode())
            self._ws = ws

    async def _read(self, ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            try:
                data = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                if self._closing:
                    # `_close` is completing the close handshake, which needs this
                    # connection's reader alive: wait here to be cancelled once it is done.
                    await trio.sleep_forever()
                raise
            message = orjson.loads(data)
            kind = message.get("type")
            if kind == "Transition":
                self._transition(message)
            elif kind == "MutationResponse":
                self._mutation_response(message)
            elif kind == "AuthError":
                error = message.get("error", "authentication failed")
                raise FunctionError(error, {"code": "Unauthenticated"})
            elif kind == "FatalError":
                raise FunctionError(message.get("error", "fatal error"), {"code": "Internal"})

    def _transition(self, message: dict[str, Any]) -> None:
        start_ts = decode_ts(message["startVersion"]["ts"])
        if start_ts != self._ts and start_ts != 0:
            log.warning("transition starts at %d, client is at %d", start_ts, self._ts)
        for change in message["modifications"]:
            query = self._queries.get(change["queryId"])
            if query is None:
                continue
            if change["type"] == "QueryUpdated":
                query.value, query.error = json_to_convex(change["value"]), None
            elif change["type"] == "QueryFailed":
                query.error = FunctionError(change["errorMessage"], change.get("errorData"))
            else:
                continue
            query.has_value = True
            query.changed.set()
        self._ts = decode_ts(message["endVersion"]["ts"])
        for pending in self._mutations.values():
            if pending.ts is not None and pending.ts <= self._ts:
                pending.done.set()

    async def _close(self) -> None:
        """Close the connection politely (the close handshake while our reader still runs,
        so the server's answer is read at once), and reconnect no more."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_SECONDS) as waited:
                await ws.aclose()
            if waited.cancelled_caught:
                log.warning(
                    "no answer to the close handshake in %s s; connection cut", CLOSE_SECONDS
                )

    def _mutation_response(self, message: dict[str, Any]) -> None:
        pending = self._mutations.get(message["requestId"])
        if pending is None:
            return
        if message["success"]:
            pending.result = json_to_convex(message["result"])
            pending.ts = decode_ts(message["ts"])
            if pending.ts <= self._ts:
                pending.done.set()
        else:
            pending.error = FunctionError(message["result"], message.get("errorData"))
            pending.done.set()


@asynccontextmanager
async def open_client(
    url: str, *, token: str | None = None, admin_key: str | None = None
) -> AsyncIterator[Client]:
    """A connected client for the duration of the block (it reconnects by itself)."""
    client = Client(url, token=token, admin_key=admin_key)
    async with trio.open_nursery() as nursery:
        await nursery.start(client._run)
        try:
            yield client
        finally:
            await client._close()
            nursery.cancel_scope.cancel()


__all__ = ["Client", "FunctionError", "open_client"]
