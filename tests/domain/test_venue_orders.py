"""orders:* (docs/reference/functions.md), one behaviour per test, and what each order command
tells its customer. The location is in London, open 09:00-17:00 every day; T0 is Thursday
2026-01-01 00:00 UTC (London is on GMT then)."""

from __future__ import annotations

from typing import Any

import pytest

from domain.customers import OrderFacts
from domain.errors import Conflict, Forbidden, InvalidArgs, NotFound, TurnstileError
from domain.identity import ADMIN, Identity
from domain.venue import order_facts
from tests.domain.harness import MINUTE, T0, World
from tests.domain.test_venue_support import (
    ANALYST,
    CUSTOMER,
    FRONT_DESK,
    MANAGER,
    NO_CAPS,
    ORG,
    OTHER_CUSTOMER,
    OTHER_ORG,
    RIVAL,
    RIVAL_CUSTOMER,
    book,
    create_location,
    create_service,
    customer_of,
    new_world,
    order_args,
    orders_at,
    place,
    refused,
    set_status,
    state_of,
    utc,
)

MONDAY_10 = utc(2026, 1, 5, 10)
HOUR = 60 * MINUTE
LOCATION_STAFF = Identity(subject="u_ops", org_id=ORG, caps=frozenset({"locations:manage"}))
CRM = Identity(subject="u_crm", org_id=ORG, caps=frozenset({"customers:read", "customers:write"}))


def spa(w: World) -> tuple[str, str, str]:
    """A location with a 60-minute massage (room1) and a 30-minute facial (room2 and a
    therapist)."""
    location_id = create_location(w)
    massage = create_service(w, location_id)
    facial = create_service(
        w, location_id, name="Facial", duration=30, price=3000, resources=["room2", "therapist"]
    )
    return location_id, massage, facial


def get_order(w: World, location_id: str, order_id: str) -> dict[str, Any]:
    (doc,) = [d for d in orders_at(w, location_id) if d["_id"] == order_id]
    return doc


# -- orders:create --------------------------------------------------------------------------------


def test_a_purchase_totals_its_lines_and_starts_pending() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    items = [
        {"name": "Gift card", "quantity": 2, "price": 2500},
        {"serviceId": massage, "quantity": 1},
        {"serviceId": massage, "quantity": 1, "name": "Massage (staff rate)", "price": 4000},
    ]
    order_id = place(w, location_id, items=items, notes="Wrap it")
    assert order_id == f"or_{location_id.removeprefix('lo_')}_0"
    assert get_order(w, location_id, order_id) == {
        "_id": order_id,
        "_creationTime": T0,
        "locationId": location_id,
        "customerId": CUSTOMER,
        "type": "purchase",
        "status": "pending",
        "items": [
            {"serviceId": None, "name": "Gift card", "quantity": 2, "price": 2500, "duration": 0},
            {"serviceId": massage, "name": "Massage", "quantity": 1, "price": 5000, "duration": 60},
            {
                "serviceId": massage,
                "name": "Massage (staff rate)",
                "quantity": 1,
                "price": 4000,
                "duration": 60,
            },
        ],
        "total": 14000,
        "paidAmount": 0,
        "scheduledAt": None,
        "endsAt": None,
        "resources": [],
        "notes": "Wrap it",
        "completedAt": None,
        "cancelledAt": None,
        "remindedAt": None,
        "updatedAt": T0,
    }


def test_a_booking_holds_its_services_resources_for_their_minutes() -> None:
    w = new_world()
    location_id, massage, facial = spa(w)
    order_id = book(w, location_id, MONDAY_10, massage, facial, facial)
    doc = get_order(w, location_id, order_id)
    assert (doc["scheduledAt"], doc["endsAt"]) == (MONDAY_10, MONDAY_10 + 2 * HOUR)
    assert doc["resources"] == ["room1", "room2", "therapist"]
    assert doc["total"] == 11000


