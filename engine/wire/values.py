"""Convex's JSON value encoding (`convexToJson` / `jsonToConvex` in the npm package's `value.ts`).

JSON cannot carry everything a Convex value can, so three values travel as one-key objects:
`{"$integer": b64}` (a signed 64-bit integer, 8 little-endian bytes), `{"$float": b64}` (an IEEE
double, 8 little-endian bytes: NaN, the infinities and -0.0, which JSON numbers cannot say) and
`{"$bytes": b64}`. Every other object key starting with `$` is reserved and refused.

Decoding (`json_to_convex`) accepts what any Convex client sends and raises `InvalidArgs` naming
the bad field's path otherwise (also for a plain integer outside 64 bits, which no field holds
and the journal could not store). Encoding (`convex_to_json`) sends an `int` as a JSON number while
a JavaScript number holds it exactly (|n| <= 2**53) and as `$integer` beyond; a value that Convex
cannot represent at all (an int outside 64 bits, a non-string key, an unknown type) is a server
bug and raises `Internal`.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

from domain.errors import Internal, InvalidArgs

#: Largest integer a JavaScript number holds exactly.
MAX_SAFE_INTEGER = 2**53
MIN_INT64 = -(2**63)
MAX_INT64 = 2**63 - 1
#: Arrays and objects nested deeper than this are refused (no stack exhaustion).
MAX_DEPTH = 64


def json_to_convex(value: Any) -> Any:
    """Decode a value parsed from JSON (`orjson.loads`) into Python: int, float, str, bool,
    None, bytes, list, dict. Raises `InvalidArgs` (with `path`) for a malformed or reserved
    `$` object, nesting past `MAX_DEPTH`, or an integer outside 64 bits. Costs one pass over
    the value: paths are only spelled out for a fault."""
    try:
        return _decode(value, 0)
    except _Fault as fault:
        path = fault.path()
        raise InvalidArgs(fault.describe(path or "args"), path=path) from None


def convex_to_json(value: Any) -> Any:
    """Encode a Python value as JSON-ready data in Convex's encoding. Tuples encode as arrays,
    attrs-free mappings as objects. Raises `Internal` (naming the field's path) for what Convex
    cannot carry. Costs one pass over the value, as decoding does."""
    try:
        return _encode(value, 0)
    except _Fault as fault:
        raise Internal(fault.describe(fault.path() or "value")) from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Fault(Exception):
    """A decoding fault on its way out; each enclosing array or object adds its index or key,
    so the path is built only when there is a fault to report."""

    def __init__(self, describe: Callable[[str], str]) -> None:
        self.describe = describe
        self.segments: list[int | str] = []

    def path(self) -> str:
        path = ""
        for segment in reversed(self.segments):
            path = f"{path}[{segment}]" if isinstance(segment, int) else _join(path, segment)
        return path


def _b64(encoded: Any, what: str) -> bytes:
    if not isinstance(encoded, str):
        raise _Fault(lambda at: f"Malformed {what} at {at}: not a string.")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _Fault(lambda at: f"Malformed {what} at {at}: not base64.") from None


def _integer(number: int) -> int:
    # orjson reads JSON integers up to 2**64 - 1 as ints; beyond 64 signed bits no field holds
    # them, the journal could not store them, and no result could carry them back.
    if MIN_INT64 <= number <= MAX_INT64:
        return number
    raise _Fault(lambda at: f"The integer at {at} does not fit in 64 bits.")


def _reserved_message(key: str) -> Callable[[str], str]:
    return lambda at: f"Field name {key!r} is reserved: names starting with '$' are not allowed."


def _decode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _Fault(lambda at: f"Value nested deeper than {MAX_DEPTH} levels.")
    kind = type(value)
    if kind is str or kind is bool or kind is float or value is None:
        return value
    if kind is int:
        return _integer(value)
    # Below the depth limit a scalar child decodes to itself: checked inline (no call, no
    # path), as most of a large value is scalars.
    shallow = depth < MAX_DEPTH
    if kind is list:
        items: list[Any] = []
        for index, item in enumerate(value):
            of = type(item)
            if shallow and (
                of is str
                or of is float
                or of is bool
                or item is None
                or (of is int and MIN_INT64 <= item <= MAX_INT64)
            ):
                items.append(item)
                continue
            try:
                items.append(_decode(item, depth + 1))
            except _Fault as fault:
                fault.segments.append(index)
                raise
        return items
    if kind is not dict:
        raise _Fault(lambda at: f"Unexpected value of type {kind.__name__}.")
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == "$integer":
            raw = _b64(inner, "$integer")
            if len(raw) != 8:
                raise _Fault(lambda at: f"$integer at {at} must be 8 bytes.")
            return int.from_bytes(raw, "little", signed=True)
        if key == "$float":
            raw = _b64(inner, "$float")
            if len(raw) != 8:
                raise _Fault(lambda at: f"$float at {at} must be 8 bytes.")
            result: float = struct.unpack("<d", raw)[0]
            return result
        if key == "$bytes":
            return _b64(inner, "$bytes")
    out: dict[str, Any] = {}
    for key, inner in value.items():
        if key.startswith("$"):
            reserved = _Fault(_reserved_message(key))
            reserved.segments.append(key)
            raise reserved
        of = type(inner)
        if shallow and (
            of is str
            or of is float
            or of is bool
            or inner is None
            or (of is int and MIN_INT64 <= inner <= MAX_INT64)
        ):
            out[key] = inner
            continue
        try:
            out[key] = _decode(inner, depth + 1)
        except _Fault as fault:
            fault.segments.append(key)
            raise
    return out


def _special(number: float) -> bool:
    """What JSON numbers cannot carry (Convex's `isSpecial`): NaN, the infinities, -0.0."""
    if math.isnan(number) or math.isinf(number):
        return True
    return number == 0.0 and math.copysign(1.0, number) < 0


def _encode(value: Any, depth: int) -> Any:
    """`convex_to_json`'s pass: one call per container, scalars inside one checked inline
    (most of a result is scalars); a fault's path is spelled out only on the way out."""
    if depth > MAX_DEPTH:
        raise _Fault(lambda at: f"Result nested deeper than {MAX_DEPTH} levels at {at}.")
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    shallow = depth < MAX_DEPTH
    if kind is dict:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if type(key) is not str or key.startswith("$"):
                raise _Fault(_unsendable_key(key))
            of = type(inner)
            if shallow and (
                of is str
                or of is bool
                or inner is None
                or (of is int and -MAX_SAFE_INTEGER <= inner <= MAX_SAFE_INTEGER)
            ):
                out[key] = inner
                continue
            try:
                out[key] = _encode(inner, depth + 1)
            except _Fault as fault:
                fault.segments.append(key)
                raise
        return out
    if kind is list or kind is tuple:
        items: list[Any] = []
        for index, item in enumerate(value):
            of = type(item)
            if shallow and (
                of is str
                or of is bool
                or item is None
                or (of is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER)
            ):
                items.append(item)
                continue
            try:
                items.append(_encode(item, depth + 1))
            except _Fault as fault:
                fault.segments.append(index)
                raise
        return items
    return _encode_other(value, depth)


def _unsendable_key(key: Any) -> Callable[[str], str]:
    return lambda at: f"Field name {key!r} at {at} cannot be sent."


def _encode_other(value: Any, depth: int) -> Any:
    """Everything but plain dicts, lists, tuples and the JSON scalars: numbers, bytes,
    subclasses, other mappings and sequences."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        if not MIN_INT64 <= value <= MAX_INT64:
            raise _Fault(lambda at: f"Integer at {at} does not fit in 64 bits.")
        return {"$integer": base64.b64encode(value.to_bytes(8, "little", signed=True)).decode()}
    if isinstance(value, float):
        if _special(value):
            return {"$float": base64.b64encode(struct.pack("<d", value)).decode()}
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list | tuple):
        return _encode(list(value), depth)
    if isinstance(value, Mapping):
        return _encode(dict(value), depth)
    raise _Fault(lambda at: f"A value of type {type(value).__name__} cannot be sent.")


__all__ = ["convex_to_json", "json_to_convex"]
