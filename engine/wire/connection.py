"""One end of a WebSocket connection (RFC 6455) over a trio stream, client or server.

What both ends of a sync connection use: `get_message`, `send_message`, `aclose` and `closed`
(the interface of a trio-websocket connection, and its `ConnectionClosed` / `CloseReason`, so
code written against one runs on the other). The protocol is wsproto's (`wsproto.connection.
Connection`, the post-handshake half of `wsproto.WSConnection`): it parses, unmasks and checks
every frame (RFC 6455 5.2-5.5: reserved bits, opcodes, masking, length encodings, control
frames, continuations, UTF-8 of text, close codes), writes and masks ours, and keeps the state
of the close handshake. This module adds the I/O, the message size limit and the assembling of
a message that arrives in pieces.

- Reading happens in the task that asks for a message: `get_message()` takes wsproto's events
  for what the socket delivered and returns the next message, reading from the socket only
  when none is complete. No reader task, no queue and no event object of ours per message;
  what is buffered is at most one read of the socket and the message being assembled. A ping
  is answered with a pong as it is read. Given the socket under the stream, it is read
  directly (its file descriptor), waiting for it to be readable first, so an idle connection
  costs no failed read.
- A frame the peer may not send closes the connection with the code wsproto gives it (1002,
  1007 for text that is not UTF-8), a message above `max_message_size` with 1009 (counted in
  characters for text, in bytes for binary, as trio-websocket counts, and refused as soon as
  that much of it has arrived); then the stream is closed.
- Closing (`aclose`) sends a close frame and waits for the peer's (read by whichever task is
  reading, or by `aclose` itself), then closes the stream; the caller bounds the wait. A
  peer's close is answered with the same code, and the stream is closed at once.
- Frames are written one at a time (the reader's pongs and close answers may meet another
  task's messages). A message sent while no other write is under way is framed here
  (`data_frame`, masked on a client's end) and written straight to the socket; control frames,
  and a message that meets another write, go through wsproto and the stream.
- The fast path (`parse_client_frames` on a server's end, `parse_server_frames` on a
  client's): most reads of a sync connection are whole text frames, final, unextended, short,
  masked from a client and unmasked from a server. When wsproto holds nothing (no partial
  frame, no message being assembled) and everything one read delivered is such frames, each
  at most `max_message_size` bytes and valid UTF-8, they are unmasked and decoded here, with
  no wsproto frame and event objects (about 900 bytecodes of parsing per message). Anything
  else in the read (a control frame, a fragment, a frame cut by the read, a 64-bit length, a
  non-minimal length, reserved bits, a mask where there should be none or none where there
  should be one, bad UTF-8, a size near the limit) sends the whole read through wsproto, so
  every refusal and close code stays wsproto's.

Opening handshakes are the caller's: the server's in `engine.server.websocket` (its 101 after
`engine.server.http` read the request), the client's in `engine.client` (wsproto's
`WSConnection`, which hands over its `Connection`); the bytes that arrived after one are
handed over as `received`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from typing import Any, cast

import trio
import trio.lowlevel
import trio_websocket
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

log = logging.getLogger("turnstile.wire")

#: Bytes asked of the socket per read.
RECEIVE_BYTES = 64 * 1024
#: Messages returned from what one read delivered before the reader lets other tasks run.
MESSAGES_PER_TURN = 16

_OPEN = ConnectionState.OPEN
_LOCAL_CLOSING = ConnectionState.LOCAL_CLOSING
_CLOSED = ConnectionState.CLOSED


class WebSocket:
    """One end of a WebSocket connection on `stream` (see the module docstring): a client's
    (`client=True`: its frames are masked, the peer's are not) or a server's. `connection` is
    the wsproto connection an opening handshake produced (else a new one is made). `sock` is
    the socket under `stream` when writes to it need no transformation (then it is read
    directly)."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        client: bool = False,
        max_message_size: int,
        received: bytes = b"",
        sock: Any = None,
        connection: Connection | None = None,
    ) -> None:
        self._stream = stream
        if connection is None:
            connection = Connection(ConnectionType.CLIENT if client else ConnectionType.SERVER)
        self._conn = connection
        if received:
            connection.receive_data(received)
        #: wsproto's events for what was received so far (a generator, resumed where the
        #: last message was taken; a new one after each read).
        self._events = connection.events()
        #: Messages of the fast path not yet returned (see `parse_client_frames`).
        self._ready: deque[str | bytes] = deque()
        #: The fast path for the peer's frames: a client's are masked, a server's are not.
        self._parse = parse_server_frames if connection.client else parse_client_frames
        self.max_message_size = max_message_size
        #: The pieces of a message that arrives in more than one frame or read, and its size.
        self._parts: list[Any] = []
        self._size = 0
        #: The socket under `stream`, read directly (None: read through `stream`).
        self._socket = sock
        self._full = False
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
        while True:
            if self._ready:
                return self._ready.popleft()
            for event in self._events:
                if isinstance(event, (TextMessage, BytesMessage)):
                    # wsproto's frame layer hands over bytes (typed bytes | bytearray).
                    data = cast("str | bytes", event.data)
                    if event.message_finished and not self._parts:
                        message: str | bytes | None = data
                        if len(data) > self.max_message_size:
                            await self._too_big()
                    else:
                        message = await self._piece(data, event.message_finished)
                    if message is None or self._closing:
                        continue  # a part, or sent after our close frame: discarded
                    return message
                if isinstance(event, Ping):
                    if self._conn.state is _OPEN:
                        await self._send_event(event.response())
                elif isinstance(event, CloseConnection):
                    await self._close_event(event)
                    raise trio_websocket.ConnectionClosed(self._closed)
                # a Pong: nothing to do
            self._turn = 0
            await self._receive()

    async def _piece(self, data: str | bytes, finished: bool) -> str | bytes | None:
        """Add a piece of a message; the whole message once `finished`, else None."""
        self._size += len(data)
        if self._size > self.max_message_size:
            await self._too_big()
        self._parts.append(data)
        if not finished:
            return None
        parts, self._parts, self._size = self._parts, [], 0
        if isinstance(data, str):
            return "".join(parts)
        return b"".join(parts)

    async def _too_big(self) -> None:
        await self._fail(
            CloseReason.MESSAGE_TOO_BIG,
            f"Exceeded maximum message size: {self.max_message_size} bytes",
        )
        raise trio_websocket.ConnectionClosed(self._closed)

    async def _receive(self) -> None:
        if self._conn.state is _CLOSED:
            # Both close frames went by (an aclose's read): nothing more is read.
            self._close_done.set()
            raise trio_websocket.ConnectionClosed(self._closed)
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
        if (
            not self._parts
            and not self._closing
            and self._conn.state is _OPEN
            and _wsproto_idle(self._conn)
        ):
            messages = self._parse(data, self.max_message_size)
            if messages is not None:
                self._ready.extend(messages)
                return
        self._conn.receive_data(data)
        self._events = self._conn.events()

    async def _read(self) -> bytes:
        """One read of the socket: straight from its file descriptor when there is one (as the
        `Outbox` writes), waiting for it to be readable first unless the last read filled the
        buffer (then more is likely waiting), so an idle connection costs no failed read.
        Either way one read is one checkpoint, as the stream's `receive_some` is."""
        sock = self._socket
        if sock is None:
            return bytes(await self._stream.receive_some(RECEIVE_BYTES))
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

    async def _close_event(self, event: CloseConnection) -> None:
        """A close from wsproto: the peer's close frame (wsproto moved on to the closing or
        closed state), or a frame the peer may not send (the state did not move)."""
        state = self._conn.state
        if state is _OPEN or state is _LOCAL_CLOSING:
            await self._fail(event.code, event.reason or "")
            return
        self._closed = trio_websocket.CloseReason(event.code, event.reason or None)
        if not self._closing:
            # The peer began the close handshake: answer with its code, then close TCP (RFC
            # 6455 7.1.1 has the server close first; a client closing too loses nothing).
            self._closing = True
            await self._send_event(event.response())
        self._close_done.set()
        await self._close_stream()

    async def _fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: close with `code`, then close the stream."""
        log.debug("WebSocket protocol error: %s", reason)
        if self._closed is None:
            self._closed = trio_websocket.CloseReason(code, reason)
        if not self._closing:
            self._closing = True
            await self._send_event(CloseConnection(code=code, reason=reason))
        self._close_done.set()
        await self._close_stream()

    def _abort(self) -> None:
        """The connection ended without a close handshake."""
        if self._closed is None:
            self._closed = trio_websocket.CloseReason(CloseReason.ABNORMAL_CLOSURE, None)
        self._closing = True
        self._close_done.set()

    # -- writing ----------------------------------------------------------------------------

    async def send_message(self, message: str | bytes) -> None:
        """Send one text (str) or binary (bytes) message."""
        if self._closed is not None:
            raise trio_websocket.ConnectionClosed(self._closed)
        sock = self._socket
        if (
            sock is not None
            and self._conn.state is _OPEN
            and not self._closing
            and not self._send_lock.locked()
        ):
            await self._send_frame(sock, data_frame(message, masked=self._conn.client))
        elif isinstance(message, str):
            await self._send_event(TextMessage(data=message))
        else:
            await self._send_event(BytesMessage(data=message))
        if self._closed is not None:  # the write failed
            raise trio_websocket.ConnectionClosed(self._closed)

    async def _send_frame(self, sock: trio.socket.SocketType, data: bytes) -> None:
        """Write a whole data frame built here: straight to the socket's file descriptor when
        no other write is under way, the rest (if the socket took only part) through the
        stream. One checkpoint, as the stream's `send_all` is."""
        self._send_lock.acquire_nowait()  # (free: checked by the caller, no await between)
        try:
            fd = sock.fileno()
            if fd < 0:  # closed under us: never write to a number that may be reused
                self._abort()
                return
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._abort()
                return
            if sent < len(data):
                try:
                    await self._stream.send_all(memoryview(data)[sent:])
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._abort()
                return
        finally:
            self._send_lock.release()
        await trio.lowlevel.checkpoint()

    async def _send_event(self, event: Event) -> None:
        try:
            data = self._conn.send(event)
        except LocalProtocolError:
            return  # not in this state (the close handshake is over): nothing to send
        try:
            async with self._send_lock:
                await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._abort()

    # -- closing ----------------------------------------------------------------------------

    async def aclose(
        self, code: int = CloseReason.NORMAL_CLOSURE, reason: str | None = None
    ) -> None:
        """Close: send a close frame with `code`, wait for the peer's, close the stream.
        Idempotent; a cancelled close still closes the stream."""
        if self._closed is not None:
            return
        try:
            self._closed = trio_websocket.CloseReason(CloseReason.NORMAL_CLOSURE, None)
            self._closing = True
            await self._send_event(CloseConnection(code=code, reason=reason))
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