def test_quantity_multiplies_a_bookings_minutes() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    order_id = book(w, location_id, MONDAY_10, massage, quantity=3)
    assert get_order(w, location_id, order_id)["endsAt"] == MONDAY_10 + 3 * HOUR


def test_an_enquiry_may_have_no_items_and_holds_nothing() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    enquiry = place(w, location_id, type="enquiry", items=[], scheduledAt=MONDAY_10)
    doc = get_order(w, location_id, enquiry)
    assert (doc["total"], doc["scheduledAt"], doc["endsAt"], doc["resources"]) == (
        0,
        MONDAY_10,
        None,
        [],
    )
    book(w, location_id, MONDAY_10, massage)  # the enquiry does not take room1


def test_front_desk_staff_may_place_orders() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    book(w, location_id, MONDAY_10, massage)
    place(w, location_id, FRONT_DESK)
    assert len(orders_at(w, location_id)) == 2


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"type": "rental"}, "type"),
        ({"type": None}, "type"),
        ({"items": [{"name": "X", "quantity": 0, "price": 1}]}, "items[0].quantity"),
        ({"items": [{"name": "X", "quantity": "2", "price": 1}]}, "items[0].quantity"),
        ({"items": [{"name": "X", "quantity": 1, "price": -1}]}, "items[0].price"),
        ({"items": [{"name": "X", "quantity": 1, "price": 1.5}]}, "items[0].price"),
        ({"items": [{"quantity": 1, "price": 100}]}, "items[0].name"),
        ({"items": [{"name": " ", "quantity": 1, "price": 100}]}, "items[0].name"),
        ({"items": [{"name": "X", "quantity": 1}]}, "items[0].price"),
        ({"items": [{"name": "X", "quantity": 1, "price": 1, "colour": "red"}]}, "items[0].colour"),
        ({"items": [{"name": "X", "price": 1}]}, "items[0].quantity"),
        ({"items": [{"name": "A", "quantity": 1, "price": 1}, {"quantity": 1}]}, "items[1].name"),
        ({"items": [{"name": "X", "quantity": 2**40, "price": 2**40}]}, "items"),
        ({"items": []}, "items"),
        ({"items": None}, "items"),
        ({"notes": 5}, "notes"),
        ({"scheduledAt": -1}, "scheduledAt"),
        ({"scheduledAt": "tomorrow"}, "scheduledAt"),
        ({"customerId": None}, "customerId"),
        ({"discount": 10}, "discount"),
    ],
)
def test_order_args_are_validated_with_wire_paths(change: dict[str, Any], path: str) -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    args = order_args(location_id, **change)
    assert refused(w, "orders:create", args, MANAGER, InvalidArgs)["path"] == path


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"scheduledAt": None}, "scheduledAt"),
        ({"scheduledAt": T0 - 1}, "scheduledAt"),
        ({"items": [{"name": "Tea", "quantity": 1, "price": 300}]}, "items"),
        ({"items": []}, "items"),
    ],
)
def test_a_booking_needs_a_future_time_and_a_service(change: dict[str, Any], path: str) -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    args = order_args(
        location_id,
        type="booking",
        items=[{"serviceId": massage, "quantity": 1}],
        scheduledAt=MONDAY_10,
    )
    assert refused(w, "orders:create", {**args, **change}, MANAGER, InvalidArgs)["path"] == path


@pytest.mark.parametrize("customer", ["u_alice", "cu_", "cu_AB", "lo_abcdef", "cu_abcd_1", ""])
def test_the_customer_must_be_a_customer_id(customer: str) -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    data = refused(
        w, "orders:create", order_args(location_id, customerId=customer), MANAGER, NotFound
    )
    assert data == {"code": "NotFound", "message": "Customer not found."}


