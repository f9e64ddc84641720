"""Convex's value encoding: round trips (properties) and what decoding refuses."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Internal, InvalidArgs
from engine.wire.values import MAX_INT64, MIN_INT64, convex_to_json, json_to_convex

keys = st.text(max_size=8).filter(lambda k: not k.startswith("$"))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=MIN_INT64, max_value=MAX_INT64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to itself and tells -0.0 from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(values)
def test_encoding_then_decoding_through_json_gives_the_value_back(value: Any) -> None:
    wire = orjson.dumps(convex_to_json(value))  # strict JSON: no NaN, no Infinity
    assert same(json_to_convex(orjson.loads(wire)), value)


@given(st.integers(min_value=MIN_INT64, max_value=MAX_INT64))
def test_integers_are_plain_numbers_exactly_when_javascript_holds_them(n: int) -> None:
    encoded = convex_to_json(n)
    if abs(n) <= 2**53:
        assert encoded == n
    else:
        raw = base64.b64decode(encoded["$integer"])
        assert len(raw) == 8 and int.from_bytes(raw, "little", signed=True) == n


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf, -0.0])
def test_special_floats_travel_as_float_objects(special: float) -> None:
    encoded = convex_to_json(special)
    assert set(encoded) == {"$float"}
    assert same(struct.unpack("<d", base64.b64decode(encoded["$float"]))[0], special)


def test_what_the_convex_client_sends_is_decoded() -> None:
    # convexToJson(5n) and convexToJson(new Uint8Array([1, 2]).buffer), from the npm client
    assert json_to_convex({"$integer": "BQAAAAAAAAA="}) == 5
    assert json_to_convex({"$bytes": "AQI="}) == b"\x01\x02"
    assert math.isinf(json_to_convex({"a": [{"$float": "AAAAAAAA8H8="}]})["a"][0])


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"$where": 1}, "$where"),
        ({"a": {"b": [{"$set": []}]}}, "a.b[0].$set"),
        ({"$integer": "AQ=="}, ""),
        ({"$integer": 5}, ""),
        ({"x": {"$bytes": "not base64!"}}, "x"),
        ({"$float": "AAAA"}, ""),
        ({"$integer": "BQAAAAAAAAA=", "extra": 1}, "$integer"),
    ],
)
def test_reserved_and_malformed_objects_are_refused_with_a_path(value: Any, path: str) -> None:
    with pytest.raises(InvalidArgs) as refused:
        json_to_convex(value)
    assert refused.value.data()["path"] == path


def test_deep_nesting_is_refused() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(InvalidArgs):
        json_to_convex(deep)


@pytest.mark.parametrize("value", [2**64, {"$x": 1}, {1: "a"}, object(), {1, 2}])
def test_values_convex_cannot_carry_are_a_server_error(value: Any) -> None:
    with pytest.raises(Internal):
        convex_to_json(value)
