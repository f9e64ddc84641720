"""What a notification may carry: field rules for `type`, `userId` and the free-form `data`.

`data` is any JSON object within bounds: at most `MAX_DATA_BYTES` as compact UTF-8 JSON and at
most `MAX_DATA_DEPTH` levels of objects and arrays (`data` itself is level 1). Its values must
be what the journal and Convex's wire both carry unchanged: null, booleans, 64-bit integers,
finite floats, strings, arrays and objects whose keys are strings not starting with `$`
(reserved by Convex). Bytes, NaN and the infinities are refused, since the journal's JSON would
not give them back. Every refusal is `InvalidArgs` with the wire path of the bad field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import immutables

from domain.errors import InvalidArgs

MAX_DATA_BYTES = 64 * 1024
MAX_DATA_DEPTH = 32
MAX_TYPE_LENGTH = 128
MAX_USER_ID_LENGTH = 256

_MIN_INT64 = -(2**63)
_MAX_INT64 = 2**63 - 1


def check_type(value: str) -> None:
    if not value.strip():
        raise InvalidArgs("type must not be empty.", path="type")
    if len(value) > MAX_TYPE_LENGTH:
        raise InvalidArgs(f"type must be at most {MAX_TYPE_LENGTH} characters.", path="type")


def check_user_id(value: str) -> None:
    if not value:
        raise InvalidArgs("userId must not be empty.", path="userId")
    if len(value) > MAX_USER_ID_LENGTH:
        raise InvalidArgs(f"userId must be at most {MAX_USER_ID_LENGTH} characters.", path="userId")


def check_data(data: Mapping[str, Any]) -> immutables.Map[str, Any]:
    """`data` as the inbox stores it: a private copy (objects as dicts, arrays as lists, so
    a journal replay gives back an equal value), or `InvalidArgs` if it breaks a rule above."""
    copied = _copy(data, "data", 1)
    assert isinstance(copied, dict)
    try:
        encoded = json.dumps(copied, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        raise InvalidArgs("data holds a string that is not valid Unicode.", path="data") from None
    if len(encoded) > MAX_DATA_BYTES:
        raise InvalidArgs(
            f"data is {len(encoded)} bytes as JSON; at most {MAX_DATA_BYTES} are allowed.",
            path="data",
            size=len(encoded),
            limit=MAX_DATA_BYTES,
        )
    return immutables.Map(copied)


def _copy(value: Any, path: str, depth: int) -> Any:
    # Subclasses (an IntEnum, a str subclass) become their plain type, as replay would give.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        if not _MIN_INT64 <= value <= _MAX_INT64:
            raise InvalidArgs(f"{path} does not fit in a 64-bit integer.", path=path)
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgs(f"{path} must be a finite number.", path=path)
        return float(value)
    if isinstance(value, Mapping | list | tuple) and depth > MAX_DATA_DEPTH:
        raise InvalidArgs(
            f"data is nested deeper than {MAX_DATA_DEPTH} levels.", path=path, limit=MAX_DATA_DEPTH
        )
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$"):
                raise InvalidArgs(
                    f"Field name {key!r} in {path} is not allowed (names are strings and may "
                    "not start with '$').",
                    path=path,
                )
            out[key] = _copy(item, f"{path}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_copy(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise InvalidArgs(f"{path} is a {type(value).__name__}, which JSON cannot carry.", path=path)