def test_items_name_services_of_this_location_that_are_active() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    elsewhere = create_location(w, name="Annexe")
    far_service = create_service(w, elsewhere)
    core = location_id.removeprefix("lo_")
    for service_id in (far_service, f"sv_{core}_7", "nonsense"):
        args = order_args(location_id, items=[{"serviceId": service_id, "quantity": 1}])
        data = refused(w, "orders:create", args, MANAGER, NotFound)
        assert data["path"] == "items[0].serviceId"
    w.mutate("services:update", {"serviceId": massage, "isActive": False}, MANAGER)
    args = order_args(location_id, items=[{"serviceId": massage, "quantity": 1}])
    assert refused(w, "orders:create", args, MANAGER, Conflict)["serviceId"] == massage


@pytest.mark.parametrize(
    ("who", "error"),
    [(NO_CAPS, Forbidden), (ANALYST, Forbidden), (LOCATION_STAFF, Forbidden), (RIVAL, NotFound)],
)
def test_orders_need_orders_manage_in_the_locations_org(
    who: Identity, error: type[TurnstileError]
) -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    refused(w, "orders:create", order_args(location_id), who, error)


def test_orders_at_a_missing_location_are_not_found() -> None:
    w = new_world()
    for location_id in ("lo_nothere1", "nothere", "ev_abcdef"):
        refused(w, "orders:create", order_args(location_id), MANAGER, NotFound)


def test_an_order_keeps_its_lines_when_the_service_changes() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    order_id = book(w, location_id, MONDAY_10, massage)
    update = {"serviceId": massage, "price": 9900, "duration": 90, "resources": ["room5"]}
    w.mutate("services:update", update, MANAGER)
    doc = get_order(w, location_id, order_id)
    assert (doc["total"], doc["endsAt"], doc["resources"]) == (5000, MONDAY_10 + HOUR, ["room1"])
    # The booking still holds room1; the service now needs room5 only.
    assert book(w, location_id, MONDAY_10, massage)


# -- double booking -------------------------------------------------------------------------------


def test_a_resource_is_never_double_booked() -> None:
    w = new_world()
    location_id, massage, facial = spa(w)
    first = book(w, location_id, MONDAY_10, massage)
    for start in (MONDAY_10, MONDAY_10 - 30 * MINUTE, MONDAY_10 + 59 * MINUTE):
        args = order_args(
            location_id,
            type="booking",
            items=[{"serviceId": massage, "quantity": 1}],
            scheduledAt=start,
        )
        data = refused(w, "orders:create", args, MANAGER, Conflict)
        assert (data["orderId"], data["resource"]) == (first, "room1")
    book(w, location_id, MONDAY_10 + HOUR, massage)  # back to back is fine
    book(w, location_id, MONDAY_10 - HOUR, massage)
    book(w, location_id, MONDAY_10, facial)  # other resources


def test_sharing_any_one_resource_clashes() -> None:
    w = new_world()
    location_id, _, facial = spa(w)
    therapist_only = create_service(w, location_id, name="Consultation", resources=["therapist"])
    first = book(w, location_id, MONDAY_10, facial)
    args = order_args(
        location_id,
        type="booking",
        items=[{"serviceId": therapist_only, "quantity": 1}],
        scheduledAt=MONDAY_10 + 15 * MINUTE,
    )
    data = refused(w, "orders:create", args, MANAGER, Conflict)
    assert (data["orderId"], data["resource"]) == (first, "therapist")


def test_services_without_resources_never_clash() -> None:
    w = new_world()
    location_id = create_location(w)
    walk_in = create_service(w, location_id, resources=[])
    for _ in range(3):
        book(w, location_id, MONDAY_10, walk_in)


def test_cancelling_frees_the_resources_and_completing_does_not() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    first = book(w, location_id, MONDAY_10, massage)
    set_status(w, first, "cancelled")
    second = book(w, location_id, MONDAY_10, massage)
    set_status(w, second, "confirmed")
    set_status(w, second, "completed")
    args = order_args(
        location_id,
        type="booking",
        items=[{"serviceId": massage, "quantity": 1}],
        scheduledAt=MONDAY_10,
    )
    assert refused(w, "orders:create", args, MANAGER, Conflict)["orderId"] == second


