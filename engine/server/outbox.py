"""What a sync session sends, written without a task or a yield per frame.

Plan (docs/engine.md, "Fan-out to sync clients"): trio-websocket yields on every send, and one
loop sending to all clients beats a writer task per client (docs/benchmarks.md, "Fan-out"):
- `Outbox` sits between the WebSocket library and the connection's TCP stream. Every byte either
  side sends goes through one buffer in order, so frames never interleave.
- `write_texts(payloads)` is synchronous: it encodes each payload as one unmasked text frame
  (RFC 6455 5.2; the server negotiates no extension, so the encoding is fixed) and, if nothing is
  waiting ahead of it, hands them straight to the socket with one non-blocking `send`. What the
  socket does not take stays buffered; `drain()` writes it when the socket can take more.
- A fan-out hands the same payload object to every session at the same versions, so the frame
  of the last single payload written is kept (by identity) and sent again as it is: one lookup
  instead of a header and a copy per delivery. `pending` and `broken` are plain attributes kept
  up to date, read without a call.
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
import socket
from collections.abc import Callable
from typing import Any

import trio
import trio.lowlevel

from engine.server.streams import PrefixedStream
from engine.wire.connection import frame_head

#: A write goes to the socket directly only up to this size; the kernel takes less anyway.
_MAX_WRITE = 1 << 20


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (server to client) carrying `payload` (UTF-8)."""
    return frame_head(0x81, len(payload), masked=False) + payload


#: The last single payload `write_texts` framed, and its frame (the fan-out's shared Transition).
_last_framed: list[bytes] = [b"", text_frame(b"")]


def _socket_of(stream: Any) -> Any:
    """The trio socket `stream` writes to unchanged, if there is one: a `SocketStream`, or one
    seen through `PrefixedStream`s (which pass sends straight on). Any other wrapper (TLS, for
    one) transforms what it sends, so its socket must not be written to directly."""
    while isinstance(stream, PrefixedStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        return stream.socket
    return None


def _send_of(sock: Any) -> Callable[[bytes | bytearray | memoryview], int] | None:
    """The `send` of the standard-library socket under trio's `sock`, if it has one: one C call
    per write (trio's socket keeps it, non-blocking, as `_sock`; it raises BlockingIOError when
    full and OSError once closed, when its fd is -1, so a reused fd number is never written to).
    None for any other socket: then `_write` uses `os.write` on its `fileno()`."""
    raw = getattr(sock, "_sock", None)
    if isinstance(raw, socket.socket) and raw.type == socket.SOCK_STREAM:
        send: Callable[[bytes | bytearray | memoryview], int] = raw.send
        return send
    return None


class Outbox(trio.abc.Stream):
    """A stream wrapper with one ordered send buffer; see the module docstring."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.transport_stream = stream
        self._socket = _socket_of(stream)
        self._send = _send_of(self._socket)
        self._buffer = bytearray()
        self._drain_lock = trio.Lock()
        self._broken = False
        self._closed = False
        #: Something written is not yet handed to the connection (the buffer is not empty).
        self.pending = False
        #: The connection failed a write, or the stream is closed: nothing more is sent.
        self.broken = False
        #: Bytes handed to the connection so far.
        self.written = 0

    # -- synchronous writing ---------------------------------------------------------------

    def write_texts(self, payloads: list[bytes]) -> None:
        if self.broken or not payloads:
            return
        if len(payloads) == 1:
            payload = payloads[0]
            last = _last_framed
            if payload is last[0]:
                data = last[1]
            else:
                data = last[1] = text_frame(payload)
                last[0] = payload
        else:
            data = b"".join(text_frame(payload) for payload in payloads)
        send = self._send
        if self.pending or send is None:
            self._append(data)
            return
        # Nothing waits ahead: straight to the socket, and buffer only what it did not take.
        try:
            sent = send(data)
        except BlockingIOError:
            sent = 0
        except OSError:  # failed, or closed under us (a closed socket has no fd to reuse)
            self._fail()
            return
        self.written += sent
        if sent < len(data):
            self._buffer += memoryview(data)[sent:]
            self.pending = True

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        if self.pending or self._socket is None:
            self._buffer += data
            self.pending = True
            return
        # Nothing waits ahead: straight to the socket, and buffer only what it did not take.
        sent = self._write(data)
        if sent < 0:
            self._fail()
        elif sent < len(data):
            self._buffer += memoryview(data)[sent:]
            self.pending = True

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
                self.pending = bool(self._buffer)

    def _write(self, data: bytes | bytearray | memoryview) -> int:
        """One non-blocking write to the socket: the bytes it took, 0 when it is full (or there
        is no socket), -1 when the connection failed it (or was closed under us)."""
        if self._send is not None:
            try:
                sent = self._send(data)
            except BlockingIOError:
                return 0
            except OSError:
                return -1
            self.written += sent
            return sent
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
        self.broken = True
        self._buffer.clear()
        self.pending = False

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
                        self.pending = bool(self._buffer)
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
        self.broken = True
        self._buffer.clear()
        self.pending = False
        await self.transport_stream.aclose()


__all__ = ["Outbox", "text_frame"]
