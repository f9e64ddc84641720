"""HTTP routes: an app's handlers for raw HTTP requests (Convex's `httpRouter`), on the
server's own port: webhooks in (a payment provider's events, a deploy pipeline's), health and
cron triggers for an operator.

An app declares `HttpRoute(method="POST", path="/shop/webhook", handle=...)`, or with
`prefix=True` every path under `path`. The handler gets an `ActionContext` (domain.actions: it
runs queries, mutations and actions, and fetches) whose caller is who the request's
`Authorization` header names (nobody, if none), and the whole `RouteRequest`; it returns a
`RouteResponse`. A handler that raises a `TurnstileError` answers it as JSON with the status
that fits its code (InvalidArgs 400, Unauthenticated 401, Forbidden 403, NotFound 404,
Conflict 409, RateLimited 429, Overloaded 503, anything else 500).

Refused when the apps are loaded, before anything starts: a route under a path Turnstile
serves itself (`RESERVED_PREFIXES`) or on one of its own routes (`BUILTIN_ROUTES`), a path
that does not begin with "/", a method that is not an HTTP token, and the same method and
path declared twice (by one app or two). When several routes match, an exact path wins over
a prefix and a longer prefix over a shorter one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from domain.actions import MAX_ACTION_SECONDS, ActionContext
from domain.errors import InvalidArgs

#: Paths Turnstile answers itself, which no route may claim (a path equal to one, or under it).
RESERVED_PREFIXES = ("/api/", "/health", "/metrics", "/dashboard")
#: Turnstile's own routes (the webhooks and operations built in), which no app route may take.
BUILTIN_ROUTES = ("/stripe/webhook", "/releases/ingest", "/cron/")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


@attrs.frozen(kw_only=True)
class RouteRequest:
    """One whole HTTP request, as a route's handler gets it."""

    method: str
    #: The path, without the query string.
    path: str
    #: The query string, undecoded.
    query: str
    #: The query string's parameters, decoded (the last value of a repeated one).
    params: Mapping[str, str]
    #: Header names in lower case; a repeated header's values joined with ", ".
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; InvalidArgs (400) if it is not."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgs("The request body is not valid JSON.", path="body") from None


@attrs.frozen(kw_only=True)
class RouteResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    #: Further headers (not Content-Type or Content-Length: those are the server's).
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of_json(cls, value: Any, *, status: int = 200) -> RouteResponse:
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status=status, body=body, content_type="application/json")


@attrs.frozen(kw_only=True)
class HttpRoute:
    method: str
    path: str
    handle: Callable[[ActionContext, RouteRequest], Awaitable[RouteResponse]]
    #: Every path under `path` (which then ends with "/"), not only `path` itself.
    prefix: bool = False
    #: The most the handler may run, in seconds (past it: 504, what it committed stays).
    timeout_seconds: float = 30.0

    def problem(self) -> str | None:
        """What is wrong with the route's declaration alone, or None."""
        if self.method not in METHODS:
            return f"method {self.method!r} is not one of {', '.join(sorted(METHODS))}"
        if not _PATH.match(self.path) or "//" in self.path:
            return f"path {self.path!r} is not an absolute URL path"
        if self.prefix and not self.path.endswith("/"):
            return f"prefix {self.path!r} must end with '/'"
        for reserved in RESERVED_PREFIXES:
            stem = reserved.rstrip("/")
            if (
                self.path == stem
                or self.path.startswith(stem + "/")
                or (self.prefix and stem.startswith(self.path))
            ):
                return f"path {self.path!r} is under {reserved!r}, which Turnstile serves"
        for builtin in BUILTIN_ROUTES:
            prefix = builtin.endswith("/")
            if (
                self.path == builtin
                or (prefix and self.path.startswith(builtin))
                or (self.prefix and builtin.startswith(self.path))
            ):
                return f"path {self.path!r} is Turnstile's own route {builtin!r}"
        if not 0 < self.timeout_seconds <= MAX_ACTION_SECONDS:
            return f"timeout_seconds is above 0 and at most {MAX_ACTION_SECONDS}"
        return None

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


__all__ = [
    "BUILTIN_ROUTES",
    "METHODS",
    "RESERVED_PREFIXES",
    "HttpRoute",
    "RouteRequest",
    "RouteResponse",
]