def test_a_clash_is_found_across_utc_midnight() -> None:
    """A Los Angeles evening booking starts on one UTC day and ends on the next: a booking
    starting after UTC midnight still sees it."""
    w = new_world()
    all_day = {"open": "00:00", "close": "24:00"}
    location_id = create_location(
        w, timezone="America/Los_Angeles", operatingHours={"monday": all_day}
    )
    long_session = create_service(w, location_id, duration=180, resources=["studio"])
    short = create_service(w, location_id, duration=30, resources=["studio"])
    start = utc(2026, 1, 5, 23)  # Monday 15:00 in Los Angeles
    first = book(w, location_id, start, long_session)
    args = order_args(
        location_id,
        type="booking",
        items=[{"serviceId": short, "quantity": 1}],
        scheduledAt=utc(2026, 1, 6, 1, 30),  # Monday 17:30 in Los Angeles
    )
    assert refused(w, "orders:create", args, MANAGER, Conflict)["orderId"] == first
    book(w, location_id, utc(2026, 1, 6, 2), short)


# -- opening hours (see test_venue_hours.py for daylight saving) ----------------------------------


def test_a_booking_must_lie_inside_the_days_opening_hours() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    opens, closes = utc(2026, 1, 5, 9), utc(2026, 1, 5, 17)
    book(w, location_id, opens, massage)
    book(w, location_id, closes - HOUR, massage)
    for start in (opens - MINUTE, closes - HOUR + MINUTE, closes, utc(2026, 1, 5, 3)):
        args = order_args(
            location_id,
            type="booking",
            items=[{"serviceId": massage, "quantity": 1}],
            scheduledAt=start,
        )
        data = refused(w, "orders:create", args, MANAGER, Conflict)
        assert (data["opensAt"], data["closesAt"]) == (opens, closes)


def test_a_booking_on_a_closed_day_is_refused() -> None:
    w = new_world()
    location_id = create_location(w, operatingHours={"monday": {"open": "09:00", "close": "17:00"}})
    massage = create_service(w, location_id)
    book(w, location_id, MONDAY_10, massage)
    tuesday = MONDAY_10 + 24 * HOUR
    args = order_args(
        location_id,
        type="booking",
        items=[{"serviceId": massage, "quantity": 1}],
        scheduledAt=tuesday,
    )
    assert refused(w, "orders:create", args, MANAGER, Conflict)["date"] == "2026-01-06"


def test_new_hours_apply_to_new_bookings_only() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    order_id = book(w, location_id, MONDAY_10, massage)
    hours = {"monday": {"open": "12:00", "close": "20:00"}}
    w.mutate("locations:update", {"locationId": location_id, "operatingHours": hours}, MANAGER)
    assert get_order(w, location_id, order_id)["status"] == "pending"
    book(w, location_id, utc(2026, 1, 5, 19), massage)
    args = order_args(
        location_id,
        type="booking",
        items=[{"serviceId": massage, "quantity": 1}],
        scheduledAt=MONDAY_10 + HOUR,
    )
    refused(w, "orders:create", args, MANAGER, Conflict)


# -- orders:updateStatus --------------------------------------------------------------------------


def test_the_lifecycle_runs_pending_confirmed_completed() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    order_id = book(w, location_id, MONDAY_10, massage)
    w.now += MINUTE
    set_status(w, order_id, "confirmed")
    w.now += MINUTE
    set_status(w, order_id, "completed")
    doc = get_order(w, location_id, order_id)
    assert (doc["status"], doc["completedAt"], doc["cancelledAt"], doc["updatedAt"]) == (
        "completed",
        T0 + 2 * MINUTE,
        None,
        T0 + 2 * MINUTE,
    )


