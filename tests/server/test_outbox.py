"""`engine/server/outbox.py`: text frames, the socket `Outbox`, and the `MessageOutbox`
(`engine/sync/sender.py`).

- `text_frame` is checked byte by byte against RFC 6455 5.2 and decoded with wsproto's client
  parser, for each of the three length forms.
- `Outbox` runs over a real TCP connection on 127.0.0.1, its peer decoding what arrives as a
  WebSocket client would: what the socket takes is written at once, what it does not stays in
  one ordered buffer (the WebSocket library's own frames included) until `drain()`; a reset
  connection breaks it; nothing is written after `aclose()`.
- Over a stream without a socket, the `Outbox` sends only through the inner `send_all`.
- `MessageOutbox` keeps order over `send_message` and turns `ConnectionClosed` into `broken`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing
import trio_websocket
from wsproto.frame_protocol import FrameProtocol, Opcode

from engine.server.outbox import Outbox, text_frame
from engine.sync.sender import MessageOutbox

#: Small kernel buffers, so a few hundred KiB fill a connection whose peer does not read.
SOCKET_BUFFER = 32 * 1024
#: A guard against a hang (a drain that never ends fails the test): not a timing assertion.
HANG_GUARD = 30


def numbered(i: int, size: int) -> bytes:
    """A payload of `size` bytes that says which it is all along, so a frame that arrives
    mixed with another or out of place cannot pass for the right one."""
    stamp = b"%08d;" % i
    return (stamp * (size // len(stamp) + 1))[:size]


def still_pending(outbox: Outbox | MessageOutbox) -> bool:
    """`outbox.pending` read anew (mypy would keep it as an earlier assert narrowed it, past the
    drain that changes it)."""
    return outbox.pending


def pong(data: bytes) -> bytes:
    """A pong frame as the WebSocket library hands it to `send_all` (server side)."""
    return bytes(FrameProtocol(client=False, extensions=[]).pong(data))


class Peer:
    """The client's end: decodes the server's frames as a WebSocket client would (wsproto
    refuses a masked frame, a reserved bit, a bad length or invalid UTF-8)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.received = 0
        self._parser = FrameProtocol(client=True, extensions=[])
        self._parts: list[str] = []
        self._messages: list[tuple[Opcode, str | bytes]] = []

    async def read_bytes(self, count: int) -> None:
        """Read (and decode) at least `count` more bytes."""
        goal = self.received + count
        while self.received < goal:
            await self._receive()

    async def messages(self, count: int) -> list[tuple[Opcode, str | bytes]]:
        """The next `count` whole messages, in the order they arrived."""
        while len(self._messages) < count:
            await self._receive()
        taken, self._messages = self._messages[:count], self._messages[count:]
        return taken

    async def texts(self, count: int) -> list[str]:
        taken = await self.messages(count)
        assert all(opcode is Opcode.TEXT for opcode, _ in taken)
        return [payload for _, payload in taken]  # type: ignore[misc]

    async def read_to_end(self) -> None:
        while await self._receive():
            pass

    async def _receive(self) -> bool:
        data = await self.stream.receive_some(1 << 16)
        if not data:
            return False
        self.received += len(data)
        self._parser.receive_bytes(data)
        for frame in self._parser.received_frames():
            # Every frame the server writes is final (FIN): a frame ends its message.
            assert frame.frame_finished == frame.message_finished
            if frame.opcode is Opcode.TEXT:
                assert isinstance(frame.payload, str)
                self._parts.append(frame.payload)
                if frame.message_finished:
                    self._messages.append((Opcode.TEXT, "".join(self._parts)))
                    self._parts = []
            else:
                assert not self._parts, "a frame arrived inside another"
                assert isinstance(frame.payload, bytes)
                self._messages.append((frame.opcode, frame.payload))
        return True


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[Outbox, Peer]]:
    """An `Outbox` over the server's end of a fresh TCP connection on 127.0.0.1, and the peer.
    Both ends keep small kernel buffers."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener = listeners[0]
    try:
        port = listener.socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listener.accept()
    finally:
        await listener.aclose()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    outbox = Outbox(server)
    try:
        with trio.fail_after(HANG_GUARD):
            yield outbox, Peer(client)
    finally:
        await client.aclose()
        await outbox.aclose()


def fill(outbox: Outbox, *, size: int = 16 * 1024) -> list[bytes]:
    """Write numbered payloads until the socket stops taking them; returns what was written."""
    payloads: list[bytes] = []
    while not outbox.pending:
        assert len(payloads) * size < 64 * 1024 * 1024, "the socket never filled"
        payloads.append(numbered(len(payloads), size))
        outbox.write_texts(payloads[-1:])
    return payloads


async def reset(peer: Peer, outbox: Outbox) -> None:
    """Abort the connection from the peer's side (RST) and wait until the server's socket has
    seen it."""
    peer.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await peer.stream.aclose()
    server = outbox.transport_stream
    assert isinstance(server, trio.SocketStream)
    await trio.lowlevel.wait_readable(server.socket)


# -- text_frame -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_text_frame_is_one_final_unmasked_text_frame(size: int, header: bytes) -> None:
    payload = numbered(size, size)
    frame = text_frame(payload)
    # FIN, no reserved bits, opcode 1 (text); no mask bit; the shortest length form.
    assert frame == header + payload
    parser = FrameProtocol(client=True, extensions=[])
    parser.receive_bytes(frame)
    (decoded,) = list(parser.received_frames())
    assert decoded.opcode is Opcode.TEXT
    assert decoded.frame_finished and decoded.message_finished
    assert decoded.payload == payload.decode()


def test_text_frame_length_counts_bytes_not_characters() -> None:
    payload = "é€😀".encode() * 50  # 450 bytes, 150 characters: the 16-bit form
    frame = text_frame(payload)
    assert frame[:4] == struct.pack("!BBH", 0x81, 126, len(payload))
    parser = FrameProtocol(client=True, extensions=[])
    parser.receive_bytes(frame)
    (decoded,) = list(parser.received_frames())
    assert decoded.payload == payload.decode()


# -- Outbox over a socket -------------------------------------------------------------------


async def test_what_the_socket_takes_is_written_at_once_and_in_order() -> None:
    async with tcp_pair() as (outbox, peer):
        outbox.write_texts([])
        assert outbox.written == 0
        outbox.write_texts([b"one", b"", "tr\u00e8s".encode()])
        outbox.write_texts([b"four"])
        # Synchronously: nothing is left to drain and nothing has yielded.
        assert not outbox.pending and not outbox.broken
        frames = [text_frame(p) for p in (b"one", b"", "tr\u00e8s".encode(), b"four")]
        assert outbox.written == sum(map(len, frames))
        assert await peer.texts(4) == ["one", "", "tr\u00e8s", "four"]
        await outbox.drain()  # nothing pending: returns at once
        assert peer.received == outbox.written


async def test_what_the_socket_cannot_take_waits_in_order_for_drain() -> None:
    async with tcp_pair() as (outbox, peer):
        payloads = fill(outbox)
        assert outbox.pending and not outbox.broken
        # The peer empties the socket, but nothing buffered moves without `drain()`; a later
        # write must wait behind the buffer rather than take the free space.
        await peer.read_bytes(outbox.written)
        handed = outbox.written
        later = [numbered(len(payloads) + i, 100_000) for i in range(20)]
        outbox.write_texts(later[:10])
        outbox.write_texts(later[10:])
        assert outbox.written == handed
        assert outbox.pending

        expected = [p.decode() for p in payloads + later]
        received: list[str] = []

        async def read_all() -> None:
            received.extend(await peer.texts(len(expected)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await outbox.drain()
            assert not still_pending(outbox) and not outbox.broken
            assert outbox.written == sum(len(text_frame(p)) for p in payloads + later)
        assert received == expected
        assert peer.received == outbox.written


async def test_library_frames_keep_their_place_among_pending_texts() -> None:
    async with tcp_pair() as (outbox, peer):
        before = fill(outbox)
        sent = trio.Event()

        async def library_pong() -> None:
            await outbox.send_all(pong(b"ping-1"))
            sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(library_pong)
            await trio.testing.wait_all_tasks_blocked()
            assert not sent.is_set()  # it waits for the buffer to drain
            after = [numbered(len(before), 50_000), numbered(len(before) + 1, 10)]
            outbox.write_texts(after)
            received = await peer.messages(len(before) + 1 + len(after))
        assert sent.is_set()
        assert received == (
            [(Opcode.TEXT, p.decode()) for p in before]
            + [(Opcode.PONG, b"ping-1")]
            + [(Opcode.TEXT, p.decode()) for p in after]
        )
        assert not outbox.pending
        # With nothing pending, raw bytes go straight out.
        await outbox.send_all(pong(b"ping-2"))
        outbox.write_texts([b"last"])
        assert await peer.messages(2) == [(Opcode.PONG, b"ping-2"), (Opcode.TEXT, "last")]


async def test_a_cancelled_drain_loses_nothing() -> None:
    async with tcp_pair() as (outbox, peer):
        payloads = fill(outbox)
        written = outbox.written
        with trio.CancelScope() as scope:
            scope.cancel()
            await outbox.drain()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.drain)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert outbox.pending and not outbox.broken
        assert outbox.written == written

        received: list[str] = []

        async def read_all() -> None:
            received.extend(await peer.texts(len(payloads)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await outbox.drain()
        assert received == [p.decode() for p in payloads]


async def test_a_reset_connection_breaks_the_outbox() -> None:
    async with tcp_pair() as (outbox, peer):
        outbox.write_texts([b"delivered"])
        assert await peer.texts(1) == ["delivered"]
        written = outbox.written
        await reset(peer, outbox)
        outbox.write_texts([b"lost"])
        assert outbox.broken and not outbox.pending
        assert outbox.written == written
        with pytest.raises(trio.BrokenResourceError):
            await outbox.drain()
        with pytest.raises(trio.BrokenResourceError):
            await outbox.send_all(pong(b"late"))
        outbox.write_texts([b"ignored"])  # does not raise
        assert outbox.broken and not outbox.pending and outbox.written == written


async def test_a_reset_while_bytes_are_pending_fails_the_drain() -> None:
    async with tcp_pair() as (outbox, peer):
        fill(outbox)
        await reset(peer, outbox)
        with pytest.raises(trio.BrokenResourceError):
            await outbox.drain()
        assert outbox.broken and not outbox.pending
        with pytest.raises(trio.BrokenResourceError):
            await outbox.wait_send_all_might_not_block()


async def test_nothing_is_written_after_aclose() -> None:
    async with tcp_pair() as (outbox, peer):
        outbox.write_texts([b"before"])
        written = outbox.written
        await outbox.aclose()
        outbox.write_texts([b"after"])  # does not raise
        assert outbox.broken and not outbox.pending
        assert outbox.written == written
        with pytest.raises(trio.ClosedResourceError):
            await outbox.send_all(pong(b"late"))
        await peer.read_to_end()
        assert peer.received == written
        assert await peer.texts(1) == ["before"]


async def test_aclose_drops_what_the_socket_had_not_taken() -> None:
    async with tcp_pair() as (outbox, peer):
        fill(outbox)
        written = outbox.written
        await outbox.aclose()
        assert not outbox.pending
        # The peer gets exactly what the socket had taken, then the end of the stream.
        await peer.read_to_end()
        assert peer.received == written == outbox.written


# -- Outbox over a stream without a socket ------------------------------------------------


def memory_outbox() -> tuple[Outbox, trio.testing.MemorySendStream]:
    sent = trio.testing.MemorySendStream()
    return Outbox(trio.StapledStream(sent, trio.testing.MemoryReceiveStream())), sent


def taken(sent: trio.testing.MemorySendStream) -> bytes:
    """What has been sent through `sent` since the last look."""
    try:
        return bytes(sent.get_data_nowait())
    except trio.WouldBlock:
        return b""


async def test_without_a_socket_texts_wait_for_drain() -> None:
    outbox, sent = memory_outbox()
    outbox.write_texts([b"a", b"bc"])
    outbox.write_texts([b"d"])
    assert outbox.pending and outbox.written == 0
    assert taken(sent) == b""
    await outbox.drain()
    expected = text_frame(b"a") + text_frame(b"bc") + text_frame(b"d")
    assert not still_pending(outbox) and outbox.written == len(expected)
    assert taken(sent) == expected


async def test_without_a_socket_send_all_keeps_its_place() -> None:
    outbox, sent = memory_outbox()
    outbox.write_texts([b"first"])
    await outbox.send_all(pong(b"p"))
    outbox.write_texts([b"second"])
    await outbox.drain()
    assert taken(sent) == text_frame(b"first") + pong(b"p") + text_frame(b"second")


async def test_without_a_socket_a_closed_stream_breaks_the_outbox() -> None:
    outbox, sent = memory_outbox()
    sent.close()
    outbox.write_texts([b"lost"])
    with pytest.raises(trio.BrokenResourceError):
        await outbox.drain()
    assert outbox.broken and not outbox.pending and outbox.written == 0
    outbox.write_texts([b"ignored"])
    assert not outbox.pending


async def test_without_a_socket_drain_ends_when_the_peer_has_it() -> None:
    server, client = trio.testing.lockstep_stream_pair()
    outbox = Outbox(server)
    payloads = [numbered(i, 300) for i in range(5)]
    outbox.write_texts(payloads)
    expected = b"".join(text_frame(p) for p in payloads)
    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.drain)
        while len(received) < len(expected):
            received += await client.receive_some()
    assert received == expected
    assert not outbox.pending and outbox.written == len(expected)


async def test_without_a_socket_a_cancelled_drain_breaks_the_outbox() -> None:
    """A send cancelled part way leaves the stream in an unknown state: the outbox is broken
    from then on, rather than going on as if the cancelled frames had been sent."""
    server, _client = trio.testing.lockstep_stream_pair()  # send_all waits for a reader
    outbox = Outbox(server)
    outbox.write_texts([b"first"])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.drain)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert outbox.broken
    outbox.write_texts([b"second"])
    with pytest.raises(trio.BrokenResourceError):
        await outbox.drain()


async def test_a_stream_that_transforms_what_it_sends_is_never_bypassed() -> None:
    """Under TLS the socket carries ciphertext: frames must go through the TLS stream, not
    straight to its socket."""
    import ssl

    async with tcp_pair() as (plain, _peer):
        tls = trio.SSLStream(plain.transport_stream, ssl.create_default_context())
        outbox = Outbox(tls)
        outbox.write_texts([b"secret"])
        assert outbox.pending and outbox.written == 0  # buffered for drain(), not on the wire


# -- MessageOutbox --------------------------------------------------------------------------


class FakeWebSocket:
    """`send_message` only; it can be held (`gate`) or closed (`ConnectionClosed`)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.gate: trio.Event | None = None
        self.closed = False

    async def send_message(self, message: str) -> None:
        if self.gate is not None:
            await self.gate.wait()
        else:
            await trio.lowlevel.checkpoint()
        if self.closed:
            raise trio_websocket.ConnectionClosed(None)
        self.sent.append(message)


