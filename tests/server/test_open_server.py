"""`engine.server.open_server`: what it guarantees on entering and leaving the block."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import trio

from domain.errors import Overloaded
from domain.identity import ADMIN
from engine import EngineConfig, open_engine
from engine.server import Authenticator, ServerConfig, open_server

AUTH = Authenticator(admin_key="admin", jwt_secret="x" * 32)
EVENT = {
    "name": "Gig",
    "description": "",
    "location": "Hall",
    "eventDate": 1_900_000_000_000,
    "price": 100,
    "totalTickets": 2,
    "orgId": "org_a",
}


async def health(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
    return answer.partition(b"\r\n")[0]


async def refused(port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def test_it_accepts_when_the_block_starts_and_closes_its_own_engine_when_left(
    tmp_path: Path,
) -> None:
    async with open_server(tmp_path / "data", authenticator=AUTH) as server:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port != 0
        assert await health(server.port) == b"HTTP/1.1 200 OK"
        engine = server.engine
        await engine.mutation("events:create", EVENT, ADMIN)
        assert not server.stopping
    assert server.stopped
    assert await refused(server.port)
    with pytest.raises(Overloaded):  # the engine it opened is closed
        await engine.mutation("events:create", EVENT, ADMIN)
    async with open_engine(tmp_path / "data", config=EngineConfig()) as reopened:
        assert len((await reopened.query("events:list", {}, ADMIN)).value) == 1


async def test_an_engine_passed_in_stays_open(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "data", config=EngineConfig()) as engine:
        async with open_server(engine, authenticator=AUTH) as server:
            assert server.engine is engine
            port = server.port
        assert await refused(port)
        await engine.mutation("events:create", EVENT, ADMIN)  # still open


async def test_stop_inside_the_block_and_a_failure_in_it(tmp_path: Path) -> None:
    async with open_engine(tmp_path / "data", config=EngineConfig()) as engine:
        async with open_server(engine, authenticator=AUTH) as server:
            server.stop()
            assert server.stopping
            with trio.fail_after(30):
                await server.wait_stopped()
            assert await refused(server.port)
        # (out of the server's nursery, as from any trio nursery: in an exception group)
        with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="the block failed")):
            async with open_server(engine, authenticator=AUTH) as server:
                raise RuntimeError("the block failed")
        assert server.stopped and await refused(server.port)


async def test_stop_without_drain_cuts_a_request_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrived = trio.Event()
    async with open_engine(tmp_path / "data", config=EngineConfig()) as engine:

        async def never_answers(*args: object, **kwargs: object) -> object:
            arrived.set()
            await trio.sleep_forever()

        monkeypatch.setattr(engine, "query", never_answers)
        # A drain would wait an hour for the request that never ends; drain=False does not.
        config = ServerConfig(drain_seconds=3600)
        async with open_server(engine, authenticator=AUTH, config=config) as server:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            body = b'{"path":"events:list","args":{}}'
            await stream.send_all(
                b"POST /api/query HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await arrived.wait()
            server.stop(drain=False)
            with trio.fail_after(30):
                await server.wait_stopped()
            with contextlib.suppress(trio.BrokenResourceError):  # (reset, or:)
                assert await stream.receive_some() == b""  # cut, unanswered
            await stream.aclose()
