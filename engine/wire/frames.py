"""WebSocket framing (RFC 6455) for both ends of a sync connection, without I/O.

The sync protocol needs the least of WebSocket: text (and binary) messages, ping/pong and the
close handshake, no extension and no subprotocol. This module writes frames (`frame`) and reads
them (`MessageReader`: bytes in, whole messages out), so that a connection can parse every frame
in the task that reads its socket: no task, queue or event object per message.

`MessageReader` checks what an endpoint must (RFC 6455 5.2-5.5, the checks wsproto makes): no
reserved bit (no extension is negotiated), a known opcode, frames masked by a client and never
by a server, minimal length encodings, control frames unfragmented and at most 125 bytes,
continuations only inside a fragmented message, text that is UTF-8, close codes a peer may send.
A violation is a `FrameError` carrying the close code to answer with (1002, 1007, or 1009 for
a message above the limit: counted in characters for text, in bytes for binary, as
trio-websocket counts).
"""

from __future__ import annotations

import base64
import hashlib
import struct

CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA

NORMAL_CLOSURE = 1000
PROTOCOL_ERROR = 1002
#: What a closed connection reports when the peer's close frame carried no code.
NO_STATUS = 1005
#: What a connection reports when it ended without a close handshake.
ABNORMAL_CLOSURE = 1006
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009

#: Close codes in 1000-2999 a peer may send (RFC 6455 7.4.1, as wsproto knows them); 3000-4999
#: are for libraries and applications and always allowed.
_PEER_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013))
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Bytes of the read buffer already parsed that are dropped at once (not on every message).
_COMPACT_AT = 1 << 16