@pytest.mark.parametrize("path", [["cancelled"], ["confirmed", "cancelled"]])
def test_open_orders_may_be_cancelled(path: list[str]) -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    order_id = place(w, location_id)
    for status in path:
        set_status(w, order_id, status)
    doc = get_order(w, location_id, order_id)
    assert (doc["status"], doc["cancelledAt"]) == ("cancelled", T0)


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], "completed"),
        ([], "pending"),
        (["confirmed"], "confirmed"),
        (["confirmed"], "pending"),
        (["confirmed", "completed"], "cancelled"),
        (["confirmed", "completed"], "confirmed"),
        (["cancelled"], "confirmed"),
        (["cancelled"], "pending"),
        (["cancelled"], "cancelled"),
    ],
)
def test_illegal_transitions_are_conflicts(path: list[str], target: str) -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    order_id = place(w, location_id)
    for status in path:
        set_status(w, order_id, status)
    current = path[-1] if path else "pending"
    data = refused(
        w, "orders:updateStatus", {"orderId": order_id, "status": target}, MANAGER, Conflict
    )
    assert data == {
        "code": "Conflict",
        "message": f"The order is {current} and cannot become {target}.",
        "status": current,
        "orderId": order_id,
    }


def test_update_status_refusals() -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    order_id = place(w, location_id)
    core = location_id.removeprefix("lo_")
    args = {"orderId": order_id, "status": "confirmed"}
    assert (
        refused(w, "orders:updateStatus", {**args, "status": "done"}, MANAGER, InvalidArgs)["path"]
        == "status"
    )
    refused(w, "orders:updateStatus", args, LOCATION_STAFF, Forbidden)
    rival = refused(w, "orders:updateStatus", args, RIVAL, NotFound)
    assert rival == {"code": "NotFound", "message": "Order not found."}
    for missing in (f"or_{core}_5", f"sv_{core}_0", "or_nothere1_0", location_id):
        refused(w, "orders:updateStatus", {**args, "orderId": missing}, MANAGER, NotFound)


# -- orders:recordPayment -------------------------------------------------------------------------


def test_payments_add_up_to_the_total_and_never_beyond() -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    order_id = place(w, location_id)  # total 2500
    pay = {"orderId": order_id, "amount": 1000}
    assert w.mutate("orders:recordPayment", pay, FRONT_DESK) == 1000
    data = refused(w, "orders:recordPayment", {**pay, "amount": 1501}, MANAGER, Conflict)
    assert (data["total"], data["paidAmount"], data["outstanding"]) == (2500, 1000, 1500)
    assert w.mutate("orders:recordPayment", {**pay, "amount": 1500}, MANAGER) == 2500
    refused(w, "orders:recordPayment", {**pay, "amount": 1}, MANAGER, Conflict)
    assert get_order(w, location_id, order_id)["paidAmount"] == 2500


def test_completed_orders_take_payment_and_cancelled_ones_do_not() -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    done, dropped = place(w, location_id), place(w, location_id)
    for status in ("confirmed", "completed"):
        set_status(w, done, status)
    assert w.mutate("orders:recordPayment", {"orderId": done, "amount": 2500}, MANAGER) == 2500
    set_status(w, dropped, "cancelled")
    data = refused(
        w, "orders:recordPayment", {"orderId": dropped, "amount": 100}, MANAGER, Conflict
    )
    assert data["status"] == "cancelled"


def test_a_free_order_takes_no_payment() -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    order_id = place(w, location_id, type="enquiry", items=[])
    refused(w, "orders:recordPayment", {"orderId": order_id, "amount": 1}, MANAGER, Conflict)


@pytest.mark.parametrize("amount", [0, -100, 1.5, "10", None])
def test_payment_amounts_are_positive_integers(amount: Any) -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    order_id = place(w, location_id)
    args = {"orderId": order_id, "amount": amount}
    assert refused(w, "orders:recordPayment", args, MANAGER, InvalidArgs)["path"] == "amount"


