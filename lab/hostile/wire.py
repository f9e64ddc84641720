"""Clients that speak (and break) the wire on purpose: raw sockets, raw WebSocket frames, and a
strict sync peer that checks every server message the way Convex's client does.

Every client here holds its own TCP stream and closes it itself: trio-websocket's client never
closes its socket when the server closes first.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import orjson
import trio
import trio_websocket

from engine.wire.protocol import decode_ts

SYNC_RESOURCE = "/api/1.17.0/sync"
#: What a server answer must never contain (a Python traceback or source location).
LEAKS = (b"Traceback (most recent call last)", b'File "', b".py\", line")


class ServerMisbehaved(AssertionError):
    """The server answered something the contract forbids."""


def check_no_leak(data: bytes | str) -> None:
    raw = data.encode() if isinstance(data, str) else data
    for leak in LEAKS:
        if leak in raw:
            raise ServerMisbehaved(f"a traceback leaked to the client: {raw[:400]!r}")


@asynccontextmanager
async def open_ws(
    port: int, resource: str = SYNC_RESOURCE, **options: Any
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A trio-websocket client connection on a stream this context closes itself."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, "127.0.0.1", resource, **options
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(2) as cleanup:
                    cleanup.shield = True
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


def upgrade_request(resource: str = SYNC_RESOURCE) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {resource} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def raw_upgrade(port: int) -> trio.SocketStream:
    """A stream past the WebSocket handshake, for writing frames by hand. The caller closes it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await stream.send_all(upgrade_request())
        head = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in head:
                data = await stream.receive_some(4096)
                if not data:
                    raise ServerMisbehaved("the server closed during the WebSocket handshake")
                head += data
        if not head.startswith(b"HTTP/1.1 101 "):
            raise ServerMisbehaved(f"the upgrade was refused: {head[:200]!r}")
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """One WebSocket frame as a client writes it (masked unless told otherwise)."""
    first = (0x80 if fin else 0) | (opcode & 0x0F)
    size = len(payload)
    if size < 126:
        head = bytes([first, (0x80 if mask else 0) | size])
    elif size < 1 << 16:
        head = bytes([first, (0x80 if mask else 0) | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([first, (0x80 if mask else 0) | 127]) + size.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def read_until_closed(stream: trio.abc.ReceiveStream, limit: int = 1 << 22) -> bytes:
    """Everything the server sends until it closes (or `limit` bytes)."""
    received = bytearray()
    while len(received) < limit:
        try:
            data = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            break
        if not data:
            break
        received += data
    return bytes(received)


# -- HTTP answers read from raw bytes ------------------------------------------------------------

_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")


@attrs.frozen
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def parse_answers(data: bytes, head_only: Sequence[bool] = ()) -> list[Answer]:
    """The complete HTTP/1.1 responses in `data` (content-length framed, as the server frames
    every response; `head_only[i]`: the i-th final answer is to a HEAD request, so it has no
    body whatever its Content-Length says). Anything that is not a response is an error."""
    answers: list[Answer] = []
    finals = 0
    rest = data
    while rest:
        match = _STATUS.match(rest)
        end = rest.find(b"\r\n\r\n")
        if match is None or end < 0:
            raise ServerMisbehaved(f"not an HTTP response: {rest[:200]!r}")
        headers: dict[bytes, bytes] = {}
        for line in rest[match.end() : end].split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        status = int(match.group(1))
        size = int(headers.get(b"content-length", b"0"))
        if status >= 200:
            if finals < len(head_only) and head_only[finals]:
                size = 0
            finals += 1
        body = rest[end + 4 : end + 4 + size]
        if len(body) < size:
            raise ServerMisbehaved("a response was cut short")
        answers.append(Answer(status, headers, body))
        rest = rest[end + 4 + size :]
        if status == 101:
            break
    return answers


async def exchange(port: int, data: bytes, *, eof: bool = True, within: float = 15) -> bytes:
    """Send `data` on a fresh connection (then EOF unless told otherwise) and return everything
    the server sends until it closes (which must happen `within` seconds)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        with trio.fail_after(within):
            try:
                await stream.send_all(data)
                if eof:
                    await stream.send_eof()
            except trio.BrokenResourceError:
                pass  # the server may close before reading all of it
            return await read_until_closed(stream)
    finally:
        await trio.aclose_forcefully(stream)


async def http_call(
    port: int, kind: str, path: str, args: Any, authorization: str | None = None
) -> Any:
    """One function call as ConvexHttpClient makes it; its value, or `ServerMisbehaved` for
    anything but a 200 success."""
    body = orjson.dumps({"path": path, "format": "convex_encoded_json", "args": [args]})
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    head = (
        f"POST /api/{kind} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    (answer,) = parse_answers(await exchange(port, head + body, eof=False))
    if answer.status != 200:
        raise ServerMisbehaved(f"{path}: {answer.status} {answer.body[:300]!r}")
    return answer.json()["value"]


# -- a strict sync peer ------------------------------------------------------------------------


@attrs.define
class SyncPeer:
    """The client half of one sync session, checking what Convex's client checks: each
    Transition starts exactly where the previous one ended and its `ts` never goes back; every
    frame is a JSON object of a known server type with no traceback in it."""

    ws: trio_websocket.WebSocketConnection
    query_set: int = 0
    identity: int = 0
    ts: int = 0
    results: dict[int, Any] = attrs.field(factory=dict)
    responses: dict[int, list[dict[str, Any]]] = attrs.field(factory=dict)
    #: Server messages taken, by type.
    counts: dict[str, int] = attrs.field(factory=dict)

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            message = orjson.dumps(message).decode()
        await self.ws.send_message(message)

    async def next(self) -> dict[str, Any]:
        """The next server message, checked and applied. Raises `ConnectionClosed` at the end."""
        data = await self.ws.get_message()
        check_no_leak(data)
        message = orjson.loads(data)
        if not isinstance(message, dict) or message.get("type") not in SERVER_TYPES:
            raise ServerMisbehaved(f"not a server message: {str(data)[:200]}")
        kind = message["type"]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "Transition":
            self._apply(message)
        elif kind in ("MutationResponse", "ActionResponse"):
            self.responses.setdefault(message["requestId"], []).append(message)
        return message

    def _apply(self, message: dict[str, Any]) -> None:
        start, end = message["startVersion"], message["endVersion"]
        mine = (self.query_set, self.ts, self.identity)
        if (start["querySet"], decode_ts(start["ts"]), start["identity"]) != mine:
            raise ServerMisbehaved(f"a Transition starts at {start}, the client is at {mine}")
        ts = decode_ts(end["ts"])
        if ts < self.ts:
            raise ServerMisbehaved(f"ts went back from {self.ts} to {ts}")
        self.query_set, self.ts, self.identity = end["querySet"], ts, end["identity"]
        for change in message["modifications"]:
            kind = change["type"]
            if kind == "QueryUpdated":
                self.results[change["queryId"]] = ("ok", change["value"])
            elif kind == "QueryFailed":
                self.results[change["queryId"]] = ("error", change["errorData"])
            elif kind == "QueryRemoved":
                self.results.pop(change["queryId"], None)
            else:
                raise ServerMisbehaved(f"unknown modification {kind!r}")


SERVER_TYPES = frozenset(
    {"Transition", "MutationResponse", "ActionResponse", "AuthError", "FatalError", "Ping"}
)

__all__ = [
    "Answer",
    "ServerMisbehaved",
    "SyncPeer",
    "check_no_leak",
    "exchange",
    "frame",
    "http_call",
    "open_ws",
    "parse_answers",
    "raw_upgrade",
    "read_until_closed",
    "upgrade_request",
]
