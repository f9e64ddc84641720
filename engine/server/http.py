"""The one TCP listener: HTTP/1.1 (h11) and the WebSocket upgrade, on one port.

Each connection is a loop of request cycles (keep-alive). Limits that keep one client from
holding the server: at most `max_connections` open (one more is closed unread), the first
request head within `handshake_timeout` of accepting, a request head of at most
`max_head_bytes` (431), a body of at most `max_body_bytes` (413), `idle_timeout` between
requests, `read_timeout` from a request's first byte to its last, `write_timeout` for each
response, and the connection's message and byte allowance (`Throttle`: reading pauses while it
is spent). None of them bounds a function's own run.

`GET /api/<version>/sync` with `Upgrade: websocket` leaves the HTTP loop: once the head is
checked (`Connection: Upgrade`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`; 400 if not),
`engine.server.websocket` answers it, and whatever arrived after the head is read as the
connection's first frames. The connection becomes a sync session.

Shutdown (`stop` set): the listener closes at once; idle keep-alive connections and WebSocket
sessions are closed; requests in flight get `drain_seconds` to be answered (with
`Connection: close`), then whatever is left is cancelled. `serve` returns after that.
"""

from __future__ import annotations

import http
import logging
import re
from typing import TYPE_CHECKING, cast

import h11
import trio

from domain.storage import ORIGIN, ORIGIN_ID, set_origin
from engine.actions import ActionDispatch
from engine.server import api, files, webhooks
from engine.server.auth import Authenticator
from engine.server.context import ServerContext
from engine.server.metrics import Metrics
from engine.server.websocket import serve_sync
from engine.sync.limits import ServerConfig, SessionLimits, Throttle

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger("turnstile.server")

RECEIVE_BYTES = 64 * 1024
#: The blank line that ends a request head (h11 accepts bare LF line ends too).
_HEAD_END = re.compile(rb"\n\r?\n")
#: After answering a request whose body was not read, keep discarding input this long (and at
#: most this much) before closing, so the client reads the answer instead of a reset.
LINGER_SECONDS = 1.0
LINGER_BYTES = 2 * 1024 * 1024


class _Closed(Exception):
    """The connection is over (peer gone, protocol error answered, or a timeout)."""


