"""A connection that asked for `/api/<version>/sync` becomes one sync session.

The HTTP layer has already read the upgrade request; it hands over a stream that replays those
bytes, and trio-websocket parses them again and completes the handshake. Everything sent goes
through one `Outbox` over that stream, which the session also writes its frames to directly.
Messages are limited to `max_body_bytes` (a larger frame closes the connection with 1009). The
session itself is `engine.sync.session.run_sync_session`; an exception from it ends that
connection only.
"""

from __future__ import annotations

import logging

import attrs
import trio
import trio_websocket

from engine.server.context import ServerContext
from engine.server.outbox import Outbox
from engine.sync import session as sync_session
from engine.sync.limits import SessionLimits

log = logging.getLogger("turnstile.server")

#: Close code when the server is going away (shutdown).
GOING_AWAY = 1001
INTERNAL_ERROR = 1011


async def serve_sync(
    ctx: ServerContext,
    stream: trio.abc.Stream,
    session_scope: trio.CancelScope,
    limits: SessionLimits | None = None,
) -> None:
    """Complete the WebSocket handshake on `stream` and run a sync session until it ends.
    Cancelling `session_scope` (shutdown) ends the session only: the connection's reader
    stays up, so the client's reply to our close frame (code 1001) is read. A client that
    stopped reading or never said Connect (`DropConnection`) is dropped without a closing
    handshake."""
    config = ctx.config
    async with trio.open_nursery() as nursery:
        with trio.move_on_after(config.write_timeout) as handshake:
            outbox = Outbox(stream)
            request = await trio_websocket.wrap_server_stream(
                nursery,
                outbox,
                message_queue_size=config.ws_queue_size,
                max_message_size=config.max_body_bytes,
            )
            ws = await request.accept()
        if handshake.cancelled_caught:
            nursery.cancel_scope.cancel()
            return
        ctx.metrics.ws_sessions.inc()
        code, reason = 1000, ""
        graceful = True
        try:
            with session_scope:
                await sync_session.run_sync_session(
                    ws, attrs.evolve(ctx, limits=limits), outbox=outbox
                )
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
            nursery.cancel_scope.cancel()  # the reader task, should the peer never answer


__all__ = ["serve_sync"]
