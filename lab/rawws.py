"""The least WebSocket client that can stand in for many browsers in one process.

A benchmark or flood that holds a thousand subscribers in one Python process must read faster
than the server writes, or it measures itself. trio-websocket spends tens of microseconds per
message; this spends a few: blocking sockets for the opening handshake, then one `selectors`
loop over all of them, frames parsed by hand (RFC 6455: masked frames out, unmasked frames
in, no extensions). Sync clients only: nothing here answers pings or sends close frames.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
from collections.abc import Callable, Sequence

import orjson

HOST = "127.0.0.1"


def masked(payload: bytes) -> bytes:
    """A client's text frame (clients must mask; a zero key leaves the payload as it is)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def subscribe_to_event(event_id: str) -> list[bytes]:
    """Connect (as a new session of its own), then a query set holding
    `events:getEventAvailability` on `event_id`."""
    from engine.wire.protocol import connect_message, subscribe_message

    return [
        orjson.dumps(connect_message(os.urandom(8).hex())),
        orjson.dumps(subscribe_message(0, "events:getEventAvailability", {"eventId": event_id})),
    ]


class RawClient:
    """One connection: the bytes received and not yet parsed into frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.open = True

    def frames(self) -> list[bytes]:
        """The payloads of every whole frame received so far. Raises EOFError at a close
        frame."""
        out: list[bytes] = []
        buf = self.buffer
        while len(buf) >= 2:
            size = buf[1] & 0x7F
            head = 2
            if size == 126:
                if len(buf) < 4:
                    break
                size = int.from_bytes(buf[2:4], "big")
                head = 4
            elif size == 127:
                if len(buf) < 10:
                    break
                size = int.from_bytes(buf[2:10], "big")
                head = 10
            if len(buf) < head + size:
                break
            if buf[0] & 0x0F == 0x8:
                raise EOFError("the server closed the connection")
            out.append(bytes(buf[head : head + size]))
            del buf[: head + size]
        return out


def open_raw(
    port: int, messages: Sequence[bytes] = (), *, first_transition: bool = True
) -> RawClient:
    """Upgrade a new connection to `/api/1.0/sync`, send `messages`, and (if asked) wait for
    the first Transition. The socket is left non-blocking."""
    sock = socket.create_connection((HOST, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /api/1.0/sync HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    client = RawClient(sock)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("the server closed the connection during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {head[:80]!r}")
    client.buffer += head.split(b"\r\n\r\n", 1)[1]
    for message in messages:
        sock.sendall(masked(message))
    if not first_transition:
        sock.setblocking(False)
        return client
    if messages:
        while not any(b'"Transition"' in frame for frame in client.frames()):
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection before its first Transition")
            client.buffer += chunk
    sock.setblocking(False)
    return client


def open_many(port: int, count: int, messages: Callable[[], Sequence[bytes]]) -> list[RawClient]:
    """`count` connections, each sent `messages()` (fresh for each), returned once every one
    has had its first Transition. The handshakes go one after another, but the first
    Transitions are awaited all together, so opening does not wait on a fan-out per client."""
    clients = [open_raw(port, messages(), first_transition=False) for _ in range(count)]
    waiting = {client.sock.fileno(): client for client in clients}
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
    try:
        while waiting:
            events = selector.select(timeout=60)
            if not events:
                raise TimeoutError(f"{len(waiting)} clients had no first Transition in 60 s")
            for key, _ in events:
                client = key.data
                try:
                    data = client.sock.recv(1 << 18)
                except BlockingIOError:
                    continue
                if not data:
                    raise EOFError("the server closed a connection before its first Transition")
                client.buffer += data
                if any(b'"Transition"' in frame for frame in client.frames()):
                    selector.unregister(client.sock)
                    del waiting[client.sock.fileno()]
    finally:
        selector.close()
    return clients


def read_until(
    clients: Sequence[RawClient],
    stop_fd: int,
    on_frame: Callable[[RawClient, float, bytes], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """Read every client until `stop_fd` is readable; `on_frame(client, arrival, payload)` for
    each frame (arrival from `clock`, taken once per read). A client the server closes is
    marked not `open` and read no more."""
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
    selector.register(stop_fd, selectors.EVENT_READ, None)
    try:
        while True:
            for key, _ in selector.select():
                client = key.data
                if client is None:
                    return
                try:
                    data = client.sock.recv(1 << 18)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                now = clock() if clock is not None else 0.0
                if data:
                    client.buffer += data
                    try:
                        frames = client.frames()
                    except EOFError:
                        data = b""
                        frames = []
                    if on_frame is not None:
                        for frame in frames:
                            on_frame(client, now, frame)
                if not data:
                    client.open = False
                    selector.unregister(client.sock)
    finally:
        selector.close()


__all__ = ["RawClient", "masked", "open_many", "open_raw", "read_until", "subscribe_to_event"]
