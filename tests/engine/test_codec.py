"""The wire codec's strictness: what `decode_args` refuses, with the path of the bad field."""

from __future__ import annotations

import attrs
import pytest

from domain.errors import InvalidArgs
from domain.ticketing import EventQueueState
from engine import codec
from tests.domain.ticketing_helpers import create_event, join, new_world, state_of


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


@attrs.frozen(kw_only=True)
class Price:
    price: int


@pytest.mark.parametrize(
    "value", [1e300, 9.3e18, 2.0**53 + 2, 123456789012345678901234567890, -(2**64)]
)
def test_integers_the_journal_cannot_hold_are_invalid_args(value: float | int) -> None:
    with pytest.raises(InvalidArgs) as refused:
        codec.decode_args({"price": value}, Price)
    assert refused.value.data()["path"] == "price"


def test_integers_in_range_pass() -> None:
    assert codec.decode_args({"price": 2.0**53}, Price).price == 2**53
    assert codec.decode_args({"price": 2**63 - 1}, Price).price == 2**63 - 1


def test_an_event_with_every_offer_bit_set_survives_a_snapshot() -> None:
    # A full block's mask is the largest: it must stay within what the journal's codec holds.
    w = new_world()
    event_id = create_event(w, total=130)
    for n in range(130):
        join(w, event_id, f"u{n}")
    state = state_of(w, event_id)
    assert len(state.live_offers) == 130
    stored = codec.encode_value(state, EventQueueState)
    assert codec.decode_value(stored, EventQueueState) == state
