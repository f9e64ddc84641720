"""Booking reminders, the rules (see tests/test_venue_live.py for the cron job on the engine's
virtual clock): the upcoming-bookings read model, the job's plan, and orders:sendReminder,
which notifies the customer once, in the same command that marks the booking reminded.

T0 is Thursday 2026-01-01 00:00 UTC; the location here is open around the clock."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import Conflict, Forbidden, NotFound, TurnstileError, Unauthenticated
from domain.identity import ADMIN, Identity
from domain.notifications import INBOX, InboxState, inbox_id
from domain.scheduling import JobCommand
from domain.venue import (
    BOOKING_REMINDERS,
    REMINDER_TYPE,
    UPCOMING_BOOKINGS,
    LocationState,
    OrderPlaced,
    OrderReminderSent,
    OrderStatusChanged,
    UpcomingBookings,
    check_invariants,
)
from domain.venue.reminders import HOUR_MS, plan_reminders
from domain.venue.values import WEEKDAYS
from tests.domain.harness import MINUTE, T0, DictView
from tests.domain.test_venue_support import (
    CUSTOMER,
    MANAGER,
    ORG,
    OTHER_CUSTOMER,
    RIVAL,
    VenueWorld,
    book,
    create_customer,
    create_location,
    create_service,
    new_world,
    place,
    refused,
    set_status,
    state_of,
)

AROUND_THE_CLOCK = {day: {"open": "00:00", "close": "24:00"} for day in WEEKDAYS}
DAY = 24 * HOUR_MS
EVERYTHING = Identity(subject="u_boss", org_id=ORG, caps=frozenset({"*"}))


def open_all_day(w: VenueWorld) -> tuple[str, str]:
    """A location open around the clock with a 30-minute service needing no resource (so
    bookings never clash)."""
    location_id = create_location(w, operatingHours=AROUND_THE_CLOCK)
    service_id = create_service(w, location_id, duration=30, resources=[], name="Trim")
    return location_id, service_id


def planned(w: VenueWorld) -> list[str]:
    """The order ids the job plans to remind now, in its order."""
    commands = list(plan_reminders(DictView(w.states, w.projections), w.now))
    assert all(c.mutation == "orders:sendReminder" for c in commands)
    assert all(c.args == {"orderId": c.key} for c in commands)
    return [c.key for c in commands]


def remind(w: VenueWorld, order_id: str) -> Any:
    return w.mutate("orders:sendReminder", {"orderId": order_id}, ADMIN)


def inbox(w: VenueWorld, user_id: str) -> InboxState:
    state = w.states.get(INBOX.stream_of(inbox_id(user_id)), INBOX.initial)
    assert isinstance(state, InboxState)
    return state


def upcoming(w: VenueWorld) -> UpcomingBookings:
    state = w.projections[UPCOMING_BOOKINGS.name]
    assert isinstance(state, UpcomingBookings)
    return state


# -- the plan -------------------------------------------------------------------------------------


def test_the_plan_picks_the_open_bookings_starting_within_the_next_24_hours() -> None:
    w = new_world()
    location_id, trim = open_all_day(w)
    at = {
        "soon": T0 + 2 * HOUR_MS,
        "edge": T0 + DAY,  # exactly 24 hours ahead: inside (now, now + 24 h]
        "beyond": T0 + DAY + MINUTE,
        "later": T0 + 2 * DAY,
        "dropped": T0 + 3 * HOUR_MS,
        "done": T0 + 4 * HOUR_MS,
        "confirmed": T0 + 5 * HOUR_MS,
    }
    ids = {name: book(w, location_id, start, trim) for name, start in at.items()}
    place(w, location_id)  # a purchase has no reminder
    set_status(w, ids["dropped"], "cancelled")
    for status in ("confirmed", "completed"):
        set_status(w, ids["done"], status)
    set_status(w, ids["confirmed"], "confirmed")
    assert planned(w) == [ids["soon"], ids["confirmed"], ids["edge"]]
    w.now += MINUTE
    assert planned(w) == [ids["soon"], ids["confirmed"], ids["edge"], ids["beyond"]]
    w.now = T0 + 2 * HOUR_MS  # a booking starting now is no longer ahead
    assert ids["soon"] not in planned(w)
    w.now = T0 + DAY  # "edge" starts now; "later" is exactly 24 hours ahead
    assert planned(w) == [ids["beyond"], ids["later"]]


def test_the_read_model_reads_only_the_hours_the_window_touches() -> None:
    w = new_world()
    location_id, trim = open_all_day(w)
    for hours in (1, 30, 100, 1000):
        book(w, location_id, T0 + hours * HOUR_MS, trim)
    model = upcoming(w)
    assert sorted(int(hour) for hour in model.by_hour) == [
        T0 // HOUR_MS + hours for hours in (1, 30, 100, 1000)
    ]
    view = DictView(w.states, w.projections)
    list(plan_reminders(view, w.now))
    assert view.reads == [(UPCOMING_BOOKINGS.name, "due")]


def test_a_booking_leaves_the_read_model_when_reminded_cancelled_or_completed() -> None:
    w = new_world()
    location_id, trim = open_all_day(w)
    reminded, cancelled, completed, kept = (
        book(w, location_id, T0 + hours * HOUR_MS, trim) for hours in (1, 2, 3, 4)
    )
    assert set(upcoming(w).hour_of) == {reminded, cancelled, completed, kept}
    remind(w, reminded)
    set_status(w, cancelled, "cancelled")
    for status in ("confirmed", "completed"):
        set_status(w, completed, status)
    assert set(upcoming(w).hour_of) == {kept}
    assert planned(w) == [kept]
    assert w.replay_projections()[UPCOMING_BOOKINGS.name] == upcoming(w)


def test_only_booking_events_that_change_the_due_list_touch_its_key() -> None:
    def keys(event: Any) -> list[str]:
        return list(UPCOMING_BOOKINGS.keys(event))

    common: dict[str, Any] = {"stream": "location/lo_x1234", "version": 2, "at": T0}
    placed: dict[str, Any] = {
        **common,
        "order_id": "or_x1234_0",
        "number": 0,
        "customer_id": CUSTOMER,
        "lines": (),
        "total": 0,
        "scheduled_at": T0 + HOUR_MS,
        "resources": (),
        "notes": None,
    }
    assert keys(OrderPlaced(**placed, type="booking", ends_at=T0 + 2 * HOUR_MS)) == ["due"]
    assert keys(OrderPlaced(**placed, type="enquiry", ends_at=None)) == []
    changed: dict[str, Any] = {**common, "order_id": "or_x1234_0", "customer_id": CUSTOMER}
    for kind, status, expected in (
        ("booking", "cancelled", ["due"]),
        ("booking", "completed", ["due"]),
        ("booking", "confirmed", []),
        ("purchase", "cancelled", []),
    ):
        event = OrderStatusChanged(**changed, type=kind, previous="pending", status=status, total=0)
        assert keys(event) == expected
    assert keys(OrderReminderSent(**changed, scheduled_at=T0 + HOUR_MS)) == ["due"]


def test_the_job_runs_every_15_minutes_as_the_venue_module_declares() -> None:
    assert BOOKING_REMINDERS.name == "bookingReminders"
    assert BOOKING_REMINDERS.schedule.minutes == 15  # type: ignore[union-attr]
    w = new_world()
    location_id, trim = open_all_day(w)
    order_id = book(w, location_id, T0 + HOUR_MS, trim)
    assert list(BOOKING_REMINDERS.plan(DictView(w.states, w.projections), w.now)) == [
        JobCommand(mutation="orders:sendReminder", args={"orderId": order_id}, key=order_id)
    ]


# -- orders:sendReminder --------------------------------------------------------------------------


def test_a_reminder_notifies_the_customer_once_in_the_same_command() -> None:
    w = new_world()
    location_id, trim = open_all_day(w)
    order_id = book(w, location_id, T0 + 3 * HOUR_MS, trim)
    w.now += 15 * MINUTE
    journal = len(w.journal)
    notification_id = remind(w, order_id)
    # Alice has no app user id: the reminder goes to the inbox of her customer id.
    inbox_state = inbox(w, CUSTOMER)
    assert list(inbox_state.notifications) == [notification_id]
    notification = inbox_state.notifications[notification_id]
    assert (notification.type, notification.user_id) == (REMINDER_TYPE, CUSTOMER)
    assert dict(notification.data) == {
        "orderId": order_id,
        "locationId": location_id,
        "locationName": "Soho Spa",
        "customerId": CUSTOMER,
        "scheduledAt": T0 + 3 * HOUR_MS,
        "endsAt": T0 + 3 * HOUR_MS + 30 * MINUTE,
        "services": ["Trim"],
    }
    # One transaction: the notification, then the booking's mark.
    assert [type(e).__name__ for e in w.journal[journal:]] == [
        "NotificationAdded",
        "OrderReminderSent",
    ]
    order = state_of(w, location_id).orders[order_id]
    assert order.reminded_at == T0 + 15 * MINUTE
    check_invariants(state_of(w, location_id))
    doc = w.query("orders:listByLocation", {"locationId": location_id}, MANAGER)[0]
    assert doc["remindedAt"] == T0 + 15 * MINUTE

    # A second call (a repeated tick, a retry) emits nothing and notifies nobody.
    w.now += 15 * MINUTE
    journal_now = list(w.journal)
    assert remind(w, order_id) is None
    assert w.journal == journal_now
    assert inbox(w, CUSTOMER).count == 1


def test_a_customer_with_an_app_user_id_is_notified_as_that_user() -> None:
    w = new_world()
    location_id, trim = open_all_day(w)
    dana = create_customer(w, ORG, firstName="Dana", customerType="new", userId="user_dana")
    order_id = book(w, location_id, T0 + HOUR_MS, trim, customer=dana)
    notification_id = remind(w, order_id)
    assert list(inbox(w, "user_dana").notifications) == [notification_id]
    assert inbox(w, dana).count == 0
    me = Identity(subject="user_dana")
    (seen,) = w.query("webhooks:getUserWebhookEvents", {"userId": "user_dana", "since": 0}, me)
    assert (seen["type"], seen["data"]["orderId"]) == (REMINDER_TYPE, order_id)


@pytest.mark.parametrize(
    ("who", "error"),
    [
        (MANAGER, Forbidden),
        (EVERYTHING, Forbidden),
        (Identity(subject=CUSTOMER), Forbidden),
        (RIVAL, Forbidden),
        (Identity(), Unauthenticated),
    ],
)
def test_only_the_system_sends_reminders(who: Identity, error: type[TurnstileError]) -> None:
    w = new_world()
    location_id, trim = open_all_day(w)
    order_id = book(w, location_id, T0 + HOUR_MS, trim)
    refused(w, "orders:sendReminder", {"orderId": order_id}, who, error)


def test_reminders_are_for_open_bookings_that_have_not_started() -> None:
    w = new_world()
    location_id, trim = open_all_day(w)
    bought = place(w, location_id)
    cancelled = book(w, location_id, T0 + HOUR_MS, trim)
    set_status(w, cancelled, "cancelled")
    started = book(w, location_id, T0 + 2 * HOUR_MS, trim)
    for order_id, detail in (
        (bought, {"type": "purchase"}),
        (cancelled, {"status": "cancelled"}),
    ):
        data = refused(w, "orders:sendReminder", {"orderId": order_id}, ADMIN, Conflict)
        assert {key: data[key] for key in detail} == detail
    w.now = T0 + 2 * HOUR_MS
    data = refused(w, "orders:sendReminder", {"orderId": started}, ADMIN, Conflict)
    assert data["scheduledAt"] == T0 + 2 * HOUR_MS
    core = location_id.removeprefix("lo_")
    for missing in (f"or_{core}_9", "or_nothere1_0", "nonsense"):
        refused(w, "orders:sendReminder", {"orderId": missing}, ADMIN, NotFound)


def test_a_reminder_follows_the_bookings_customer_whatever_its_soft_state() -> None:
    """A reminder is about a booking that is still open; only cancelling it stops the
    reminder, not closing the customer's record."""
    w = new_world()
    location_id, trim = open_all_day(w)
    order_id = book(w, location_id, T0 + HOUR_MS, trim, customer=OTHER_CUSTOMER)
    w.mutate("customers:delete", {"customerId": OTHER_CUSTOMER}, ADMIN)
    remind(w, order_id)
    assert inbox(w, OTHER_CUSTOMER).count == 1


def test_replay_gives_the_reminded_state() -> None:
    w = new_world()
    location_id, trim = open_all_day(w)
    order_id = book(w, location_id, T0 + HOUR_MS, trim)
    remind(w, order_id)
    stream = f"location/{location_id}"
    replayed = w.replay(stream)
    assert isinstance(replayed, LocationState)
    assert replayed == w.states[stream]
    assert replayed.orders[order_id].reminded_at == T0
