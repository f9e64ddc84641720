"""analytics:daily: daily series per location, folded live from committed events."""

from __future__ import annotations

from typing import Any

import pytest

from domain.customers import CustomerCreated
from domain.errors import Forbidden, InvalidArgs, NotFound
from domain.identity import ADMIN, Identity
from domain.ticketing import TicketPurchased
from domain.venue import DAILY_ANALYTICS, METRICS, OrderPlaced
from domain.venue.analytics import analytics_keys
from engine.codec import decode_args, decode_value, encode_value
from tests.domain.harness import MINUTE, DictView, World
from tests.domain.test_venue_support import (
    ANALYST,
    FRONT_DESK,
    MANAGER,
    ORG,
    OTHER_ORG,
    RIVAL,
    book,
    create_customer,
    create_location,
    create_service,
    new_world,
    place,
    set_status,
    utc,
)

JAN_5 = utc(2026, 1, 5)
DAY = 24 * 60 * MINUTE


def daily(
    w: World, location_id: str, metric: str, start: int, end: int, who: Identity = ANALYST
) -> list[dict[str, Any]]:
    args = {"locationId": location_id, "metric": metric, "from": start, "to": end}
    result = w.query("analytics:daily", args, who)
    assert isinstance(result, list)
    return result


def values(series: list[dict[str, Any]]) -> dict[str, int]:
    return {point["date"]: point["value"] for point in series}


def test_orders_bookings_and_revenue_per_local_day_with_zeros() -> None:
    w = new_world()
    location_id = create_location(w)
    massage = create_service(w, location_id)
    w.now = utc(2026, 1, 2, 12)
    booked = book(w, location_id, utc(2026, 1, 5, 10), massage)
    bought = place(w, location_id)
    w.now = utc(2026, 1, 4, 8)
    place(w, location_id, type="enquiry", items=[])
    set_status(w, bought, "cancelled")  # cancelling does not unmake an order
    set_status(w, booked, "confirmed")
    w.now = utc(2026, 1, 5, 11)
    set_status(w, booked, "completed")
    span = (utc(2026, 1, 1), utc(2026, 1, 5, 23))
    assert daily(w, location_id, "orders", *span) == [
        {"date": "2026-01-01", "value": 0, "dimensions": {}},
        {"date": "2026-01-02", "value": 2, "dimensions": {"type": {"booking": 1, "purchase": 1}}},
        {"date": "2026-01-03", "value": 0, "dimensions": {}},
        {"date": "2026-01-04", "value": 1, "dimensions": {"type": {"enquiry": 1}}},
        {"date": "2026-01-05", "value": 0, "dimensions": {}},
    ]
    assert values(daily(w, location_id, "bookings", *span)) == {
        "2026-01-01": 0,
        "2026-01-02": 1,
        "2026-01-03": 0,
        "2026-01-04": 0,
        "2026-01-05": 0,
    }
    revenue = daily(w, location_id, "revenue", *span)
    assert revenue[-1] == {
        "date": "2026-01-05",
        "value": 5000,
        "dimensions": {"type": {"booking": 5000}},
    }
    assert sum(point["value"] for point in revenue) == 5000


def test_days_are_the_locations_local_dates() -> None:
    w = new_world()
    location_id = create_location(w, timezone="America/New_York")
    w.now = utc(2026, 1, 3, 4, 59)  # 23:59 on Jan 2 in New York
    place(w, location_id)
    w.now = utc(2026, 1, 3, 5)  # midnight Jan 3 in New York
    place(w, location_id)
    series = daily(w, location_id, "orders", utc(2026, 1, 2, 12), utc(2026, 1, 3, 12))
    assert values(series) == {"2026-01-02": 1, "2026-01-03": 1}
    # `from` and `to` are read as local dates too: 03:00 UTC on Jan 3 is still Jan 2 there.
    assert [
        p["date"] for p in daily(w, location_id, "orders", utc(2026, 1, 3, 3), utc(2026, 1, 3, 3))
    ] == ["2026-01-02"]


def test_a_timezone_change_dates_later_facts_in_the_new_zone() -> None:
    w = new_world()
    location_id = create_location(w)  # London
    w.now = utc(2026, 1, 3, 2)
    place(w, location_id)  # Jan 3 in London
    update = {"locationId": location_id, "timezone": "America/Los_Angeles"}
    w.mutate("locations:update", update, MANAGER)
    place(w, location_id)  # Jan 2 (18:00) in Los Angeles
    series = daily(w, location_id, "orders", utc(2026, 1, 2, 12), utc(2026, 1, 3, 12))
    assert values(series) == {"2026-01-02": 1, "2026-01-03": 1}


