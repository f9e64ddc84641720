"""A small HTTP/1.1 client (h11 over a trio socket) that can also misbehave on purpose."""

from __future__ import annotations

from typing import Any

import attrs
import h11
import orjson
import trio


@attrs.frozen
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class HttpClient:
    """One keep-alive connection. `request` sends one request and reads its response."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, port: int) -> HttpClient:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Reply:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        all_headers = [("host", "127.0.0.1"), *(headers or [])]
        if body is not None:
            all_headers.append(("content-length", str(len(body))))
        out = self.h11.send(h11.Request(method=method, target=path, headers=all_headers)) or b""
        if body:
            out += self.h11.send(h11.Data(data=body)) or b""
        out += self.h11.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(out)
        return await self.read_response()

    async def read_response(self) -> Reply:
        with trio.fail_after(10):
            status = 0
            headers: dict[bytes, bytes] = {}
            chunks: list[bytes] = []
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    self.h11.receive_data(await self.stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = dict(event.headers)
                elif isinstance(event, h11.Data):
                    chunks.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return Reply(status, headers, b"".join(chunks))
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("closed before a response")


async def call(
    port: int,
    kind: str,
    path: str,
    args: dict[str, Any],
    auth: str | None = None,
) -> Reply:
    """One Convex-style function call, as ConvexHttpClient sends it, on a fresh connection."""
    client = await HttpClient.connect(port)
    try:
        body = orjson.dumps({"path": path, "format": "convex_encoded_json", "args": [args]})
        headers = [("content-type", "application/json")]
        if auth is not None:
            headers.append(("authorization", auth))
        return await client.request("POST", f"/api/{kind}", body, headers)
    finally:
        await client.aclose()


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = bytearray()
    with trio.fail_after(10):
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not data:
                break
            received += data
    return bytes(received)
