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
from typing import Any, Protocol

import orjson
import trio
import trio_websocket
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from engine.wire.connection import WebSocket
from engine.wire.protocol import decode_ts
from engine.wire.values import convex_to_json, json_to_convex

log = logging.getLogger("turnstile.client")


#: Seconds the WebSocket opening handshake may take before the client gives up and reconnects.
HANDSHAKE_SECONDS = 10.0
#: How long closing waits for the server's answer to the close handshake before cutting the
#: connection (it answers at once unless it is gone or stuck).
CLOSE_SECONDS = 1.0
#: Largest message accepted from the server.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_CONNECTION_LOST = (
    trio_websocket.ConnectionClosed,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    OSError,
)


class _Socket(Protocol):
    """What the client sends through (its `WebSocket`; the tests' stand-ins)."""

    async def send_message(self, message: str) -> None: ...

    async def aclose(self) -> None: ...


class HandshakeFailed(OSError):
    """The server did not accept the WebSocket upgrade (or the connection ended first)."""


async def open_websocket(stream: trio.abc.Stream, host: str, port: int, resource: str) -> WebSocket:
    """The client's opening handshake on `stream` (RFC 6455 4.1, wsproto's: no extension, no
    subprotocol), then the connection. Raises `HandshakeFailed` when the connection ends or
    the server answers anything but a valid 101 (a server killed before its answer ends the
    connection: the client learns it at once and reconnects)."""
    handshake = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(handshake.send(Request(host=f"{host}:{port}", target=resource)))
    while True:
        data = await stream.receive_some(4096)
        if not data:
            raise HandshakeFailed("the connection ended during the WebSocket handshake")
        try:
            handshake.receive_data(bytes(data))
            for event in handshake.events():
                if isinstance(event, AcceptConnection):
                    # wsproto's connection, holding what arrived after the 101.
                    assert handshake.connection is not None
                    return WebSocket(
                        stream,
                        client=True,
                        max_message_size=MAX_MESSAGE_BYTES,
                        connection=handshake.connection,
                        sock=stream.socket if isinstance(stream, trio.SocketStream) else None,
                    )
                if isinstance(event, RejectConnection):
                    raise HandshakeFailed(
                        f"the WebSocket upgrade was refused: status {event.status_code}"
                    )
        except RemoteProtocolError as error:
            # A malformed or overlong answer (h11 bounds the head), a wrong accept token.
            raise HandshakeFailed(f"the WebSocket upgrade failed: {error}") from None


class FunctionError(Exception):
    """A query or mutation the server refused; `data` is its `errorData`."""

    def __init__(self, message: str, data: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.data = data or {}
        self.code = self.data.get("code", "Internal")

    def copy(self) -> FunctionError:
        """A copy to raise: a kept error raised itself would get a traceback holding the frame
        that holds what keeps it (a reference cycle, left to the garbage collector)."""
        return FunctionError(self.args[0], self.data)


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
            raise query.error.copy()
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
        self._ws: _Socket | None = None
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
            raise pending.error.copy()
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
            stream: trio.abc.Stream | None = None
            try:
                stream = await trio.open_tcp_stream(self._host, self._port)
                # Bounded for a server that keeps the connection open without answering.
                with trio.move_on_after(HANDSHAKE_SECONDS) as opening:
                    ws = await open_websocket(stream, self._host, self._port, self._resource)
                if opening.cancelled_caught:
                    raise HandshakeFailed("the WebSocket handshake did not complete")
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

    async def _handshake(self, ws: _Socket) -> None:
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

    async def _read(self, ws: WebSocket) -> None:
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


__all__ = ["Client", "FunctionError", "HandshakeFailed", "open_client", "open_websocket"]
