"""Random sequences of venue commands against an independent model.

Bookings land at random quarter hours around the 2026 daylight-saving changes, in random
timezones with random opening hours, for random services needing random resources. Every
booking command is predicted by a brute-force model (scan the day in quarter-hour steps for
the opening and closing instants; compare with every live booking pairwise) and must be
accepted exactly when the model says so. Whatever happens, no committed state ever holds a
double booking or a booking outside the hours it was placed under, a refused command changes
nothing, every order's customer records exactly what the location holds, replay reproduces
every state and projection, and `analytics:daily` equals a recomputation from the journal by a
plain function.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.customers import CustomerCreated
from domain.errors import Conflict, NotFound, TurnstileError
from domain.identity import Identity
from domain.model import Event
from domain.ticketing import EventCreated, TicketPurchased
from domain.venue import (
    LocationCreated,
    LocationState,
    LocationUpdated,
    OrderPlaced,
    OrderStatusChanged,
    check_invariants,
)
from domain.venue.values import WEEKDAYS
from engine.codec import decode_value, encode_value
from tests.domain.harness import MINUTE, World
from tests.domain.test_venue_support import (
    CUSTOMER,
    MANAGER,
    ORG,
    OTHER_ORG,
    RIVAL,
    create_customer,
    create_location,
    create_service,
    customer_of,
    new_world,
    order_args,
    state_of,
)

QUARTER = 15 * MINUTE
ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "UTC")
#: Dates around the 2026 changes of London, New York, Lord Howe and Santiago, and a plain one.
DAYS = (
    date(2026, 3, 7),
    date(2026, 3, 8),
    date(2026, 3, 28),
    date(2026, 3, 29),
    date(2026, 4, 4),
    date(2026, 9, 5),
    date(2026, 9, 6),
    date(2026, 10, 3),
    date(2026, 10, 24),
    date(2026, 10, 25),
    date(2026, 10, 31),
    date(2026, 11, 1),
    date(2026, 6, 10),
)
RESOURCES = ("a", "b", "c")


def hhmm(quarters: int) -> str:
    return f"{quarters // 4:02d}:{quarters % 4 * 15:02d}"


any_hours = (
    st.lists(st.integers(0, 96), min_size=2, max_size=2, unique=True)
    .map(sorted)
    .map(lambda pair: {"open": hhmm(pair[0]), "close": hhmm(pair[1])})
)
long_hours = st.tuples(st.integers(0, 40), st.integers(56, 96)).map(
    lambda pair: {"open": hhmm(pair[0]), "close": hhmm(pair[1])}
)
# Mostly long days, so that many bookings fit and clash; some short or closed ones.
day_hours = st.one_of(long_hours, long_hours, long_hours, any_hours, st.none())
hours = st.fixed_dictionaries({day: day_hours for day in WEEKDAYS})
services = st.lists(
    st.tuples(
        st.integers(1, 8),  # quarters
        st.lists(st.sampled_from(RESOURCES), unique=True, max_size=2),
    ),
    min_size=1,
    max_size=4,
)


def booking(quarters: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[Any, ...]]:
    """("book", service picks, which of the example's dates, local quarter hour, quantity)."""
    return st.tuples(
        st.just("book"),
        st.lists(st.integers(0, 3), min_size=1, max_size=2),
        st.integers(0, 1),
        quarters,
        st.integers(1, 2),
    )


ops = st.lists(
    st.one_of(
        booking(st.integers(0, 95)),  # any time, the night's clock changes included
        booking(st.integers(32, 72)),  # busy daytime, where bookings clash
        booking(st.integers(32, 72)),
        st.tuples(st.sampled_from(["cancel", "confirm", "complete", "pay"]), st.integers(0, 30)),
        st.tuples(st.sampled_from(["purchase", "enquiry", "ticket"])),
        st.tuples(st.just("customer"), st.sampled_from(["here", "nowhere", "rival"])),
        st.tuples(st.just("advance"), st.integers(0, 48)),
        st.tuples(st.just("rezone"), st.sampled_from(ZONES)),
        st.tuples(st.just("rehours"), hours),
    ),
    min_size=5,
    max_size=50,
)


# -- the model ------------------------------------------------------------------------------------


def local(at: int, timezone: str) -> datetime:
    return datetime.fromtimestamp(at / 1000, tz=ZoneInfo(timezone))


def brute_window(at: int, timezone: str, week: dict[str, Any]) -> tuple[int, int] | None:
    """Opening and closing instants of `at`'s local date by scanning quarter hours: the first
    quarter at which the clock shows the opening time or later (or the next date), and the
    same for the closing time. Every zone here changes its clock on a quarter hour."""
    day = local(at, timezone).date()
    today = week[WEEKDAYS[day.weekday()]]
    if today is None:
        return None
    open_at, close_at = (_minutes(today["open"]), _minutes(today["close"]))
    t = (
        int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        - 16 * 60 * MINUTE
    )
    opens = None
    while True:
        now = local(t, timezone)
        shown = now.hour * 60 + now.minute
        if opens is None and (now.date() > day or (now.date() == day and shown >= open_at)):
            opens = t
        if now.date() > day or (now.date() == day and shown >= close_at):
            return opens if opens is not None else t, t
        t += QUARTER


def _minutes(text: str) -> int:
    return int(text[:2]) * 60 + int(text[3:])


def overlapping(state: LocationState, start: int, end: int, needs: set[str]) -> bool:
    return any(
        o.is_booking
        and o.status != "cancelled"
        and o.scheduled_at is not None
        and o.ends_at is not None
        and o.scheduled_at < end
        and start < o.ends_at
        and needs & set(o.resources)
        for o in state.orders.values()
    )


def hours_doc(state: LocationState) -> dict[str, Any]:
    assert state.location is not None
    found = {}
    for name in WEEKDAYS:
        day = getattr(state.location.operating_hours, name)
        found[name] = None if day is None else {"open": day.open, "close": day.close}
    return found


def predict_booking(
    w: World, state: LocationState, service_ids: list[str], at: int, quantity: int
) -> bool:
    """Whether the booking must be accepted, decided without the aggregate's own checks."""
    assert state.location is not None
    chosen = [state.services[sid] for sid in service_ids]
    end = at + sum(s.duration for s in chosen) * quantity * MINUTE
    if at < w.now:
        return False
    window = brute_window(at, state.location.timezone, hours_doc(state))
    if window is None or not window[0] <= at or not end <= window[1]:
        return False
    return not overlapping(state, at, end, {r for s in chosen for r in s.resources})


# -- the run --------------------------------------------------------------------------------------


def run(
    w: World,
    location_id: str,
    service_ids: list[str],
    event_id: str,
    days: list[date],
    op: tuple[Any, ...],
) -> None:
    state = state_of(w, location_id)
    order_ids = sorted(state.orders, key=lambda oid: state.orders[oid].number)
    kind = op[0]
    if kind == "book":
        _, picks, which, quarter, quantity = op
        day = days[which % len(days)]
        chosen = [service_ids[i % len(service_ids)] for i in picks]
        # About that local time of that date (a skipped time lands after the jump, a repeated
        # one on its first showing).
        assert state.location is not None
        zone = ZoneInfo(state.location.timezone)
        wall = datetime(day.year, day.month, day.day, quarter // 4, quarter % 4 * 15, tzinfo=zone)
        at = int(wall.timestamp() * 1000)
        expected = predict_booking(w, state, chosen, at, quantity)
        event("booking accepted" if expected else "booking refused")
        items = [{"serviceId": sid, "quantity": quantity} for sid in chosen]
        args = order_args(location_id, type="booking", items=items, scheduledAt=at)
        try:
            w.mutate("orders:create", args, MANAGER)
        except TurnstileError as refusal:
            assert not expected, f"refused a booking the model accepts: {refusal.data()}"
            assert isinstance(refusal, Conflict) or refusal.data().get("path") == "scheduledAt"
            raise
        assert expected, "accepted a booking the model refuses"
    elif kind in ("cancel", "confirm", "complete", "pay"):
        if not order_ids:
            return
        order_id = order_ids[op[1] % len(order_ids)]
        if kind == "pay":
            order = state.orders[order_id]
            amount = 1 + op[1] * 500
            w.mutate("orders:recordPayment", {"orderId": order_id, "amount": amount}, MANAGER)
            assert order.paid_amount + amount <= order.total
        else:
            target = {"cancel": "cancelled", "confirm": "confirmed", "complete": "completed"}[kind]
            w.mutate("orders:updateStatus", {"orderId": order_id, "status": target}, MANAGER)
    elif kind in ("purchase", "enquiry"):
        items = [{"name": "Voucher", "quantity": 2, "price": 1250}] if kind == "purchase" else []
        w.mutate("orders:create", order_args(location_id, type=kind, items=items), MANAGER)
    elif kind == "ticket":
        buyer = f"u{len(w.journal)}"
        me = Identity(subject=buyer)
        offer = w.mutate("events:joinWaitingList", {"eventId": event_id, "userId": buyer}, me)
        w.mutate(
            "events:purchaseTicket",
            {
                "eventId": event_id,
                "userId": buyer,
                "waitingListId": offer["waitingListId"],
                "paymentInfo": {"paymentIntentId": f"pi_{buyer}", "amount": 100},
            },
            me,
        )
    elif kind == "customer":
        org = OTHER_ORG if op[1] == "rival" else ORG
        where = {} if op[1] == "nowhere" else {"locationId": location_id}
        create_customer(w, org, firstName=f"N{len(w.journal)}", customerType="new", **where)
    elif kind == "advance":
        w.advance(op[1] * 15 * MINUTE)
    elif kind == "rezone":
        w.mutate("locations:update", {"locationId": location_id, "timezone": op[1]}, MANAGER)
    elif kind == "rehours":
        w.mutate("locations:update", {"locationId": location_id, "operatingHours": op[1]}, MANAGER)


def check_journal(w: World, location_id: str) -> None:
    """Brute force over the journal: each booking lay inside the hours it was placed under,
    and no two live bookings share a resource over overlapping time."""
    timezone, week = "", {}
    for fact in w.stream_events(f"location/{location_id}"):
        if isinstance(fact, LocationCreated | LocationUpdated):
            timezone = fact.timezone or timezone
            if fact.operating_hours is not None:
                hours_now = fact.operating_hours
                week = {
                    name: None
                    if getattr(hours_now, name) is None
                    else {
                        "open": getattr(hours_now, name).open,
                        "close": getattr(hours_now, name).close,
                    }
                    for name in WEEKDAYS
                }
        if isinstance(fact, OrderPlaced) and fact.type == "booking":
            assert fact.scheduled_at is not None and fact.ends_at is not None
            window = brute_window(fact.scheduled_at, timezone, week)
            assert window is not None and window[0] <= fact.scheduled_at
            assert fact.ends_at <= window[1]
    live = [
        o
        for o in state_of(w, location_id).orders.values()
        if o.is_booking and o.status != "cancelled"
    ]
    for i, first in enumerate(live):
        for second in live[i + 1 :]:
            assert first.scheduled_at is not None and first.ends_at is not None
            assert second.scheduled_at is not None and second.ends_at is not None
            if set(first.resources) & set(second.resources):
                assert first.ends_at <= second.scheduled_at or second.ends_at <= first.scheduled_at


def check_customers(w: World, location_id: str) -> None:
    """Each order's customer records the order exactly as the location holds it, and knows no
    order the location does not have."""
    orders = state_of(w, location_id).orders
    recorded = customer_of(w, CUSTOMER).orders
    assert set(recorded) == set(orders)
    for order in orders.values():
        record = recorded[order.id]
        assert (record.status, record.total, record.paid_amount, record.completed_at) == (
            order.status,
            order.total,
            order.paid_amount,
            order.completed_at,
        )


def recompute(journal: list[Event], location_id: str, metric: str) -> Counter[str]:
    """The daily series from the committed events by a plain fold (not the projection)."""
    timezone, org = "", ""
    event_at_location: set[str] = set()
    series: Counter[str] = Counter()
    for e in journal:
        kind, _, stream_id = e.stream.partition("/")
        facts: list[tuple[str, int]] = []
        if kind == "location" and stream_id == location_id:
            if isinstance(e, LocationCreated):
                timezone, org = e.timezone, e.org_id
            elif isinstance(e, LocationUpdated) and e.timezone is not None:
                timezone = e.timezone
            elif isinstance(e, OrderPlaced):
                facts = [("orders", 1), ("bookings", 1)] if e.type == "booking" else [("orders", 1)]
            elif isinstance(e, OrderStatusChanged) and e.status == "completed":
                facts = [("revenue", e.total)]
        elif isinstance(e, EventCreated) and e.location_id == location_id and e.org_id == org:
            event_at_location.add(stream_id)
        elif isinstance(e, TicketPurchased) and stream_id in event_at_location:
            facts = [("ticketsSold", 1)]
        elif isinstance(e, CustomerCreated) and e.location_id == location_id and e.org_id == org:
            facts = [("newCustomers", 1)]
        for name, amount in facts:
            if name == metric:
                series[local(e.at, timezone).date().isoformat()] += amount
    return series


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    timezone=st.sampled_from(ZONES),
    week=hours,
    offered=services,
    days=st.lists(st.sampled_from(DAYS), min_size=1, max_size=2, unique=True),
    script=ops,
)
def test_random_bookings_never_double_book_or_leave_the_hours(
    timezone: str,
    week: dict[str, Any],
    offered: list[tuple[int, list[str]]],
    days: list[date],
    script: list[tuple[Any, ...]],
) -> None:
    w = new_world()
    location_id = create_location(w, timezone=timezone, operatingHours=week)
    service_ids = [
        create_service(
            w, location_id, duration=quarters * 15, resources=needs, price=1000 * quarters
        )
        for quarters, needs in offered
    ]
    event_args = {
        "name": "Open day",
        "description": "",
        "location": "Here",
        "eventDate": w.now + 1,
        "price": 100,
        "totalTickets": 1000,
        "locationId": location_id,
    }
    event_id = w.mutate("events:create", event_args, MANAGER)
    before = (len(w.journal), dict(w.states), dict(w.projections))
    with pytest.raises(NotFound):  # another organization naming our location
        w.mutate("events:create", event_args, RIVAL)
    assert (len(w.journal), w.states, w.projections) == before
    for op in script:
        before = (len(w.journal), dict(w.states), dict(w.projections))
        try:
            run(w, location_id, service_ids, event_id, days, op)
        except TurnstileError:
            assert (len(w.journal), w.states, w.projections) == before
        check_invariants(state_of(w, location_id))
        check_customers(w, location_id)
    check_journal(w, location_id)

    stream = f"location/{location_id}"
    assert w.replay(stream) == w.states[stream]
    assert (
        decode_value(encode_value(w.states[stream], LocationState), LocationState)
        == (w.states[stream])
    )
    assert w.replay_projections() == w.projections

    # A day either side: a fact is dated in the timezone of its time, the range in today's.
    start, end = w.journal[0].at - 24 * 60 * MINUTE, w.now + 24 * 60 * MINUTE
    for metric in ("orders", "bookings", "revenue", "ticketsSold", "newCustomers"):
        args = {"locationId": location_id, "metric": metric, "from": start, "to": end}
        series = w.query("analytics:daily", args, MANAGER)
        expected = recompute(w.journal, location_id, metric)
        assert {p["date"]: p["value"] for p in series if p["value"]} == {
            day: value for day, value in expected.items() if value
        }
        for point in series:
            for breakdown in point["dimensions"].values():
                assert sum(breakdown.values()) == point["value"]
    listed = w.query("orders:listByCustomer", {"customerId": CUSTOMER}, MANAGER)
    assert len(listed) == len(state_of(w, location_id).orders)
