"""Runs actions and HTTP routes' handlers (domain.actions, domain.routes) beside the engine.

Plan:
- One `ActionRunner` per server (`serve` makes it). It owns one `httpx.AsyncClient` for every
  action's `fetch` (pooled connections, timeouts; httpx runs on trio through anyio), closed when
  the server stops.
- `run(name, args, identity)`: the action is looked up (NotFound) and its args decoded
  (InvalidArgs) before it takes a slot; at most `max_running` actions run at once and at most
  `max_waiting` wait for a slot (one more is `Overloaded`, answered at once). It runs under
  `trio.move_on_after(spec.timeout_seconds)`: past it the handler is cancelled and its caller
  told (`Internal`, with `timeoutSeconds`), what its mutations committed staying committed. A
  handler's `TurnstileError` is its caller's answer; any other exception is logged with its
  traceback and answered `Internal`, without it. Nothing of one action reaches another.
- The context: `run_query` and `run_mutation` go through the engine as a client's calls do, as
  the action's caller; `run_action` runs another action inside this one's slot and deadline (a
  chain of actions cannot exhaust the slots and deadlock); `fetch` is bounded by its own timeout
  and the action's deadline; `log` keeps at most `MAX_LOG_LINES` lines of at most
  `MAX_LOG_LINE` characters for the caller (Convex's `logLines`) and writes each to the
  server's log.
- `route(route, request, identity)` runs an HTTP route's handler the same way, with the route's
  own timeout (504 past it) and its errors mapped to statuses (domain.routes).
- Scheduled functions: `run_after` / `run_at` / `cancel_scheduled` on the context go through
  `Engine.schedule_function` / `cancel_scheduled` as the action's caller; while a server
  serves, `ActionDispatch` lets a schedule name an action too (run as the system caller).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import orjson
import trio

from domain.actions import ActionSpec, FetchFailed, FetchResponse
from domain.errors import Internal, InvalidArgs, NotFound, Overloaded, TurnstileError
from domain.identity import Identity
from domain.routes import HttpRoute, RouteRequest, RouteResponse
from engine import codec
from engine.actor import SYSTEM, RequestKey
from engine.scheduled import MutationDispatch
from engine.wire.values import convex_to_json

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger("turnstile.actions")

#: Log lines kept for an action's caller, and the characters of each.
MAX_LOG_LINES = 256
MAX_LOG_LINE = 4_096
#: The statuses a route's `TurnstileError` answers (anything else: 500).
ERROR_STATUS = {
    "InvalidArgs": 400,
    "Unauthenticated": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "Conflict": 409,
    "RateLimited": 429,
    "Overloaded": 503,
}


@attrs.frozen(kw_only=True)
class ActionLimits:
    """How many actions (and route handlers) run at once, and wait for a slot."""

    max_running: int = 64
    max_waiting: int = 1_024


@attrs.frozen
class ActionOutcome:
    #: The action's value in Convex's JSON encoding.
    value: Any
    log_lines: tuple[str, ...]


class _Context:
    """The `ActionContext` of one action or route handler."""

    def __init__(self, runner: ActionRunner, identity: Identity, name: str, deadline: float):
        self._runner = runner
        self._identity = identity
        self._name = name
        self.deadline = deadline
        self.lines: list[str] = []

    @property
    def identity(self) -> Identity:
        return self._identity

    async def run_query(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        outcome = await self._runner.engine.query(name, dict(args or {}), self._identity)
        return outcome.value

    async def run_mutation(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        outcome = await self._runner.engine.mutation(name, dict(args or {}), self._identity)
        return outcome.value

    async def run_action(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        spec = self._runner.engine.registry.action(name)
        parsed = codec.decode_args(dict(args or {}), spec.args_type)
        inner = _Context(self._runner, self._identity, spec.name, self.deadline)
        inner.lines = self.lines
        return await spec.run(inner, parsed)

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
        if body is not None and json is not None:
            raise InvalidArgs("fetch takes a body or json, not both.", path="body")
        if json is not None:
            body = orjson.dumps(json)
            headers = {"content-type": "application/json", **(headers or {})}
        remaining = self.deadline - trio.current_time()
        limit = max(0.0, min(timeout_seconds, remaining))
        try:
            with trio.fail_after(limit):
                response = await self._runner.http.request(
                    method, url, headers=dict(headers or {}), content=body, timeout=limit
                )
        except (httpx.HTTPError, trio.TooSlowError, ValueError) as error:
            raise FetchFailed(f"{method} {url}: {type(error).__name__}: {error}") from None
        joined: dict[str, str] = {}
        for key, value in response.headers.multi_items():
            name = key.lower()
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        return FetchResponse(status=response.status_code, headers=joined, body=response.content)

    async def run_after(
        self, delay_ms: int, function: str, args: Mapping[str, Any] | None = None
    ) -> str:
        if delay_ms < 0:
            raise InvalidArgs("delay_ms is not negative.", path="delayMs")
        engine = self._runner.engine
        return await self.run_at(engine.now_ms() + delay_ms, function, args)

    async def run_at(self, at_ms: int, function: str, args: Mapping[str, Any] | None = None) -> str:
        engine = self._runner.engine
        return await engine.schedule_function(function, dict(args or {}), at_ms, self._identity)

    async def cancel_scheduled(self, scheduled_id: str) -> None:
        await self._runner.engine.cancel_scheduled(scheduled_id, self._identity)

    def as_system(self) -> _Context:
        inner = _Context(self._runner, SYSTEM, self._name, self.deadline)
        inner.lines = self.lines
        return inner

    def log(self, *parts: object) -> None:
        line = " ".join(str(part) for part in parts)[:MAX_LOG_LINE]
        log.info("action %s: %s", self._name, line)
        if len(self.lines) < MAX_LOG_LINES:
            self.lines.append(f"[LOG] {line}")


class ActionRunner:
    """Runs actions and route handlers for one server (see the module's docstring)."""

    def __init__(
        self,
        engine: Engine,
        *,
        limits: ActionLimits | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.engine = engine
        self.limits = limits or ActionLimits()
        self.http = http or httpx.AsyncClient(follow_redirects=False)
        #: Where actions asked over the sync protocol run (`serve` sets it): they outlive the
        #: session that asked, and end with the server.
        self.nursery: trio.Nursery | None = None
        self._slots = trio.CapacityLimiter(self.limits.max_running)
        self._waiting = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _slot(self) -> None:
        if self._slots.available_tokens == 0 and self._waiting >= self.limits.max_waiting:
            raise Overloaded("Too many actions are waiting to run; retry shortly.")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1

    async def run(self, name: str, args: Any, identity: Identity) -> ActionOutcome:
        """Run action `name` with `args` (Convex values) as `identity`; raises its
        `TurnstileError`, or `Internal` for a failure of its own or its time running out."""
        spec: ActionSpec[Any] = self.engine.registry.action(name)
        parsed = codec.decode_args(args, spec.args_type)
        await self._slot()
        try:
            ctx = _Context(self, identity, spec.name, trio.current_time() + spec.timeout_seconds)
            value = await self._within(ctx, spec.timeout_seconds, spec.run(ctx, parsed), spec.name)
            return ActionOutcome(convex_to_json(value), tuple(ctx.lines))
        finally:
            self._slots.release()

    async def _within(self, ctx: _Context, seconds: float, work: Any, name: str) -> Any:
        with trio.move_on_after(seconds) as scope:
            try:
                return await work
            except TurnstileError:
                raise
            except Exception:
                log.exception("%s failed", name)
                raise Internal(f"{name} failed on the server.") from None
        assert scope.cancelled_caught
        raise Internal(f"{name} ran past its time limit.", timeoutSeconds=seconds)

    async def route(
        self, route: HttpRoute, request: RouteRequest, identity: Identity
    ) -> RouteResponse:
        """Answer `request` with `route`'s handler (see the module's docstring)."""
        try:
            await self._slot()
        except Overloaded as error:
            return _error(503, error)
        try:
            name = f"route {route.method} {route.path}"
            ctx = _Context(self, identity, name, trio.current_time() + route.timeout_seconds)
            response = await self._within(
                ctx, route.timeout_seconds, route.handle(ctx, request), name
            )
            if not isinstance(response, RouteResponse):
                log.error("%s answered %r, not a RouteResponse", name, type(response))
                return _error(500, Internal("The route failed on the server."))
            return response
        except TurnstileError as error:
            if "timeoutSeconds" in error.details:
                return _error(504, error)
            return _error(ERROR_STATUS.get(error.code, 500), error)
        finally:
            self._slots.release()


class ActionDispatch:
    """Scheduled functions (engine.scheduled) that reach actions as well as mutations: the
    dispatch a server installs while it serves (`install`), since actions run in its runner."""

    def __init__(self, runner: ActionRunner) -> None:
        self._runner = runner
        self._mutations = MutationDispatch(runner.engine)

    @classmethod
    def install(cls, runner: ActionRunner) -> Callable[[], None]:
        """Reach `runner`'s actions from the engine's scheduled functions; the returned call
        puts the engine's own dispatch back (when the server stops)."""
        scheduled = runner.engine.scheduled
        before = scheduled.dispatch
        scheduled.dispatch = cls(runner)

        def restore() -> None:
            scheduled.dispatch = before

        return restore

    def check(self, function: str, args: Mapping[str, Any]) -> str:
        try:
            return self._mutations.check(function, args)
        except InvalidArgs as refused:
            if refused.details.get("path") != "function":
                raise
        try:
            spec = self._runner.engine.registry.action(function)
        except (NotFound, InvalidArgs):
            raise InvalidArgs(
                f"{function!r} is no mutation or action that can be scheduled.", path="function"
            ) from None
        codec.decode_args(dict(args), spec.args_type)
        return spec.name

    async def run(self, function: str, args: dict[str, Any], request: RequestKey) -> Any:
        if function in self._runner.engine.registry.actions:
            return (await self._runner.run(function, args, SYSTEM)).value
        return await self._mutations.run(function, args, request)


def _error(status: int, error: TurnstileError) -> RouteResponse:
    return RouteResponse.of_json({"code": error.code, "message": error.message}, status=status)


__all__ = ["ActionDispatch", "ActionLimits", "ActionOutcome", "ActionRunner"]
