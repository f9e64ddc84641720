"""tools.codegen.typescript: Python types as the TypeScript of what the wire carries."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, NewType, NotRequired, Optional, TypedDict, TypeVar

import attrs
import immutables
import pytest

from engine.codec import decode_args, wire_converter
from tools.codegen import CodegenError, typescript_of

T = TypeVar("T")
UserId = NewType("UserId", str)


def ts(tp: Any, direction: Literal["args", "result"] = "result") -> str:
    return typescript_of(tp, direction).render()


@pytest.mark.parametrize(
    ("tp", "expected"),
    [
        (str, "string"),
        (int, "number"),
        (float, "number"),
        (bool, "boolean"),
        (None, "null"),
        (type(None), "null"),
        (bytes, "ArrayBuffer"),
        (Any, "any"),
        (UserId, "string"),
        (str | None, "string | null"),
        (Optional[int], "number | null"),  # noqa: UP045 (the spelling is what is tested)
        (int | str | None, "number | string | null"),
        (int | float, "number"),
        (int | Any, "any"),
        (Literal["offered", "waiting"], '"offered" | "waiting"'),
        (Literal[1, True, None], "1 | true | null"),
        (Literal["a"] | None, '"a" | null'),
        (list[str], "Array<string>"),
        (tuple[int, ...], "Array<number>"),
        (Sequence[str | None], "Array<string | null>"),
        (frozenset[str], "Array<string>"),
        (tuple[int, str], "[number, string]"),
        (list, "Array<any>"),
        (dict[str, Any], "Record<string, any>"),
        (dict[str, int | None], "Record<string, number | null>"),
        (Mapping[str, bool], "Record<string, boolean>"),
        (immutables.Map[str, Any], "Record<string, any>"),
        (immutables.Map[str, list[str]], "Record<string, Array<string>>"),
        (dict, "Record<string, any>"),
        (list[dict[str, Any]] | None, "Array<Record<string, any>> | null"),
    ],
)
def test_a_type_becomes_its_typescript(tp: Any, expected: str) -> None:
    assert ts(tp) == expected
    assert ts(tp, "args") == expected  # only attrs classes differ by direction


class Status(enum.Enum):
    OPEN = "open"
    SHUT = "shut"


def test_an_enum_is_the_union_of_its_values() -> None:
    assert ts(Status) == '"open" | "shut"'
    assert ts(Literal[Status.OPEN]) == '"open"'


@attrs.frozen(kw_only=True)
class Address:
    line1: str | None = None
    postal_code: str | None = None


@attrs.frozen(kw_only=True)
class Window:
    from_: int
    to: int


@attrs.frozen(kw_only=True)
class BookArgs:
    location_id: str
    window: Window
    address: Address | None = None
    quantity: int = 1
    tags: tuple[str, ...] = ()
    settings: immutables.Map[str, Any] = attrs.field(factory=immutables.Map)
    kind: Literal["walk-in", "booked"] = "booked"
    internal: str = attrs.field(default="", init=False)


def test_args_are_camel_case_keys_with_a_question_mark_where_the_field_has_a_default() -> None:
    assert ts(BookArgs, "args") == (
        "{\n"
        "  locationId: string;\n"
        "  window: {\n"
        "    from: number;\n"
        "    to: number;\n"
        "  };\n"
        "  address?: {\n"
        "    line1?: string | null;\n"
        "    postalCode?: string | null;\n"
        "  } | null;\n"
        "  quantity?: number;\n"
        "  tags?: Array<string>;\n"
        "  settings?: Record<string, any>;\n"
        '  kind?: "walk-in" | "booked";\n'
        "}"
    )


def test_the_args_keys_are_those_the_codec_decodes() -> None:
    decoded = decode_args(
        {"locationId": "lo_1", "window": {"from": 1, "to": 2}, "address": {"postalCode": "E1"}},
        BookArgs,
    )
    assert decoded.window.from_ == 1 and decoded.address == Address(postal_code="E1")


def test_a_result_has_every_key_the_codec_writes() -> None:
    value = BookArgs(location_id="lo_1", window=Window(from_=1, to=2))
    written = wire_converter.unstructure(value)
    assert ts(BookArgs, "result") == (
        "{\n"
        "  locationId: string;\n"
        "  window: {\n"
        "    from: number;\n"
        "    to: number;\n"
        "  };\n"
        "  address: {\n"
        "    line1: string | null;\n"
        "    postalCode: string | null;\n"
        "  } | null;\n"
        "  quantity: number;\n"
        "  tags: Array<string>;\n"
        "  settings: Record<string, any>;\n"
        '  kind: "walk-in" | "booked";\n'
        "}"
    )
    assert list(written) == [
        "locationId",
        "window",
        "address",
        "quantity",
        "tags",
        "settings",
        "kind",
    ]


@attrs.frozen(kw_only=True)
class NoArgs:
    pass


def test_an_empty_args_class_is_convex_s_empty_object() -> None:
    # Record<string, never>, not {} (which accepts anything): the client may leave it out.
    assert ts(NoArgs, "args") == "Record<string, never>"


class TicketDoc(TypedDict):
    _id: str
    status: Literal["valid", "used"]
    checkedInAt: int | None
    note: NotRequired[str]


class Summary(TypedDict, total=False):
    count: int


def test_a_typed_dict_keeps_its_own_keys_and_marks_those_not_required() -> None:
    assert ts(TicketDoc) == (
        "{\n"
        "  _id: string;\n"
        '  status: "valid" | "used";\n'
        "  checkedInAt: number | null;\n"
        "  note?: string;\n"
        "}"
    )
    assert ts(list[Summary] | None) == "Array<{\n  count?: number;\n}> | null"


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    rows: tuple[T, ...]
    is_done: bool


def test_a_generic_attrs_class_binds_its_parameters() -> None:
    assert ts(Page[TicketDoc]).startswith("{\n  rows: Array<{\n    _id: string;")
    assert ts(Page[int]) == "{\n  rows: Array<number>;\n  isDone: boolean;\n}"
    assert ts(Page) == "{\n  rows: Array<any>;\n  isDone: boolean;\n}"


def test_keys_that_are_not_identifiers_are_quoted() -> None:
    Quoted = TypedDict("Quoted", {"content-type": str, "$ok": int})
    assert ts(Quoted) == '{\n  "content-type": string;\n  $ok: number;\n}'


@attrs.frozen(kw_only=True)
class Tree:
    children: tuple[Tree, ...] = ()


@attrs.frozen(kw_only=True)
class Unknown:
    when: complex


@pytest.mark.parametrize(
    ("tp", "message"),
    [
        (Tree, "contains itself (Tree -> Tree)"),
        (Unknown, "complex has no form on the wire"),
        (dict[int, str], "object keys on the wire are strings"),
        (set, None),
        (object, "has no form on the wire"),
        ("Doc", "cannot be resolved"),
    ],
)
def test_what_has_no_typescript_is_refused_naming_the_type(tp: Any, message: str | None) -> None:
    if message is None:
        assert ts(tp) == "Array<any>"  # a bare set is an array of anything, not refused
        return
    with pytest.raises(CodegenError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ts(tp)
