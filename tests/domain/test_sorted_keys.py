"""domain.sorted_keys: a persistent sorted set of index keys, checked against a plain sorted
list ordered by a comparison written straight from the documented order.

The model never uses the module's encoding: `reference_cmp` compares raw values rank by rank,
numbers numerically with the documented tie rule, arrays element by element; keys are compared
for sameness through `shape`, which tells apart what Python's `==` does not (1, 1.0 and True;
-0.0 and 0.0) and makes every NaN one thing.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import pickle
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import domain.sorted_keys as sorted_keys
from domain.sorted_keys import Bound, Key, SortedKeys, Value, encode_key, index_value

# --- the reference order ------------------------------------------------------------------------


def rank(value: Value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 2
    if isinstance(value, int | float):
        return 1
    if isinstance(value, str):
        return 3
    if isinstance(value, bytes):
        return 4
    return 5


def sign(x: float) -> int:
    return (x > 0) - (x < 0)


def number_kind(value: int | float) -> int:
    if isinstance(value, int):
        return 0
    if math.isnan(value):
        return 3
    if value == 0 and math.copysign(1, value) < 0:
        return 1
    return 2


def reference_cmp(a: Value, b: Value) -> int:
    """-1, 0 or 1 as `a` is below, the same as or above `b` in the documented index order."""
    ra, rb = rank(a), rank(b)
    if ra != rb:
        return sign(ra - rb)
    if isinstance(a, tuple | list):
        assert isinstance(b, tuple | list)
        for x, y in zip(a, b, strict=False):
            c = reference_cmp(x, y)
            if c:
                return c
        return sign(len(a) - len(b))
    if ra == 1:
        assert isinstance(a, int | float) and isinstance(b, int | float)
        a_nan = isinstance(a, float) and math.isnan(a)
        b_nan = isinstance(b, float) and math.isnan(b)
        if a_nan or b_nan:
            return int(a_nan) - int(b_nan)
        if a != b:
            return -1 if a < b else 1
        return sign(number_kind(a) - number_kind(b))
    if a is None:
        return 0
    assert type(a) is type(b)
    return -1 if a < b else int(a != b)  # type: ignore[operator]


def key_cmp(a: Key, b: Key) -> int:
    return reference_cmp(a, b)


ref = functools.cmp_to_key(key_cmp)


def shape(value: Any) -> Any:
    """A form with Python's `==` meaning "the same index value": arrays of either kind as one
    thing, everything else by its type and repr (repr(nan) is one string)."""
    if isinstance(value, tuple | list):
        return ("array", tuple(shape(item) for item in value))
    return (type(value).__name__, repr(value))


def shapes(keys: Any) -> list[Any]:
    return [shape(key) for key in keys]


# --- strategies ---------------------------------------------------------------------------------

FLOATS = [-0.0, 0.0, 1.0, 2.5, -7.25, math.nan, math.inf, -math.inf, 2.0**53, 1e300]
INTS = [0, 1, -1, 2, 3, 2**53, 2**53 + 1, -(2**70), 10**400]

scalars: st.SearchStrategy[Value] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(INTS),
    st.sampled_from(FLOATS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.text(alphabet="ab\u00e9\U0001f600", max_size=2),
    st.binary(max_size=2),
)
values: st.SearchStrategy[Value] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.tuples(inner, inner), st.lists(inner, max_size=2)),
    max_leaves=4,
)
# A small pool, so that keys share prefixes and elements collide.
small_values: st.SearchStrategy[Value] = st.one_of(
    st.sampled_from([None, True, False, 0, 1, 1.0, -0.0, 0.0, math.nan, "a", "b", b"a"]),
    st.sampled_from([(), (0,), [0, None]]),
)
keys: st.SearchStrategy[Key] = st.lists(small_values, min_size=1, max_size=3).map(tuple)
chunk_sizes = st.sampled_from([1, 2, 3, 4, 8, 16])
bounds = st.none() | st.builds(Bound, small_values, st.booleans())
#: (add or remove, a key, which present key to remove instead: half the removals take one).
operations = st.lists(
    st.tuples(st.booleans(), keys, st.none() | st.integers(0, 2**16)), max_size=300
)
Operation = tuple[bool, Key, int | None]


# --- the model ----------------------------------------------------------------------------------


class Model:
    """A sorted list of keys in the reference order, each present once."""

    def __init__(self) -> None:
        self.keys: list[Key] = []

    def _find(self, key: Key) -> tuple[int, bool]:
        i = bisect_left(self.keys, ref(key), key=ref)
        return i, i < len(self.keys) and key_cmp(self.keys[i], key) == 0

    def holds(self, key: Key) -> bool:
        return self._find(key)[1]

    def add(self, key: Key) -> None:
        i, found = self._find(key)
        if not found:
            self.keys.insert(i, key)

    def remove(self, key: Key) -> None:
        i, found = self._find(key)
        if found:
            del self.keys[i]

    def scan(
        self, prefix: Key, lower: Bound | None, upper: Bound | None, reverse: bool
    ) -> list[Key]:
        found = []
        for key in self.keys:
            if len(key) < len(prefix) or key_cmp(key[: len(prefix)], prefix) != 0:
                continue
            if len(key) == len(prefix):
                if lower is None:
                    found.append(key)
                continue
            after = key[len(prefix)]
            if lower is not None:
                c = reference_cmp(after, lower.value)
                if c < 0 or (c == 0 and not lower.inclusive):
                    continue
            if upper is not None:
                c = reference_cmp(after, upper.value)
                if c > 0 or (c == 0 and not upper.inclusive):
                    continue
            found.append(key)
        return found[::-1] if reverse else found


def check_structure(keys: SortedKeys) -> None:
    """The chunk invariants the module docstring states."""
    size = keys._chunk_size
    chunks = keys._chunks
    assert all(chunks), "no chunk is empty"
    assert all(len(chunk) <= size for chunk in chunks)
    if len(chunks) > 1:
        assert all(len(chunk) >= size // 4 for chunk in chunks)
    assert keys._firsts == tuple(chunk[0] for chunk in chunks)
    flat = list(itertools.chain.from_iterable(chunks))
    assert all(a < b for a, b in itertools.pairwise(flat)), "strictly ascending"
    assert len(keys) == len(flat)


def apply(
    keys: SortedKeys, model: Model, adding: bool, key: Key, present: int | None = None
) -> SortedKeys:
    if adding:
        model.add(key)
        return keys.add(key)
    if present is not None and model.keys:
        key = model.keys[present % len(model.keys)]
    model.remove(key)
    return keys.remove(key)


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=150)
@given(operations, chunk_sizes)
def test_updates_keep_the_keys_sorted_like_the_model(ops: list[Operation], chunk_size: int) -> None:
    keys, model = SortedKeys(chunk_size=chunk_size), Model()
    for adding, key, present in ops:
        keys = apply(keys, model, adding, key, present)
        check_structure(keys)
        assert len(keys) == len(model.keys)
        assert (key in keys) == model.holds(key)
    assert shapes(keys) == shapes(model.keys)
    for key in model.keys:
        assert key in keys


@settings(max_examples=100)
@given(operations, chunk_sizes)
def test_every_earlier_version_is_unchanged(ops: list[Operation], chunk_size: int) -> None:
    keys, model = SortedKeys(chunk_size=chunk_size), Model()
    versions: list[tuple[SortedKeys, list[Any]]] = [(keys, [])]
    for adding, key, present in ops:
        before = keys
        keys = apply(keys, model, adding, key, present)
        rewritten = [c for c in keys._chunks if not any(c is old for old in before._chunks)]
        assert len(rewritten) <= 2, "an update shares every chunk but the ones it rewrites"
        if keys is not before:
            versions.append((keys, shapes(model.keys)))
        else:
            assert shapes(keys) == versions[-1][1], "a no-op returns the same value"
    for version, expected in versions:
        assert shapes(version) == expected
        check_structure(version)


@settings(max_examples=100)
@given(st.integers(1, 200).flatmap(lambda n: st.permutations(range(n))), chunk_sizes)
def test_draining_merges_chunks_and_keeps_every_version(order: list[int], chunk_size: int) -> None:
    """Keys removed in any order, down to none: chunks left small merge with a neighbour."""
    keys = SortedKeys([(n, str(n)) for n in order], chunk_size=chunk_size)
    left = sorted(order)
    versions = [(keys, list(left))]
    for n in order:
        keys = keys.remove((n, str(n)))
        left.remove(n)
        check_structure(keys)
        versions.append((keys, list(left)))
    assert keys == SortedKeys.EMPTY
    for version, expected in versions:
        assert list(version) == [(n, str(n)) for n in expected]
        assert list(version.scan(reverse=True)) == [(n, str(n)) for n in reversed(expected)]


@settings(max_examples=200)
@given(
    st.lists(keys, max_size=120),
    chunk_sizes,
    st.lists(small_values, max_size=2).map(tuple),
    bounds,
    bounds,
    st.booleans(),
)
def test_scan_is_the_model_filtered(
    added: list[Key],
    chunk_size: int,
    prefix: Key,
    lower: Bound | None,
    upper: Bound | None,
    reverse: bool,
) -> None:
    keys, model = SortedKeys(chunk_size=chunk_size), Model()
    for key in added:
        keys = apply(keys, model, True, key)
    found = keys.scan(prefix=prefix, lower=lower, upper=upper, reverse=reverse)
    assert shapes(found) == shapes(model.scan(prefix, lower, upper, reverse))


@settings(max_examples=50)
@given(st.lists(keys, max_size=200), st.lists(keys, max_size=200), chunk_sizes)
def test_building_at_once_equals_adding_one_by_one(
    added: list[Key], removed: list[Key], chunk_size: int
) -> None:
    built = SortedKeys(added, chunk_size=chunk_size)
    check_structure(built)
    folded = functools.reduce(SortedKeys.add, added, SortedKeys.EMPTY)
    assert built == folded and hash(built) == hash(folded)
    assert shapes(built) == shapes(folded)
    for key in removed:
        built, folded = built.remove(key), folded.remove(key)
        check_structure(built)
    assert built == folded and hash(built) == hash(folded)


@settings(max_examples=500)
@given(values, values, values)
def test_index_order_is_the_documented_total_order(a: Value, b: Value, c: Value) -> None:
    ia, ib, ic = index_value(a), index_value(b), index_value(c)
    assert sign((ia > ib) - (ia < ib)) == reference_cmp(a, b)
    assert (ia == ib) == (reference_cmp(a, b) == 0)
    assert sum((ia < ib, ia == ib, ia > ib)) == 1, "exactly one of <, ==, >"
    if ia <= ib <= ic:
        assert ia <= ic
    assert (ia == ib) == (shape(a) == shape(b))
    ka, kb = encode_key((c, a)), encode_key((c, b, None))
    assert sign((ka > kb) - (ka < kb)) == key_cmp((c, a), (c, b, None))


@settings(max_examples=100)
@given(st.lists(st.lists(values, min_size=1, max_size=3).map(tuple), max_size=150), chunk_sizes)
def test_mixed_values_iterate_in_reference_order(added: list[Key], chunk_size: int) -> None:
    keys = SortedKeys(chunk_size=chunk_size)
    model = Model()
    for key in added:
        keys = apply(keys, model, True, key)
    assert shapes(keys) == shapes(model.keys)
    assert shapes(SortedKeys(added, chunk_size=chunk_size)) == shapes(model.keys)


# --- examples -----------------------------------------------------------------------------------

#: The documented order, each strictly below the next.
LADDER: list[Value] = [
    None,
    -math.inf,
    -(10**400),
    -1,
    -0.5,
    0,
    -0.0,
    0.0,
    1,
    1.0,
    2**53,
    2.0**53,
    2**53 + 1,
    10**400,
    math.inf,
    math.nan,
    False,
    True,
    "",
    "a",
    "b",
    "\u00e9",
    "\U0001f600",
    b"",
    b"\x00",
    b"\xff",
    (),
    (None,),
    [0],
    (0, 0),
    (0, "a"),
    (True,),
]


def test_the_ladder_is_strictly_ascending() -> None:
    stored = [index_value(value) for value in LADDER]
    assert all(a < b for a, b in itertools.pairwise(stored))
    keys = SortedKeys([(value,) for value in reversed(LADDER)], chunk_size=2)
    assert shapes(keys) == [shape((value,)) for value in LADDER]


def test_every_nan_is_one_key_and_equal_numbers_stay_distinct() -> None:
    keys = SortedKeys([(math.nan,), (float("-nan"),), (-math.nan,)])
    assert len(keys) == 1 and (math.nan,) in keys
    zeros = SortedKeys([(0,), (0.0,), (-0.0,), (False,)])
    assert shapes(zeros) == shapes([(0,), (-0.0,), (0.0,), (False,)])
    assert (1,) in SortedKeys([(1,)]) and (1.0,) not in SortedKeys([(1,)])
    assert (True,) not in SortedKeys([(1,)])


def test_keys_come_back_as_added_with_arrays_as_tuples() -> None:
    keys = SortedKeys.EMPTY.add((["x", [b"y", None]], 2**80, -0.0))
    (key,) = list(keys)
    assert shape(key) == shape((("x", (b"y", None)), 2**80, -0.0))
    assert isinstance(key[0], tuple) and isinstance(key[0][1], tuple)


def test_a_value_of_no_index_type_is_refused_up_front() -> None:
    with pytest.raises(TypeError, match="dict is not an index value"):
        SortedKeys.EMPTY.add(({"a": 1},))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SortedKeys.EMPTY.scan(lower=Bound(object(), True))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size"):
        SortedKeys(chunk_size=0)


def test_updates_and_no_ops() -> None:
    one = SortedKeys.EMPTY.add(("a", 1))
    assert one.add(("a", 1)) is one
    assert one.remove(("a", 2)) is one
    assert SortedKeys.EMPTY.remove(("a",)) is SortedKeys.EMPTY
    assert len(SortedKeys.EMPTY) == 0 and list(SortedKeys.EMPTY) == []
    assert len(one) == 1 and len(one.remove(("a", 1))) == 0
    assert one.remove(("a", 1)) == SortedKeys.EMPTY
    assert "a" not in one and ["a", 1] not in one
    with pytest.raises(AttributeError):
        one._length = 5


def test_scan_by_prefix_and_range() -> None:
    rows = [("org1", slug, n) for slug in ("a", "b", "c") for n in range(3)] + [("org2", "a", 0)]
    keys = SortedKeys(rows, chunk_size=2).add(("org1",))

    def scan(**how: Any) -> list[Key]:
        return list(keys.scan(**how))

    assert scan(prefix=("org2",)) == [("org2", "a", 0)]
    assert scan(prefix=("org1", "b")) == [("org1", "b", n) for n in range(3)]
    assert scan(prefix=("org1",))[0] == ("org1",), "the key equal to the prefix comes first"
    assert scan(prefix=("org1",), lower=Bound("b", False)) == [("org1", "c", n) for n in range(3)]
    assert scan(prefix=("org1",), upper=Bound("a", True)) == [("org1",)] + [
        ("org1", "a", n) for n in range(3)
    ]
    assert scan(prefix=("org1", "c"), lower=Bound(1, True), reverse=True) == [
        ("org1", "c", 2),
        ("org1", "c", 1),
    ]
    assert scan(prefix=("org1",), lower=Bound("c", True), upper=Bound("a", True)) == []
    assert scan(prefix=("org3",)) == [] and scan(prefix=("org0",), reverse=True) == []


def test_scan_reads_lazily_from_the_set_it_was_made_on(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = SortedKeys([(n,) for n in range(10_000)], chunk_size=16)
    decoded = 0
    real: Callable[[Any], Key] = sorted_keys._decode_key

    def counting(stored: Any) -> Key:
        nonlocal decoded
        decoded += 1
        return real(stored)

    monkeypatch.setattr(sorted_keys, "_decode_key", counting)
    found = keys.scan(lower=Bound(5_000, False), reverse=True)
    assert decoded == 0
    assert list(itertools.islice(found, 3)) == [(9_999,), (9_998,), (9_997,)]
    assert decoded == 3
    later = keys.remove((9_996,)).add((20_000,))
    assert next(found) == (9_996,), "a scan reads the value it was made on"
    assert next(later.scan(reverse=True)) == (20_000,)


def test_copies_are_the_value_itself_and_pickles_round_trip() -> None:
    keys = SortedKeys([(n, math.nan, -0.0) for n in range(40)], chunk_size=4).add(("x",))
    assert copy.copy(keys) is keys and copy.deepcopy({"k": keys})["k"] is keys
    back = pickle.loads(pickle.dumps(keys))
    check_structure(back)
    assert back == keys and shapes(back) == shapes(keys)
    assert back.add((0.5,)) == keys.add((0.5,))
