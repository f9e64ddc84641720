"""The one codec: a cattrs converter (orjson preconf) shared by the journal, the snapshots and
the wire.

- Every attrs class travels with camelCase keys (`offer_expires_at` <-> `offerExpiresAt`), so one
  word means one thing in code, wire and journal.
- Primitives are strict: `"5"` is not an int, `True` is not a number, `5.5` is not an int.
- `immutables.Map[str, V]` travels as a JSON object.
- Wire args are decoded with unknown keys forbidden; a failure becomes `InvalidArgs` whose `path`
  is the wire path of the first bad field (`paymentInfo.amount`).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
import immutables
import orjson
from cattrs.cols import homogenous_tuple_structure_factory, list_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter

from domain.core import upcast
from domain.errors import InvalidArgs
from domain.model import EVENT_TYPES, Event
from engine.journal.interface import Row

T = TypeVar("T")

_EVENT_BASE_FIELDS = ("stream", "version", "at")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


#: Integers the journal (SQLite, orjson) can hold: signed 64 bits.
_INT64 = (-(2**63), 2**63 - 1)
#: A JavaScript number is an integer exactly only up to 2**53 (Number.MAX_SAFE_INTEGER).
_SAFE_FLOAT_INT = 2**53


def _strict_int(value: Any, _: type) -> int:
    """An integer, or a float that is exactly one (as JavaScript sends them). Out of range is
    refused here, as bad args, never later by the journal (which would fail a whole batch)."""
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise TypeError("expected an integer within 64 bits")
        return value
    if isinstance(value, float) and value.is_integer():
        if abs(value) > _SAFE_FLOAT_INT:
            raise TypeError("expected an integer within 2**53 (a number larger is not exact)")
        return int(value)
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _is_map(tp: Any) -> bool:
    return typing.get_origin(tp) is immutables.Map or tp is immutables.Map


def _is_sequence(tp: Any) -> bool:
    """list[X] and homogeneous tuple[X, ...] (not fixed-size tuples)."""
    origin = typing.get_origin(tp)
    if origin is list:
        return True
    args = typing.get_args(tp)
    return origin is tuple and len(args) == 2 and args[1] is Ellipsis


def _make_converter(*, forbid_extra_keys: bool) -> cattrs.Converter:
    conv = make_converter(forbid_extra_keys=forbid_extra_keys)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)

    def structure_map_factory(tp: Any) -> Callable[[Any, Any], Any]:
        args = typing.get_args(tp)
        value_type = args[1] if len(args) == 2 else Any
        structure_value = conv.get_structure_hook(value_type)

        def structure_map(value: Any, _: Any) -> immutables.Map[Any, Any]:
            if not isinstance(value, dict):
                raise TypeError("expected an object")
            return immutables.Map(
                {key: structure_value(item, value_type) for key, item in value.items()}
            )

        return structure_map

    def unstructure_map_factory(tp: Any) -> Callable[[Any], Any]:
        args = typing.get_args(tp)
        unstructure_value = conv.get_unstructure_hook(args[1] if len(args) == 2 else Any)

        def unstructure_map(value: immutables.Map[Any, Any]) -> dict[Any, Any]:
            return {key: unstructure_value(item) for key, item in value.items()}

        return unstructure_map

    conv.register_structure_hook_factory(_is_map, structure_map_factory)

    def strict_sequence_factory(tp: Any) -> Callable[[Any, Any], Any]:
        # cattrs would take a string as a sequence of its characters ("ab" -> ("a", "b")).
        origin = typing.get_origin(tp) or tp
        base = (list_structure_factory if origin is list else homogenous_tuple_structure_factory)(
            tp, conv
        )

        def structure_sequence(value: Any, target: Any) -> Any:
            if not isinstance(value, list | tuple):
                raise TypeError(f"expected an array, got {type(value).__name__}")
            return base(value, target)

        return structure_sequence

    conv.register_structure_hook_factory(_is_sequence, strict_sequence_factory)
    conv.register_unstructure_hook_factory(_is_map, unstructure_map_factory)

    def camel_overrides(cls: type) -> dict[str, Any]:
        return {f.name: override(rename=camel(f.name)) for f in attrs.fields(cls)}

    conv.register_structure_hook_factory(
        attrs.has,
        lambda cls: make_dict_structure_fn(
            cls,
            conv,
            _cattrs_forbid_extra_keys=forbid_extra_keys,
            _cattrs_detailed_validation=True,
            **camel_overrides(cls),
        ),
    )
    conv.register_unstructure_hook_factory(
        attrs.has,
        lambda cls: make_dict_unstructure_fn(cls, conv, **camel_overrides(cls)),
    )
    return conv


#: Journal and snapshot payloads (tolerant of keys added by later schema versions).
converter = _make_converter(forbid_extra_keys=False)
#: Wire args: unknown keys are an error, as a typo in a field name should be.
wire_converter = _make_converter(forbid_extra_keys=True)


#: JSON bytes of a value: orjson's own function (no wrapper to call per row or record).
dumps: Callable[[Any], bytes] = orjson.dumps


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


#: Per event type, its payload's unstructure function: cattrs' own for the type (camelCase
#: keys, nested values through `converter`'s hooks) generated with stream, version and at
#: left out, so that a commit encodes each event in one call instead of unstructuring the
#: whole event and deleting three keys (made on first use; every row of every batch comes here).
#: Read only through `payload_fn`, or directly where a row is made (engine.group_commit), with
#: `payload_fn` for a type not in it yet.
PAYLOAD_FNS: dict[type, Callable[[Any], dict[str, Any]]] = {}


def payload_fn(event_type: type) -> Callable[[Any], dict[str, Any]]:
    """`event_type`'s payload unstructure function (`PAYLOAD_FNS`), made on first use."""
    fn = PAYLOAD_FNS.get(event_type)
    if fn is None:
        fields = attrs.fields(event_type)
        overrides: dict[str, Any] = {
            f.name: override(omit=True)
            if f.name in _EVENT_BASE_FIELDS
            else override(rename=camel(f.name))
            for f in fields
        }
        fn = PAYLOAD_FNS[event_type] = make_dict_unstructure_fn(event_type, converter, **overrides)
    return fn


