"""Floods: many connections, slow handshakes, a client that never reads, a client that sends as
fast as it can. Each helper drives one kind against a server on 127.0.0.1 and reports what it
saw; the tests (short form) and `python -m lab.hostile flood` (long form) assert and print.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import orjson
import trio
import trio_websocket

from engine.wire.protocol import connect_message, subscribe_message
from lab.hostile.wire import raw_upgrade, upgrade_request

#: Kinds of connection a churn opens and drops (in turn).
CHURN_KINDS = ("tcp", "half-head", "http", "upgrade", "session")


#: SO_LINGER on with a zero timeout: close() resets the connection at once.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)


async def _drop(stream: trio.SocketStream) -> None:
    """Close abruptly (a reset), as a vanishing client would."""
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
    await trio.aclose_forcefully(stream)


async def open_and_drop(port: int, kind: str, event_id: str = "") -> None:
    """One connection of `kind`, opened and dropped without a goodbye."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        if kind == "half-head":
            await stream.send_all(b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Le")
        elif kind == "http":
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            await stream.receive_some(4096)
        elif kind == "upgrade":
            await stream.send_all(upgrade_request())
            await stream.receive_some(4096)
        elif kind == "session":
            async with trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery, stream, "127.0.0.1", "/api/1.17.0/sync"
                )
                await ws.send_message(orjson.dumps(connect_message(os.urandom(8).hex())).decode())
                if event_id:
                    query = subscribe_message(0, "events:getEventAvailability",
                                              {"eventId": event_id})
                    await ws.send_message(orjson.dumps(query).decode())
                    await ws.get_message()
                nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, trio_websocket.ConnectionClosed, OSError):
        pass  # the server may have shed it first: that is allowed
    finally:
        await _drop(stream)


async def churn(port: int, count: int, *, concurrency: int = 50, event_id: str = "") -> int:
    """Open and drop `count` connections of every kind in turn, `concurrency` at a time."""
    limiter = trio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limiter:
            await open_and_drop(port, CHURN_KINDS[i % len(CHURN_KINDS)], event_id)

    async with trio.open_nursery() as nursery:
        for i in range(count):
            await limiter.acquire()
            limiter.release()
            nursery.start_soon(one, i)
    return count


@attrs.define
class HeldSessions:
    """Idle sync sessions kept open (each Connected and subscribed to one query)."""

    sockets: list[trio.SocketStream] = attrs.field(factory=list)
    sessions: list[trio_websocket.WebSocketConnection] = attrs.field(factory=list)

    async def aclose(self) -> None:
        """Drop them all (their reading tasks end with their sockets)."""
        for stream in self.sockets:
            await trio.aclose_forcefully(stream)


async def hold_sessions(
    nursery: trio.Nursery, port: int, count: int, event_id: str, *, batch: int = 100
) -> HeldSessions:
    """Open `count` sync sessions, each subscribed to the event's availability and past its
    first Transition; they stay open, read by tasks in `nursery`, until `aclose()`."""
    held = HeldSessions()

    async def one() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        held.sockets.append(stream)
        ws = await trio_websocket.wrap_client_stream(
            nursery, stream, "127.0.0.1", "/api/1.17.0/sync", message_queue_size=4
        )
        held.sessions.append(ws)
        await ws.send_message(orjson.dumps(connect_message(os.urandom(8).hex())).decode())
        query = subscribe_message(0, "events:getEventAvailability", {"eventId": event_id})
        await ws.send_message(orjson.dumps(query).decode())
        await ws.get_message()
        nursery.start_soon(_keep_reading, ws)

    try:
        for start in range(0, count, batch):
            async with trio.open_nursery() as opening:
                for _ in range(min(batch, count - start)):
                    opening.start_soon(one)
    except BaseException:
        await held.aclose()
        raise
    return held


async def _keep_reading(ws: trio_websocket.WebSocketConnection) -> None:
    try:
        while True:
            await ws.get_message()
    except trio_websocket.ConnectionClosed:
        pass


async def slow_handshake(port: int, kind: str) -> float:
    """A client that starts and never finishes: `silent` (connects, sends nothing), `trickle`
    (one byte of a request head now and then), `no-connect` (upgrades to a WebSocket and never
    says Connect). Returns the seconds until the server closed it."""
    started = trio.current_time()
    if kind == "no-connect":
        stream = await raw_upgrade(port)
    else:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        sent = 0
        while True:
            with trio.move_on_after(0.05):
                data = await stream.receive_some(65536)
                if not data:
                    return trio.current_time() - started
            if kind == "trickle" and sent < len(head):
                try:
                    await stream.send_all(head[sent : sent + 1])
                except trio.BrokenResourceError:
                    return trio.current_time() - started
                sent += 1
    except trio.BrokenResourceError:
        return trio.current_time() - started
    finally:
        await trio.aclose_forcefully(stream)


@attrs.define
class SenderReport:
    sent: int = 0
    answered: int = 0
    seconds: float = 0.0
    closed: str = ""


async def fast_sender(
    port: int, *, messages: int, payload_bytes: int = 0, seconds: float = 30.0
) -> SenderReport:
    """Send `messages` Mutation frames (an unknown function: each is answered at once, padded to
    about `payload_bytes`) as fast as the connection takes them, reading the answers meanwhile.
    Stops after `seconds`."""
    report = SenderReport()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    pad = "x" * payload_bytes
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, "127.0.0.1", "/api/1.17.0/sync"
            )
            await ws.send_message(orjson.dumps(connect_message(os.urandom(8).hex())).decode())
            started = trio.current_time()

            async def read() -> None:
                try:
                    while report.answered < messages:
                        message = orjson.loads(await ws.get_message())
                        if message["type"] == "MutationResponse":
                            report.answered += 1
                            report.seconds = trio.current_time() - started
                except trio_websocket.ConnectionClosed as closed:
                    report.closed = str(closed.reason)

            with trio.move_on_after(seconds):
                async with trio.open_nursery() as inner:
                    inner.start_soon(read)
                    try:
                        for i in range(messages):
                            frame: dict[str, Any] = {
                                "type": "Mutation", "requestId": i, "udfPath": "flood:nothing",
                                "args": [{"pad": pad} if pad else {}],
                            }
                            await ws.send_message(orjson.dumps(frame).decode())
                            report.sent += 1
                    except trio_websocket.ConnectionClosed as closed:
                        report.closed = str(closed.reason)
            nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)
    return report


@asynccontextmanager
async def never_reading(port: int, admin_key: str) -> AsyncIterator[trio.SocketStream]:
    """A session subscribed to `events:list` whose client stops reading: a small receive
    buffer, and nobody calling `get_message` (trio-websocket's reader stops once its one-message
    queue is full). Yields its stream; closed on leaving."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, "127.0.0.1", "/api/1.17.0/sync", message_queue_size=1,
                receive_buffer_size=1024,
            )
            for message in (
                connect_message(os.urandom(8).hex()),
                {"type": "Authenticate", "tokenType": "Admin", "value": admin_key,
                 "baseVersion": 0},
                subscribe_message(0, "events:list", {}),
            ):
                await ws.send_message(orjson.dumps(message).decode())
            yield stream
            nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of process `pid` (this one by default), from psutil (a dev dependency)."""
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


__all__ = [
    "CHURN_KINDS",
    "HeldSessions",
    "SenderReport",
    "churn",
    "fast_sender",
    "hold_sessions",
    "never_reading",
    "open_and_drop",
    "rss_bytes",
    "slow_handshake",
]
