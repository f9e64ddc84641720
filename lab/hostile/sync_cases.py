"""Hostile sync sessions: a strategy that builds a whole session (a list of frames) together with
what the server must answer, and the runner that plays one against a live server and checks.

A case keeps a model of the session while it is built (query set and identity versions, the
live queries, the request ids used), so each frame is either one the server must accept or one
it must refuse, and the case knows which:

- accepted frames: Connect, Authenticate with a good credential, ModifyQuerySet adding and
  removing queries (any function name, any args), Mutation and Action (any name and args,
  request ids reused within and across sessions), Event telemetry; text or binary frames;
- how a case may end: a frame the server must answer with FatalError and a close (random bytes,
  JSON that is not a message, missing or mistyped fields, out-of-order versions, duplicate or
  unknown query ids, ...), a bad credential (AuthError and a close), a frame above the size
  limit (close 1009), or nothing (the client closes).

The runner checks every server message as Convex's client would (`SyncPeer`), then the answers:
each mutation and action answered under its request id with the code its call must get (never
`Internal` or `Overloaded`), a request id executed before answering with its original result
and `ts` (also from another connection of the same session id), every live query's result or
error, the final versions, and that no traceback reached the client.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import jwt
import orjson
import trio
import trio_websocket
from hypothesis import assume
from hypothesis import strategies as st

from domain.errors import TurnstileError
from domain.identity import ADMIN, ANONYMOUS, Identity
from engine.wire.protocol import decode_ts
from engine.wire.values import json_to_convex
from lab.hostile.app import ECHO, echo_outcome
from lab.hostile.target import Target
from lab.hostile.values import MAX_FUNCTION_NAME, Call, calls, convex_values, echo_calls, keys
from lab.hostile.wire import ServerMisbehaved, SyncPeer, open_ws

#: Protocol integers must be JavaScript-safe (Convex's ids and versions are JS numbers).
MAX_PROTOCOL_INT = 2**53 - 1
#: Longest session id the server takes (Convex's are 36-character UUIDs).
MAX_SESSION_ID = 128
#: Session ids shared by many cases, so that request ids are re-sent across connections.
SHARED_SESSIONS = ("fuzz-session-1", "fuzz-session-2", "fuzz-session-3")
#: Seconds within which a session must end after a frame that ends it.
END_SECONDS = 5
#: Codes a function call may never get from hostile input alone.
NEVER = frozenset({"Internal", "Overloaded"})
CLIENT_TYPES = ("Connect", "ModifyQuerySet", "Mutation", "Action", "Authenticate", "Event")
REQUIRED: dict[str, dict[str, str]] = {
    "Connect": {"sessionId": "str", "connectionCount": "int"},
    "ModifyQuerySet": {"baseVersion": "int", "newVersion": "int", "modifications": "list"},
    "Mutation": {"requestId": "int", "udfPath": "str", "args": "list"},
    "Action": {"requestId": "int", "udfPath": "str", "args": "list"},
    "Authenticate": {"tokenType": "str", "baseVersion": "int"},
    "Event": {"eventType": "str"},
}
OPTIONAL: dict[str, dict[str, str]] = {
    "Connect": {"lastCloseReason": "str", "maxObservedTimestamp": "str", "clientTs": "number"},
    "Mutation": {"componentPath": "str"},
    "Action": {"componentPath": "str"},
    "Authenticate": {"value": "str"},
}
WRONG: dict[str, list[Any]] = {
    "int": ["1", 1.5, True, False, -1, [1], {}, MAX_PROTOCOL_INT + 1, 2**64 - 1],
    "str": [1, True, [], {}, 2.5],
    "list": ["x", 1, {}, True],
    "number": ["1", True, [], {}],
}


@attrs.frozen
class Credentials:
    """What the fuzzed sessions may present: the admin key, one good user token (and the
    identity it gives), and tokens the server must refuse."""

    admin_key: str
    user_token: str
    user: Identity
    bad_tokens: tuple[str, ...]

    @classmethod
    def for_target(cls, target: Target) -> Credentials:
        secret_claims = {"sub": "fuzz-user", "exp": int(time.time()) + 86_400}
        bad = (
            target.user_token("fuzz-user")[:-4] + "AAAA",  # wrong signature
            jwt.encode({**secret_claims, "exp": 1}, target_secret(), algorithm="HS256"),
            jwt.encode(secret_claims, "some-other-secret-that-is-long-enough!!", "HS256"),
            jwt.encode(secret_claims, "", algorithm="none"),
            jwt.encode({**secret_claims, "caps": ["root"]}, target_secret(), "HS256"),
            jwt.encode({"exp": secret_claims["exp"]}, target_secret(), "HS256"),
            "not.a.token",
            "",
        )
        return cls(
            admin_key=target.admin_key,
            user_token=target.user_token("fuzz-user", "org_fuzz", ["events:manage"]),
            user=Identity(
                subject="fuzz-user", org_id="org_fuzz", caps=frozenset({"events:manage"})
            ),
            bad_tokens=bad,
        )


def target_secret() -> str:
    from lab.hostile.target import JWT_SECRET

    return JWT_SECRET


@attrs.frozen
class Step:
    """One frame and what it does to the session."""

    frame: str | bytes
    why: str
    mutation: tuple[int, Call] | None = None
    action: tuple[int, Call] | None = None
    adds: tuple[tuple[int, Call], ...] = ()
    removes: tuple[int, ...] = ()


@attrs.frozen
class SyncCase:
    session_id: str
    steps: tuple[Step, ...]
    #: "fatal", "auth" (AuthError), "too_big" (close 1009) or None (the client closes).
    ends: str | None
    query_set: int
    identity_version: int
    identity: Identity
    live: tuple[tuple[int, Call], ...]

    def describe(self) -> str:
        lines = [f"session {self.session_id!r}, ends {self.ends}"]
        for step in self.steps:
            shown = repr(step.frame)
            lines.append(f"  {step.why}: {shown[:300]}{'...' if len(shown) > 300 else ''}")
        return "\n".join(lines)


def _json(message: Any) -> str:
    return orjson.dumps(message).decode()


@st.composite
def garbage(draw: st.DrawFn) -> str | bytes:
    """A frame that is not a client message at all."""
    choice = draw(st.integers(0, 4))
    raw: str | bytes
    if choice == 0:
        raw = draw(st.binary(max_size=200))
    elif choice == 1:
        raw = draw(st.text(max_size=200))
    elif choice == 2:
        raw = _json(draw(convex_values.filter(lambda v: not isinstance(v, dict))))
    elif choice == 3:
        kind = draw(st.text(max_size=20).filter(lambda t: t not in CLIENT_TYPES))
        raw = _json({"type": kind, **draw(st.dictionaries(keys, convex_values, max_size=3))})
    else:
        raw = _json(draw(st.dictionaries(keys.filter(lambda k: k != "type"), convex_values)))
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    assume(not (isinstance(parsed, dict) and parsed.get("type") in CLIENT_TYPES))
    return raw


@st.composite
def broken_fields(draw: st.DrawFn, message: dict[str, Any]) -> tuple[str, str]:
    """`message` with one field missing or of the wrong type (a protocol violation)."""
    kind = message["type"]
    fields = {**REQUIRED[kind], **OPTIONAL.get(kind, {})}
    name = draw(st.sampled_from(sorted(fields)))
    broken = dict(message)
    if name in REQUIRED[kind] and draw(st.booleans()):
        broken.pop(name, None)
        if draw(st.booleans()):
            broken[name] = None  # null is missing too
        return _json(broken), f"{kind} without {name}"
    broken[name] = draw(st.sampled_from(WRONG[fields[name]]))
    return _json(broken), f"{kind}.{name} = {broken[name]!r}"


def _session_ids() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SHARED_SESSIONS),
        st.uuids().map(str),
        st.text(min_size=0, max_size=MAX_SESSION_ID),
    )


@st.composite
def sync_cases(
    draw: st.DrawFn,
    queries: Mapping[str, Sequence[str]],
    mutations: Mapping[str, Sequence[str]],
    credentials: Credentials,
    max_frame_bytes: int,
) -> SyncCase:
    """One hostile session (see the module doc)."""
    query_calls = calls(queries)
    mutation_calls = calls(mutations) | well_formed_creates()
    steps: list[Step] = []
    query_set = identity_version = 0
    identity = ANONYMOUS
    live: dict[int, Call] = {}
    next_query = itertools.count(draw(st.integers(0, MAX_PROTOCOL_INT - 1000)))
    used_requests: list[tuple[int, Call]] = []
    ends: str | None = None

    session_id = draw(_session_ids())
    if draw(st.integers(0, 19)) == 0:
        session_id = "s" * draw(st.integers(MAX_SESSION_ID + 1, 5_000))
        ends = "fatal"
    connect = {"type": "Connect", "sessionId": session_id, "connectionCount": 0}
    if draw(st.booleans()):
        connect |= {"lastCloseReason": "InitialConnect", "clientTs": 1_700_000_000_000}
    if draw(st.integers(0, 19)) == 0:
        frame, why = draw(broken_fields(connect))
        steps.append(Step(frame, why))
        ends = "fatal"
    elif draw(st.integers(0, 19)) == 0:
        steps.append(Step(_json({"type": "Event", "eventType": "x"}), "no Connect first"))
        ends = "fatal"
    else:
        steps.append(Step(_json(connect), "Connect" if ends is None else "Connect (too long)"))

    for _ in range(draw(st.integers(0, 8)) if ends is None else 0):
        kind = draw(st.sampled_from(["auth", "modify", "mutation", "mutation", "action", "event"]))
        if kind == "auth":
            token_type = draw(st.sampled_from(["Admin", "User", "None"]))
            message: dict[str, Any] = {
                "type": "Authenticate",
                "tokenType": token_type,
                "baseVersion": identity_version,
            }
            if token_type == "Admin":
                message["value"] = credentials.admin_key
                identity = ADMIN
            elif token_type == "User":
                message["value"] = credentials.user_token
                identity = credentials.user
            else:
                identity = ANONYMOUS
            identity_version += 1
            steps.append(Step(_json(message), f"Authenticate {token_type}"))
        elif kind == "modify":
            adds: list[tuple[int, Call]] = []
            removes: list[int] = []
            modifications: list[dict[str, Any]] = []
            for _ in range(draw(st.integers(0, 3))):
                removing = draw(st.booleans()) if live else False
                if removing:
                    query_id = draw(st.sampled_from(sorted(live)))
                    del live[query_id]
                    removes.append(query_id)
                    modifications.append({"type": "Remove", "queryId": query_id})
                else:
                    query_id = next(next_query)
                    call = draw(query_calls)
                    live[query_id] = call
                    adds.append((query_id, call))
                    modifications.append(
                        {
                            "type": "Add",
                            "queryId": query_id,
                            "udfPath": call.name,
                            "args": [call.args],
                        }
                    )
            new_version = query_set + draw(st.integers(1, 3))
            message = {
                "type": "ModifyQuerySet",
                "baseVersion": query_set,
                "newVersion": new_version,
                "modifications": modifications,
            }
            query_set = new_version
            if any(len(call.name) > MAX_FUNCTION_NAME for _, call in adds):
                steps.append(Step(_json(message), "ModifyQuerySet adding a too long name"))
                ends = "fatal"
                break
            steps.append(
                Step(_json(message), "ModifyQuerySet", adds=tuple(adds), removes=tuple(removes))
            )
        elif kind in ("mutation", "action"):
            if used_requests and draw(st.integers(0, 3)) == 0:
                request_id, call = draw(st.sampled_from(used_requests))
                if draw(st.booleans()):
                    call = draw(mutation_calls)  # the same id for another call
            else:
                request_id = draw(st.integers(0, 5) | st.integers(0, MAX_PROTOCOL_INT))
                call = draw(mutation_calls if kind == "mutation" else mutation_calls | echo_calls())
            name = "Mutation" if kind == "mutation" else "Action"
            message = {
                "type": name,
                "requestId": request_id,
                "udfPath": call.name,
                "args": [call.args],
            }
            if len(call.name) > MAX_FUNCTION_NAME:
                steps.append(Step(_json(message), f"{name} of a too long name"))
                ends = "fatal"
                break
            if kind == "mutation":
                used_requests.append((request_id, call))
                steps.append(Step(_json(message), "Mutation", mutation=(request_id, call)))
            else:
                steps.append(Step(_json(message), "Action", action=(request_id, call)))
        else:
            message = {
                "type": "Event",
                "eventType": draw(st.text(max_size=20)),
                "event": draw(convex_values),
            }
            steps.append(Step(_json(message), "Event"))
        if draw(st.integers(0, 4)) == 0:
            last = steps[-1]
            binary = str(last.frame).encode()
            steps[-1] = attrs.evolve(last, frame=binary, why=last.why + " (binary)")

    if ends is None and draw(st.integers(0, 2)) == 0:
        step, ends = draw(bad_endings(query_set, identity_version, live, credentials))
        steps.append(step)
    for index, step in enumerate(steps):
        # trio-websocket measures a text message in characters and a binary one in bytes.
        if len(step.frame) > max_frame_bytes:
            del steps[index + 1 :]
            ends = "too_big"
            break
    return SyncCase(
        session_id=session_id,
        steps=tuple(steps),
        ends=ends,
        query_set=query_set,
        identity_version=identity_version,
        identity=identity,
        live=tuple(sorted(live.items())),
    )


@st.composite
def bad_endings(
    draw: st.DrawFn,
    query_set: int,
    identity_version: int,
    live: dict[int, Call],
    credentials: Credentials,
) -> tuple[Step, str]:
    """A last frame the server must refuse: FatalError (most) or AuthError (bad credentials)."""
    choice = draw(st.integers(0, 10))
    add = {"type": "Add", "queryId": 0, "udfPath": "events:list", "args": [{}]}
    if choice == 0:
        return Step(draw(garbage()), "garbage"), "fatal"
    if choice == 1:
        kind = draw(st.sampled_from(CLIENT_TYPES[1:]))
        message = {
            "ModifyQuerySet": {
                "type": kind,
                "baseVersion": query_set,
                "newVersion": query_set + 1,
                "modifications": [],
            },
            "Mutation": {"type": kind, "requestId": 1, "udfPath": "events:list", "args": [{}]},
            "Action": {"type": kind, "requestId": 1, "udfPath": "events:list", "args": [{}]},
            "Authenticate": {"type": kind, "tokenType": "None", "baseVersion": identity_version},
            "Event": {"type": kind, "eventType": "x"},
        }[kind]
        frame, why = draw(broken_fields(message))
        return Step(frame, why), "fatal"
    if choice == 2:
        base = draw(st.integers(0, MAX_PROTOCOL_INT).filter(lambda v: v != query_set))
        message = {
            "type": "ModifyQuerySet",
            "baseVersion": base,
            "newVersion": base + 1,
            "modifications": [],
        }
        return Step(_json(message), f"ModifyQuerySet from {base}, not {query_set}"), "fatal"
    if choice == 3:
        new = draw(st.integers(0, query_set))
        message = {
            "type": "ModifyQuerySet",
            "baseVersion": query_set,
            "newVersion": new,
            "modifications": [],
        }
        return Step(_json(message), "ModifyQuerySet newVersion not above"), "fatal"
    if choice == 4:
        if live:
            query_id = draw(st.sampled_from(sorted(live)))
            modifications = [dict(add, queryId=query_id)]
        else:
            modifications = [add, add]
        message = {
            "type": "ModifyQuerySet",
            "baseVersion": query_set,
            "newVersion": query_set + 1,
            "modifications": modifications,
        }
        return Step(_json(message), "Add of a query id already in the set"), "fatal"
    if choice == 5:
        query_id = draw(st.integers(0, MAX_PROTOCOL_INT).filter(lambda q: q not in live))
        message = {
            "type": "ModifyQuerySet",
            "baseVersion": query_set,
            "newVersion": query_set + 1,
            "modifications": [{"type": "Remove", "queryId": query_id}],
        }
        return Step(_json(message), "Remove of an unknown query id"), "fatal"
    if choice == 6:
        modification = draw(
            st.sampled_from(
                [
                    {"type": "Replace", "queryId": 1},
                    {"type": "Add", "udfPath": "events:list", "args": [{}]},
                    {"type": "Add", "queryId": "1", "udfPath": "events:list", "args": [{}]},
                    {"type": "Add", "queryId": True, "udfPath": "events:list", "args": [{}]},
                    {"type": "Add", "queryId": -1, "udfPath": "events:list", "args": [{}]},
                    {"type": "Add", "queryId": 2**60, "udfPath": "events:list", "args": [{}]},
                    {"type": "Add", "queryId": 1, "udfPath": 5, "args": [{}]},
                    {"type": "Add", "queryId": 1, "udfPath": "events:list", "args": {}},
                    {"type": "Add", "queryId": 1, "udfPath": "events:list", "args": []},
                    {"type": "Add", "queryId": 1, "udfPath": "events:list", "args": [{}, {}]},
                    "Add",
                    None,
                ]
            )
        )
        message = {
            "type": "ModifyQuerySet",
            "baseVersion": query_set,
            "newVersion": query_set + 1,
            "modifications": [modification],
        }
        return Step(_json(message), f"bad modification {modification!r}"), "fatal"
    if choice == 7:
        args: list[Any] = draw(st.sampled_from([[], [{}, {}]]))
        kind = draw(st.sampled_from(["Mutation", "Action"]))
        message = {"type": kind, "requestId": 1, "udfPath": "events:create", "args": args}
        return Step(_json(message), f"{kind} args of length {len(args)}"), "fatal"
    if choice == 8:
        base = draw(st.integers(0, MAX_PROTOCOL_INT).filter(lambda v: v != identity_version))
        message = {"type": "Authenticate", "tokenType": "None", "baseVersion": base}
        return Step(_json(message), "Authenticate from another version"), "fatal"
    if choice == 9:
        token_type = draw(st.text(max_size=10).filter(lambda t: t not in ("Admin", "User", "None")))
        message = {
            "type": "Authenticate",
            "tokenType": token_type,
            "value": "x",
            "baseVersion": identity_version,
        }
        return Step(_json(message), "Authenticate with an unknown token type"), "fatal"
    token_type = draw(st.sampled_from(["Admin", "User"]))
    value = draw(st.sampled_from(credentials.bad_tokens) | st.text(max_size=100))
    if token_type == "Admin":
        assume(value != credentials.admin_key)
    message = {
        "type": "Authenticate",
        "tokenType": token_type,
        "value": value,
        "baseVersion": identity_version,
    }
    return Step(_json(message), f"Authenticate {token_type} with a bad credential"), "auth"


def well_formed_creates() -> st.SearchStrategy[Call]:
    """events:create with args of the right shape: these may succeed (as admin), so that
    request ids have recorded results to be answered from."""
    return st.builds(
        lambda name, price, tickets: Call(
            "events:create",
            {
                "name": name,
                "description": "",
                "location": "Hall",
                "eventDate": 1_900_000_000_000,
                "price": price,
                "totalTickets": tickets,
                "orgId": "org_fuzz",
            },
            why="a well-formed create",
        ),
        st.text(min_size=1, max_size=30).filter(str.strip),
        st.integers(0, 100_000),
        st.integers(1, 1_000),
    )


# -- playing a case --------------------------------------------------------------------------


@attrs.define
class SyncRecord:
    """What earlier cases established: the result and ts of each executed request."""

    executed: dict[tuple[str, int], tuple[Any, int]] = attrs.field(factory=dict)
    frames_sent: int = 0


async def query_outcome(target: Target, call: Call, identity: Identity) -> tuple[str, Any]:
    """What the engine itself answers for this query call (the differential oracle)."""
    try:
        args = json_to_convex(orjson.loads(orjson.dumps(call.args)))
        outcome = await target.engine.query(call.name, args, identity)
    except TurnstileError as error:
        return "error", error.code
    return "ok", outcome.value


def _code(response: dict[str, Any]) -> str | None:
    if response["success"]:
        return None
    data = response.get("errorData")
    if not isinstance(data, dict) or "code" not in data:
        raise ServerMisbehaved(f"a failure without errorData.code: {response}")
    if response["result"] != data.get("message"):
        raise ServerMisbehaved(f"a failure's message differs from errorData: {response}")
    return str(data["code"])


def check_call(call: Call, code: str | None, data: Any) -> None:
    """A function's answer against what its call must get."""
    if code in NEVER:
        raise ServerMisbehaved(f"{call.name!r} ({call.why}) failed with {code}: {data}")
    if call.known:
        if code != call.expect_code:
            raise ServerMisbehaved(
                f"{call.name[:80]!r} ({call.why}) must fail with {call.expect_code}, got"
                f" {code}: {str(data)[:300]}"
            )
        if call.expect_path is not None and data.get("path") != call.expect_path:
            raise ServerMisbehaved(
                f"InvalidArgs must name {call.expect_path!r}, named {data.get('path')!r}"
            )


