"""Python types as the TypeScript of what the wire carries for them.

`typescript_of(tp, direction)` gives a `TsType` (render it with `.render()`); it raises
`CodegenError` for a type that has no JSON form on the wire, naming the type. The translation
follows the one codec (`engine.codec`), since that is what turns args and results into JSON:

- `str`, `int` and `float`, `bool`, `None`, `bytes`, `Any`: `string`, `number`, `boolean`,
  `null`, `ArrayBuffer`, `any`;
- `X | None` and other unions: `X | null`, `A | B`; `Literal["a", 1]`: `"a" | 1`; an `Enum`:
  the union of its values;
- `list[X]`, `tuple[X, ...]`, `Sequence[X]`, `set[X]`: `Array<X>`; `tuple[A, B]`: `[A, B]`;
- `dict[str, V]`, `Mapping[str, V]`, `immutables.Map[str, V]`: `Record<string, V>`;
- an attrs class: an object type with camelCase keys (`from_` is `from`), as the codec names
  them; a generic one (`Page[Doc]`) with its parameters bound;
- a `TypedDict`: an object type with its own keys (`?` for those it does not require).

The direction matters for attrs classes only. As args (`"args"`) a field with a default may be
left out, so its key is optional (`limit?: number | null`). As a result (`"result"`) the codec
writes every field, so every key is present. Fields not in `__init__` travel neither way.
Fields keep their declared order, so the output is the same on every run. A class that
contains itself cannot be written out inline and is refused.
"""

from __future__ import annotations

import abc
import collections.abc
import contextlib
import enum
import json
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import attrs
import immutables

from engine.codec import camel

__all__ = ["CodegenError", "Direction", "TsType", "property_key", "typescript_of"]

#: Args as a client sends them, or a result as the server answers it.
Direction = Literal["args", "result"]

#: A key that needs no quotes in a TypeScript object type.
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_INDENT = "  "

_SEQUENCES = frozenset(
    {
        list,
        tuple,
        set,
        frozenset,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        collections.abc.Set,
        collections.abc.MutableSet,
        collections.abc.Collection,
        collections.abc.Iterable,
    }
)
_MAPPINGS = frozenset(
    {dict, immutables.Map, collections.abc.Mapping, collections.abc.MutableMapping}
)


class CodegenError(Exception):
    """A declaration `turnstile codegen` cannot write as TypeScript, said in one sentence."""


def property_key(name: str) -> str:
    """`name` as a key of a TypeScript object type: bare if it can be, quoted otherwise."""
    return name if _IDENTIFIER.fullmatch(name) else json.dumps(name)


# -- the TypeScript side ------------------------------------------------------------------------


class TsType(abc.ABC):
    """A TypeScript type; `render(indent)` spells it, object types one key a line."""

    @abc.abstractmethod
    def render(self, indent: str = "") -> str: ...


@attrs.frozen
class Name(TsType):
    """A type spelled as it is: `string`, `null`, `"offered"`, `Record<string, never>`."""

    text: str

    def render(self, indent: str = "") -> str:
        return self.text


@attrs.frozen
class Union(TsType):
    members: tuple[TsType, ...]

    def render(self, indent: str = "") -> str:
        return " | ".join(member.render(indent) for member in self.members)


@attrs.frozen
class ArrayOf(TsType):
    item: TsType

    def render(self, indent: str = "") -> str:
        return f"Array<{self.item.render(indent)}>"


@attrs.frozen
class RecordOf(TsType):
    value: TsType

    def render(self, indent: str = "") -> str:
        return f"Record<string, {self.value.render(indent)}>"


@attrs.frozen
class TupleOf(TsType):
    items: tuple[TsType, ...]

    def render(self, indent: str = "") -> str:
        return "[" + ", ".join(item.render(indent) for item in self.items) + "]"


@attrs.frozen
class Field:
    key: str
    type: TsType
    optional: bool = False


@attrs.frozen
class ObjectOf(TsType):
    """An object type; one without keys is Convex's `EmptyObject`, `Record<string, never>`
    (`{}` would accept every value), which lets a client leave such args out."""

    fields: tuple[Field, ...]

    def render(self, indent: str = "") -> str:
        if not self.fields:
            return "Record<string, never>"
        inner = indent + _INDENT
        lines = [
            f"{inner}{property_key(field.key)}{'?' if field.optional else ''}:"
            f" {field.type.render(inner)};"
            for field in self.fields
        ]
        return "{\n" + "\n".join(lines) + f"\n{indent}}}"


ANY = Name("any")
NULL = Name("null")
_SCALARS: Mapping[Any, TsType] = {
    str: Name("string"),
    int: Name("number"),
    float: Name("number"),
    bool: Name("boolean"),
    bytes: Name("ArrayBuffer"),
    type(None): NULL,
    None: NULL,
    Any: ANY,
}


def union_of(members: Iterable[TsType]) -> TsType:
    """The union of `members`, flattened, each once, in their order."""
    flat: list[TsType] = []
    for member in members:
        for one in member.members if isinstance(member, Union) else (member,):
            if one not in flat:
                flat.append(one)
    if ANY in flat:
        return ANY
    return flat[0] if len(flat) == 1 else Union(tuple(flat))


# -- the translation ----------------------------------------------------------------------------


