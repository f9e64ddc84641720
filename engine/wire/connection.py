"""One end of a WebSocket connection (RFC 6455) over a trio stream, client or server.

What both ends of a sync connection use: `get_message`, `send_message`, `aclose` and `closed`
(the interface of a trio-websocket connection, and its `ConnectionClosed` / `CloseReason`, so
code written against one runs on the other). Frames are `engine.wire.frames`'.

- Reading happens in the task that asks for a message: `get_message()` parses every frame the
  socket delivered and returns the next message, reading from the socket only when none is
  complete. No reader task, no queue and no event per message; what is buffered is at most one
  read of the socket and the message being assembled. A ping is answered with a pong as it is
  read. Given the socket under the stream, it is read directly (its file descriptor), waiting
  for it to be readable first, so an idle connection costs no failed read.
- A frame the peer may not send closes the connection with its code (1002, 1007 for text that
  is not UTF-8, 1009 for a message above `max_message_size`), then the stream is closed.
- Closing (`aclose`) sends a close frame and waits for the peer's (read by whichever task is
  reading, or by `aclose` itself), then closes the stream; the caller bounds the wait. A
  peer's close is answered with the same code, and the stream is closed at once.

Opening handshakes are the caller's: the server's in `engine.server.websocket`, the client's
in `engine.client`; the bytes that arrived after one are handed over as `received`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import trio
import trio.lowlevel
import trio_websocket

from engine.wire import frames
from engine.wire.frames import FrameError, MessageReader

log = logging.getLogger("turnstile.wire")

#: Bytes asked of the socket per read.
RECEIVE_BYTES = 64 * 1024
#: Messages returned from what one read delivered before the reader lets other tasks run.
MESSAGES_PER_TURN = 16


class WebSocket:
    """One end of a WebSocket connection on `stream` (see the module docstring): a client's
    (`client=True`: its frames are masked, the peer's are not) or a server's. `sock` is the
    socket under `stream` when writes to it need no transformation (then it is read directly)."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        client: bool = False,
        max_message_size: int,
        received: bytes = b"",
        sock: Any = None,
    ) -> None:
        self._stream = stream
        self._client = client
        #: Random bytes for masking keys, taken four at a time (one read of the system's
        #: source per 256 frames sent, not one each).
        self._keys = b""
        #: The socket under `stream`, read directly (None: read through `stream`).
        self._socket = sock
        self._full = False
        self._reader = MessageReader(masked=not client, max_message_size=max_message_size)
        if received:
            self._reader.feed(received)
        self._closed: trio_websocket.CloseReason | None = None
        #: We sent a close frame; the peer's answer ends the handshake.
        self._closing = False
        self._close_done = trio.Event()
        #: A task is waiting for the socket in `_receive` (and `_left` is set when it leaves).
        self._reading = False
        self._left = trio.Event()
        self._turn = 0
        #: Frames are written one at a time: the reader's pongs and close answers may meet
        #: another task's messages (a plain stream refuses two concurrent `send_all`s).
        self._send_lock = trio.Lock()

    @property
    def closed(self) -> trio_websocket.CloseReason | None:
        """Why the connection was or is being closed, else None."""
        return self._closed

    # -- reading ----------------------------------------------------------------------------

    async def get_message(self) -> str | bytes:
        """The next text (str) or binary (bytes) message. Raises `ConnectionClosed` once the
        connection is closed or closing."""
        if self._closed is not None:
            raise trio_websocket.ConnectionClosed(self._closed)
        message = await self._next_message()
        self._turn += 1
        if self._turn >= MESSAGES_PER_TURN:
            self._turn = 0
            await trio.lowlevel.checkpoint()
        return message

    async def _next_message(self) -> str | bytes:
        reader = self._reader
        while True:
            try:
                item = reader.next()
            except FrameError as error:
                await self._fail(error)
                raise trio_websocket.ConnectionClosed(self._closed) from None
            if item is None:
                self._turn = 0
                await self._receive()
                continue
            opcode, payload = item
            if opcode == frames.TEXT or opcode == frames.BINARY:
                if self._closing:
                    continue  # sent after our close frame: discarded
                return payload
            assert isinstance(payload, bytes)  # control frames carry bytes
            if opcode == frames.PING:
                if not self._closing:
                    await self._send_frame(frames.PONG, payload)
            elif opcode == frames.CLOSE:
                await self._peer_closed(payload)
                raise trio_websocket.ConnectionClosed(self._closed)

    async def _receive(self) -> None:
        self._reading = True
        try:
            data = await self._read()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        finally:
            self._reading = False
            self._left.set()
            self._left = trio.Event()
        if not data:
            self._abort()
            raise trio_websocket.ConnectionClosed(self._closed)
        self._reader.feed(data)

    async def _read(self) -> bytes | bytearray:
        """One read of the socket: straight from its file descriptor when there is one (as the
        `Outbox` writes), waiting for it to be readable first unless the last read filled the
        buffer (then more is likely waiting), so an idle connection costs no failed read.
        Either way one read is one checkpoint, as the stream's `receive_some` is."""
        sock = self._socket
        if sock is None:
            return await self._stream.receive_some(RECEIVE_BYTES)
        if self._full:
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.wait_readable(sock)
        while True:
            fd = sock.fileno()
            if fd < 0:  # closed under us: never read a number that may be reused
                raise trio.ClosedResourceError("the socket is closed")
            try:
                data = os.read(fd, RECEIVE_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                continue
            except InterruptedError:
                continue
            except OSError as error:
                raise trio.BrokenResourceError(str(error)) from error
            self._full = len(data) == RECEIVE_BYTES
            return data

    async def _peer_closed(self, payload: bytes) -> None:
        try:
            code, reason = frames.parse_close(payload)
        except FrameError as error:
            await self._fail(error)
            return
        self._closed = trio_websocket.CloseReason(code, reason or None)
        if not self._closing:
            # The peer began the close handshake: answer with its code, then close TCP (RFC
            # 6455 7.1.1 has the server close first; a client closing too loses nothing).
            self._closing = True
            await self._send_frame(frames.CLOSE, frames.close_payload(code, reason))
        self._close_done.set()
        await self._close_stream()

    async def _fail(self, error: FrameError) -> None:
        """The peer broke the protocol: close with the error's code, then close the stream."""
        log.debug("WebSocket protocol error: %s", error.reason)
        if self._closed is None:
            self._closed = trio_websocket.CloseReason(error.code, error.reason)
        if not self._closing:
            self._closing = True
            await self._send_frame(frames.CLOSE, frames.close_payload(error.code, error.reason))
        self._close_done.set()
        await self._close_stream()

    def _abort(self) -> None:
        """The connection ended without a close handshake."""
        if self._closed is None:
            self._closed = trio_websocket.CloseReason(frames.ABNORMAL_CLOSURE, None)
        self._closing = True
        self._close_done.set()

    # -- writing ----------------------------------------------------------------------------

    async def send_message(self, message: str | bytes) -> None:
        """Send one text (str) or binary (bytes) message."""
        if self._closed is not None:
            raise trio_websocket.ConnectionClosed(self._closed)
        if isinstance(message, str):
            await self._send_frame(frames.TEXT, message.encode())
        else:
            await self._send_frame(frames.BINARY, message)
        if self._closed is not None:  # the write failed
            raise trio_websocket.ConnectionClosed(self._closed)

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        key = None
        if self._client:
            if not self._keys:
                self._keys = os.urandom(1024)
            key, self._keys = self._keys[:4], self._keys[4:]
        data = frames.frame(opcode, payload, key)
        try:
            async with self._send_lock:
                await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._abort()

    # -- closing ----------------------------------------------------------------------------

    async def aclose(self, code: int = frames.NORMAL_CLOSURE, reason: str | None = None) -> None:
        """Close: send a close frame with `code`, wait for the peer's, close the stream.
        Idempotent; a cancelled close still closes the stream."""
        if self._closed is not None:
            return
        try:
            self._closed = trio_websocket.CloseReason(frames.NORMAL_CLOSURE, None)
            self._closing = True
            await self._send_frame(frames.CLOSE, frames.close_payload(code, reason))
            while not self._close_done.is_set():
                if self._reading:
                    # Another task is reading: it sees the peer's answer (or the end).
                    await self._left.wait()
                    continue
                try:
                    await self._next_message()
                except trio_websocket.ConnectionClosed:
                    break
        finally:
            await self._close_stream()

    async def _close_stream(self) -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            await self._stream.aclose()


__all__ = ["MESSAGES_PER_TURN", "RECEIVE_BYTES", "WebSocket"]
