"""WebSocket framing on both ends of a connection (engine.wire.connection over wsproto): what a
peer may send is read, what it may not is refused with the close code RFC 6455 gives it.

Frames are written by hand (`lab.hostile.wire.frame`, masked as a client's) so that broken
ones can be; what an end sends back is decoded with wsproto's frame layer, as a peer would."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
import trio_websocket
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol
from wsproto.utilities import generate_accept_token

from engine.server.websocket import handshake_response
from engine.wire.connection import (
    WebSocket,
    data_frame,
    parse_client_frames,
    parse_server_frames,
)
from lab.hostile.wire import frame, raw_upgrade, read_until_closed, upgrade_request
from tests.server.conftest import LiveServer

TEXT, BINARY, CONTINUATION = 0x1, 0x2, 0x0
CLOSE, PING, PONG = 0x8, 0x9, 0xA
KEY = b"\x01\x02\x03\x04"


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, first: int | None = None
) -> bytes:
    data = frame(opcode, payload, fin=fin)
    return data if first is None else bytes((first,)) + data[1:]


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


def decoded(data: bytes | bytearray, *, from_client: bool = False) -> list[tuple[int, object]]:
    """The frames in `data` as a peer reads them: (opcode, payload); a close's payload is
    wsproto's (code, reason)."""
    reader = FrameProtocol(client=not from_client, extensions=[])
    reader.receive_bytes(bytes(data))
    return [(int(f.opcode), f.payload) for f in reader.received_frames()]


def server_end(max_message_size: int = 1000) -> tuple[trio.abc.Stream, WebSocket]:
    """A server's end on a memory stream, and the stream a test writes its client frames to."""
    peer, end = trio.testing.memory_stream_pair()
    return peer, WebSocket(end, max_message_size=max_message_size)


async def refused(data: bytes, *, max_message_size: int = 1000) -> int:
    """The close code the server's end answers `data` with (it also reports it as `closed`)."""
    peer, ws = server_end(max_message_size)
    with trio.fail_after(10):
        await peer.send_all(data)
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            while True:
                await ws.get_message()
        answer = decoded(await read_until_closed(peer))
    assert len(answer) == 1 and answer[0][0] == CLOSE, answer
    payload = answer[0][1]
    assert isinstance(payload, tuple)
    code = int(payload[0])
    assert closed.value.reason is not None and closed.value.reason.code == code
    return code


