"""What a sync session sends, written without a task or a yield per frame.

Plan (docs/engine.md, "Fan-out to sync clients"): trio-websocket yields on every send, and one
loop sending to all clients beats a writer task per client (docs/benchmarks.md, "Fan-out"):
- `Outbox` sits between the WebSocket library and the connection's TCP stream. Every byte either
  side sends goes through one buffer in order, so frames never interleave.
- `write_texts(payloads)` is synchronous: it encodes each payload as one unmasked text frame
  (RFC 6455 5.2; the server negotiates no extension, so the encoding is fixed) and, if nothing is
  waiting ahead of it, hands them straight to the socket with one non-blocking `write`. What the
  socket does not take stays buffered; `drain()` writes it when the socket can take more.
- The library's own frames (handshake, pong, close) arrive through `send_all`, which appends to
  the same buffer and waits for it to drain.
- `Outbox` is a `Sender` (`engine.sync.sender`), the interface a sync session writes through;
  `engine.sync.sender.MessageOutbox` is the same interface over any WebSocket-like object's
  `send_message`, for a connection that is not a plain socket (tests).

Neither guarantees delivery: bytes the socket accepted can still be lost with the connection.
A connection that fails a write is `broken`, and everything buffered for it is dropped.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import Any

import trio
import trio.lowlevel

from engine.server.streams import PrefixedStream

#: A write goes to the socket directly only up to this size; the kernel takes less anyway.
_MAX_WRITE = 1 << 20


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (server to client) carrying `payload` (UTF-8)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


def _socket_of(stream: Any) -> Any:
    """The trio socket `stream` writes to unchanged, if there is one: a `SocketStream`, or one
    seen through `PrefixedStream`s (which pass sends straight on). Any other wrapper (TLS, for
    one) transforms what it sends, so its socket must not be written to directly."""
    while isinstance(stream, PrefixedStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        return stream.socket
    return None


class Outbox(trio.abc.Stream):
    """A stream wrapper with one ordered send buffer; see the module docstring."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.transport_stream = stream
        self._socket = _socket_of(stream)
        self._buffer = bytearray()
        self._drain_lock = trio.Lock()
        self._broken = False
        self._closed = False
        #: Bytes handed to the connection so far.
        self.written = 0

    @property
    def pending(self) -> bool:
        return bool(self._buffer)

    @property
    def broken(self) -> bool:
        return self._broken or self._closed

    # -- synchronous writing ---------------------------------------------------------------

    def write_texts(self, payloads: list[bytes]) -> None:
        if self.broken or not payloads:
            return
        if len(payloads) == 1:
            self._append(text_frame(payloads[0]))
        else:
            self._append(b"".join(text_frame(payload) for payload in payloads))

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        if self._buffer or self._socket is None:
            self._buffer += data
            return
        # Nothing waits ahead: straight to the socket, and buffer only what it did not take.
        sent = self._write(data)
        if sent < 0:
            self._fail()
        elif sent < len(data):
            self._buffer += memoryview(data)[sent:]

    def _flush(self) -> None:
        """Hand the socket as much of the buffer as it takes now, without blocking."""
        while self._buffer and not self.broken:
            sent = self._write(memoryview(self._buffer)[:_MAX_WRITE])
            # (the view is released here: the buffer may be resized again)
            if sent < 0:
                self._fail()
            elif sent == 0:
                return
            else:
                del self._buffer[:sent]

    def _write(self, data: bytes | bytearray | memoryview) -> int:
        """One non-blocking write to the socket: the bytes it took, 0 when it is full (or there
        is no socket), -1 when the connection failed it (or was closed under us)."""
        if self._socket is None:
            return 0
        fd = self._socket.fileno()
        if fd < 0:  # closed: never write to a number that may be reused
            return -1
        while True:
            try:
                sent = os.write(fd, data)
            except InterruptedError:
                continue
            except BlockingIOError:
                return 0
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return 0
                return -1
            self.written += sent
            return sent

    def _fail(self) -> None:
        self._broken = True
        self._buffer.clear()

    # -- waiting -----------------------------------------------------------------------------

    async def drain(self) -> None:
        async with self._drain_lock:
            while self._buffer and not self.broken:
                try:
                    if self._socket is None:
                        chunk = bytes(self._buffer)
                        # A send_all that is cancelled part way leaves the stream in an
                        # unknown state: the connection is broken then, not quietly short.
                        try:
                            await self.transport_stream.send_all(chunk)
                        except trio.Cancelled:
                            self._fail()
                            raise
                        del self._buffer[: len(chunk)]
                        self.written += len(chunk)
                    else:
                        await trio.lowlevel.wait_writable(self._socket)
                        self._flush()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._fail()  # closed under us (the socket's fd is gone) or failed
            if self.broken:
                raise trio.BrokenResourceError(
                    "the stream is closed" if self._closed else "the connection failed a write"
                )
        await trio.lowlevel.checkpoint()

    # -- the stream interface (the WebSocket library's side) --------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        if self._broken:
            raise trio.BrokenResourceError("the connection failed a write")
        self._append(data)
        await self.drain()

    async def wait_send_all_might_not_block(self) -> None:
        await self.drain()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.transport_stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        self._closed = True
        self._buffer.clear()
        await self.transport_stream.aclose()


__all__ = ["Outbox", "text_frame"]
