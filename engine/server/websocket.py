"""A connection that asked for `/api/<version>/sync` becomes one sync session.

The HTTP layer has already read and checked the upgrade request; `serve_sync` answers it (101,
with the `Sec-WebSocket-Accept` token wsproto computes; no extension, no subprotocol) and runs
the session on the server's end of the connection, an `engine.wire.connection.WebSocket`
(wsproto's protocol; its messages are read in the session's reader task, straight from the
socket). Everything sent goes through one `Outbox` over the stream, which the session also
writes its frames to directly. Messages are limited to `max_body_bytes` (characters for text,
bytes for binary): a larger one closes the connection with 1009. The session itself is
`engine.sync.session.run_sync_session`; an exception from it ends that connection only.
"""

from __future__ import annotations

import logging

import attrs
import trio
import trio_websocket
from wsproto.utilities import generate_accept_token

from engine.server.context import ServerContext
from engine.server.outbox import Outbox
from engine.sync import session as sync_session
from engine.sync.limits import SessionLimits
from engine.wire.connection import WebSocket

log = logging.getLogger("turnstile.server")

#: Close code when the server is going away (shutdown).
GOING_AWAY = 1001
INTERNAL_ERROR = 1011


def handshake_response(key: bytes) -> bytes:
    """The 101 answer to an upgrade request carrying `Sec-WebSocket-Key: key`."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + generate_accept_token(key) + b"\r\n\r\n"
    )


async def serve_sync(
    ctx: ServerContext,
    stream: trio.abc.Stream,
    session_scope: trio.CancelScope,
    limits: SessionLimits | None = None,
    *,
    key: bytes,
    received: bytes = b"",
) -> None:
    """Answer the upgrade request (its `Sec-WebSocket-Key` is `key`; `received` is what arrived
    after its head) and run a sync session on `stream` until it ends. Cancelling
    `session_scope` (shutdown) ends the session only: the close that follows (code 1001) still
    reads the client's answer to it. A client that stopped reading or never said Connect
    (`DropConnection`) is dropped without a closing handshake."""
    config = ctx.config
    outbox = Outbox(stream)
    with trio.move_on_after(config.write_timeout) as handshake:
        try:
            await outbox.send_all(handshake_response(key))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
    if handshake.cancelled_caught:
        return
    ws = WebSocket(
        outbox,
        max_message_size=config.max_body_bytes,
        received=received,
        # A plain socket is read directly; any other stream (TLS, say) through its interface.
        sock=stream.socket if isinstance(stream, trio.SocketStream) else None,
    )
    ctx.metrics.ws_sessions.inc()
    code, reason = 1000, ""
    graceful = True
    try:
        with session_scope:
            await sync_session.run_sync_session(ws, attrs.evolve(ctx, limits=limits), outbox=outbox)
        if session_scope.cancelled_caught:
            code, reason = GOING_AWAY, "The server is shutting down."
    except trio_websocket.ConnectionClosed:
        code, reason = 1000, ""
    except sync_session.DropConnection:
        graceful = False
    except Exception:
        log.exception("sync session failed")
        code, reason = INTERNAL_ERROR, "Internal error."
    finally:
        ctx.metrics.ws_sessions.dec()
        if graceful:
            with trio.CancelScope(shield=True), trio.move_on_after(config.write_timeout):
                await ws.aclose(code=code, reason=reason or None)


__all__ = ["handshake_response", "serve_sync"]
