"""The wire codec's strictness: what `decode_args` refuses, with the path of the bad field."""

from __future__ import annotations

import attrs
import pytest

from domain.errors import InvalidArgs
from engine import codec


@attrs.frozen(kw_only=True)
class Line:
    names: tuple[str, ...]
    counts: list[int] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class Order:
    lines: tuple[Line, ...]


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"lines": [{"names": "room1"}]}, "lines[0].names"),  # a string is not an array
        ({"lines": [{"names": ["a", 3]}]}, "lines[0].names[1]"),
        ({"lines": [{"names": [], "counts": "12"}]}, "lines[0].counts"),
        ({"lines": [{"names": [], "counts": [1, True]}]}, "lines[0].counts[1]"),
        ({"lines": {"names": []}}, "lines"),
        ({"lines": [], "extra": 1}, "extra"),
    ],
)
def test_sequences_refuse_what_is_not_an_array(raw: dict[str, object], path: str) -> None:
    with pytest.raises(InvalidArgs) as refused:
        codec.decode_args(raw, Order)
    assert refused.value.data()["path"] == path


def test_sequences_round_trip() -> None:
    order = codec.decode_args({"lines": [{"names": ["a", "b"], "counts": [1, 2]}]}, Order)
    assert order == Order(lines=(Line(names=("a", "b"), counts=[1, 2]),))
    assert codec.decode_value(codec.encode_value(order, Order), Order) == order
