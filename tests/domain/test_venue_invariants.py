"""`check_invariants` catches each broken rule of the location aggregate; the order lifecycle
table refuses illegal steps; states survive the snapshot codec. (That the venue domain does no
I/O is held, with the rest of domain/, by tests/test_layers.py.)"""

from __future__ import annotations

import immutables
import pytest

from domain.errors import Conflict
from domain.model import replace
from domain.venue import (
    ORDER_TRANSITIONS,
    LocationState,
    OrderPlaced,
    check_invariants,
    evolve,
)
from domain.venue.bookings import Slot, adding
from domain.venue.state import require_transition
from domain.venue.values import OrderLine
from engine.codec import decode_value, encode_value
from tests.domain.harness import MINUTE
from tests.domain.test_venue_support import (
    MANAGER,
    book,
    create_location,
    create_service,
    new_world,
    place,
    set_status,
    state_of,
    utc,
)

MONDAY_10 = utc(2026, 1, 5, 10)


def busy_state() -> LocationState:
    """Two services; a live booking, a cancelled one, a completed purchase partly paid."""
    w = new_world()
    location_id = create_location(w)
    massage = create_service(w, location_id)
    create_service(w, location_id, name="Walk-in", resources=[])
    book(w, location_id, MONDAY_10, massage)
    dropped = book(w, location_id, MONDAY_10 + 60 * MINUTE, massage)
    set_status(w, dropped, "cancelled")
    bought = place(w, location_id)
    set_status(w, bought, "confirmed")
    set_status(w, bought, "completed")
    w.mutate("orders:recordPayment", {"orderId": bought, "amount": 1000}, MANAGER)
    state = state_of(w, location_id)
    check_invariants(state)
    return state


def live_booking(state: LocationState) -> str:
    return next(o.id for o in state.orders.values() if o.is_booking and o.status == "pending")


def test_the_empty_stream_and_a_busy_location_pass() -> None:
    check_invariants(LocationState())
    check_invariants(busy_state())


def test_a_stream_without_a_location_holds_nothing() -> None:
    state = busy_state()
    with pytest.raises(AssertionError, match="without a location"):
        check_invariants(replace(state, location=None))


def test_a_double_booking_is_caught_even_if_the_index_agrees() -> None:
    state = busy_state()
    first = state.orders[live_booking(state)]
    assert state.location is not None
    clash = OrderPlaced(
        stream=f"location/{state.location.id}",
        version=99,
        at=first.created_at,
        order_id=f"or_{state.location.id.removeprefix('lo_')}_{state.order_count}",
        number=state.order_count,
        customer_id=first.customer_id,
        type="booking",
        lines=first.lines,
        total=first.total,
        scheduled_at=MONDAY_10 + 30 * MINUTE,
        ends_at=MONDAY_10 + 90 * MINUTE,
        resources=("room1",),
        notes=None,
    )
    with pytest.raises(AssertionError, match="'room1' is double-booked"):
        check_invariants(evolve(state, clash))


def test_paid_above_total_is_caught() -> None:
    state = busy_state()
    paid = next(o for o in state.orders.values() if o.paid_amount)
    broken = replace(
        state, orders=state.orders.set(paid.id, replace(paid, paid_amount=paid.total + 1))
    )
    with pytest.raises(AssertionError, match="paidAmount"):
        check_invariants(broken)


def test_a_total_that_is_not_the_sum_of_its_lines_is_caught() -> None:
    state = busy_state()
    order = state.orders[live_booking(state)]
    line = OrderLine(service_id=None, name="Extra", quantity=1, price=1, duration=0)
    broken = replace(
        state, orders=state.orders.set(order.id, replace(order, lines=(*order.lines, line)))
    )
    with pytest.raises(AssertionError, match="total"):
        check_invariants(broken)


def test_counters_and_stamps_are_checked() -> None:
    state = busy_state()
    with pytest.raises(AssertionError, match="service_count"):
        check_invariants(replace(state, service_count=state.service_count + 1))
    with pytest.raises(AssertionError, match="order_count"):
        check_invariants(replace(state, order_count=state.order_count - 1))
    order = state.orders[live_booking(state)]
    stamped = replace(state, orders=state.orders.set(order.id, replace(order, completed_at=1)))
    with pytest.raises(AssertionError, match="completedAt"):
        check_invariants(stamped)


def test_a_reminder_only_on_a_booking_and_before_its_start() -> None:
    state = busy_state()
    booking = state.orders[live_booking(state)]
    assert booking.scheduled_at is not None
    purchase = next(o for o in state.orders.values() if not o.is_booking)

    def reminded(order_id: str, at: int) -> LocationState:
        order = replace(state.orders[order_id], reminded_at=at)
        return replace(state, orders=state.orders.set(order_id, order))

    check_invariants(reminded(booking.id, booking.scheduled_at - 1))
    with pytest.raises(AssertionError, match="after it started"):
        check_invariants(reminded(booking.id, booking.scheduled_at))
    with pytest.raises(AssertionError, match="not a booking but was reminded"):
        check_invariants(reminded(purchase.id, purchase.created_at))


def test_the_booking_index_must_hold_exactly_the_live_bookings() -> None:
    state = busy_state()
    with pytest.raises(AssertionError, match="booking index"):
        check_invariants(replace(state, booked=immutables.Map()))
    cancelled = next(o for o in state.orders.values() if o.status == "cancelled")
    assert cancelled.scheduled_at is not None and cancelled.ends_at is not None
    stale = Slot(start=cancelled.scheduled_at, end=cancelled.ends_at, order_id=cancelled.id)
    with pytest.raises(AssertionError, match="booking index"):
        check_invariants(replace(state, booked=adding(state.booked, ("room1",), stale)))


def test_the_listing_index_must_hold_every_order_once() -> None:
    state = busy_state()
    key, bucket = next((k, b) for k, b in state.orders_by_day.items() if len(b) > 1)
    with pytest.raises(AssertionError, match="listing index"):
        check_invariants(replace(state, orders_by_day=state.orders_by_day.set(key, bucket[1:])))
    moved = state.orders_by_day.delete(key).set("1", bucket)
    with pytest.raises(AssertionError, match="wrong day"):
        check_invariants(replace(state, orders_by_day=moved))


def test_the_lifecycle_table() -> None:
    assert set(ORDER_TRANSITIONS) == {"pending", "confirmed", "completed", "cancelled"}
    assert ORDER_TRANSITIONS["completed"] == ORDER_TRANSITIONS["cancelled"] == frozenset()
    require_transition(ORDER_TRANSITIONS, "The order", "pending", "confirmed")
    with pytest.raises(Conflict):
        require_transition(ORDER_TRANSITIONS, "The order", "pending", "completed")


def test_the_state_survives_the_snapshot_codec() -> None:
    state = busy_state()
    assert decode_value(encode_value(state, LocationState), LocationState) == state