def encode_event(event: Event) -> bytes:
    """The payload column of a journal row: the event without stream, version and time."""
    return orjson.dumps(payload_fn(type(event))(event))


def decode_event(
    type_name: str, stream: str, version: int, at: int, payload: bytes, schema: int | None = None
) -> Event:
    """The event of a journal row. A payload written at an older `schema` is upcast first
    (`domain.core.upcast`; None: the type's current schema). ValueError for an unknown type, a
    schema no upcaster reaches or a newer build's; cattrs' errors for a payload that does not
    structure."""
    event_type = EVENT_TYPES.get(type_name)
    if event_type is None:
        raise ValueError(f"unknown event type {type_name!r}")
    body = orjson.loads(payload)
    if schema is not None and schema != event_type.schema:
        body = upcast(event_type, schema, body)
    body["stream"] = stream
    body["version"] = version
    body["at"] = at
    return converter.structure(body, event_type)


def decode_row(row: Row) -> Event:
    """`decode_event` of a journal row (its schema included)."""
    return decode_event(row.type, row.stream, row.version, row.at, row.payload, row.schema)


def upcast_payload(type_name: str, schema: int, body: Any) -> Any:
    """A row's decoded payload in its type's current schema (unchanged for an unknown type)."""
    event_type = EVENT_TYPES.get(type_name)
    if event_type is None or schema == event_type.schema or not isinstance(body, dict):
        return body
    return upcast(event_type, schema, body)


def encode_value(value: Any, value_type: type) -> bytes:
    return orjson.dumps(converter.unstructure(value, value_type))


def decode_value(data: bytes, value_type: type[T]) -> T:
    return converter.structure(orjson.loads(data), value_type)


#: The wire converter's structure function per args type, as `structure` would dispatch to it
#: (looked up once: every mutation and query decodes its args).
_ARGS_HOOKS: dict[Any, Callable[[Any, Any], Any]] = {}


def decode_args(raw: Any, args_type: type[T]) -> T:
    """Structure wire args strictly; any failure is `InvalidArgs` naming the first bad path."""
    if not isinstance(raw, dict):
        raise InvalidArgs("Arguments must be an object.", path="")
    hook = _ARGS_HOOKS.get(args_type)
    if hook is None:
        hook = _ARGS_HOOKS[args_type] = wire_converter.get_structure_hook(args_type)
    try:
        parsed: T = hook(raw, args_type)
        return parsed
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError) as exc:
        path, reason = _first_error(exc, args_type)
        raise InvalidArgs(f"Invalid argument {path or 'args'}: {reason}", path=path) from None
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidArgs(f"Invalid arguments: {exc}", path="") from None


def _first_error(exc: BaseException, owner: Any, prefix: str = "") -> tuple[str, str]:
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = sorted(exc.extra_fields)
        return _join(prefix, extra[0]), "unknown field"
    if isinstance(exc, ClassValidationError | IterableValidationError):
        for sub in exc.exceptions:
            segment = ""
            for note in getattr(sub, "__notes__", []):
                name = getattr(note, "name", None)
                index = getattr(note, "index", None)
                if name is not None:
                    segment = camel(name)
                elif index is not None:
                    segment = f"[{index}]"
            child_prefix = prefix + segment if segment.startswith("[") else _join(prefix, segment)
            return _first_error(sub, None, child_prefix)
    if isinstance(exc, KeyError):
        return prefix, "is required"
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TypeError) and "missing" in message and "required" in message:
        return prefix, "is required"
    return prefix, message


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def type_name(tp: Any) -> str:
    if isinstance(tp, types.GenericAlias):
        return str(tp)
    return getattr(tp, "__name__", str(tp))
