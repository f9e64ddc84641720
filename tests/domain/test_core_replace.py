"""`domain.core.replace`: a copy with changes, for the dict-backed hot states and for slotted
values alike; the original is untouched and an unknown field is refused."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.core import replace
from domain.ratelimit import LimiterState
from domain.ticketing.state import EventQueueState


def test_a_dict_backed_state_is_copied_with_its_changes() -> None:
    state = EventQueueState()
    changed = replace(state, entry_count=3, waiting_head=1)
    assert (changed.entry_count, changed.waiting_head) == (3, 1)
    assert (state.entry_count, state.waiting_head) == (0, 0)
    assert changed == EventQueueState(entry_count=3, waiting_head=1)
    assert changed.__dict__ is not state.__dict__


def test_a_slotted_value_is_copied_with_its_changes() -> None:
    state = LimiterState(count=1)
    assert replace(state, count=2) == LimiterState(count=2)
    assert state.count == 1


@pytest.mark.parametrize("value", [EventQueueState(), LimiterState()])
def test_an_unknown_field_is_refused_and_names_it(value: object) -> None:
    with pytest.raises(TypeError, match="no_such_field"):
        replace(value, no_such_field=1)


@attrs.frozen
class _Base:
    a: int
    b: str = "b"


@attrs.frozen
class _Derived(_Base):
    c: tuple[int, ...] = ()
    d: int | None = None


@settings(max_examples=200, deadline=None)
@given(
    st.builds(_Derived, a=st.integers(), b=st.text(), c=st.lists(st.integers()).map(tuple)),
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.one_of(st.integers(), st.text(), st.none()),
    ),
)
def test_a_slotted_copy_is_attrs_evolve_also_with_inherited_fields(
    value: _Derived, changes: dict[str, object]
) -> None:
    """The base class's slots included, the copy is what `attrs.evolve` makes (which runs
    `__init__`), field for field."""
    copy = replace(value, **changes)
    assert type(copy) is _Derived
    assert attrs.astuple(copy, recurse=False) == attrs.astuple(
        attrs.evolve(value, **changes),  # type: ignore[arg-type]
        recurse=False,
    )