def test_the_accept_token_is_rfc_6455s_example() -> None:
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    assert generate_accept_token(key) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in handshake_response(key)


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=70_000), st.integers(min_value=1, max_value=70_000))
def test_a_text_message_is_read_whole_from_any_pieces(text: str, piece: int) -> None:
    data = client_frame(TEXT, text.encode())
    piece = max(piece, len(data) // 100)  # at most ~100 pieces: one checkpoint each

    async def main() -> str | bytes:
        peer, ws = server_end(1 << 20)
        async with trio.open_nursery() as nursery:

            async def write() -> None:
                for start in range(0, len(data), piece):
                    await peer.send_all(data[start : start + piece])
                    await trio.lowlevel.checkpoint()

            nursery.start_soon(write)
            return await ws.get_message()

    assert trio.run(main) == text


async def test_fragments_make_one_message_and_control_frames_come_between() -> None:
    peer, ws = server_end(100)
    await peer.send_all(
        client_frame(TEXT, "héllo ".encode()[:2], fin=False)
        + client_frame(PING, b"p")
        + client_frame(CONTINUATION, "héllo ".encode()[2:], fin=False)
        + client_frame(CONTINUATION, b"world")
        + client_frame(BINARY, b"\x00\xff")
    )
    with trio.fail_after(10):
        assert await ws.get_message() == "héllo world"
        assert await ws.get_message() == b"\x00\xff"
        assert decoded(await peer.receive_some()) == [(PONG, b"p")]


async def test_a_client_reads_server_frames_and_refuses_masked_ones() -> None:
    server = FrameProtocol(client=False, extensions=[])
    peer, end = trio.testing.memory_stream_pair()
    ws = WebSocket(end, client=True, max_message_size=100)
    await peer.send_all(bytes(server.send_data("hi")) + client_frame(TEXT, b"masked"))
    with trio.fail_after(10):
        assert await ws.get_message() == "hi"
        with pytest.raises(trio_websocket.ConnectionClosed):
            await ws.get_message()
        answer = decoded(await read_until_closed(peer), from_client=True)
    assert answer == [(CLOSE, (1002, "client received unexpected masked frame"))]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, b"unmasked", mask=False), 1002),
        (client_frame(TEXT, b"x", first=0x80 | 0x40 | TEXT), 1002),
        (client_frame(0x3, b"x"), 1002),
        (client_frame(0xB, b"x"), 1002),
        (client_frame(PING, b"x", fin=False), 1002),
        (client_frame(PING, b"x" * 126), 1002),
        (client_frame(CONTINUATION, b"x"), 1002),
        (client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"), 1002),
        (bytes((0x81, 0x80 | 126, 0, 5)) + KEY + b"hello", 1002),
        (client_frame(TEXT, b"\xff\xfe"), 1007),
        (client_frame(TEXT, b"x" * 1001), 1009),
        (client_frame(BINARY, b"x" * 1001), 1009),
        (
            client_frame(BINARY, b"x" * 600, fin=False) + client_frame(CONTINUATION, b"x" * 600),
            1009,
        ),
        (client_frame(CLOSE, b"\x03"), 1002),
        (client_frame(CLOSE, (1005).to_bytes(2, "big")), 1002),
        (client_frame(CLOSE, (999).to_bytes(2, "big")), 1002),
        (client_frame(CLOSE, (5000).to_bytes(2, "big")), 1002),
        (client_frame(CLOSE, b"\x03\xe8\xff"), 1007),
    ],
)
async def test_what_a_peer_may_not_send_is_refused_with_its_code(data: bytes, code: int) -> None:
    assert await refused(data) == code


async def test_a_too_big_message_is_refused_before_its_frame_has_all_arrived() -> None:
    """A frame announcing 1 MiB is refused once more than the limit of it arrived: what the
    end holds stays bounded by the limit, whatever the header says."""
    head = bytes((0x82, 0x80 | 127)) + (1 << 20).to_bytes(8, "big") + KEY
    assert await refused(head + b"x" * 1001) == 1009


async def test_text_counts_characters_as_trio_websocket_did() -> None:
    peer, ws = server_end(1000)
    await peer.send_all(client_frame(TEXT, ("é" * 1000).encode()))  # 2,000 bytes
    with trio.fail_after(10):
        assert await ws.get_message() == "é" * 1000
    assert await refused(client_frame(TEXT, ("é" * 1001).encode())) == 1009


@pytest.mark.parametrize(
    ("payload", "code", "echo"),
    [
        (close_payload(4000, "bye"), 4000, (4000, "bye")),
        (b"", 1005, (1005, "")),  # no code: the answer carries none either
    ],
)
async def test_a_peers_close_is_answered_with_its_code(
    payload: bytes, code: int, echo: tuple[int, str]
) -> None:
    peer, ws = server_end()
    await peer.send_all(client_frame(CLOSE, payload))
    with trio.fail_after(10):
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await ws.get_message()
        answer = await read_until_closed(peer)
    assert closed.value.reason is not None and closed.value.reason.code == code
    assert decoded(answer) == [(CLOSE, echo)]


async def test_aclose_sends_a_close_and_reads_the_answer() -> None:
    peer, ws = server_end()
    client = FrameProtocol(client=True, extensions=[])
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ws.aclose, 4001, "done")
            sent = decoded(await peer.receive_some())
            # A message after the server's close frame is discarded; the close ends it.
            await peer.send_all(bytes(client.send_data("late")) + bytes(client.close(4001)))
        assert await read_until_closed(peer) == b""
    assert sent == [(CLOSE, (4001, "done"))]
    assert ws.closed is not None and ws.closed.code == 4001  # the peer's answer