def test_new_customers_count_customers_created_with_the_location_per_local_day() -> None:
    w = new_world()
    location_id = create_location(w, timezone="America/New_York")
    annexe = create_location(w, name="Annexe")  # London
    theirs = create_location(w, RIVAL, orgId=OTHER_ORG)

    def newcomer(org: str, name: str, **extra: Any) -> str:
        return create_customer(w, org, firstName=name, customerType="new", **extra)

    w.now = utc(2026, 1, 3, 4, 59)  # 23:59 on Jan 2 in New York, 04:59 on Jan 3 in London
    ann = newcomer(ORG, "Ann", locationId=location_id)
    newcomer(ORG, "Ben", locationId=annexe)
    newcomer(ORG, "Cat")  # no location
    # Another organization's customer cannot name our location: NotFound, as a missing one.
    with pytest.raises(NotFound, match=r"^Location not found\.$"):
        newcomer(OTHER_ORG, "Dan", locationId=location_id)
    w.now = utc(2026, 1, 3, 5)  # midnight Jan 3 in New York
    for name in ("Eve", "Fay"):
        newcomer(ORG, name, locationId=location_id)
    # A customer counts where it was created: moving it later changes no figure.
    w.mutate("customers:update", {"customerId": ann, "locationId": annexe}, ADMIN)
    span = (utc(2026, 1, 2, 12), utc(2026, 1, 3, 12))
    assert daily(w, location_id, "newCustomers", *span) == [
        {"date": "2026-01-02", "value": 1, "dimensions": {}},
        {"date": "2026-01-03", "value": 2, "dimensions": {}},
    ]
    assert values(daily(w, annexe, "newCustomers", *span)) == {"2026-01-02": 0, "2026-01-03": 1}
    assert sum(values(daily(w, theirs, "newCustomers", *span, who=RIVAL)).values()) == 0
    created = [e for e in w.journal if isinstance(e, CustomerCreated)]
    assert [list(analytics_keys(e)) for e in created[-5:]] == [
        [location_id],
        [annexe],
        [],
        [location_id],
        [location_id],
    ]
    assert w.replay_projections()[DAILY_ANALYTICS.name] == w.projections[DAILY_ANALYTICS.name]


def test_tickets_sold_counts_events_created_at_the_location_by_its_org() -> None:
    w = new_world()
    location_id = create_location(w)
    elsewhere = create_location(w, name="Annexe")
    theirs = create_location(w, RIVAL, orgId=OTHER_ORG)
    event_args = {
        "name": "Open day",
        "description": "",
        "location": "Spa",
        "eventDate": utc(2026, 2, 1),
        "price": 1000,
        "totalTickets": 10,
    }
    ours = w.mutate("events:create", {**event_args, "locationId": location_id}, MANAGER)
    unplaced = w.mutate("events:create", event_args, MANAGER)
    # Another organization cannot name our location: NotFound, as a missing one.
    with pytest.raises(NotFound, match=r"^Location not found\.$"):
        w.mutate("events:create", {**event_args, "locationId": location_id}, RIVAL)
    w.now = utc(2026, 1, 2, 10)
    for buyer in ("ann", "ben"):
        buy_ticket(w, ours, buyer)
    buy_ticket(w, unplaced, "cat")
    span = (utc(2026, 1, 1), utc(2026, 1, 3))
    assert daily(w, location_id, "ticketsSold", *span)[1] == {
        "date": "2026-01-02",
        "value": 2,
        "dimensions": {"eventId": {ours: 2}},
    }
    # Moving an event moves its later sales.
    w.mutate("events:update", {"eventId": ours, "locationId": elsewhere}, MANAGER)
    with pytest.raises(NotFound, match=r"^Location not found\.$"):
        w.mutate("events:update", {"eventId": unplaced, "locationId": theirs}, MANAGER)
    w.now = utc(2026, 1, 3, 10)
    buy_ticket(w, ours, "eve")
    buy_ticket(w, unplaced, "fay")
    assert values(daily(w, location_id, "ticketsSold", *span)) == {
        "2026-01-01": 0,
        "2026-01-02": 2,
        "2026-01-03": 0,
    }
    assert values(daily(w, elsewhere, "ticketsSold", *span))["2026-01-03"] == 1
    assert sum(values(daily(w, theirs, "ticketsSold", *span, who=RIVAL)).values()) == 0