def typescript_of(tp: Any, direction: Direction = "result") -> TsType:
    """The TypeScript of `tp` as the wire carries it in `direction` (the module's docstring);
    `CodegenError` for a type with no wire form."""
    return _Translation(direction).of(tp, {})


class _Translation:
    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        #: The classes being written out, to refuse one that contains itself.
        self.open: list[type] = []

    def of(self, tp: Any, bound: Mapping[Any, Any]) -> TsType:
        if isinstance(tp, typing.TypeVar):
            # A generic class used bare (`Page`) is one of `Any`, as type checkers read it.
            return self.of(bound[tp], {}) if tp in bound else ANY
        if isinstance(tp, str | typing.ForwardRef):
            raise CodegenError(f"the annotation {tp!r} names a type that cannot be resolved")
        scalar = _SCALARS.get(tp) if _hashable(tp) else None
        if scalar is not None:
            return scalar
        supertype = getattr(tp, "__supertype__", None)  # typing.NewType
        if supertype is not None:
            return self.of(supertype, bound)
        origin = typing.get_origin(tp)
        arguments = typing.get_args(tp)
        if origin is typing.Union or origin is types.UnionType:
            return union_of(self.of(member, bound) for member in arguments)
        if origin is Literal:
            return union_of(_literal(value) for value in arguments)
        if origin is typing.Annotated:
            return self.of(arguments[0], bound)
        if origin is tuple:
            if len(arguments) == 2 and arguments[1] is Ellipsis:
                return ArrayOf(self.of(arguments[0], bound))
            if arguments == ((),):
                return TupleOf(())
            return TupleOf(tuple(self.of(item, bound) for item in arguments))
        if origin in _SEQUENCES:
            return ArrayOf(self.of(arguments[0], bound) if arguments else ANY)
        if origin in _MAPPINGS:
            if arguments:
                self.check_key(arguments[0], tp)
                return RecordOf(self.of(arguments[1], bound))
            return RecordOf(ANY)
        if origin is not None and attrs.has(origin):
            parameters = getattr(origin, "__parameters__", ())
            resolved = {p: _bound(a, bound) for p, a in zip(parameters, arguments, strict=False)}
            return self.attrs_object(origin, resolved)
        if tp in _SEQUENCES:
            return ArrayOf(ANY)
        if tp in _MAPPINGS:
            return RecordOf(ANY)
        if isinstance(tp, type):
            if issubclass(tp, enum.Enum):
                return union_of(_literal(member.value) for member in tp)
            if attrs.has(tp):
                return self.attrs_object(tp, {})
            if typing.is_typeddict(tp):
                return self.typed_dict(tp)
        raise CodegenError(f"{_describe(tp)} has no form on the wire that TypeScript can say")

    def check_key(self, key: Any, mapping: Any) -> None:
        if key is not str and key is not Any:
            raise CodegenError(f"{_describe(mapping)}: object keys on the wire are strings")

    def attrs_object(self, cls: type, bound: Mapping[Any, Any]) -> TsType:
        with self.opening(cls):
            hints = _hints(cls)
            fields: list[Field] = []
            for field in attrs.fields(cls):
                if not field.init:  # the codec neither reads nor writes it
                    continue
                optional = self.direction == "args" and field.default is not attrs.NOTHING
                tp = self.of(hints.get(field.name, Any), bound)
                fields.append(Field(camel(field.name), tp, optional))
            return ObjectOf(tuple(fields))

    def typed_dict(self, cls: type) -> TsType:
        with self.opening(cls):
            hints = _hints(cls, extras=True)
            fields = []
            for key, tp in hints.items():
                # `__required_keys__` misses a `NotRequired` written as a string annotation
                # (`from __future__ import annotations`), so the annotation itself decides.
                marker = typing.get_origin(tp)
                if marker is typing.NotRequired or marker is typing.Required:
                    optional = marker is typing.NotRequired
                    tp = typing.get_args(tp)[0]
                else:
                    optional = key not in getattr(cls, "__required_keys__", hints)
                fields.append(Field(key, self.of(tp, {}), optional))
            return ObjectOf(tuple(fields))

    @contextlib.contextmanager
    def opening(self, cls: type) -> Iterator[None]:
        if cls in self.open:
            path = " -> ".join(c.__qualname__ for c in (*self.open, cls))
            raise CodegenError(f"{_describe(cls)} contains itself ({path})")
        self.open.append(cls)
        try:
            yield
        finally:
            self.open.pop()


def _hints(cls: type, *, extras: bool = False) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=extras)
    except Exception as exc:  # a bad annotation can raise anything; say whose it is
        raise CodegenError(
            f"the annotations of {_describe(cls)} cannot be resolved: {exc}"
        ) from exc


def _bound(tp: Any, bound: Mapping[Any, Any]) -> Any:
    return bound.get(tp, tp) if isinstance(tp, typing.TypeVar) else tp


def _literal(value: Any) -> TsType:
    if value is None:
        return NULL
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return Name("true" if value else "false")
    if isinstance(value, str | int | float):
        return Name(json.dumps(value))
    raise CodegenError(f"the literal {value!r} has no form on the wire that TypeScript can say")


def _hashable(tp: Any) -> bool:
    try:
        hash(tp)
    except TypeError:
        return False
    return True


def _describe(tp: Any) -> str:
    if isinstance(tp, type):
        return f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp)
