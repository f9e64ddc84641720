"""Where two states differ, said precisely: the path of the first differing field in their
codec (wire) form, with both values (`entries.wl_x_1.status: 'offered' != 'waiting'`)."""

from __future__ import annotations

from typing import Any

from engine import codec

_MAX_VALUE = 120


def first_difference(left: Any, right: Any, value_type: Any) -> str | None:
    """None if equal; otherwise `path: left != right` for the first difference found (keys in
    sorted order, so the answer does not depend on a map's iteration order)."""
    if left == right:
        return None
    a = codec.converter.unstructure(left, value_type)
    b = codec.converter.unstructure(right, value_type)
    found = _walk(a, b, "")
    # Equal in wire form but not as values (e.g. a float that prints like an int): say so.
    return found or f"values differ but encode alike: {_short(a)}"


def _walk(a: Any, b: Any, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in a:
                return f"{where}: absent != {_short(b[key])}"
            if key not in b:
                return f"{where}: {_short(a[key])} != absent"
            found = _walk(a[key], b[key], where)
            if found:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        for index, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _walk(x, y, f"{path}[{index}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{path or 'value'}: {len(a)} items != {len(b)} items"
        return None
    if a == b and type(a) is type(b):
        return None
    return f"{path or 'value'}: {_short(a)} != {_short(b)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."
