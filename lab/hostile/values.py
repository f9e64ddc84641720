"""Hypothesis strategies for what a hostile client puts inside a function call.

A call is a function name and an args value, both as JSON-ready data (what goes on the wire),
plus what the server must answer when that is known from how the call was built:

- a name that no function has: `NotFound`, whatever the args;
- a known name with a fault planted at a known place of the args (a malformed `$integer`, a
  reserved `$` key, nesting past the limit, a number beyond 64 bits): `InvalidArgs` with `path`
  naming that place;
- anything else (well-formed args of any shape, wrong types, huge strings, wide arrays): not
  known in advance. The runner asks the engine itself (queries) or accepts any contract code
  except `Internal` and `Overloaded` (mutations).

Raw JSON numbers that Python cannot hand to `orjson.dumps` (beyond 64 bits) travel as
`orjson.Fragment`s, so the server sees exactly the bytes a JavaScript client could send.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import orjson
from hypothesis import strategies as st

from lab.hostile.app import ECHO

#: Mirrors of the server's published limits (engine.wire.values), restated so that a change
#: there is a visible change here.
MAX_DEPTH = 64
SAFE_INTEGER = 2**53
#: Longest function name the server takes (engine.wire.protocol.MAX_UDF_PATH_LENGTH): a longer
#: one is a malformed frame over the sync protocol and a 400 over HTTP.
MAX_FUNCTION_NAME = 1024

#: What a call must get: `code` (and `path` for InvalidArgs), or `None` when not known up front.
UNKNOWN: tuple[str | None, str | None] = (None, None)


@attrs.frozen
class Call:
    """One function call as a client sends it, and what it must get (see the module doc)."""

    name: str
    args: Any
    expect_code: str | None = None
    expect_path: str | None = None
    #: Why the call was built this way (shown when a case fails).
    why: str = ""

    @property
    def known(self) -> bool:
        return self.expect_code is not None


def normalized(name: str) -> str:
    """A function name as Convex clients may spell it (`events.js:list` is `events:list`)."""
    module, sep, function = name.partition(":")
    if module.endswith(".js"):
        module = module[:-3]
    return f"{module}{sep}{function}" if sep else name


# -- well-formed Convex values -----------------------------------------------------------------

keys = st.text(max_size=12).filter(lambda key: not key.startswith("$"))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


encoded_specials = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(
        lambda n: {"$integer": _b64(n.to_bytes(8, "little", signed=True))}
    ),
    st.floats().map(lambda x: {"$float": _b64(struct.pack("<d", x))}),
    st.binary(max_size=40).map(lambda raw: {"$bytes": _b64(raw)}),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-SAFE_INTEGER, SAFE_INTEGER),
    st.floats(allow_nan=False, allow_infinity=False),  # NaN and the infinities: as $float
    st.text(max_size=40),
    encoded_specials,
)

#: Any value a Convex client could send (JSON-ready), small.
convex_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)

#: Well-formed but large: long strings, wide arrays and objects, nesting up to the limit.
huge_values = st.one_of(
    st.builds(lambda char, n: char * n, st.characters(), st.integers(10_000, 200_000)),
    st.builds(lambda item, n: [item] * n, scalars, st.integers(1_000, 60_000)),
    st.integers(1_000, 20_000).map(lambda n: {f"k{i}": i for i in range(n)}),
    st.integers(2, MAX_DEPTH - 2).map(lambda depth: _nest([], depth)),
)


def _nest(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


# -- faults at a known place ---------------------------------------------------------------------

#: A path inside a value, as the segments leading to it: an index of an array or a key of an
#: object. `render` spells it as the server does (`a.b[0].c`).
Path = tuple[int | str, ...]

#: A fault: given the depth its root will sit at, the value and the path (below the root) at
#: which the server must report it.
Fault = Callable[[int], tuple[Any, Path]]


def render(path: Path) -> str:
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text = f"{text}[{segment}]"
        else:
            text = f"{text}.{segment}" if text else segment
    return text


def _at_root(value: Any) -> Fault:
    return lambda depth: (value, ())


def _too_deep(extra: int) -> Fault:
    def build(depth: int) -> tuple[Any, Path]:
        # The value at depth MAX_DEPTH + 1 is the first one refused.
        below = max(MAX_DEPTH + 1 - depth, 0)
        return _nest(0, below + extra), (0,) * below

    return build


def _reserved_key(key: str, inner: Any) -> Fault:
    # Two keys, so it is never read as one of the one-key special objects.
    return lambda depth: ({"ok": 1, key: inner}, (key,))


not_base64 = st.sampled_from(["!!!!", "AAA", "A===", "AAAAAAAAAAA", "@@@@@@@@@@@@", "AA AA"])
wrong_length = st.binary(max_size=16).filter(lambda raw: len(raw) != 8).map(_b64)

faults: st.SearchStrategy[Fault] = st.one_of(
    st.builds(lambda s: _at_root({"$integer": s}), not_base64 | wrong_length),
    st.builds(lambda s: _at_root({"$float": s}), not_base64 | wrong_length),
    st.builds(lambda s: _at_root({"$bytes": s}), not_base64),
    st.builds(
        lambda tag, v: _at_root({tag: v}),
        st.sampled_from(["$integer", "$float", "$bytes"]),
        st.none() | st.integers(-(2**63), 2**63 - 1) | st.lists(st.booleans(), max_size=2),
    ),
    st.builds(
        _reserved_key,
        st.text(max_size=8).map(lambda k: "$" + k),
        convex_values,
    ),
    st.integers(0, 3).map(_too_deep),
    # Integers beyond 64 signed bits that orjson still reads as ints (up to 2**64 - 1).
    st.sampled_from(["9223372036854775808", "18446744073709551615", "12345678901234567890"]).map(
        lambda text: _at_root(orjson.Fragment(text.encode()))
    ),
)


@st.composite
def planted(draw: st.DrawFn, fault: Fault, depth: int = 1) -> tuple[Any, Path]:
    """`fault` somewhere inside a random container chain whose root sits at `depth`; returns
    the value and the path of the fault below the root."""
    if draw(st.integers(0, 3)) == 0:
        return fault(depth)
    inner, below = draw(planted(fault, depth + 1))
    if draw(st.booleans()):
        before = draw(st.lists(convex_values, max_size=3))
        after = draw(st.lists(convex_values, max_size=3))
        return [*before, inner, *after], (len(before), *below)
    key = draw(keys)
    siblings = draw(st.dictionaries(keys.filter(lambda k: k != key), convex_values, max_size=3))
    return {**siblings, key: inner}, (key, *below)


@st.composite
def broken_args(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """An args object with one fault planted in it, and the path the server must name."""
    key = draw(keys)
    siblings = draw(st.dictionaries(keys.filter(lambda k: k != key), convex_values, max_size=3))
    inner, below = draw(planted(draw(faults)))
    return {**siblings, key: inner}, render((key, *below))


# -- function names ----------------------------------------------------------------------------


def near_misses(name: str) -> list[str]:
    module, _, function = name.partition(":")
    return [
        name.upper(),
        f"{module}:{function.capitalize()}" if function[:1].islower() else name + "X",
        f"{module}::{function}",
        f" {name}",
        f"{name}/default",
        f"{module}.ts:{function}",
        f"{module}",
        f":{function}",
        f"{module}:",
        name.replace(":", "/"),
    ]


def function_names(known: Sequence[str]) -> st.SearchStrategy[str]:
    """Names a hostile client might call: catalogue names, near misses and junk."""
    return st.one_of(
        st.sampled_from(sorted(known)),
        st.sampled_from(sorted(known)).map(lambda n: n.replace(":", ".js:", 1)),
        st.sampled_from(sorted(known)).flatmap(lambda n: st.sampled_from(near_misses(n))),
        st.text(max_size=30),
        st.builds(lambda char, n: char * n, st.characters(), st.integers(1_000, 100_000)),
    )


# -- calls -------------------------------------------------------------------------------------


def plausible_args(fields: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """The function's own field names, with hostile values: the shape a client would send."""
    hostile = st.one_of(
        convex_values,
        huge_values,
        st.sampled_from(["", "ev_" + "a" * 16, "x" * 300, "\u0000", "\U0001f600" * 50]),
        st.sampled_from([0, -1, 2**31, SAFE_INTEGER, -SAFE_INTEGER, 0.5, 1e15, 1e300, 9.3e18]),
    )
    if not fields:
        return st.dictionaries(keys, hostile, max_size=2)
    return st.dictionaries(st.sampled_from(list(fields)), hostile, max_size=len(fields)).flatmap(
        lambda args: (
            st.dictionaries(keys, convex_values, max_size=1).map(
                lambda extra: args if extra.keys() & args.keys() else {**args, **extra}
            )
            | st.just(args)
        )
    )


