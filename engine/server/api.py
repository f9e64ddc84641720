"""The HTTP routes: health, metrics, and Convex's function API as `ConvexHttpClient` calls it.

Transport-free: `handle(ctx, request, draining)` maps one complete request to one response;
`engine.server.http` does the bytes. Status codes follow what the Convex client expects:
200 `{"status": "success", "value"}` for a result, 560 `{"status": "error", "errorMessage",
"errorData"}` for a function that failed (any `TurnstileError`, and any unexpected exception as
`Internal`, without a traceback), 401 with the same body for a credential that is not valid,
400 with the same body for a body that is not a function call at all.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import attrs
import orjson

from domain.errors import Internal, InvalidArgs, TurnstileError
from domain.identity import ANONYMOUS, Identity
from domain.routes import RouteRequest
from engine.server.auth import Authenticator, AuthFailed
from engine.server.context import ServerContext
from engine.server.metrics import CONTENT_TYPE, UNKNOWN_FUNCTION
from engine.wire.protocol import MAX_UDF_PATH_LENGTH
from engine.wire.values import convex_to_json, json_to_convex

log = logging.getLogger("turnstile.server")

#: Convex's status for "the function ran and failed" (ConvexHttpClient's STATUS_CODE_UDF_FAILED).
STATUS_FUNCTION_FAILED = 560
JSON = b"application/json"
SYNC_PATH = re.compile(r"^/api/[^/]+/sync$")
FUNCTION_KINDS = {"/api/query": "query", "/api/mutation": "mutation", "/api/action": "action"}
ROUTE_METHODS: dict[str, bytes] = {"/health": b"GET", "/metrics": b"GET"} | {
    path: b"POST" for path in FUNCTION_KINDS
}
CORS_HEADERS: list[tuple[bytes, bytes]] = [(b"access-control-allow-origin", b"*")]
PREFLIGHT_MAX_AGE = b"86400"
DEFAULT_ALLOWED_HEADERS = b"content-type, authorization, convex-client"


@attrs.frozen(kw_only=True)
class HttpRequest:
    """One complete HTTP request, as `engine.server.http` read it."""

    method: bytes
    #: The path without the query string.
    path: str
    headers: dict[bytes, bytes]
    body: bytes = b""
    #: The query string (after "?"), undecoded.
    query: str = ""


@attrs.frozen
class HttpResponse:
    """One HTTP answer, for `engine.server.http` to write."""

    status: int
    body: bytes = b""
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def header_list(self, *, close: bool) -> list[tuple[bytes, bytes]]:
        headers = [*CORS_HEADERS, *self.headers]
        if self.status != 204:
            headers.append((b"content-length", str(len(self.body)).encode()))
        if self.body:
            headers.append((b"content-type", self.content_type))
        if close:
            headers.append((b"connection", b"close"))
        return headers


def json_response(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(body))


def method_not_allowed(allowed: bytes) -> HttpResponse:
    """405 naming the methods the path takes (`Allow`)."""
    body = {"status": "error", "errorMessage": "Method not allowed."}
    return HttpResponse(405, orjson.dumps(body), headers=((b"allow", allowed),))


def error_response(status: int, error: TurnstileError) -> HttpResponse:
    return json_response(
        status,
        {
            "status": "error",
            "errorMessage": error.message,
            "errorData": error.data(),
            "logLines": [],
        },
    )


def route_label(path: str) -> str:
    """A bounded metrics label for a path."""
    if path in ROUTE_METHODS:
        return path
    return "/api/sync" if SYNC_PATH.match(path) else "other"


async def handle(
    ctx: ServerContext, request: HttpRequest, *, draining: bool = False
) -> HttpResponse:
    """Answer one request. Never raises an `Exception` (cancellation passes through)."""
    try:
        response = await _route(ctx, request, draining)
    except Exception:
        log.exception("unexpected failure answering %s %s", request.method, request.path)
        response = error_response(
            STATUS_FUNCTION_FAILED, Internal("The server failed to answer this request.")
        )
    ctx.metrics.http_requests.labels(route_label(request.path), str(response.status)).inc()
    return response


async def _route(ctx: ServerContext, request: HttpRequest, draining: bool) -> HttpResponse:
    if request.method == b"OPTIONS":
        return _preflight(request)
    expected = ROUTE_METHODS.get(request.path)
    if expected is None:
        if SYNC_PATH.match(request.path):
            return json_response(426, {"status": "error", "errorMessage": "Use a WebSocket."})
        builtin = ctx.builtin_routes.get(request.path)
        if builtin is None and request.path.count("/") > 1:
            builtin = ctx.builtin_routes.get(request.path[: request.path.index("/", 1) + 1])
        if builtin is not None:
            answer: HttpResponse = await builtin(ctx, request)
            return answer
        return await app_route(ctx, request)
    # HEAD is GET without the body (the HTTP layer leaves the body out).
    if request.method != expected and not (request.method == b"HEAD" and expected == b"GET"):
        return method_not_allowed(
            expected + (b", HEAD, OPTIONS" if expected == b"GET" else b", OPTIONS")
        )
    if request.path == "/health":
        return _health(ctx, draining)
    if request.path == "/metrics":
        return HttpResponse(200, ctx.metrics.render(), content_type=CONTENT_TYPE.encode())
    return await call_function(ctx, FUNCTION_KINDS[request.path], request)


async def app_route(ctx: ServerContext, request: HttpRequest) -> HttpResponse:
    """An app's HTTP route (domain.routes) for the request, or 404 / 405 if there is none."""
    method = request.method.decode("ascii", "replace")
    route, methods = ctx.engine.registry.route_for(method, request.path)
    if route is None:
        if methods:
            return method_not_allowed(", ".join([*methods, "OPTIONS"]).encode())
        return json_response(404, {"status": "error", "errorMessage": "Not found."})
    try:
        identity = await identify(ctx.authenticator, request.headers.get(b"authorization"))
    except AuthFailed as error:
        return error_response(401, error)
    await ctx.identities.admit(identity)
    routed = RouteRequest(
        method=method,
        path=request.path,
        query=request.query,
        params=dict(parse_qsl(request.query, keep_blank_values=True)),
        headers={
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in request.headers.items()
        },
        body=request.body,
    )
    answer = await ctx.actions.route(route, routed, identity)
    return HttpResponse(
        answer.status,
        answer.body,
        content_type=_header_value(answer.content_type) or b"application/octet-stream",
        headers=tuple(
            (name.lower().encode("ascii"), value)
            for name, raw in answer.headers
            if _TOKEN.fullmatch(name) and name.lower() not in _SERVER_HEADERS
            for value in [_header_value(raw)]
            if value is not None
        ),
    )


