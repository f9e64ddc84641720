"""The location aggregate's invariants, checked in full (O(n log n)) after every command in
tests and wherever the engine chooses to (`Aggregate.check_invariants`).

`check_invariants(state)` raises AssertionError naming the first broken rule and changes
nothing. The rules:

1. no two non-cancelled bookings share a resource over overlapping time (checked from the
   orders themselves, by sorting, independently of the booking index);
2. every order's total is the sum of its lines, and 0 <= paidAmount <= total;
3. the counters, child ids and lifecycle stamps agree with the records (`completedAt` exactly
   on completed orders, `cancelledAt` on cancelled ones, `remindedAt` only on bookings and
   before their start; a booking's interval is its services' minutes and shorter than a day
   can be);
4. the booking index holds exactly the non-cancelled bookings' resources, sorted in their
   start-day buckets; the listing index holds every order once, under its listing day.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from domain.venue.bookings import MAX_BOOKING_MS, day_key, held
from domain.venue.hours import DAY_MS, MINUTE_MS, MINUTES_PER_DAY
from domain.venue.state import (
    ORDER_STATUSES,
    ORDER_TYPES,
    LocationState,
    Order,
    order_id,
    service_id,
)


def check_invariants(state: LocationState) -> None:
    """Raise AssertionError (with a precise message) if `state` breaks an invariant."""
    if state.location is None:
        if state != LocationState():
            raise AssertionError("a stream without a location holds services or orders")
        return
    _check_services(state)
    _check_orders(state)
    _check_no_double_booking(state)
    _check_booking_index(state)
    _check_listing_index(state)


def _check_services(state: LocationState) -> None:
    assert state.location is not None
    if state.service_count != len(state.services):
        raise AssertionError(
            f"service_count {state.service_count} != {len(state.services)} services"
        )
    for n in range(state.service_count):
        service = state.services.get(service_id(state.location.id, n))
        if service is None or service.number != n:
            raise AssertionError(f"service number {n} is missing")
        if not 1 <= service.duration <= MINUTES_PER_DAY or service.price < 0:
            raise AssertionError(f"service {service.id} has a bad duration or price")
        if len(set(service.resources)) != len(service.resources):
            raise AssertionError(f"service {service.id} lists a resource twice")


def _check_orders(state: LocationState) -> None:
    assert state.location is not None
    if state.order_count != len(state.orders):
        raise AssertionError(f"order_count {state.order_count} != {len(state.orders)} orders")
    for n in range(state.order_count):
        order = state.orders.get(order_id(state.location.id, n))
        if order is None or order.number != n:
            raise AssertionError(f"order number {n} is missing")
        _check_order(order)


def _check_order(order: Order) -> None:
    if order.type not in ORDER_TYPES or order.status not in ORDER_STATUSES:
        raise AssertionError(f"order {order.id} has type {order.type} and status {order.status}")
    lines_total = sum(line.amount for line in order.lines)
    if order.total != lines_total:
        raise AssertionError(f"order {order.id} total {order.total} != its lines' {lines_total}")
    if not 0 <= order.paid_amount <= order.total:
        raise AssertionError(
            f"order {order.id} paidAmount {order.paid_amount} outside 0..total {order.total}"
        )
    if (order.completed_at is not None) != (order.status == "completed"):
        raise AssertionError(f"order {order.id} is {order.status} with completedAt wrong")
    if (order.cancelled_at is not None) != (order.status == "cancelled"):
        raise AssertionError(f"order {order.id} is {order.status} with cancelledAt wrong")
    if not order.is_booking:
        if order.ends_at is not None or order.resources:
            raise AssertionError(f"order {order.id} is not a booking but holds resources")
        if order.reminded_at is not None:
            raise AssertionError(f"order {order.id} is not a booking but was reminded")
        return
    if order.scheduled_at is None or order.ends_at is None:
        raise AssertionError(f"booking {order.id} has no interval")
    if order.reminded_at is not None and order.reminded_at >= order.scheduled_at:
        raise AssertionError(f"booking {order.id} was reminded after it started")
    minutes = sum(line.duration * line.quantity for line in order.lines)
    if order.ends_at - order.scheduled_at != minutes * MINUTE_MS:
        raise AssertionError(f"booking {order.id} does not last its services' {minutes} minutes")
    if not 0 < order.ends_at - order.scheduled_at < MAX_BOOKING_MS:
        raise AssertionError(f"booking {order.id} is empty or longer than any day")


def _check_no_double_booking(state: LocationState) -> None:
    by_resource: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for order in state.orders.values():
        if order.is_booking and order.status != "cancelled":
            assert order.scheduled_at is not None and order.ends_at is not None
            for resource in order.resources:
                by_resource[resource].append((order.scheduled_at, order.ends_at, order.id))
    for resource, intervals in by_resource.items():
        intervals.sort()
        for (_, end, first), (start, _, second) in pairwise(intervals):
            if start < end:
                raise AssertionError(f"{resource!r} is double-booked by {first} and {second}")


def _check_booking_index(state: LocationState) -> None:
    expected: set[tuple[str, int, int, str]] = set()
    for order in state.orders.values():
        if order.is_booking and order.status != "cancelled":
            assert order.scheduled_at is not None and order.ends_at is not None
            for resource in order.resources:
                expected.add((resource, order.scheduled_at, order.ends_at, order.id))
    indexed: list[tuple[str, int, int, str]] = []
    for resource, key, slot in held(state.booked):
        if key != day_key(slot.start):
            raise AssertionError(f"slot of {slot.order_id} is filed under day {key}")
        indexed.append((resource, slot.start, slot.end, slot.order_id))
    if len(indexed) != len(set(indexed)) or set(indexed) != expected:
        raise AssertionError("the booking index does not hold exactly the live bookings")
    for resource, buckets in state.booked.items():
        if not buckets:
            raise AssertionError(f"the booking index keeps an empty entry for {resource!r}")
        for key, bucket in buckets.items():
            starts = [slot.start for slot in bucket]
            if not bucket or starts != sorted(starts):
                raise AssertionError(f"bucket {key} of {resource!r} is empty or unsorted")


def _check_listing_index(state: LocationState) -> None:
    seen: list[str] = []
    for key, bucket in state.orders_by_day.items():
        numbers = [state.orders[oid].number for oid in bucket]
        if not bucket or numbers != sorted(numbers):
            raise AssertionError(f"listing day {key} is empty or out of order")
        for oid in bucket:
            if str(state.orders[oid].listed_at // DAY_MS) != key:
                raise AssertionError(f"order {oid} is listed under the wrong day {key}")
        seen.extend(bucket)
    if len(seen) != len(set(seen)) or len(seen) != len(state.orders):
        raise AssertionError("the listing index does not hold every order exactly once")