def test_payment_needs_the_capability_and_the_orders_org() -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    order_id = place(w, location_id)
    refused(w, "orders:recordPayment", {"orderId": order_id, "amount": 1}, ANALYST, Forbidden)
    refused(w, "orders:recordPayment", {"orderId": order_id, "amount": 1}, RIVAL, NotFound)


# -- orders:listByLocation ------------------------------------------------------------------------


def test_listing_filters_bookings_by_start_and_others_by_creation() -> None:
    w = new_world()
    location_id, massage, facial = spa(w)
    later = book(w, location_id, utc(2026, 1, 9, 10), massage)  # created at T0
    soon = book(w, location_id, MONDAY_10, facial)
    w.now = utc(2026, 1, 7, 12)
    bought = place(w, location_id)
    w.now = utc(2026, 1, 12)
    old_enquiry = place(w, location_id, type="enquiry", items=[], scheduledAt=MONDAY_10)
    every = [d["_id"] for d in orders_at(w, location_id)]
    assert every == [soon, bought, later, old_enquiry]
    window = {"from": utc(2026, 1, 5), "to": utc(2026, 1, 8)}
    assert [d["_id"] for d in orders_at(w, location_id, **window)] == [soon, bought]
    assert [d["_id"] for d in orders_at(w, location_id, to=utc(2026, 1, 8))] == [soon, bought]
    assert [d["_id"] for d in orders_at(w, location_id, **{"from": utc(2026, 1, 8)})] == [
        later,
        old_enquiry,
    ]
    exact = {"from": MONDAY_10, "to": MONDAY_10}
    assert [d["_id"] for d in orders_at(w, location_id, **exact)] == [soon]
    wide = {"from": 0, "to": utc(2100, 1, 1)}
    assert [d["_id"] for d in orders_at(w, location_id, **wide)] == every
    set_status(w, soon, "cancelled")
    assert [d["_id"] for d in orders_at(w, location_id, status="cancelled")] == [soon]
    assert [d["_id"] for d in orders_at(w, location_id, status="pending", **window)] == [bought]


def test_listing_refusals() -> None:
    w = new_world()
    location_id, _, _ = spa(w)
    args = {"locationId": location_id}
    with pytest.raises(InvalidArgs) as bad_status:
        w.query("orders:listByLocation", {**args, "status": "open"}, MANAGER)
    assert bad_status.value.data()["path"] == "status"
    with pytest.raises(InvalidArgs) as backwards:
        w.query("orders:listByLocation", {**args, "from": 10, "to": 9}, MANAGER)
    assert backwards.value.data()["path"] == "to"
    with pytest.raises(NotFound):
        w.query("orders:listByLocation", args, RIVAL)
    with pytest.raises(Forbidden):
        w.query("orders:listByLocation", args, LOCATION_STAFF)
    assert w.query("orders:listByLocation", args, ADMIN) == []


# -- orders:listByCustomer ------------------------------------------------------------------------


def test_a_customers_orders_show_only_inside_the_callers_org() -> None:
    w = new_world()
    ours, massage, _ = spa(w)
    annexe = create_location(w, name="Annexe")
    theirs = create_location(w, RIVAL, orgId=OTHER_ORG)
    first = book(w, ours, MONDAY_10, massage)
    w.now += MINUTE
    second = place(w, annexe)
    foreign = place(w, theirs, RIVAL, customerId=RIVAL_CUSTOMER)
    place(w, ours, customerId=OTHER_CUSTOMER)
    mine = w.query("orders:listByCustomer", {"customerId": CUSTOMER}, MANAGER)
    assert [(d["_id"], d["locationId"]) for d in mine] == [(first, ours), (second, annexe)]
    everyone = w.query("orders:listByCustomer", {"customerId": CUSTOMER}, ADMIN)
    assert [d["_id"] for d in everyone] == [first, second]
    # Each organization sees its own customers' orders only.
    assert w.query("orders:listByCustomer", {"customerId": CUSTOMER}, RIVAL) == []
    assert w.query("orders:listByCustomer", {"customerId": RIVAL_CUSTOMER}, MANAGER) == []
    theirs_listed = w.query("orders:listByCustomer", {"customerId": RIVAL_CUSTOMER}, RIVAL)
    assert [d["_id"] for d in theirs_listed] == [foreign]
    set_status(w, first, "confirmed")
    assert w.query("orders:listByCustomer", {"customerId": CUSTOMER}, MANAGER)[0]["status"] == (
        "confirmed"
    )
    assert w.query("orders:listByCustomer", {"customerId": "cu_nobody1"}, MANAGER) == []