def _wsproto_idle(conn: Connection) -> bool:
    """wsproto holds no partial frame and no partly received message, so the next bytes begin
    a frame (its internals; were they to change, this says False and wsproto reads all)."""
    if getattr(conn, "_events", True):  # events wsproto queued itself, not yet taken
        return False
    proto = getattr(conn, "_proto", None)
    decoder = getattr(proto, "_frame_decoder", None)
    messages = getattr(proto, "_message_decoder", None)
    buffer = getattr(decoder, "buffer", None)
    try:
        return (
            decoder is not None
            and decoder.header is None
            and buffer is not None
            and len(buffer) == 0
            and messages is not None
            and messages.opcode is None
        )
    except AttributeError:
        return False


def _unmask(payload: bytes, mask: bytes) -> bytes:
    size = len(payload)
    if not size:
        return b""
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(size, "little")


def data_frame(message: str | bytes, *, masked: bool) -> bytes:
    """One final, unfragmented text (str) or binary (bytes) frame holding `message`, masked
    with a fresh random key as a client's must be (RFC 6455 5.2, 5.3)."""
    if isinstance(message, str):
        first, payload = 0x81, message.encode("utf-8")
    else:
        first, payload = 0x82, bytes(message)
    header = frame_head(first, len(payload), masked=masked)
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + _unmask(payload, key)  # (masking and unmasking are one XOR)