#: What a route's response may not set: the server's own framing.
_SERVER_HEADERS = frozenset({"content-type", "content-length", "connection", "transfer-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header_value(value: str) -> bytes | None:
    """A header value as bytes, or None for one HTTP cannot carry (a line break, non-Latin-1)."""
    try:
        encoded = value.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return None if b"\r" in encoded or b"\n" in encoded or b"\0" in encoded else encoded


def _preflight(request: HttpRequest) -> HttpResponse:
    asked = request.headers.get(b"access-control-request-headers") or DEFAULT_ALLOWED_HEADERS
    return HttpResponse(
        204,
        headers=(
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
            (b"access-control-allow-headers", asked),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE),
        ),
    )


def _health(ctx: ServerContext, draining: bool) -> HttpResponse:
    if ctx.engine.recovery is None:
        return json_response(503, {"status": "recovering"})
    if draining:
        return json_response(503, {"status": "stopping"})
    return json_response(200, {"status": "ok", "journalSeq": ctx.engine.committed_seq})


async def identify(authenticator: Authenticator, authorization: bytes | None) -> Identity:
    """The caller named by an `Authorization` header; none is `ANONYMOUS`. Raises `AuthFailed`."""
    if not authorization:
        return ANONYMOUS
    try:
        scheme, _, credential = authorization.decode("ascii").partition(" ")
    except UnicodeDecodeError:
        raise AuthFailed("The Authorization header is not valid.") from None
    credential = credential.strip()
    if scheme == "Convex" and credential:
        return authenticator.admin(credential)
    if scheme == "Bearer" and credential:
        return (await authenticator.authenticate(credential)).identity
    raise AuthFailed("The Authorization header must be 'Convex <admin key>' or 'Bearer <token>'.")


def parse_call(body: bytes) -> tuple[str, Any]:
    """The function path and its args object, still in Convex's JSON encoding. Raises
    `InvalidArgs` when the body is not a function call at all (answered 400); faults of the
    args themselves are the function's to report (560)."""
    try:
        call = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidArgs("The request body is not valid JSON.", path="") from None
    if not isinstance(call, dict):
        raise InvalidArgs("The request body must be a JSON object.", path="")
    path = call.get("path")
    if not isinstance(path, str) or not path:
        raise InvalidArgs("The request needs the function's path.", path="path")
    if len(path) > MAX_UDF_PATH_LENGTH:
        raise InvalidArgs(
            f"A function's path is at most {MAX_UDF_PATH_LENGTH} characters.", path="path"
        )
    if call.get("format", "convex_encoded_json") not in ("convex_encoded_json", "json"):
        raise InvalidArgs("format must be 'convex_encoded_json'.", path="format")
    args = call.get("args", {})
    if isinstance(args, list):
        if len(args) != 1:
            raise InvalidArgs("args must hold exactly one arguments object.", path="args")
        args = args[0]
    if not isinstance(args, dict):
        raise InvalidArgs("The arguments must be an object.", path="args")
    return path, args


async def call_function(ctx: ServerContext, kind: str, request: HttpRequest) -> HttpResponse:
    started = time.perf_counter()
    label = UNKNOWN_FUNCTION
    outcome = "Internal"
    try:
        try:
            path, raw_args = parse_call(request.body)
        except InvalidArgs as error:
            outcome = "BadRequest"
            return error_response(400, error)
        try:
            identity = await identify(ctx.authenticator, request.headers.get(b"authorization"))
        except AuthFailed as error:
            outcome = error.code
            return error_response(401, error)
        await ctx.identities.admit(identity)
        try:
            engine = ctx.engine
            log_lines: list[str] = []
            if kind == "query":
                label = engine.registry.query(path).name
                result = await engine.query(path, json_to_convex(raw_args), identity)
                value = convex_to_json(result.value)
            elif kind == "mutation":
                label = engine.registry.mutation(path).name
                result = await engine.mutation(path, json_to_convex(raw_args), identity)
                value = convex_to_json(result.value)
            else:
                label = engine.registry.action(path).name
                ran = await ctx.actions.run(path, json_to_convex(raw_args), identity)
                value, log_lines = ran.value, list(ran.log_lines)
            body = {"status": "success", "value": value, "logLines": log_lines}
        except TurnstileError as error:
            outcome = error.code
            return error_response(STATUS_FUNCTION_FAILED, error)
        outcome = "success"
        return json_response(200, body)
    finally:
        ctx.metrics.observe_call(label, kind, "http", outcome, time.perf_counter() - started)


__all__ = ["HttpRequest", "HttpResponse", "handle", "identify", "method_not_allowed", "parse_call"]