class FrameError(Exception):
    """The peer broke the WebSocket protocol; close with `code` (and `reason`)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def accept_token(key: bytes) -> bytes:
    """The `Sec-WebSocket-Accept` answer to a `Sec-WebSocket-Key`."""
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


def mask(payload: bytes, key: bytes) -> bytes:
    """`payload` XOR-ed with the 4-byte masking `key` (masking and unmasking are the same)."""
    size = len(payload)
    if not size:
        return b""
    repeated = (key * (size // 4 + 1))[:size]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(size, "little")


def frame(opcode: int, payload: bytes, mask_key: bytes | None = None) -> bytes:
    """One final frame: unmasked (a server's) or masked with `mask_key` (a client's)."""
    size = len(payload)
    bit = 0x80 if mask_key is not None else 0
    if size < 126:
        head = bytes((0x80 | opcode, bit | size))
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, bit | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, bit | 127, size)
    if mask_key is None:
        return head + payload
    return head + mask_key + mask(payload, mask_key)


def close_payload(code: int | None, reason: str | None = None) -> bytes:
    """A close frame's payload: the code and a reason cut to fit a control frame (none for
    `NO_STATUS`, which is never sent)."""
    if code is None or code == NO_STATUS:
        return b""
    data = (reason or "").encode()
    if len(data) > 123:
        data = data[:123].decode("utf-8", "ignore").encode()
    return code.to_bytes(2, "big") + data


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a peer's close frame (`NO_STATUS` for an empty one)."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "CLOSE with 1 byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not (code in _PEER_CODES or 3000 <= code <= 4999):
        raise FrameError(PROTOCOL_ERROR, "CLOSE with invalid code")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(INVALID_DATA, "Error decoding CLOSE reason") from None
    return code, reason


class MessageReader:
    """Whole messages out of the bytes of one direction of a connection.

    `feed(data)` appends what was received; `next()` returns the next complete item as
    `(opcode, payload)`: `(TEXT, str)`, `(BINARY, bytes)`, `(PING | PONG | CLOSE, bytes)`
    (control frames may arrive between the fragments of a message), or None when more bytes
    are needed. Raises `FrameError` on a violation; the reader is then unusable."""

    def __init__(self, *, masked: bool, max_message_size: int) -> None:
        #: Whether frames must be masked: those a server reads.
        self._masked = masked
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._pos = 0
        #: A fragmented message in progress: its opcode, fragments and byte count.
        self._opcode = 0
        self._fragments: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes | bytearray) -> None:
        if self._pos >= _COMPACT_AT or self._pos == len(self._buffer):
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as (part of) an item."""
        return len(self._buffer) - self._pos + self._size

    def next(self) -> tuple[int, str | bytes] | None:
        while True:
            buffer, pos = self._buffer, self._pos
            available = len(buffer) - pos
            if available < 2:
                return None
            first, second = buffer[pos], buffer[pos + 1]
            if first == 0x81 and 0x80 <= second < 0xFE and self._masked and not self._opcode:
                # The common case read by a server: a whole masked text message of < 126 bytes.
                end = pos + 6 + (second & 0x7F)
                if len(buffer) < end:
                    return None
                key = bytes(buffer[pos + 2 : pos + 6])
                self._pos = end
                return TEXT, self._text(mask(bytes(buffer[pos + 6 : end]), key))
            opcode = first & 0x0F
            fin = first & 0x80
            length = second & 0x7F
            if first & 0x70:
                raise FrameError(PROTOCOL_ERROR, "Reserved bit set unexpectedly")
            if bool(second & 0x80) != self._masked:
                raise FrameError(
                    PROTOCOL_ERROR,
                    "Received an unmasked frame" if self._masked else "Received a masked frame",
                )
            head = 2
            if length == 126:
                if available < 4:
                    return None
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                if length < 126:
                    raise FrameError(PROTOCOL_ERROR, "Payload length used 2 bytes unnecessarily")
                head = 4
            elif length == 127:
                if available < 10:
                    return None
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                if length < 1 << 16:
                    raise FrameError(PROTOCOL_ERROR, "Payload length used 8 bytes unnecessarily")
                if length >> 63:
                    raise FrameError(PROTOCOL_ERROR, "8-byte payload length with high bit set")
                head = 10
            if opcode >= CLOSE:
                if opcode > PONG:
                    raise FrameError(PROTOCOL_ERROR, f"Unknown opcode {opcode}")
                if not fin:
                    raise FrameError(PROTOCOL_ERROR, "Fragmented control frame")
                if length > 125:
                    raise FrameError(PROTOCOL_ERROR, "Control frame with payload > 125 bytes")
            elif opcode > BINARY:
                raise FrameError(PROTOCOL_ERROR, f"Unknown opcode {opcode}")
            elif opcode == CONTINUATION:
                if not self._opcode:
                    raise FrameError(PROTOCOL_ERROR, "Continuation frame without a message")
                self._check_size(self._opcode, self._size + length)
            else:
                if self._opcode:
                    raise FrameError(PROTOCOL_ERROR, "A new message inside a fragmented one")
                self._check_size(opcode, length)
            if self._masked:
                head += 4
            end = pos + head + length
            if len(buffer) < end:
                return None
            if self._masked:
                key = bytes(buffer[pos + head - 4 : pos + head])
                payload = mask(bytes(buffer[pos + head : end]), key)
            else:
                payload = bytes(buffer[pos + head : end])
            self._pos = end
            if opcode >= CLOSE:
                return opcode, payload
            if not fin:
                self._fragments.append(payload)
                self._size += length
                if opcode:
                    self._opcode = opcode
                continue
            if opcode == CONTINUATION:
                opcode = self._opcode
                self._fragments.append(payload)
                payload = b"".join(self._fragments)
                self._opcode, self._fragments, self._size = 0, [], 0
            if opcode == BINARY:
                return opcode, payload
            return opcode, self._text(payload)

    def _text(self, payload: bytes) -> str:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(INVALID_DATA, "A text message that is not UTF-8") from None
        if len(text) > self.max_message_size:
            raise self._too_big()
        return text

    def _check_size(self, opcode: int, size: int) -> None:
        """Refuse a message that is sure to be above the limit as soon as its frame header
        says so: a text message counts characters, up to four bytes each."""
        limit = self.max_message_size if opcode == BINARY else 4 * self.max_message_size
        if size > limit:
            raise self._too_big()

    def _too_big(self) -> FrameError:
        return FrameError(
            MESSAGE_TOO_BIG, f"Exceeded maximum message size: {self.max_message_size} bytes"
        )


__all__ = [
    "ABNORMAL_CLOSURE",
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "INVALID_DATA",
    "MESSAGE_TOO_BIG",
    "NORMAL_CLOSURE",
    "NO_STATUS",
    "PING",
    "PONG",
    "PROTOCOL_ERROR",
    "TEXT",
    "FrameError",
    "MessageReader",
    "accept_token",
    "close_payload",
    "frame",
    "mask",
    "parse_close",
]
