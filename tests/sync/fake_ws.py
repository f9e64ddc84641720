"""An in-memory stand-in for a trio-websocket connection, to drive a `SyncSession` directly."""

from __future__ import annotations

from typing import Any, cast

import attrs
import orjson
import trio
import trio_websocket


class FakeWebSocket:
    """The server's end; the test holds the client's end (`send`, `receive`)."""

    def __init__(self, buffer: int = 1000) -> None:
        self._to_server_send, self._to_server = trio.open_memory_channel[str](buffer)
        self._to_client, self._to_client_receive = trio.open_memory_channel[str](buffer)
        self.closed: tuple[int, str] | None = None

    # server side (what SyncSession calls)
    async def get_message(self) -> str:
        try:
            return await self._to_server.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio_websocket.ConnectionClosed(None) from None

    async def send_message(self, message: str) -> None:
        if self.closed is not None:
            raise trio_websocket.ConnectionClosed(None)
        await self._to_client.send(message)

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason or "")
        self._to_client.close()

    @property
    def connection(self) -> trio_websocket.WebSocketConnection:
        """This stand-in, typed as the connection a session is given (it implements what a
        session uses of one)."""
        return cast(trio_websocket.WebSocketConnection, self)

    # client side (the test)
    async def send(self, message: dict[str, Any] | str) -> None:
        data = message if isinstance(message, str) else orjson.dumps(message).decode()
        await self._to_server_send.send(data)

    async def receive(self) -> dict[str, Any]:
        with trio.fail_after(5):
            return orjson.loads(await self._to_client_receive.receive())  # type: ignore[no-any-return]

    def pending(self) -> int:
        return self._to_client_receive.statistics().current_buffer_used

    def disconnect(self) -> None:
        self._to_server_send.close()


@attrs.define
class StubAuthenticator:
    """Admin key "admin-key"; user tokens "user:<sub>" (the real JWT checks have own tests)."""

    def admin(self, key: str) -> Any:
        from domain.identity import ADMIN
        from engine.server.auth import AuthFailed

        if key != "admin-key":
            raise AuthFailed("The admin key is not valid.")
        return ADMIN

    def user(self, token: str) -> Any:
        from domain.identity import Identity
        from engine.server.auth import AuthFailed

        if not token.startswith("user:"):
            raise AuthFailed("The token is not valid.")
        return Identity(subject=token[5:])

    async def authenticate(self, token: str) -> Any:
        from engine.server.auth import SignedIn

        return SignedIn(self.user(token), expires_at=float("inf"))


@attrs.define
class StubServer:
    engine: Any
    authenticator: Any = attrs.field(factory=StubAuthenticator)