def test_list_by_customer_refusals() -> None:
    w = new_world()
    with pytest.raises(NotFound):
        w.query("orders:listByCustomer", {"customerId": "alice"}, MANAGER)
    with pytest.raises(Forbidden):
        w.query("orders:listByCustomer", {"customerId": CUSTOMER}, ANALYST)


# -- facts for other aggregates -------------------------------------------------------------------


# -- the order's customer -------------------------------------------------------------------------


@pytest.mark.parametrize("customer", ["cu_nobody01", RIVAL_CUSTOMER])
@pytest.mark.parametrize("who", [MANAGER, ADMIN])
def test_only_a_customer_of_the_locations_org_may_order(customer: str, who: Identity) -> None:
    """A missing customer and another organization's are refused alike, whoever asks (an
    admin acts for the location's organization), and nothing is written anywhere."""
    w = new_world()
    location_id, massage, _ = spa(w)
    for args in (
        order_args(location_id, customerId=customer),
        order_args(
            location_id,
            customerId=customer,
            type="booking",
            items=[{"serviceId": massage, "quantity": 1}],
            scheduledAt=MONDAY_10,
        ),
    ):
        data = refused(w, "orders:create", args, who, NotFound)
        assert data == {"code": "NotFound", "message": "Customer not found."}
    # The other way round too: another organization's location cannot take our customer.
    theirs = create_location(w, RIVAL, orgId=OTHER_ORG)
    refused(w, "orders:create", order_args(theirs), RIVAL, NotFound)


def test_the_customer_records_each_order_and_its_lifetime_value() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    booked = book(w, location_id, MONDAY_10, massage)  # 5000
    bought = place(w, location_id)  # 2500
    dropped = place(w, location_id, items=[{"name": "Oil", "quantity": 1, "price": 900}])
    figures = ("clv", "avgOrderValue", "orderCount")

    def customer() -> dict[str, Any]:
        doc = w.query("customers:get", {"customerId": CUSTOMER}, CRM)
        assert isinstance(doc, dict)
        return doc

    assert [customer()[f] for f in figures] == [0, 0, 0]
    for status in ("confirmed", "completed"):
        set_status(w, booked, status)
    assert [customer()[f] for f in figures] == [5000, 5000, 1]
    w.now += MINUTE
    for status in ("confirmed", "completed"):
        set_status(w, bought, status)
    set_status(w, dropped, "cancelled")  # a cancelled order is no value
    assert [customer()[f] for f in figures] == [7500, 3750, 2]
    assert w.mutate("orders:recordPayment", {"orderId": bought, "amount": 1000}, FRONT_DESK)

    records = customer_of(w, CUSTOMER).orders
    assert {oid: (r.status, r.total, r.paid_amount) for oid, r in records.items()} == {
        booked: ("completed", 5000, 0),
        bought: ("completed", 2500, 1000),
        dropped: ("cancelled", 900, 0),
    }
    assert records[bought].completed_at == T0 + MINUTE
    timeline = w.query(
        "activity:list", {"entityType": "customer", "entityId": CUSTOMER, "limit": 9}, CRM
    )
    assert [(e["action"], e["metadata"].get("orderId"), e["by"]) for e in timeline] == [
        ("order.updated", bought, "u_desk"),
        ("order.cancelled", dropped, "u_manager"),
        ("order.completed", bought, "u_manager"),
        ("order.confirmed", bought, "u_manager"),
        ("order.completed", booked, "u_manager"),
        ("order.confirmed", booked, "u_manager"),
        ("order.created", dropped, "u_manager"),
        ("order.created", bought, "u_manager"),
        ("order.created", booked, "u_manager"),
    ]
    # The recorded figures are those a recalculation finds: it has nothing to change.
    journal = list(w.journal)
    recalculated = w.mutate("customers:calculateCLV", {"customerId": CUSTOMER}, CRM)
    assert recalculated == {"clv": 7500, "avgOrderValue": 3750, "orderCount": 2}
    assert w.journal == journal
    assert not customer_of(w, OTHER_CUSTOMER).orders


