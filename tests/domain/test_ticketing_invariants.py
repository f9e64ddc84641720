"""`check_invariants` catches each broken rule, and the lifecycle tables refuse illegal steps."""

from __future__ import annotations

import attrs
import immutables
import pytest

from domain.errors import Conflict
from domain.ticketing import (
    QUEUE_TRANSITIONS,
    TICKET_TRANSITIONS,
    WAITING_LIST_TRANSITIONS,
    EventQueueState,
    check_invariants,
)
from domain.ticketing.state import require_transition
from tests.domain.harness import MINUTE
from tests.domain.ticketing_helpers import (
    create_event,
    join,
    join_and_buy,
    new_world,
    state_of,
    user,
)


def busy_state() -> EventQueueState:
    """One sold ticket, one live offer, one waiting entry, two people in the live queue."""
    w = new_world()
    event_id = create_event(w, total=2)
    join_and_buy(w, event_id, "alice")
    join(w, event_id, "bob")
    join(w, event_id, "carol")
    for name in ("dave", "erin"):
        w.mutate("queue:joinQueue", {"eventId": event_id, "userId": name}, user(name))
    state = state_of(w, event_id)
    check_invariants(state)
    return state


def test_the_empty_stream_and_a_busy_event_pass() -> None:
    check_invariants(EventQueueState())
    check_invariants(busy_state())


def test_overselling_is_caught() -> None:
    state = busy_state()
    assert state.event is not None
    shrunk = attrs.evolve(state, event=attrs.evolve(state.event, total_tickets=1))
    with pytest.raises(AssertionError, match=r"oversold: 1 valid/used tickets \+ 1 live offers"):
        check_invariants(shrunk)


def test_waiting_beside_free_seats_is_caught() -> None:
    state = busy_state()
    assert state.event is not None
    grown = attrs.evolve(state, event=attrs.evolve(state.event, total_tickets=3))
    with pytest.raises(AssertionError, match="1 entries wait while 1 seats are free"):
        check_invariants(grown)


def test_two_open_entries_for_one_user_are_caught() -> None:
    state = busy_state()
    carol = state.entries_by_user["carol"][0]
    bob = state.entries_by_user["bob"][0]
    moved = state.entries.set(carol, attrs.evolve(state.entries[carol], user_id="bob"))
    by_user = state.entries_by_user.delete("carol").set("bob", (bob, carol))
    with pytest.raises(AssertionError, match="user bob holds 2 open waiting-list entries"):
        check_invariants(attrs.evolve(state, entries=moved, entries_by_user=by_user))


def test_counters_that_disagree_with_the_maps_are_caught() -> None:
    state = busy_state()
    with pytest.raises(AssertionError, match="purchased_count 2 != 1 valid/used tickets"):
        check_invariants(attrs.evolve(state, purchased_count=2))
    with pytest.raises(AssertionError, match="live_offers"):
        check_invariants(attrs.evolve(state, live_offers=immutables.Map()))
    with pytest.raises(AssertionError, match="is waiting, but the waiting entries are numbers 3"):
        check_invariants(attrs.evolve(state, waiting_head=3))
    with pytest.raises(AssertionError, match=r"queue entry .* against head 1"):
        check_invariants(attrs.evolve(state, queue_head=1))
    with pytest.raises(AssertionError, match="ticket_count 0 != 1 tickets"):
        check_invariants(attrs.evolve(state, ticket_count=0))


def test_a_cancelled_event_with_a_valid_ticket_is_caught() -> None:
    state = busy_state()
    assert state.event is not None
    emptied = attrs.evolve(
        state,
        event=attrs.evolve(state.event, is_cancelled=True),
        live_offers=immutables.Map(),
        offer_blocks=immutables.Map(),
        entries=immutables.Map(
            (k, attrs.evolve(e, status="expired") if e.status != "purchased" else e)
            for k, e in state.entries.items()
        ),
        waiting_head=state.entry_count,
        queue=immutables.Map(
            (k, attrs.evolve(e, status="cancelled")) for k, e in state.queue.items()
        ),
        queue_head=state.queue_count,
    )
    with pytest.raises(AssertionError, match="a cancelled event still has valid tickets"):
        check_invariants(emptied)


def test_offers_never_exceed_seats_across_a_long_day() -> None:
    w = new_world()
    event_id = create_event(w, total=3)
    for i in range(12):
        join(w, event_id, f"u{i}")
        w.advance(7 * MINUTE)
    check_invariants(state_of(w, event_id))
    assert state_of(w, event_id).active_offers == 3


@pytest.mark.parametrize("table", [WAITING_LIST_TRANSITIONS, TICKET_TRANSITIONS, QUEUE_TRANSITIONS])
def test_every_target_of_a_table_is_one_of_its_states(table: dict[str, frozenset[str]]) -> None:
    for targets in table.values():
        assert targets <= set(table)


def test_require_transition_refuses_with_the_current_status() -> None:
    require_transition(TICKET_TRANSITIONS, "The ticket", "valid", "used")
    with pytest.raises(Conflict) as err:
        require_transition(TICKET_TRANSITIONS, "The ticket", "used", "refunded", ticketId="tk_a_1")
    assert err.value.data() == {
        "code": "Conflict",
        "message": "The ticket is used and cannot become refunded.",
        "status": "used",
        "ticketId": "tk_a_1",
    }
    with pytest.raises(Conflict):
        require_transition(WAITING_LIST_TRANSITIONS, "The entry", "waiting", "purchased")
    with pytest.raises(Conflict):
        require_transition(QUEUE_TRANSITIONS, "The queue entry", "waiting", "completed")