def frame_head(first: int, size: int, *, masked: bool) -> bytes:
    """A frame's first bytes: `first` (FIN, opcode), the mask bit and the payload's `size` in
    its shortest encoding (RFC 6455 5.2); a masked frame's key follows them."""
    bit = 0x80 if masked else 0
    if size < 126:
        return bytes((first, bit | size))
    if size < 1 << 16:
        return bytes((first, bit | 126)) + size.to_bytes(2, "big")
    return bytes((first, bit | 127)) + size.to_bytes(8, "big")


def parse_client_frames(data: bytes, limit: int) -> list[str | bytes] | None:
    """The messages in `data` if it is nothing but whole, final, masked text or binary frames
    of a client (RFC 6455 5.2: no reserved bits, minimal 7- or 16-bit lengths), each at most
    `limit` bytes, text valid UTF-8; None for anything else (then wsproto reads `data`)."""
    return _parse_frames(data, limit, 0x80)


def parse_server_frames(data: bytes, limit: int) -> list[str | bytes] | None:
    """As `parse_client_frames`, for a server's frames (unmasked)."""
    return _parse_frames(data, limit, 0)


def _parse_frames(data: bytes, limit: int, mask_bit: int) -> list[str | bytes] | None:
    out: list[str | bytes] = []
    end = len(data)
    key_size = 4 if mask_bit else 0
    at = 0
    while at < end:
        if end - at < 2 + key_size:
            return None
        first, second = data[at], data[at + 1]
        if (first != 0x81 and first != 0x82) or second & 0x80 != mask_bit:
            return None
        size = second & 0x7F
        at += 2
        if size == 126:
            if end - at < 2:
                return None
            size = (data[at] << 8) | data[at + 1]
            if size < 126:  # not the minimal encoding: wsproto refuses it
                return None
            at += 2
        elif size == 127:
            return None
        if size > limit or end - at < key_size + size:
            return None
        if key_size:
            payload = _unmask(data[at + 4 : at + 4 + size], data[at : at + 4])
        else:
            payload = data[at : at + size]
        at += key_size + size
        if first == 0x81:
            try:
                out.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                return None
        else:
            out.append(payload)
    return out
