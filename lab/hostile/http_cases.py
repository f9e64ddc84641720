"""Hostile HTTP: a strategy for connections carrying requests (well-formed, sloppy or garbage)
with the answer each must get, and the runner that sends one and checks.

A case is one TCP connection: either raw bytes (random, or a request line followed by random
bytes), which must get no server failure (5xx) and never a traceback; or one to four
requests sent back to back (pipelined), each built from a method, a path, an `Authorization`
variant, a body (a function call, or something that is not one) and a framing (Content-Length,
chunked, `Expect: 100-continue`, cut short, larger than the limit), answered in order:

- OPTIONS 204; an unknown path 404 (426 for the sync path); a wrong method 405;
- `GET /health` 200, `GET /metrics` 200 (HEAD: the same status, no body);
- a function route: a body cut short 400, too large 413 (both close the connection), a body
  that is not a function call 400 `InvalidArgs`, a bad credential 401 `Unauthenticated`, an
  action 560 `NotFound`, else 200 or 560 with the code the call must get (queries: the
  engine's own answer for the same call; never `Internal` or `Overloaded`);
- an action: the app's `hostile:echo` answers its text, or `InvalidArgs`; any other name
  `NotFound`;
- the app's routes (lab.hostile.app) 200 to anyone with no or a valid credential (401 with a
  bad one), 405 for another method; Turnstile's own: `/stripe/webhook` 400 (nothing here can
  sign) and 405; `/releases/ingest` and `/cron/...` 401, 403 or (admin) 400 and 404.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson
from hypothesis import strategies as st

from domain.identity import ADMIN, ANONYMOUS, Identity
from lab.hostile.app import ECHO, ECHO_PATH, FILES_PREFIX, echo_outcome
from lab.hostile.sync_cases import NEVER, Credentials, query_outcome, well_formed_creates
from lab.hostile.target import Target
from lab.hostile.values import MAX_FUNCTION_NAME, Call, calls, convex_values, echo_calls
from lab.hostile.wire import Answer, ServerMisbehaved, check_no_leak, exchange, parse_answers

FUNCTION_ROUTES = {"/api/query": "query", "/api/mutation": "mutation", "/api/action": "action"}
ROUTES = {"/health": "GET", "/metrics": "GET"} | {path: "POST" for path in FUNCTION_ROUTES}
STATUS_FUNCTION_FAILED = 560
SYNC_PATH = re.compile(r"^/api/[^/]+/sync$")


@attrs.frozen
class Request:
    data: bytes
    why: str
    #: The status this request must get; None when the connection must have closed before.
    status: int
    #: For function calls: the call and the identity it runs as (None: no function answer).
    call: Call | None = None
    kind: str = ""
    identity: Identity = ANONYMOUS
    #: Expected errorData.code/path for 400/401 answers.
    code: str | None = None
    path: str | None = None
    #: Whether the server closes the connection after answering it.
    closes: bool = False
    #: The value a 200 function answer must carry (an action's), if known.
    value: Any = None
    head_only: bool = False


@attrs.frozen
class HttpCase:
    requests: tuple[Request, ...] = ()
    raw: bytes | None = None
    why: str = ""

    def describe(self) -> str:
        if self.raw is not None:
            return f"raw ({self.why}): {self.raw[:300]!r}"
        return "\n".join(f"  {r.why} -> {r.status}: {r.data[:300]!r}" for r in self.requests)


def _head(method: str, target: str, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@st.composite
def authorization(draw: st.DrawFn, credentials: Credentials) -> tuple[str | None, Identity | None]:
    """An Authorization header and the identity it gives (None: refused with 401)."""
    choice = draw(st.integers(0, 7))
    if choice == 0:
        return None, ANONYMOUS
    if choice == 1:
        return f"Convex {credentials.admin_key}", ADMIN
    if choice == 2:
        return f"Bearer {credentials.user_token}", credentials.user
    if choice == 3:
        return f"Bearer {draw(st.sampled_from(credentials.bad_tokens[:-1]))}", None
    if choice == 4:
        return f"Convex {draw(st.text(st.characters(min_codepoint=33, max_codepoint=126)))}x", None
    if choice == 5:
        malformed = ["Basic dXNlcjpwYXNz", "Bearer", "Convex", "token", "x y"]
        return draw(st.sampled_from(malformed)), None
    if choice == 6:
        return "Bearer \xe9t\xe9", None  # latin-1 bytes that are not ASCII
    return "", ANONYMOUS  # an empty header is no credential


@st.composite
def not_a_call(draw: st.DrawFn) -> tuple[bytes, str]:
    """A body that is not a function call, and the errorData.path the 400 must name."""
    choice = draw(st.integers(0, 6))
    if choice == 0:
        return draw(st.binary(max_size=100).filter(_not_json)), ""
    if choice == 1:
        return orjson.dumps(draw(convex_values.filter(lambda v: not isinstance(v, dict)))), ""
    if choice == 2:
        return orjson.dumps({"args": {}}), "path"
    if choice == 3:
        bad_path: Any = draw(st.sampled_from(["", 5, None, [], {"a": 1}]))
        return orjson.dumps({"path": bad_path, "args": {}}), "path"
    if choice == 4:
        bad_format: Any = draw(st.sampled_from(["xml", 1, [], None, "JSON"]))
        if bad_format is None:
            return orjson.dumps({"path": "events:list", "format": bad_format}), "format"
        return orjson.dumps({"path": "events:list", "format": bad_format, "args": {}}), "format"
    if choice == 5:
        args = draw(st.sampled_from([[], [{}, {}], [1, 2, 3]]))
        return orjson.dumps({"path": "events:list", "args": args}), "args"
    value = draw(convex_values.filter(lambda v: not isinstance(v, dict | list)))
    return orjson.dumps({"path": "events:list", "args": value}), "args"


def _not_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return True
    return False


@st.composite
def request_case(
    draw: st.DrawFn,
    queries: Mapping[str, Sequence[str]],
    mutations: Mapping[str, Sequence[str]],
    credentials: Credentials,
    max_body: int,
    last: bool,
) -> Request:
    """One request (see the module doc). `last`: it may be one that closes the connection."""
    path = draw(
        st.sampled_from(sorted(ROUTES))
        | st.sampled_from(["/api/1.17.0/sync", "/", "/api", "/api/query/", "/HEALTH"])
        | st.sampled_from(OTHER_ROUTES)
        | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30).map(
            lambda p: "/" + p.replace("?", "")
        )
    )
    method = draw(st.sampled_from(["GET", "POST", "OPTIONS", "PUT", "DELETE", "HEAD", "PATCH"]))
    query = draw(st.sampled_from(["", "?a=1", "?"]))
    header, identity = draw(authorization(credentials))
    headers: list[tuple[str, str]] = []
    if header is not None:
        headers.append(("Authorization", header))
    extra = draw(
        st.lists(
            st.sampled_from(
                [
                    ("Content-Type", "application/json"),
                    ("Content-Type", "text/plain"),
                    ("Convex-Client", "npm-1.17.0"),
                    ("Origin", "http://evil.example"),
                    ("Accept-Encoding", "gzip"),
                    ("Connection", "keep-alive"),
                    ("X-Padding", "x" * 4000),
                ]
            ),
            max_size=3,
        )
    )
    headers.extend(extra)

    call: Call | None = None
    kind = FUNCTION_ROUTES.get(path, "")
    body = b""
    code: str | None = None
    error_path: str | None = None
    if kind and method == "POST":
        if draw(st.integers(0, 4)) == 0:
            body, error_path = draw(not_a_call())
            code = "InvalidArgs"
        else:
            strategy = calls(queries) if kind == "query" else calls(mutations)
            if kind == "mutation":
                strategy = strategy | well_formed_creates()
            if kind == "action":  # the app's action half the time: the rest are NotFound
                strategy = echo_calls() if draw(st.booleans()) else strategy
            call = draw(strategy)
            call_format = draw(st.sampled_from([None, "convex_encoded_json", "json"]))
            wire: dict[str, Any] = {"path": call.name, "args": [call.args]}
            if call_format is not None:
                wire["format"] = call_format
            if draw(st.integers(0, 4)) == 0 and isinstance(call.args, dict):
                wire["args"] = call.args  # ConvexHttpClient also accepts a bare object
            body = orjson.dumps(wire)
            if not call.name or len(call.name) > MAX_FUNCTION_NAME:  # not a function's name
                code, error_path, call = "InvalidArgs", "path", None
            elif not isinstance(call.args, dict):
                code, error_path, call = "InvalidArgs", "args", None
    elif draw(st.integers(0, 3)) == 0:
        body = draw(st.binary(max_size=50))

    framing = draw(
        st.sampled_from(
            ["length", "length", "chunked", "continue"] + (["short", "huge"] if last else [])
        )
    )
    if framing == "huge":
        headers.append(("Content-Length", str(max_body + 1 + draw(st.integers(0, 10**12)))))
        data = _head(method, path + query, headers)
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        cut = draw(st.integers(0, len(body)))
        chunks = [part for part in (body[:cut], body[cut:]) if part]
        data = (
            _head(method, path + query, headers)
            + b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in chunks)
            + b"0\r\n\r\n"
        )
    else:
        if framing == "continue":
            headers.append(("Expect", "100-continue"))
        declared = len(body) + (draw(st.integers(1, 100)) if framing == "short" else 0)
        headers.append(("Content-Length", str(declared)))
        data = _head(method, path + query, headers) + body

    why = f"{method} {path} ({framing}, auth {header!r:.30})"
    head_only = method == "HEAD"
    if framing == "huge" or len(body) > max_body:
        return Request(data, why, 413, closes=True, head_only=head_only)
    if framing == "short":
        return Request(data, why, 400, closes=True, head_only=head_only)
    if method == "OPTIONS":
        return Request(data, why, 204)
    if path not in ROUTES:
        routed = other_route_status(path, method, identity)
        if routed is not None:
            return Request(data, why, routed, head_only=head_only)
        status = 426 if SYNC_PATH.match(path) else 404
        return Request(data, why, status, head_only=head_only)
    if method != ROUTES[path] and not (head_only and ROUTES[path] == "GET"):
        return Request(data, why, 405, head_only=head_only)
    if not kind:
        return Request(data, why, 200, head_only=head_only)
    if code is not None:
        return Request(data, why, 400, code=code, path=error_path)
    if identity is None:
        return Request(data, why, 401, code="Unauthenticated")
    assert call is not None
    if kind == "action":
        if call.name != ECHO:
            return Request(data, why, STATUS_FUNCTION_FAILED, code="NotFound")
        outcome, text = echo_outcome(call.args)
        if outcome != "success":
            return Request(data, why, STATUS_FUNCTION_FAILED, code=outcome)
        return Request(data, why, 200, value=text)
    return Request(data, why, 0, call=call, kind=kind, identity=identity)


#: Paths of the app's routes (lab.hostile.app) and Turnstile's own, beside the function API.
OTHER_ROUTES = [
    ECHO_PATH,
    FILES_PREFIX + "a.txt",
    FILES_PREFIX,
    FILES_PREFIX.rstrip("/"),
    "/stripe/webhook",
    "/releases/ingest",
    "/cron/",
    "/cron/noSuchJob",
]


def other_route_status(path: str, method: str, identity: Identity | None) -> int | None:
    """The status an app route or a built-in one answers (none of these cases can sign for
    Stripe, nor send a release report), or None for a path none of them serves."""
    if path == ECHO_PATH:
        return (401 if identity is None else 200) if method == "POST" else 405
    if path.startswith(FILES_PREFIX):
        return (401 if identity is None else 200) if method in ("GET", "HEAD") else 405
    if path == "/stripe/webhook":
        return 400 if method == "POST" else 405
    if path == "/releases/ingest" or path.startswith("/cron/"):
        if method != "POST":
            return 405
        if identity is None:
            return 401
        if not identity.is_admin:
            return 403
        return 400 if path == "/releases/ingest" else 404
    return None


@st.composite
def http_cases(
    draw: st.DrawFn,
    queries: Mapping[str, Sequence[str]],
    mutations: Mapping[str, Sequence[str]],
    credentials: Credentials,
    max_body: int,
) -> HttpCase:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return HttpCase(raw=draw(st.binary(min_size=1, max_size=300)), why="random bytes")
    if choice == 1:
        line = draw(
            st.sampled_from(
                [
                    b"POST /api/query HTTP/1.1\r\n",
                    b"GET /health HTTP/1.1\r\n",
                    b"GET /api/1.0/sync HTTP/1.1\r\n",
                ]
            )
        )
        rest = draw(st.binary(max_size=300))
        return HttpCase(raw=line + rest + b"\r\n\r\n", why="a request line, then junk")
    if choice == 2:
        return HttpCase(raw=draw(st.sampled_from(MALFORMED)), why="a malformed head")
    count = draw(st.integers(1, 4))
    requests = [
        draw(request_case(queries, mutations, credentials, max_body, last=i == count - 1))
        for i in range(count)
    ]
    return HttpCase(requests=tuple(requests))


#: Heads h11 must refuse (400) before any route is looked at.
MALFORMED = (
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
    b"GET /health HTTP/1.1\r\n\r\n",  # no Host
    b"GET /h\xffalth HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET  /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
    b"POST /api/query HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n",
)


async def play_http_case(target: Target, case: HttpCase) -> None:
    """Send `case` on one connection (then EOF) and check every answer."""
    if case.raw is not None:
        received = await exchange(target.port, case.raw)
        check_no_leak(received)
        for answer in parse_answers(received):
            if case.why == "a malformed head" and answer.status != 400:
                raise ServerMisbehaved(f"a malformed head answered {answer.status}")
            # Junk may happen to be a request (b"GET /health HTTP/1.0\n\n" is): any answer but
            # a server failure will do.
            if answer.status >= 500 and answer.status not in (501, 505):
                raise ServerMisbehaved(f"junk answered {answer.status}: {answer.body[:200]!r}")
        return
    received = await exchange(target.port, b"".join(r.data for r in case.requests))
    check_no_leak(received)
    expected: list[Request] = []
    for request in case.requests:  # a request the server answers by closing is the last
        expected.append(request)
        if request.closes:
            break
    heads = [request.head_only for request in expected]
    answers = [a for a in parse_answers(received, heads) if a.status != 100]
    if len(answers) != len(expected):
        raise ServerMisbehaved(
            f"{len(expected)} requests got {len(answers)} answers: {[a.status for a in answers]}"
        )
    for request, answer in zip(expected, answers, strict=True):
        await _check_answer(target, request, answer)


async def _check_answer(target: Target, request: Request, answer: Answer) -> None:
    where = request.why
    if request.call is None:
        if answer.status != request.status:
            raise ServerMisbehaved(f"{where}: status {answer.status}, not {request.status}")
        if request.head_only and answer.body:
            raise ServerMisbehaved(f"{where}: a HEAD answer carries a body")
        if request.value is not None and answer.json().get("value") != request.value:
            raise ServerMisbehaved(f"{where}: value {answer.body[:200]!r}, not {request.value!r}")
        if request.code is not None:
            data = answer.json()["errorData"]
            if data["code"] != request.code:
                raise ServerMisbehaved(f"{where}: code {data['code']}, not {request.code}")
            if request.path is not None and data.get("path") != request.path:
                raise ServerMisbehaved(f"{where}: path {data.get('path')!r}, not {request.path!r}")
        return
    call = request.call
    if answer.status == 200:
        code = None
        body = answer.json()
        if body.get("status") != "success" or "value" not in body:
            raise ServerMisbehaved(f"{where}: a 200 that is not a success: {body}")
    elif answer.status == STATUS_FUNCTION_FAILED:
        body = answer.json()
        data = body.get("errorData")
        if body.get("status") != "error" or not isinstance(data, dict):
            raise ServerMisbehaved(f"{where}: a 560 without errorData: {body}")
        code = data.get("code")
        if body.get("errorMessage") != data.get("message"):
            raise ServerMisbehaved(f"{where}: errorMessage differs from errorData.message")
    else:
        raise ServerMisbehaved(f"{where}: status {answer.status} {answer.body[:300]!r}")
    if code in NEVER:
        raise ServerMisbehaved(f"{where}: {call.name[:80]!r} ({call.why}) failed with {code}")
    if call.known:
        data = answer.json().get("errorData") or {}
        if code != call.expect_code or (
            call.expect_path is not None and data.get("path") != call.expect_path
        ):
            raise ServerMisbehaved(
                f"{where}: {call.name[:80]!r} ({call.why}) must fail with {call.expect_code}"
                f" {call.expect_path!r}, got {code} {str(data)[:300]}"
            )
    elif request.kind == "query":
        status, detail = await query_outcome(target, call, request.identity)
        if (status == "ok") != (code is None) or (status == "error" and detail != code):
            raise ServerMisbehaved(
                f"{where}: query {call.name!r} answered {code or 'success'} over HTTP, the"
                f" engine answers {detail if status == 'error' else 'success'}"
            )


__all__ = ["HttpCase", "http_cases", "play_http_case"]