def _reason(status: int) -> bytes:
    if status == api.STATUS_FUNCTION_FAILED:
        return b"Function Failed"
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class HttpServer:
    """The connections of one listener, and the drain on shutdown."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.draining = False
        self.connections: set[Connection] = set()

    async def handle_stream(self, stream: trio.SocketStream) -> None:
        if len(self.connections) >= self.ctx.config.max_connections:
            self.ctx.metrics.limited.labels("connections").inc()
            await trio.aclose_forcefully(stream)
            return
        connection = Connection(self, stream)
        self.connections.add(connection)
        self.ctx.metrics.open_connections.inc()
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            self.ctx.metrics.open_connections.dec()
            await trio.aclose_forcefully(stream)

    def drain(self) -> None:
        self.draining = True
        for connection in list(self.connections):
            connection.drain()


class Connection:
    """One TCP connection's request cycles."""

    def __init__(self, server: HttpServer, stream: trio.SocketStream) -> None:
        self.server = server
        self.ctx = server.ctx
        self.config = server.ctx.config
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_head_bytes)
        #: The first request's head must have arrived by then (and a sync session's Connect).
        self.handshake_by = trio.current_time() + self.config.handshake_timeout
        self.handshaking = True
        self.throttle = Throttle.of(self.config, server.ctx.metrics)
        #: The bytes of the current request's head as received, for a WebSocket hand-off.
        self.raw = bytearray()
        self.recording = True
        #: The current request is HEAD: its answers carry no body (h11 refuses one).
        self.head_only = False
        self.idle_scope: trio.CancelScope | None = None
        self.session_scope: trio.CancelScope | None = None

    def drain(self) -> None:
        """Close now if idle or a WebSocket session; a request being handled is let finish."""
        if self.idle_scope is not None:
            self.idle_scope.cancel()
        if self.session_scope is not None:
            self.session_scope.cancel()

    async def run(self) -> None:
        try:
            while await self._cycle():
                self.h11.start_next_cycle()
        except (_Closed, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("connection failed")

    # -- reading --------------------------------------------------------------------------

    async def _receive(self) -> None:
        if self.recording:
            # Never hold more than one byte beyond the head limit before the head is parsed:
            # h11 refuses an incomplete head only once its buffer exceeds the limit, so a
            # larger read could deliver (and let h11 accept) an oversized head in one piece.
            room = self.config.max_head_bytes + 1 - len(self.raw)
            data = await self.stream.receive_some(max(room, 1))
            self.raw += data
        else:
            data = await self.stream.receive_some(RECEIVE_BYTES)
        self.h11.receive_data(data)  # b"" is the peer's EOF

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                await self._receive()
                continue
            return cast("h11.Event | type[h11.PAUSED]", event)

    async def _wait_for_request(self) -> bool:
        """Wait (at most `idle_timeout`, less if draining) for the next request's first byte."""
        pending, closed = self.h11.trailing_data
        self.raw = bytearray(pending)
        self.recording = True
        self.head_only = False
        if pending or closed:
            return True
        if self.server.draining:
            return False
        if self.handshaking:
            deadline = self.handshake_by
        else:
            deadline = trio.current_time() + self.config.idle_timeout
        with trio.move_on_at(deadline) as scope:
            self.idle_scope = scope
            try:
                await self._receive()
            finally:
                self.idle_scope = None
        if scope.cancelled_caught and self.handshaking:
            self.ctx.metrics.limited.labels("handshake").inc()
        return not scope.cancelled_caught

    async def _read_head(self) -> h11.Request:
        try:
            event = await self._next_event()
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc.error_status_hint, str(exc))
            raise _Closed from None
        if not isinstance(event, h11.Request):
            raise _Closed  # the peer closed (h11.ConnectionClosed)
        self.recording = False
        return event

    async def _read_body(self) -> bytes | None:
        """The whole body; None if it exceeds `max_body_bytes`."""
        if self.h11.they_are_waiting_for_100_continue:
            await self._send(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                event = await self._next_event()
            except h11.RemoteProtocolError as exc:
                await self._refuse(exc.error_status_hint, str(exc))
                raise _Closed from None
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.config.max_body_bytes:
                    return None
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise _Closed

    # -- one cycle ------------------------------------------------------------------------

    async def _cycle(self) -> bool:
        """Read, answer and report whether the connection may carry another request."""
        if not await self._wait_for_request():
            return False
        deadline = trio.current_time() + self.config.read_timeout
        head_by = min(deadline, self.handshake_by) if self.handshaking else deadline
        with trio.move_on_at(head_by) as reading_head:
            head = await self._read_head()
        if reading_head.cancelled_caught:
            if self.handshaking:
                self.ctx.metrics.limited.labels("handshake").inc()
            return False  # the head did not arrive in time: close without a word
        self.head_only = head.method == b"HEAD"
        headers = {name: value for name, value in head.headers}  # names come lower-cased
        path = head.target.partition(b"?")[0].decode("ascii", "replace")
        if b"websocket" in headers.get(b"upgrade", b"").lower() and head.method == b"GET":
            await self._upgrade(headers, path)
            return False
        self.handshaking = False
        if files.handles(head.method, path):
            exchange = files.Exchange(
                ctx=self.ctx,
                connection=self.h11,
                head=head,
                headers=headers,
                next_event=self._next_event,
                send=self._send,
                refuse=self._refuse,
                admit=self.throttle.admit,
                stream=self.stream,
                draining=self.server.draining,
            )
            return await files.serve(exchange)
        declared = headers.get(b"content-length")
        if declared is not None and int(declared) > self.config.max_body_bytes:
            await self._refuse(413, "The request body is larger than the server accepts.")
            return False
        body: bytes | None = b""
        with trio.move_on_at(deadline) as reading:
            body = await self._read_body()
        if reading.cancelled_caught:
            await self._refuse(408, "The request did not arrive in time.")
            return False
        if body is None:
            await self._refuse(413, "The request body is larger than the server accepts.")
            return False
        await self.throttle.admit(len(body))
        query = head.target.partition(b"?")[2].decode("ascii", "replace")
        request = api.HttpRequest(
            method=head.method, path=path, headers=headers, body=body, query=query
        )
        response = await api.handle(self.ctx, request, draining=self.server.draining)
        await self._respond(response, close=self.server.draining)
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def _upgrade(self, headers: dict[bytes, bytes], path: str) -> None:
        if not api.SYNC_PATH.match(path):
            await self._refuse(404, "Not found.")
            return
        key = headers.get(b"sec-websocket-key")
        connection = {
            token.strip() for token in headers.get(b"connection", b"").lower().split(b",")
        }
        if (
            not key
            or headers.get(b"sec-websocket-version") != b"13"
            or b"upgrade" not in connection
        ):
            await self._refuse(400, "Not a valid WebSocket handshake.")
            return
        self.session_scope = trio.CancelScope()
        if self.server.draining:
            self.session_scope.cancel()
        limits = SessionLimits(
            config=self.config,
            throttle=self.throttle,
            slots=self.ctx.sessions,
            identities=self.ctx.identities,
            # A session opened by the first request must say Connect within the handshake
            # time; one opened later on a keep-alive connection gets the time afresh.
            connect_by=(
                self.handshake_by
                if self.handshaking
                else trio.current_time() + self.config.handshake_timeout
            ),
            metrics=self.ctx.metrics,
        )
        # What arrived after the head (a client may send frames before it reads our 101).
        head_end = _HEAD_END.search(self.raw)
        received = bytes(self.raw[head_end.end() :]) if head_end is not None else b""
        await serve_sync(
            self.ctx, self.stream, self.session_scope, limits, key=key, received=received
        )

    # -- writing --------------------------------------------------------------------------

    async def _send(self, data: bytes | None) -> None:
        if not data:
            return
        with trio.move_on_after(self.config.write_timeout) as scope:
            await self.stream.send_all(data)
        if scope.cancelled_caught:
            raise _Closed

    async def _respond(self, response: api.HttpResponse, *, close: bool) -> None:
        status = response.status
        start = h11.Response(
            status_code=status, headers=response.header_list(close=close), reason=_reason(status)
        )
        out = bytearray(self.h11.send(start) or b"")
        if response.body and not self.head_only:
            out += self.h11.send(h11.Data(data=response.body)) or b""
        out += self.h11.send(h11.EndOfMessage()) or b""
        await self._send(bytes(out))

    async def _refuse(self, status: int, message: str) -> None:
        """Answer with an error and close (lingering, so that unread input does not turn
        into a reset before the client has read the answer)."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        if self.h11.their_state is h11.IDLE:
            return  # no request head yet: nothing an HTTP answer could refer to
        body = {"status": "error", "errorMessage": message}
        response = api.json_response(status, body)
        self.ctx.metrics.http_requests.labels("other", str(status)).inc()
        try:
            await self._respond(response, close=True)
        except h11.LocalProtocolError:
            return
        await self._linger()

    async def _linger(self) -> None:
        with trio.move_on_after(LINGER_SECONDS):
            try:
                await self.stream.send_eof()
                received = 0
                while received < LINGER_BYTES:
                    data = await self.stream.receive_some(RECEIVE_BYTES)
                    if not data:
                        break
                    received += len(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


def origin_of(host: str, port: int) -> str:
    """`http://HOST:PORT`, as a client names a server listening there."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    engine: Engine,
    *,
    host: str = "127.0.0.1",
    port: int = 3210,
    authenticator: Authenticator,
    config: ServerConfig | None = None,
    metrics: Metrics | None = None,
    stop: trio.Event | None = None,
    public_url: str | None = None,
    stripe_webhook_secret: str | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP and WebSocket on `host:port` (port 0: a free one) for a recovered `engine`.

    Reports the bound port through `task_status.started(port)` once connections are accepted.
    Runs until cancelled (abrupt) or until `stop` is set (graceful: see the module docstring),
    then returns. The engine stays open; the caller closes it afterwards.

    The URLs file storage answers begin with `public_url` (default `http://HOST:PORT` as
    bound); it is journaled before the first connection is accepted (`domain.storage`).
    `stripe_webhook_secret` serves `POST /stripe/webhook` (engine.server.stripe_webhook)."""
    ctx = ServerContext(
        engine=engine,
        authenticator=authenticator,
        metrics=metrics or Metrics(),
        config=config or ServerConfig(),
        stripe_webhook_secret=stripe_webhook_secret,
        builtin_routes=dict(webhooks.ROUTES),
    )
    ctx.metrics.bind_engine(engine)
    ctx.metrics.bind_fanout(ctx.fanout)
    ctx.metrics.bind_authenticator(authenticator)
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    origin = (public_url or origin_of(host, bound)).rstrip("/")
    await engine.run_internal(ORIGIN, ORIGIN_ID, set_origin, origin)
    server = HttpServer(ctx)
    restore_dispatch = ActionDispatch.install(ctx.actions)
    # The answers of each batch are written as soon as they are known (engine/sync/fanout.py).
    detach_fanout = engine.after_answers(ctx.fanout.flush_urgent)
    try:
        async with trio.open_nursery() as writers:
            writers.start_soon(ctx.fanout.run)
            ctx.actions.nursery = writers  # actions outlive their sessions, not the server
            async with trio.open_nursery() as connections:
                accepting = trio.CancelScope()

                async def accept(task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
                    with accepting:
                        await trio.serve_listeners(
                            server.handle_stream,
                            listeners,
                            handler_nursery=connections,
                            task_status=task_status,
                        )

                await connections.start(accept)
                task_status.started(bound)
                if stop is None:
                    await trio.sleep_forever()
                else:
                    await stop.wait()
                accepting.cancel()  # serve_listeners closes the listeners as it leaves
                server.drain()
                connections.cancel_scope.deadline = trio.current_time() + ctx.config.drain_seconds
            # The connections are over (their nursery has exited): nothing is left to write.
            writers.cancel_scope.cancel()
    finally:
        detach_fanout()
        restore_dispatch()  # scheduled actions wait for the next server
        with trio.CancelScope(shield=True):
            await ctx.actions.aclose()  # the actions' outbound connections


__all__ = ["HttpServer", "serve"]
