"""A stream that first replays bytes already read, then reads from the underlying stream.

The HTTP layer reads a request head before it knows the request is a WebSocket upgrade; the
WebSocket library then needs to parse that same head. `PrefixedStream` gives it the bytes again.
"""

from __future__ import annotations

import trio
import trio.lowlevel


class PrefixedStream(trio.abc.HalfCloseableStream):
    """`receive_some` returns `prefix` (in pieces of at most `max_bytes`) before anything from
    `stream`; sending and closing go straight to `stream`."""

    def __init__(self, prefix: bytes, stream: trio.abc.HalfCloseableStream) -> None:
        self._prefix = memoryview(prefix)
        self.transport_stream = stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            size = len(self._prefix) if max_bytes is None else max_bytes
            chunk, self._prefix = self._prefix[:size], self._prefix[size:]
            return bytes(chunk)
        return await self.transport_stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.transport_stream.send_eof()

    async def aclose(self) -> None:
        self._prefix = memoryview(b"")
        await self.transport_stream.aclose()


__all__ = ["PrefixedStream"]