def test_a_refused_order_command_leaves_the_customer_and_the_journal_as_they_were() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    first = book(w, location_id, MONDAY_10, massage)
    before = customer_of(w, CUSTOMER)
    journal = list(w.journal)
    clash = order_args(
        location_id,
        type="booking",
        items=[{"serviceId": massage, "quantity": 1}],
        scheduledAt=MONDAY_10 + 30 * MINUTE,
    )
    refused(w, "orders:create", clash, MANAGER, Conflict)
    refused(w, "orders:create", order_args(location_id, type="rental"), MANAGER, InvalidArgs)
    refused(w, "orders:updateStatus", {"orderId": first, "status": "completed"}, MANAGER, Conflict)
    refused(w, "orders:recordPayment", {"orderId": first, "amount": 5001}, MANAGER, Conflict)
    refused(w, "orders:recordPayment", {"orderId": first, "amount": 1}, RIVAL, NotFound)
    assert customer_of(w, CUSTOMER) == before
    assert w.journal == journal


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ("customers:delete", "deleted"),
        ("customers:archive", "archived"),
        ("customers:suspend", None),
    ],
)
def test_a_deleted_or_archived_customer_takes_no_new_order_but_its_orders_go_on(
    change: str, refusal: str | None
) -> None:
    """A closed customer record (deleted, archived) refuses new orders, as a venue expects of
    a customer it removed; a suspended one may still order. Either way the orders it already
    has move on and are recorded on it."""
    w = new_world()
    location_id, massage, _ = spa(w)
    order_id = book(w, location_id, MONDAY_10, massage)
    w.mutate(change, {"customerId": CUSTOMER}, CRM)
    if refusal is None:
        place(w, location_id)
    else:
        data = refused(w, "orders:create", order_args(location_id), MANAGER, Conflict)
        assert data == {
            "code": "Conflict",
            "message": f"The customer is {refusal} and cannot place new orders.",
            "state": refusal,
            "customerId": CUSTOMER,
        }
    for status in ("confirmed", "completed"):
        set_status(w, order_id, status)
    assert customer_of(w, CUSTOMER).orders[order_id].status == "completed"
    assert customer_of(w, CUSTOMER).figures.clv == 5000
    if refusal is not None:
        w.mutate("customers:restore", {"customerId": CUSTOMER}, CRM)
        place(w, location_id)
    assert len(customer_of(w, CUSTOMER).orders) == 2


def test_order_facts_describe_the_order_as_it_stands() -> None:
    w = new_world()
    location_id, massage, _ = spa(w)
    order_id = book(w, location_id, MONDAY_10, massage)
    set_status(w, order_id, "confirmed")
    w.now += MINUTE
    set_status(w, order_id, "completed")
    w.mutate("orders:recordPayment", {"orderId": order_id, "amount": 2000}, MANAGER)
    facts = OrderFacts(
        order_id=order_id,
        location_id=location_id,
        org_id=ORG,
        type="booking",
        status="completed",
        total=5000,
        paid_amount=2000,
        scheduled_at=MONDAY_10,
        created_at=T0,
        completed_at=T0 + MINUTE,
    )
    assert order_facts(state_of(w, location_id), order_id) == (CUSTOMER, facts)
    with pytest.raises(KeyError):
        order_facts(state_of(w, location_id), "or_nothere1_0")