async def play_sync_case(target: Target, case: SyncCase, record: SyncRecord) -> None:
    """Play `case` on a fresh connection and check every answer (raises on a violation)."""
    with trio.fail_after(30):
        # No client-side limit on message size (Convex's client has none): what is checked is
        # what the server sends.
        async with open_ws(target.port, max_message_size=64 * 2**20) as ws:
            peer = SyncPeer(ws)
            sent = 0
            try:
                for step in case.steps:
                    await peer.send(step.frame)
                    sent += 1
            except (trio_websocket.ConnectionClosed, trio.BrokenResourceError):
                if case.ends is None:
                    raise
            record.frames_sent += sent
            if case.ends is not None:
                await _expect_end(peer, case)
            else:
                await _expect_settled(target, peer, case, record)
            _check_mutations(case, peer, record)


async def _expect_end(peer: SyncPeer, case: SyncCase) -> None:
    wanted = {"fatal": "FatalError", "auth": "AuthError"}.get(str(case.ends))
    seen = False
    try:
        with trio.fail_after(END_SECONDS):
            while True:
                message = await peer.next()
                seen = seen or message["type"] == wanted
    except trio.TooSlowError:
        raise ServerMisbehaved(
            f"the session was still open {END_SECONDS} s after a frame that must end it"
            f" ({'after' if seen else 'without'} {wanted})"
        ) from None
    except trio_websocket.ConnectionClosed as closed:
        code = closed.reason.code if closed.reason is not None else None
        if case.ends == "too_big":
            # 1009, or a reset (1006) when the server closed while the frame was still coming.
            if code not in (1009, 1006):
                raise ServerMisbehaved(f"a frame above the limit closed with {code}") from None
            return
        if not seen:
            raise ServerMisbehaved(f"closed ({code}) without {wanted}") from None
        if case.ends == "fatal" and code == 1000:
            raise ServerMisbehaved("a FatalError closed as normal (1000)") from None


