"""What a sync session writes its frames through.

`Sender` is the interface: queue text messages without waiting, and drain them when the
connection can take more. The server's `engine.server.outbox.Outbox` is the one a live
connection uses (frames straight to the socket); `MessageOutbox` here is the same interface
over any WebSocket-like object's `send_message` (a connection that is not a plain socket, and
the tests' stand-ins). The session only ever sees a `Sender`, so it needs nothing of the server.

Neither guarantees delivery: what was handed to the connection can still be lost with it. A
sender whose connection failed is `broken`, and drops everything queued.
"""

from __future__ import annotations

from typing import Any, Protocol

import trio
import trio.lowlevel
import trio_websocket


class Sender(Protocol):
    """What a sync session writes through."""

    @property
    def pending(self) -> bool:
        """Something written is not yet handed to the connection."""

    @property
    def broken(self) -> bool:
        """The connection failed a write; nothing more will be sent."""

    def write_texts(self, payloads: list[bytes]) -> None:
        """Queue text messages, in order, and send what can be sent without waiting."""

    async def drain(self) -> None:
        """Wait until everything queued is handed to the connection. Raises
        `trio.BrokenResourceError` if the connection fails first."""


class MessageOutbox:
    """The `Sender` interface over a WebSocket-like object's `send_message`; each drain sends
    the queued messages one by one."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._queue: list[str] = []
        self._broken = False
        self._drain_lock = trio.Lock()

    @property
    def pending(self) -> bool:
        return bool(self._queue)

    @property
    def broken(self) -> bool:
        return self._broken

    def write_texts(self, payloads: list[bytes]) -> None:
        if not self._broken:
            self._queue.extend(payload.decode() for payload in payloads)

    async def drain(self) -> None:
        async with self._drain_lock:
            while self._queue and not self._broken:
                try:
                    await self._ws.send_message(self._queue[0])
                except trio_websocket.ConnectionClosed:
                    self._broken = True
                    self._queue.clear()
                    break
                del self._queue[0]
            if self._broken:
                raise trio.BrokenResourceError("the connection is closed")
        await trio.lowlevel.checkpoint()


__all__ = ["MessageOutbox", "Sender"]