async def test_message_outbox_sends_in_order_on_drain() -> None:
    ws = FakeWebSocket()
    outbox = MessageOutbox(ws)
    outbox.write_texts([b"a", "\u00e9".encode()])
    outbox.write_texts([b"c"])
    assert outbox.pending and ws.sent == []
    await outbox.drain()
    assert ws.sent == ["a", "\u00e9", "c"]
    assert not still_pending(outbox) and not outbox.broken


async def test_message_outbox_writes_during_a_drain_go_after() -> None:
    ws = FakeWebSocket()
    ws.gate = trio.Event()
    outbox = MessageOutbox(ws)
    outbox.write_texts([b"1", b"2"])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.drain)
        await trio.testing.wait_all_tasks_blocked()
        outbox.write_texts([b"3"])
        nursery.start_soon(outbox.drain)  # a second drain waits its turn
        ws.gate.set()
    assert ws.sent == ["1", "2", "3"]
    assert not outbox.pending


async def test_message_outbox_cancelled_drain_loses_nothing() -> None:
    ws = FakeWebSocket()
    ws.gate = trio.Event()
    outbox = MessageOutbox(ws)
    outbox.write_texts([b"x", b"y"])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.drain)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert outbox.pending and ws.sent == []
    ws.gate.set()
    await outbox.drain()
    assert ws.sent == ["x", "y"]


async def test_message_outbox_connection_closed_breaks_it() -> None:
    ws = FakeWebSocket()
    outbox = MessageOutbox(ws)
    outbox.write_texts([b"sent"])
    await outbox.drain()
    ws.closed = True
    outbox.write_texts([b"lost", b"also lost"])
    with pytest.raises(trio.BrokenResourceError):
        await outbox.drain()
    assert outbox.broken and not outbox.pending
    outbox.write_texts([b"ignored"])
    assert not outbox.pending
    with pytest.raises(trio.BrokenResourceError):
        await outbox.drain()
    assert ws.sent == ["sent"]