async def _expect_settled(
    target: Target, peer: SyncPeer, case: SyncCase, record: SyncRecord
) -> None:
    answers_due: dict[int, int] = {}
    for step in case.steps:
        for request in (step.mutation, step.action):
            if request is not None:
                answers_due[request[0]] = answers_due.get(request[0], 0) + 1
    live = dict(case.live)

    def settled() -> bool:
        if any(len(peer.responses.get(rid, ())) < n for rid, n in answers_due.items()):
            return False
        if (peer.query_set, peer.identity) != (case.query_set, case.identity_version):
            return False
        if any(query_id not in peer.results for query_id in live):
            return False
        committed = [
            decode_ts(r["ts"])
            for answers in peer.responses.values()
            for r in answers
            if r["type"] == "MutationResponse" and r["success"]
        ]
        return peer.ts >= max(committed, default=0)

    try:
        while not settled():
            message = await peer.next()
            if message["type"] in ("FatalError", "AuthError"):
                raise ServerMisbehaved(f"a valid session got {message}")
    except trio_websocket.ConnectionClosed as closed:
        raise ServerMisbehaved(f"a valid session was closed ({closed.reason})") from None
    for query_id, call in live.items():
        status, value = peer.results[query_id]
        code = value.get("code") if status == "error" else None
        check_call(call, code, value)
        if not call.known:
            expected, expected_code = await query_outcome(target, call, case.identity)
            if expected != status or (status == "error" and expected_code != code):
                raise ServerMisbehaved(
                    f"query {call.name!r} answered {status} {code} over sync, the engine"
                    f" answers {expected} {expected_code if expected == 'error' else ''}"
                )
    for query_id in set(peer.results) - set(live):
        raise ServerMisbehaved(f"query {query_id} has a result but is not in the set")