# -- the server's end, live ------------------------------------------------------------------


async def test_a_ping_is_answered_and_a_close_is_echoed(live: LiveServer) -> None:
    stream = await raw_upgrade(live.port)
    try:
        with trio.fail_after(10):
            await stream.send_all(
                client_frame(PING, b"are you there")
                + client_frame(CLOSE, close_payload(4001, "done"))
            )
            answers = decoded(await read_until_closed(stream))
    finally:
        await stream.aclose()
    assert answers == [(PONG, b"are you there"), (CLOSE, (4001, "done"))]


async def test_frames_sent_with_the_upgrade_request_are_read(live: LiveServer) -> None:
    """A client that writes its first frames right behind the upgrade request (before the
    101): they arrive with the head, and are read as the connection's first frames."""
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    try:
        with trio.fail_after(10):
            await stream.send_all(
                upgrade_request()
                + client_frame(PING, b"early")
                + client_frame(CLOSE, close_payload(1000))
            )
            data = await read_until_closed(stream)
    finally:
        await stream.aclose()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert decoded(rest) == [(PONG, b"early"), (CLOSE, (1000, ""))]


async def test_a_protocol_error_closes_with_1002(live: LiveServer) -> None:
    stream = await raw_upgrade(live.port)
    try:
        with trio.fail_after(10):
            await stream.send_all(frame(TEXT, b"not masked", mask=False))
            answers = decoded(await read_until_closed(stream))
    finally:
        await stream.aclose()
    assert len(answers) == 1 and answers[0][0] == CLOSE
    assert answers[0][1] == (1002, "server received unexpected unmasked frame")


async def test_an_upgrade_without_connection_upgrade_is_refused(live: LiveServer) -> None:
    request = (
        b"GET /api/1.17.0/sync HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    try:
        with trio.fail_after(10):
            await stream.send_all(request)
            answer = await read_until_closed(stream)
    finally:
        await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_concurrent_sends_on_a_plain_stream_are_written_one_after_another() -> None:
    """The reader's pongs and close answers may meet another task's messages; a plain stream
    (not the server's Outbox) refuses two `send_all`s at once, so the connection orders them."""
    client_end, server_stream = trio.testing.memory_stream_pair()
    ws = WebSocket(client_end, client=True, max_message_size=1 << 20)
    reader = FrameProtocol(client=False, extensions=[])
    got: list[str] = []

    async def send(tag: str) -> None:
        for i in range(50):
            await ws.send_message(f"{tag}{i}")

    async def read() -> None:
        while len(got) < 100:
            reader.receive_bytes(bytes(await server_stream.receive_some()))
            got.extend(str(f.payload) for f in reader.received_frames())

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            nursery.start_soon(send, "a")
            nursery.start_soon(send, "b")
    assert sorted(got) == sorted([f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)])


def wsproto_messages(data: bytes, *, as_client: bool = False) -> list[str | bytes] | None:
    """The whole messages wsproto reads from `data` as a server (or a client), or None if it
    refuses it."""
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import BytesMessage, Message, TextMessage
    from wsproto.utilities import ProtocolError

    conn = Connection(ConnectionType.CLIENT if as_client else ConnectionType.SERVER)
    conn.receive_data(data)
    out: list[str | bytes] = []
    parts: list[Any] = []
    try:
        for event in conn.events():
            if isinstance(event, Message):
                parts.append(event.data)
                if event.message_finished:
                    whole = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
                    assert isinstance(event, (TextMessage, BytesMessage))
                    out.append(whole)
                    parts = []
            else:
                return None  # a control frame or a close (the fast path never takes these)
    except ProtocolError:
        return None
    return out


def server_frame(
    opcode: int, payload: bytes, *, fin: bool = True, first: int | None = None
) -> bytes:
    data = frame(opcode, payload, fin=fin, mask=False)
    return data if first is None else bytes((first,)) + data[1:]


