"""Actions: an app's functions that run outside the actors (Convex's `action`).

A mutation is decided inside an actor, synchronously, and may not wait on anything; an action
is a coroutine that may: call a payment provider, send an email, wait on a timeout. It reaches
the app's data only as a client does, through its `ActionContext`: `run_query`, `run_mutation`
and `run_action` call registered functions with the action's caller as their caller (so every
rule and tenancy check of those functions holds), and `fetch` makes an outbound HTTP request
with a timeout. What an action did is exactly what its mutations committed: an action that
fails halfway keeps the mutations it had completed, as in Convex; make each one idempotent or
schedule the rest.

Declared on an `App` (`actions=(ActionSpec(...),)`), served over WebSocket (`Action`) and
`POST /api/action`, and from HTTP routes (domain.routes), whose handlers get the same context.
The engine bounds how many run at once and each one's time (`timeout_seconds`); a handler that
raises answers an error to its caller and disturbs nobody else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

import attrs

from domain.errors import InvalidArgs
from domain.identity import Identity

A = TypeVar("A")

#: An action's time unless its spec says otherwise, and the most it may say.
DEFAULT_ACTION_SECONDS = 60.0
MAX_ACTION_SECONDS = 600.0


@attrs.frozen(kw_only=True)
class FetchResponse:
    """What `ActionContext.fetch` got back: the whole response, read."""

    status: int
    #: Header names in lower case; a repeated header's values joined with ", ".
    headers: Mapping[str, str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; InvalidArgs if it is not."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgs("The response body is not JSON.", path="body") from None


class ActionContext(Protocol):
    """What an action (or an HTTP route's handler) can do besides computing."""

    @property
    def identity(self) -> Identity:
        """The caller: the functions it runs run as this caller."""
        ...

    async def run_query(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        """The query's value now, as its caller would read it (wire form: what a client gets)."""
        ...

    async def run_mutation(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run the mutation; its value once it is durable. Raises the mutation's error."""
        ...

    async def run_action(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run another action within this one's time."""
        ...

    async def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        json: Any = None,
        timeout_seconds: float = 10.0,
    ) -> FetchResponse:
        """An outbound HTTP request (at most `timeout_seconds`, and never past the action's
        own time). A connection or protocol failure raises `FetchFailed`."""
        ...

    def log(self, *parts: object) -> None:
        """A log line for the caller (Convex's `logLines`) and the server's log."""
        ...

    async def run_after(
        self, delay_ms: int, function: str, args: Mapping[str, Any] | None = None
    ) -> str:
        """Schedule mutation or action `function` to run `delay_ms` from now, once (as the
        system caller); the schedule's id, once it is durable (docs/apps.md, 5b)."""
        ...

    async def run_at(self, at_ms: int, function: str, args: Mapping[str, Any] | None = None) -> str:
        """The same at `at_ms` (ms since the epoch; a past time runs at once)."""
        ...

    async def cancel_scheduled(self, scheduled_id: str) -> None:
        """Cancel a pending schedule of the caller's organization (`Conflict` once it runs)."""
        ...

    def as_system(self) -> ActionContext:
        """This context with the engine's system caller (an admin) as its caller: for a route
        that has authenticated its request by its own means (a webhook's verified signature),
        whose writes no user's identity would allow. Same deadline and log."""
        ...


class FetchFailed(Exception):
    """An outbound request that got no response (refused, timed out, broken)."""


@attrs.frozen(kw_only=True)
class ActionSpec(Generic[A]):
    """A client-callable action: `run(ctx, args)` with `args` decoded into `args_type`."""

    name: str
    args_type: type[A]
    run: Callable[[ActionContext, A], Awaitable[Any]]
    #: The most it may run, in seconds (at most MAX_ACTION_SECONDS): past it, it is cancelled
    #: and its caller told (`Internal`), what it committed staying committed.
    timeout_seconds: float = DEFAULT_ACTION_SECONDS
    #: The result's type, for `turnstile codegen` (None: not declared).
    returns: Any = None

    def __attrs_post_init__(self) -> None:
        if not 0 < self.timeout_seconds <= MAX_ACTION_SECONDS:
            raise ValueError(
                f"action {self.name}: timeout_seconds is above 0 and at most {MAX_ACTION_SECONDS}"
            )


__all__ = [
    "DEFAULT_ACTION_SECONDS",
    "MAX_ACTION_SECONDS",
    "ActionContext",
    "ActionSpec",
    "FetchFailed",
    "FetchResponse",
]