def _check_mutations(case: SyncCase, peer: SyncPeer, record: SyncRecord) -> None:
    calls_of: dict[int, list[Call]] = {}
    actions_of: dict[int, list[Call]] = {}
    kinds: dict[int, str] = {}
    for step in case.steps:
        for kind, request in (("MutationResponse", step.mutation), ("ActionResponse", step.action)):
            if request is not None:
                calls_of.setdefault(request[0], []).append(request[1])
                kinds[request[0]] = kind
        if step.action is not None:
            actions_of.setdefault(step.action[0], []).append(step.action[1])
    for request_id, answers in peer.responses.items():
        if request_id not in calls_of:
            raise ServerMisbehaved(f"an answer to request {request_id}, never sent")
        successes = set()
        for answer in answers:
            code = _code(answer)
            if answer["type"] == "ActionResponse":
                # The hostile app's echo answers its text or InvalidArgs; any other is NotFound.
                expected = {
                    echo_outcome(call.args) if call.name == ECHO else ("NotFound", None)
                    for call in actions_of.get(request_id, [])
                }
                got = ("success", answer["result"]) if code is None else (code, None)
                if got not in expected:
                    raise ServerMisbehaved(f"an action answered {answer}, not one of {expected}")
                continue
            if code is None:
                successes.add((orjson.dumps(answer["result"]), answer["ts"]))
                continue
            data = answer["errorData"]
            if code in NEVER:
                raise ServerMisbehaved(f"a mutation failed with {code}: {data}")
            if not any(
                not call.known
                or (code == call.expect_code and call.expect_path in (None, data.get("path")))
                for call in calls_of[request_id]
            ):
                why = "; ".join(
                    f"{c.name[:60]!r}: {c.why} -> {c.expect_code}" for c in calls_of[request_id]
                )
                raise ServerMisbehaved(f"request {request_id} answered {code} {data}; sent {why}")
        if len(successes) > 1:
            raise ServerMisbehaved(f"request {request_id} answered two different results")
        for result, ts in successes:
            key = (case.session_id, request_id)
            value = (result, decode_ts(ts))
            first = record.executed.setdefault(key, value)
            if first != value:
                raise ServerMisbehaved(
                    f"request {key} was executed again: first {first}, now {value}"
                )


__all__ = [
    "Credentials",
    "SyncCase",
    "SyncRecord",
    "play_sync_case",
    "query_outcome",
    "sync_cases",
]