def frames_of(make: Any, foreign: Any, non_minimal: bytes) -> st.SearchStrategy[bytes]:
    """One end's frames, `make(opcode, payload, fin=, first=)`, as the fast path must take or
    leave them: text, binary, bad UTF-8, a ping, a fragment, reserved bits, a frame of the
    other end (`foreign`) and a 16-bit length that a 7-bit one would hold (`non_minimal`)."""
    return st.one_of(
        st.text(max_size=300).map(lambda t: make(TEXT, t.encode())),
        st.binary(max_size=300).map(lambda b: make(BINARY, b)),
        st.binary(max_size=40).map(lambda b: make(TEXT, b)),  # often not UTF-8
        st.binary(max_size=10).map(lambda b: make(PING, b)),
        st.binary(max_size=10).map(lambda b: make(TEXT, b, fin=False)),
        st.binary(max_size=10).map(foreign),
        st.binary(max_size=10).map(lambda b: make(TEXT, b, first=0xC1)),
        st.just(non_minimal),
    )


frames = frames_of(
    client_frame,
    lambda b: frame(BINARY, b, mask=False),  # unmasked: not a client's
    bytes((0x81, 0x80 | 126, 0, 5)) + KEY + b"hello",
)
server_frames = frames_of(
    server_frame,
    lambda b: client_frame(BINARY, b),  # masked: not a server's
    bytes((0x81, 126, 0, 5)) + b"hello",
)


@pytest.mark.parametrize("of_client", [True, False], ids=["a server's", "a client's"])
@settings(max_examples=300, deadline=None)
@given(draw=st.data())
def test_the_fast_path_reads_what_wsproto_reads_or_leaves_it_to_wsproto(
    of_client: bool, draw: st.DataObject
) -> None:
    """Frames of a client read by a server's end, or of a server by a client's."""
    data = b"".join(draw.draw(st.lists(frames if of_client else server_frames, max_size=6)))
    cut = draw.draw(st.integers(min_value=0, max_value=2_000))
    data = data[: len(data) - cut % (len(data) + 1)] if cut % 3 == 0 else data  # cut by a read
    parse = parse_client_frames if of_client else parse_server_frames
    fast = parse(data, 200)
    if fast is not None:
        assert fast == wsproto_messages(data, as_client=not of_client)
        assert all(len(m) <= 200 for m in fast)


def test_a_clients_fast_path_takes_whole_unmasked_frames_only() -> None:
    plain = server_frame(TEXT, "héllo".encode()) + server_frame(BINARY, b"\x00" * 300)
    assert parse_server_frames(plain, 1000) == ["héllo", b"\x00" * 300]
    assert parse_server_frames(server_frame(TEXT, b""), 1000) == [""]
    assert parse_server_frames(plain[:-1], 1000) is None
    assert parse_server_frames(plain + server_frame(PING, b""), 1000) is None
    assert parse_server_frames(server_frame(TEXT, b"\xff"), 1000) is None
    assert parse_server_frames(server_frame(TEXT, b"x" * 1001), 1000) is None
    assert parse_server_frames(client_frame(TEXT, b"x"), 1000) is None  # masked
    # An empty masked text frame whose mask key reads as an unmasked frame ("hi").
    assert parse_server_frames(bytes((0x81, 0x80, 0x81, 0x02)) + b"hi", 1000) is None


async def test_a_client_reads_fast_and_slow_frames_in_order() -> None:
    peer, end = trio.testing.memory_stream_pair()
    ws = WebSocket(end, client=True, max_message_size=100)
    with trio.fail_after(10):
        await peer.send_all(server_frame(TEXT, b"one") + server_frame(TEXT, b"two"))
        assert [await ws.get_message(), await ws.get_message()] == ["one", "two"]
        await peer.send_all(server_frame(TEXT, b"thr", fin=False))
        await peer.send_all(server_frame(CONTINUATION, b"ee") + server_frame(TEXT, b"four"))
        assert [await ws.get_message(), await ws.get_message()] == ["three", "four"]
        await peer.send_all(server_frame(TEXT, b"five") + server_frame(PING, b"p"))
        assert await ws.get_message() == "five"
        await peer.send_all(server_frame(TEXT, b"six"))
        assert await ws.get_message() == "six"
        assert decoded(await peer.receive_some(), from_client=True) == [(PONG, b"p")]


