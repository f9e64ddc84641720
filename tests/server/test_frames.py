"""WebSocket framing (engine.wire.frames) and the server's end of a connection over it: what a
peer may send is read, what it may not is refused with the close code RFC 6455 gives it."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from engine.wire import frames
from engine.wire.frames import FrameError, MessageReader
from lab.hostile.wire import raw_upgrade, read_until_closed
from tests.server.conftest import LiveServer

KEY = b"\x01\x02\x03\x04"


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, first: int | None = None
) -> bytes:
    data = frames.frame(opcode, payload, os.urandom(4))
    head = first if first is not None else (0x80 if fin else 0) | opcode
    return bytes((head,)) + data[1:]


def read_all(reader: MessageReader) -> list[tuple[int, str | bytes]]:
    items = []
    while (item := reader.next()) is not None:
        items.append(item)
    return items


def refused(data: bytes, *, max_message_size: int = 1000) -> FrameError:
    reader = MessageReader(masked=True, max_message_size=max_message_size)
    reader.feed(data)
    with pytest.raises(FrameError) as error:
        read_all(reader)
    return error.value


def test_the_accept_token_is_rfc_6455s_example() -> None:
    assert frames.accept_token(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@given(st.binary(max_size=300))
def test_masking_twice_gives_the_payload_back(payload: bytes) -> None:
    assert frames.mask(frames.mask(payload, KEY), KEY) == payload


@given(st.text(max_size=70_000), st.integers(min_value=1, max_value=70_000))
def test_a_text_message_is_read_whole_from_any_pieces(text: str, piece: int) -> None:
    data = client_frame(frames.TEXT, text.encode())
    reader = MessageReader(masked=True, max_message_size=1 << 20)
    items = []
    for start in range(0, len(data), piece):
        reader.feed(data[start : start + piece])
        items += read_all(reader)
    assert items == [(frames.TEXT, text)]


def test_fragments_make_one_message_and_control_frames_come_between() -> None:
    data = (
        client_frame(frames.TEXT, "héllo ".encode()[:2], fin=False)
        + client_frame(frames.PING, b"p")
        + client_frame(frames.CONTINUATION, "héllo ".encode()[2:], fin=False)
        + client_frame(frames.CONTINUATION, b"world")
        + client_frame(frames.BINARY, b"\x00\xff")
    )
    reader = MessageReader(masked=True, max_message_size=100)
    reader.feed(data)
    assert read_all(reader) == [
        (frames.PING, b"p"),
        (frames.TEXT, "héllo world"),
        (frames.BINARY, b"\x00\xff"),
    ]


def test_a_server_frame_is_read_by_a_client() -> None:
    reader = MessageReader(masked=False, max_message_size=100)
    reader.feed(frames.frame(frames.TEXT, b"hi") + frames.frame(frames.CLOSE, b"\x03\xe8"))
    assert read_all(reader) == [(frames.TEXT, "hi"), (frames.CLOSE, b"\x03\xe8")]
    assert refused_unmasked_by_client() == frames.PROTOCOL_ERROR


def refused_unmasked_by_client() -> int:
    reader = MessageReader(masked=False, max_message_size=100)
    reader.feed(client_frame(frames.TEXT, b"hi"))
    with pytest.raises(FrameError) as error:
        reader.next()
    return error.value.code


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frames.frame(frames.TEXT, b"unmasked"), frames.PROTOCOL_ERROR),
        (client_frame(frames.TEXT, b"x", first=0x80 | 0x40 | frames.TEXT), frames.PROTOCOL_ERROR),
        (client_frame(0x3, b"x"), frames.PROTOCOL_ERROR),
        (client_frame(0xB, b"x"), frames.PROTOCOL_ERROR),
        (client_frame(frames.PING, b"x", fin=False), frames.PROTOCOL_ERROR),
        (client_frame(frames.PING, b"x" * 126), frames.PROTOCOL_ERROR),
        (client_frame(frames.CONTINUATION, b"x"), frames.PROTOCOL_ERROR),
        (
            client_frame(frames.TEXT, b"a", fin=False) + client_frame(frames.TEXT, b"b"),
            frames.PROTOCOL_ERROR,
        ),
        (bytes((0x81, 0x80 | 126, 0, 5)) + KEY + b"hello", frames.PROTOCOL_ERROR),
        (client_frame(frames.TEXT, b"\xff\xfe"), frames.INVALID_DATA),
        (client_frame(frames.TEXT, b"x" * 1001), frames.MESSAGE_TOO_BIG),
        (client_frame(frames.BINARY, b"x" * 1001), frames.MESSAGE_TOO_BIG),
        (
            client_frame(frames.BINARY, b"x" * 600, fin=False)
            + client_frame(frames.CONTINUATION, b"x" * 600),
            frames.MESSAGE_TOO_BIG,
        ),
    ],
)
def test_what_a_peer_may_not_send_is_refused_with_its_code(data: bytes, code: int) -> None:
    assert refused(data).code == code


def test_a_too_big_binary_message_is_refused_on_its_header_alone() -> None:
    head = bytes((0x82, 0x80 | 127)) + (1 << 20).to_bytes(8, "big") + KEY
    assert refused(head).code == frames.MESSAGE_TOO_BIG


def test_text_counts_characters_as_trio_websocket_did() -> None:
    reader = MessageReader(masked=True, max_message_size=1000)
    reader.feed(client_frame(frames.TEXT, ("é" * 1000).encode()))  # 2,000 bytes
    assert read_all(reader) == [(frames.TEXT, "é" * 1000)]
    assert refused(client_frame(frames.TEXT, ("é" * 1001).encode())).code == 1009


def test_close_payloads() -> None:
    assert frames.parse_close(b"") == (frames.NO_STATUS, "")
    assert frames.parse_close(frames.close_payload(4000, "bye")) == (4000, "bye")
    assert frames.close_payload(frames.NO_STATUS) == b""
    assert len(frames.close_payload(1000, "é" * 100)) <= 125
    for bad in (
        b"\x03",
        (1005).to_bytes(2, "big"),
        (999).to_bytes(2, "big"),
        (5000).to_bytes(2, "big"),
    ):
        with pytest.raises(FrameError) as error:
            frames.parse_close(bad)
        assert error.value.code == frames.PROTOCOL_ERROR
    with pytest.raises(FrameError) as error:
        frames.parse_close(b"\x03\xe8\xff")
    assert error.value.code == frames.INVALID_DATA


# -- the server's end, live ------------------------------------------------------------------


async def server_frames(stream: trio.SocketStream) -> list[tuple[int, str | bytes]]:
    reader = MessageReader(masked=False, max_message_size=1 << 20)
    reader.feed(await read_until_closed(stream))
    return read_all(reader)


async def test_a_ping_is_answered_and_a_close_is_echoed(live: LiveServer) -> None:
    stream = await raw_upgrade(live.port)
    try:
        with trio.fail_after(10):
            await stream.send_all(
                client_frame(frames.PING, b"are you there")
                + client_frame(frames.CLOSE, frames.close_payload(4001, "done"))
            )
            answers = await server_frames(stream)
    finally:
        await stream.aclose()
    assert answers == [
        (frames.PONG, b"are you there"),
        (frames.CLOSE, frames.close_payload(4001, "done")),
    ]


async def test_frames_sent_with_the_upgrade_request_are_read(live: LiveServer) -> None:
    """A client that writes its first frames right behind the upgrade request (before the
    101): they arrive with the head, and are read as the connection's first frames."""
    from lab.hostile.wire import upgrade_request

    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    try:
        with trio.fail_after(10):
            await stream.send_all(
                upgrade_request()
                + client_frame(frames.PING, b"early")
                + client_frame(frames.CLOSE, frames.close_payload(1000))
            )
            data = await read_until_closed(stream)
    finally:
        await stream.aclose()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    reader = MessageReader(masked=False, max_message_size=1 << 20)
    reader.feed(rest)
    assert read_all(reader) == [(frames.PONG, b"early"), (frames.CLOSE, b"\x03\xe8")]


async def test_a_protocol_error_closes_with_1002(live: LiveServer) -> None:
    stream = await raw_upgrade(live.port)
    try:
        with trio.fail_after(10):
            await stream.send_all(frames.frame(frames.TEXT, b"not masked"))
            answers = await server_frames(stream)
    finally:
        await stream.aclose()
    assert len(answers) == 1 and answers[0][0] == frames.CLOSE
    assert isinstance(answers[0][1], bytes)
    assert frames.parse_close(answers[0][1])[0] == frames.PROTOCOL_ERROR


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
    from engine.wire.connection import WebSocket

    client_end, server_end = trio.testing.memory_stream_pair()
    ws = WebSocket(client_end, client=True, max_message_size=1 << 20)
    reader = MessageReader(masked=True, max_message_size=1 << 20)
    got: list[tuple[int, str | bytes]] = []

    async def send(tag: str) -> None:
        for i in range(50):
            await ws.send_message(f"{tag}{i}")

    async def read() -> None:
        while len(got) < 100:
            reader.feed(await server_end.receive_some())
            got.extend(read_all(reader))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            nursery.start_soon(send, "a")
            nursery.start_soon(send, "b")
    assert sorted(payload for _, payload in got) == sorted(
        [f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)]
    )
