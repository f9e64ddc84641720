"""The sync protocol's message shapes and their checks (Convex's `protocol.ts`), for both ends.

Client -> server: Connect, ModifyQuerySet, Mutation, Action, Authenticate, Event.
Server -> client: Transition, MutationResponse, ActionResponse, AuthError, FatalError, Ping.

Parsing is strict: a message that is not an object of a known type with fields of the right
types (integers from 0 to 2**53-1, a `sessionId` of at most 128 characters, function names of
at most 1,024) is a `ProtocolViolation`, which the session answers with FatalError and a close.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

#: Integers in client messages (ids, versions, counts) are JavaScript numbers in Convex's
#: protocol: a larger one is no client's, and would not fit the journal's request records.
MAX_PROTOCOL_INT = 2**53 - 1
#: Longest `sessionId` accepted (Convex's client sends a 36-character UUID). Every executed
#: mutation's idempotency record holds it, so its size is bounded.
MAX_SESSION_ID_LENGTH = 128
#: Longest function name (`udfPath`) accepted, here and over HTTP. A failure names the function
#: it was asked for, so an unbounded name came back several times over (a 600 KB name made a
#: 1.8 MB answer).
MAX_UDF_PATH_LENGTH = 1024


class ProtocolViolation(Exception):
    """The client broke the protocol; the session ends with FatalError."""


#: A client's state version (Convex's StateVersion): (query set version, ts, identity
#: version). Plain ints in a plain tuple: a session keeps one per Transition it sends, and the
#: cyclic GC stops tracking such tuples (an object per Transition would outlive the young
#: generations and bring full collections sooner).
StateVersion = tuple[int, int, int]

INITIAL_VERSION: StateVersion = (0, 0, 0)


def version_wire(version: StateVersion) -> dict[str, Any]:
    """A state version as the wire carries it."""
    query_set, ts, identity = version
    return {"querySet": query_set, "ts": encode_ts(ts), "identity": identity}


def encode_ts(ts: int) -> str:
    """A u64 as Convex sends it: base64 of its 8 little-endian bytes."""
    return base64.b64encode(ts.to_bytes(8, "little")).decode("ascii")


def decode_ts(encoded: str) -> int:
    raw = base64.b64decode(encoded, validate=True)
    if len(raw) != 8:
        raise ValueError("a timestamp is 8 bytes")
    return int.from_bytes(raw, "little")


def parse(data: str | bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolViolation("The message is not valid JSON.") from None
    if not isinstance(message, dict):
        raise ProtocolViolation("A message must be a JSON object.")
    kind = message.get("type")
    checks = _FIELDS.get(kind) if isinstance(kind, str) else None
    if checks is None:
        raise ProtocolViolation(f"Unknown message type {kind!r}.")
    for name, types, required in checks:
        if name not in message or message[name] is None:
            if required:
                raise ProtocolViolation(f"{kind} needs the field {name!r}.")
            continue
        value = message[name]
        if isinstance(value, bool) and bool not in types:
            raise ProtocolViolation(f"{kind}.{name} has the wrong type.")
        if not isinstance(value, types):
            raise ProtocolViolation(f"{kind}.{name} has the wrong type.")
        if int in types and isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ProtocolViolation(f"{kind}.{name} must not be negative.")
            if value > MAX_PROTOCOL_INT:
                raise ProtocolViolation(f"{kind}.{name} is larger than {MAX_PROTOCOL_INT}.")
    if kind == "Connect" and len(message["sessionId"]) > MAX_SESSION_ID_LENGTH:
        raise ProtocolViolation(f"sessionId is longer than {MAX_SESSION_ID_LENGTH} characters.")
    if kind in ("Mutation", "Action"):
        check_udf_path(message["udfPath"])
    return message


def check_udf_path(path: Any) -> str:
    """A function name as a message may carry it; else `ProtocolViolation`."""
    if not isinstance(path, str):
        raise ProtocolViolation("A function name (udfPath) must be a string.")
    if len(path) > MAX_UDF_PATH_LENGTH:
        raise ProtocolViolation(
            f"A function name (udfPath) is at most {MAX_UDF_PATH_LENGTH} characters."
        )
    return path


def protocol_int(value: Any) -> bool:
    """Whether `value` is an integer a client message may carry (not a bool, 0..2**53-1)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PROTOCOL_INT


_FIELDS: dict[str, tuple[tuple[str, tuple[type, ...], bool], ...]] = {
    "Connect": (
        ("sessionId", (str,), True),
        ("connectionCount", (int,), True),
        ("lastCloseReason", (str,), False),
        ("maxObservedTimestamp", (str,), False),
        ("clientTs", (int, float), False),
    ),
    "ModifyQuerySet": (
        ("baseVersion", (int,), True),
        ("newVersion", (int,), True),
        ("modifications", (list,), True),
    ),
    "Mutation": (
        ("requestId", (int,), True),
        ("udfPath", (str,), True),
        ("args", (list,), True),
        ("componentPath", (str,), False),
    ),
    "Action": (
        ("requestId", (int,), True),
        ("udfPath", (str,), True),
        ("args", (list,), True),
        ("componentPath", (str,), False),
    ),
    "Authenticate": (
        ("tokenType", (str,), True),
        ("baseVersion", (int,), True),
        ("value", (str,), False),
    ),
    "Event": (("eventType", (str,), True),),
}


def single_args(args: list[Any]) -> Any:
    """Function args travel as a one-element array holding the args object."""
    if len(args) != 1:
        raise ProtocolViolation("Function args must be an array of exactly one object.")
    return args[0]


def ping() -> bytes:
    return b'{"type":"Ping"}'


def fatal(message: str) -> str:
    return orjson.dumps({"type": "FatalError", "error": message}).decode()


def connect_message(session_id: str, connection_count: int = 0) -> dict[str, Any]:
    """A client's Connect (clients, tests and the benchmarks build it here)."""
    return {"type": "Connect", "sessionId": session_id, "connectionCount": connection_count}


def subscribe_message(
    query_id: int, udf_path: str, args: dict[str, Any], base_version: int = 0
) -> dict[str, Any]:
    """A client's ModifyQuerySet adding one query, from `base_version` to the next."""
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base_version,
        "newVersion": base_version + 1,
        "modifications": [
            {"type": "Add", "queryId": query_id, "udfPath": udf_path, "args": [args]}
        ],
    }