def test_whole_short_frames_take_the_fast_path_and_anything_else_does_not() -> None:
    plain = client_frame(TEXT, "héllo".encode()) + client_frame(BINARY, b"\x00" * 300)
    assert parse_client_frames(plain, 1000) == ["héllo", b"\x00" * 300]
    assert parse_client_frames(plain[:-1], 1000) is None  # the last frame cut by the read
    assert parse_client_frames(plain + client_frame(PING, b""), 1000) is None
    assert parse_client_frames(client_frame(TEXT, b"\xff"), 1000) is None
    assert parse_client_frames(client_frame(TEXT, b"x" * 1001), 1000) is None
    assert parse_client_frames(frame(TEXT, b"x", mask=False), 1000) is None


async def test_a_ping_between_fast_reads_is_answered_and_order_is_kept() -> None:
    peer, ws = server_end(100)
    with trio.fail_after(10):
        await peer.send_all(client_frame(TEXT, b"one") + client_frame(TEXT, b"two"))
        assert [await ws.get_message(), await ws.get_message()] == ["one", "two"]
        await peer.send_all(client_frame(TEXT, b"three") + client_frame(PING, b"p"))
        assert await ws.get_message() == "three"
        await peer.send_all(client_frame(TEXT, b"four"))
        assert await ws.get_message() == "four"
        assert decoded(await peer.receive_some()) == [(PONG, b"p")]


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.text(max_size=70_000), st.binary(max_size=70_000)),
    st.booleans(),
)
def test_a_frame_built_here_is_the_message_to_wsproto(message: str | bytes, masked: bool) -> None:
    reader = FrameProtocol(client=not masked, extensions=[])
    reader.receive_bytes(data_frame(message, masked=masked))
    (received,) = list(reader.received_frames())
    assert received.frame_finished and received.message_finished
    assert int(received.opcode) == (TEXT if isinstance(message, str) else BINARY)
    assert received.payload == message


async def test_sends_on_a_socket_keep_each_message_whole_when_it_fills_or_they_meet() -> None:
    """Straight to the socket while it takes them; a message the socket takes only part of
    finishes through the stream, and a send meeting it waits its turn (wsproto's path)."""
    a, b = trio.socket.socketpair()
    a.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, 4096)
    ws = WebSocket(trio.SocketStream(a), client=True, max_message_size=1 << 20, sock=a)
    peer = trio.SocketStream(b)
    reader = FrameProtocol(client=False, extensions=[])
    big = "x" * 300_000
    expected = [big] + [f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)]
    got: list[object] = []
    go = trio.Event()

    async def send(tag: str) -> None:
        for i in range(50):
            await ws.send_message(f"{tag}{i}")

    async def read() -> None:
        await go.wait()  # nothing is read until the big frame has filled the socket
        part = ""
        while len(got) < len(expected):
            reader.receive_bytes(bytes(await peer.receive_some(8192)))
            for piece in reader.received_frames():  # (a big frame arrives in pieces)
                part += str(piece.payload)
                if piece.message_finished:
                    got.append(part)
                    part = ""

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            nursery.start_soon(ws.send_message, big)
            await trio.testing.wait_all_tasks_blocked()  # the big one waits for the reader
            nursery.start_soon(send, "a")
            nursery.start_soon(send, "b")
            await trio.testing.wait_all_tasks_blocked()  # and they wait for it
            go.set()
    assert got[0] == big
    assert sorted(map(str, got)) == sorted(expected)
    a.close()
    b.close()
