"""A stand-in payment provider on 127.0.0.1 for tests/apps/payments.py: `POST /charges` with
`{"amount"}` answers `{"id", "status": "pending"}` and `GET /charges/ID` that it succeeded; an
amount of 402 is refused (402), one of 202 answered after half a second, and one of 504 never
(the caller's timeout ends it). Every request it got is kept."""

from __future__ import annotations

import functools
import itertools
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import h11
import orjson
import trio


@attrs.define
class Provider:
    url: str = ""
    requests: list[dict[str, Any]] = attrs.field(factory=list)
    #: Set at the first request (in the provider's own trio run).
    requested: trio.Event = attrs.field(factory=trio.Event)
    _ids: Any = attrs.field(factory=lambda: itertools.count(1))

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        body = b""
        head: h11.Request | None = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return
        assert head is not None
        call = orjson.loads(body) if body else {}
        self.requests.append({"target": head.target.decode(), "body": call})
        self.requested.set()
        if head.method == b"GET":  # GET /charges/ID: every charge has succeeded by then
            call = {"lookup": head.target.decode().rpartition("/")[2]}
        if call.get("amount") == 504:
            await trio.sleep_forever()
        if call.get("amount") == 202:  # a slow provider: answers after half a second
            await trio.sleep(0.5)
        if "lookup" in call:
            status, answer = 200, {"id": call["lookup"], "status": "succeeded"}
        elif call.get("amount") == 402:
            status, answer = 402, {"error": "card declined"}
        else:
            status, answer = 200, {"id": f"pi_{next(self._ids)}", "status": "pending"}
        payload = orjson.dumps(answer)
        headers = [("content-type", "application/json"), ("content-length", str(len(payload)))]
        out = conn.send(h11.Response(status_code=status, headers=headers))
        out += conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage())
        await stream.send_all(out)
        await stream.aclose()


@asynccontextmanager
async def running_provider() -> AsyncIterator[Provider]:
    provider = Provider()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, provider._serve, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        provider.url = f"http://127.0.0.1:{port}"
        try:
            yield provider
        finally:
            nursery.cancel_scope.cancel()


@contextmanager
def provider_in_thread() -> Iterator[Provider]:
    """The same provider served from a thread of its own, for a test that is not async (one
    that drives a server in a child process)."""
    ready: queue.Queue[tuple[Provider, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with running_provider() as provider:
                ready.put((provider, trio.lowlevel.current_trio_token(), scope))
                await trio.sleep_forever()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    provider, token, scope = ready.get(timeout=30)
    try:
        yield provider
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(timeout=30)