def calls(functions: Mapping[str, Sequence[str]]) -> st.SearchStrategy[Call]:
    """Calls of one kind (queries, or mutations): `functions` maps each catalogue name to its
    wire field names."""
    known = set(functions)

    @st.composite
    def build(draw: st.DrawFn) -> Call:
        name = draw(function_names(sorted(known)))
        if normalized(name) not in known:
            args = draw(st.one_of(convex_values, broken_args().map(lambda pair: pair[0])))
            return Call(name, args, "NotFound", why="no function has this name")
        fields = functions[normalized(name)]
        choice = draw(st.integers(0, 4))
        if choice == 0:
            args, path = draw(broken_args())
            return Call(name, args, "InvalidArgs", path, why="a fault planted at path")
        if choice == 1:
            value = draw(convex_values.filter(lambda v: not isinstance(v, dict)))
            return Call(name, value, "InvalidArgs", "", why="args that are not an object")
        if choice == 2:
            return Call(name, draw(st.dictionaries(keys, convex_values, max_size=4)))
        return Call(name, draw(plausible_args(fields)))

    return build()


__all__ = [
    "MAX_FUNCTION_NAME",
    "UNKNOWN",
    "Call",
    "broken_args",
    "calls",
    "convex_values",
    "function_names",
    "huge_values",
    "normalized",
]


@st.composite
def echo_calls(draw: st.DrawFn) -> Call:
    """Calls of the hostile app's action `hostile:echo` (lab.hostile.app): its args, or
    anything else."""
    args = draw(st.fixed_dictionaries({"text": st.text(max_size=40)}) | convex_values)
    return Call(ECHO, args, why="the app's echo action")
