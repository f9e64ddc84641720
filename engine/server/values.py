"""Convex's JSON value encoding (`convexToJson` / `jsonToConvex` in the npm package's `value.ts`).

JSON cannot carry everything a Convex value can, so three values travel as one-key objects:
`{"$integer": b64}` (a signed 64-bit integer, 8 little-endian bytes), `{"$float": b64}` (an IEEE
double, 8 little-endian bytes: NaN, the infinities and -0.0, which JSON numbers cannot say) and
`{"$bytes": b64}`. Every other object key starting with `$` is reserved and refused.

Decoding (`json_to_convex`) accepts what any Convex client sends and raises `InvalidArgs` naming
the bad field's path otherwise. Encoding (`convex_to_json`) sends an `int` as a JSON number while
a JavaScript number holds it exactly (|n| <= 2**53) and as `$integer` beyond; a value that Convex
cannot represent at all (an int outside 64 bits, a non-string key, an unknown type) is a server
bug and raises `Internal`.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Mapping
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
    `$` object."""
    return _decode(value, "", 0)


def convex_to_json(value: Any) -> Any:
    """Encode a Python value as JSON-ready data in Convex's encoding. Tuples encode as arrays,
    attrs-free mappings as objects. Raises `Internal` for what Convex cannot carry."""
    return _encode(value, "", 0)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _b64(encoded: Any, path: str, what: str) -> bytes:
    if not isinstance(encoded, str):
        raise InvalidArgs(f"Malformed {what} at {path or 'args'}: not a string.", path=path)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgs(f"Malformed {what} at {path or 'args'}: not base64.", path=path) from None


def _decode(value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidArgs(f"Value nested deeper than {MAX_DEPTH} levels.", path=path)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        raise InvalidArgs(f"Unexpected value of type {type(value).__name__}.", path=path)
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == "$integer":
            raw = _b64(inner, path, "$integer")
            if len(raw) != 8:
                raise InvalidArgs(f"$integer at {path or 'args'} must be 8 bytes.", path=path)
            return int.from_bytes(raw, "little", signed=True)
        if key == "$float":
            raw = _b64(inner, path, "$float")
            if len(raw) != 8:
                raise InvalidArgs(f"$float at {path or 'args'} must be 8 bytes.", path=path)
            result: float = struct.unpack("<d", raw)[0]
            return result
        if key == "$bytes":
            return _b64(inner, path, "$bytes")
    out: dict[str, Any] = {}
    for key, inner in value.items():
        child = _join(path, key)
        if key.startswith("$"):
            raise InvalidArgs(
                f"Field name {key!r} is reserved: names starting with '$' are not allowed.",
                path=child,
            )
        out[key] = _decode(inner, child, depth + 1)
    return out


def _special(number: float) -> bool:
    """What JSON numbers cannot carry (Convex's `isSpecial`): NaN, the infinities, -0.0."""
    if math.isnan(number) or math.isinf(number):
        return True
    return number == 0.0 and math.copysign(1.0, number) < 0


def _encode(value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise Internal(f"Result nested deeper than {MAX_DEPTH} levels at {path or 'value'}.")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        if not MIN_INT64 <= value <= MAX_INT64:
            raise Internal(f"Integer at {path or 'value'} does not fit in 64 bits.")
        return {"$integer": base64.b64encode(value.to_bytes(8, "little", signed=True)).decode()}
    if isinstance(value, float):
        if _special(value):
            return {"$float": base64.b64encode(struct.pack("<d", value)).decode()}
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list | tuple):
        return [_encode(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if not isinstance(key, str) or key.startswith("$"):
                raise Internal(f"Field name {key!r} at {path or 'value'} cannot be sent.")
            out[key] = _encode(inner, _join(path, key), depth + 1)
        return out
    raise Internal(f"A value of type {type(value).__name__} cannot be sent.")


__all__ = ["convex_to_json", "json_to_convex"]