def buy_ticket(w: World, event_id: str, buyer: str) -> None:
    me = Identity(subject=buyer)
    offer = w.mutate("events:joinWaitingList", {"eventId": event_id, "userId": buyer}, me)
    w.mutate(
        "events:purchaseTicket",
        {
            "eventId": event_id,
            "userId": buyer,
            "waitingListId": offer["waitingListId"],
            "paymentInfo": {"paymentIntentId": f"pi_{buyer}", "amount": 1000},
        },
        me,
    )


def test_a_tickets_sold_query_depends_on_its_linked_events() -> None:
    w = new_world()
    location_id = create_location(w)
    event_id = w.mutate(
        "events:create",
        {
            "name": "Gala",
            "description": "",
            "location": "Spa",
            "eventDate": utc(2026, 2, 1),
            "price": 0,
            "totalTickets": 1,
            "locationId": location_id,
        },
        MANAGER,
    )
    args = {"locationId": location_id, "metric": "ticketsSold", "from": JAN_5, "to": JAN_5}
    spec = w.queries["analytics:daily"]
    for metric, expected in (("ticketsSold", {location_id, event_id}), ("orders", {location_id})):
        view = DictView(w.states, w.projections)
        parsed = decode_args({**args, "metric": metric}, spec.args_type)
        spec.evaluate(view, parsed, ANALYST)
        assert {key for name, key in view.reads if name == DAILY_ANALYTICS.name} == expected
    sale = TicketPurchased(
        stream=f"event/{event_id}",
        version=3,
        at=JAN_5,
        ticket_id="tk_x_0",
        waiting_list_id="wl_x_0",
        user_id="ann",
        payment_intent_id="pi",
        amount=0,
    )
    assert list(analytics_keys(sale)) == [event_id]


def test_a_series_covers_at_most_366_local_dates() -> None:
    w = new_world()
    location_id = create_location(w)
    assert len(daily(w, location_id, "orders", JAN_5, JAN_5 + 365 * DAY)) == 366
    for change, path in (
        ({"to": JAN_5 + 366 * DAY}, "to"),
        ({"to": JAN_5 - 1}, "to"),
        ({"from": -1}, "from"),
        ({"metric": "visitors"}, "metric"),
        ({"metric": 3}, "metric"),
        ({"to": None}, "to"),
        ({"period": "day"}, "period"),
    ):
        args = {"locationId": location_id, "metric": "orders", "from": JAN_5, "to": JAN_5, **change}
        with pytest.raises(InvalidArgs) as err:
            w.query("analytics:daily", args, ANALYST)
        assert err.value.data()["path"] == path


def test_analytics_need_analytics_read_in_the_locations_org() -> None:
    w = new_world()
    location_id = create_location(w)
    args = {"locationId": location_id, "metric": "orders", "from": JAN_5, "to": JAN_5}
    assert w.query("analytics:daily", args, ADMIN)[0]["value"] == 0
    with pytest.raises(Forbidden):
        w.query("analytics:daily", args, FRONT_DESK)
    for who, wanted in ((RIVAL, location_id), (ANALYST, "lo_nothere1"), (ANALYST, "x")):
        with pytest.raises(NotFound) as err:
            w.query("analytics:daily", {**args, "locationId": wanted}, who)
        assert err.value.data() == {"code": "NotFound", "message": "Location not found."}


def test_every_feed_serves_a_declared_metric_and_the_state_round_trips() -> None:
    w = new_world()
    location_id = create_location(w)
    massage = create_service(w, location_id)
    order_id = book(w, location_id, utc(2026, 1, 5, 10), massage)
    set_status(w, order_id, "confirmed")
    set_status(w, order_id, "completed")
    state = w.projections[DAILY_ANALYTICS.name]
    metrics = set(state.series[location_id])
    assert metrics == {"orders", "bookings", "revenue"} and metrics <= set(METRICS)
    assert (
        decode_value(encode_value(state, DAILY_ANALYTICS.state_type), DAILY_ANALYTICS.state_type)
        == state
    )
    assert w.replay_projections()[DAILY_ANALYTICS.name] == state
    placed = next(e for e in w.journal if isinstance(e, OrderPlaced))
    assert list(analytics_keys(placed)) == [location_id]
