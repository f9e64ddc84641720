"""Booking reminders (docs/reference/functions.md, "Scheduled work"): every
15 minutes, a notification to each customer with a booking in the next 24 hours, once.

- `UPCOMING_BOOKINGS`, a read model of the open bookings (pending or confirmed) not reminded
  yet, bucketed by the UTC hour they start in: a booking enters when it is placed and leaves
  when it is reminded, cancelled or completed. A plan reads only the 25 buckets its window
  touches, never every booking. Its one key, `UPCOMING_KEY`, is touched only by those events
  (a payment, a confirmation or any other order leaves it alone).
- `BOOKING_REMINDERS`, the cron job: its pure plan picks the bookings starting in
  `(now, now + 24 h]` and plans one `orders:sendReminder` per booking, keyed by its order id;
  the engine runs them as the system caller, each under an idempotency key of (job, tick,
  order). A booking placed further ahead is picked by the first tick that finds it within
  24 hours; after downtime, the one overdue tick run on start catches up.
- `send_reminder`, the mutation `orders:sendReminder {orderId}`, which only the system (the
  engine's own caller, or a backend holding the admin key) may run: it marks the booking
  reminded (`OrderReminderSent`) and drops a `booking.reminder` notification into the
  customer's inbox in the same transaction (`domain.notifications.notify`). A booking already
  reminded emits nothing, so each booking's customer is notified once, never twice: a tick
  re-run after a crash or a second call repeats nothing, and a reminded booking has left the
  read model before the next tick reads it.

Who is notified: the customer's `userId` (the app user the customer signs in as, who reads
that inbox with `webhooks:getUserWebhookEvents`) if the profile has one, else the customer id,
so that a customer without an app account still has the reminder in an inbox of its own, for
a backend to forward by SMS or email. The customer's soft state does not matter: the reminder
is about a booking that is still open (cancelling the booking is what stops it).

A booking whose start passes before any tick finds it within 24 hours (placed minutes before,
or the server was down) gets no reminder; it stays in the read model until it is completed or
cancelled, as every booking eventually is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import immutables

from domain.customers import CUSTOMER
from domain.errors import Conflict, Forbidden, NotFound
from domain.identity import require_authenticated
from domain.model import Event, Projection, View
from domain.notifications import INBOX, inbox_id, notify
from domain.scheduling import CronJob, Every, JobCommand
from domain.venue.args import OrderIdArgs
from domain.venue.events import OrderPlaced, OrderReminderSent, OrderStatusChanged
from domain.venue.locations import State
from domain.venue.orders import existing_order
from domain.venue.projections import stream_id
from domain.venue.state import OPEN_STATUSES

HOUR_MS = 60 * 60 * 1000
#: How far ahead of a booking its reminder goes out: within the last 24 hours before it.
REMINDER_WINDOW_MS = 24 * HOUR_MS
#: The notification's `type`.
REMINDER_TYPE = "booking.reminder"
UPCOMING_KEY = "due"
JOB_NAME = "bookingReminders"
SEND_REMINDER = "orders:sendReminder"


# -- the read model -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class UpcomingBooking:
    order_id: str
    location_id: str
    scheduled_at: int


def _empty() -> immutables.Map[Any, Any]:
    return immutables.Map()


@attrs.frozen(kw_only=True)
class UpcomingBookings:
    """The open bookings awaiting their reminder."""

    #: str(UTC hour of the start, `scheduled_at // HOUR_MS`) -> order id -> booking.
    by_hour: immutables.Map[str, immutables.Map[str, UpcomingBooking]] = attrs.field(factory=_empty)
    #: order id -> its `by_hour` key.
    hour_of: immutables.Map[str, str] = attrs.field(factory=_empty)

    def adding(self, booking: UpcomingBooking) -> UpcomingBookings:
        hour = str(booking.scheduled_at // HOUR_MS)
        bucket = self.by_hour.get(hour, immutables.Map()).set(booking.order_id, booking)
        return UpcomingBookings(
            by_hour=self.by_hour.set(hour, bucket),
            hour_of=self.hour_of.set(booking.order_id, hour),
        )

    def removing(self, order_id: str) -> UpcomingBookings:
        hour = self.hour_of.get(order_id)
        if hour is None:
            return self
        bucket = self.by_hour[hour].delete(order_id)
        by_hour = self.by_hour.set(hour, bucket) if bucket else self.by_hour.delete(hour)
        return UpcomingBookings(by_hour=by_hour, hour_of=self.hour_of.delete(order_id))

    def starting_in(self, after: int, until: int) -> list[UpcomingBooking]:
        """The bookings starting in `(after, until]`, soonest first (then by order id)."""
        empty: immutables.Map[str, UpcomingBooking] = immutables.Map()
        found = [
            booking
            for hour in range(after // HOUR_MS, until // HOUR_MS + 1)
            for booking in self.by_hour.get(str(hour), empty).values()
            if after < booking.scheduled_at <= until
        ]
        found.sort(key=lambda booking: (booking.scheduled_at, booking.order_id))
        return found


def _closes(event: OrderStatusChanged) -> bool:
    return event.type == "booking" and event.status not in OPEN_STATUSES


def _apply_upcoming(upcoming: UpcomingBookings, event: Event) -> UpcomingBookings:
    if isinstance(event, OrderPlaced):
        if event.type != "booking" or event.scheduled_at is None:
            return upcoming
        booking = UpcomingBooking(
            order_id=event.order_id, location_id=stream_id(event), scheduled_at=event.scheduled_at
        )
        return upcoming.adding(booking)
    if isinstance(event, OrderStatusChanged) and _closes(event):
        return upcoming.removing(event.order_id)
    if isinstance(event, OrderReminderSent):
        return upcoming.removing(event.order_id)
    return upcoming


def _upcoming_keys(event: Event) -> Iterable[str]:
    if isinstance(event, OrderPlaced) and event.type == "booking":
        return (UPCOMING_KEY,)
    if isinstance(event, OrderStatusChanged) and _closes(event):
        return (UPCOMING_KEY,)
    if isinstance(event, OrderReminderSent):
        return (UPCOMING_KEY,)
    return ()


UPCOMING_BOOKINGS: Projection[UpcomingBookings] = Projection(
    name="venue.upcomingBookings",
    state_type=UpcomingBookings,
    initial=UpcomingBookings(),
    apply=_apply_upcoming,
    keys=_upcoming_keys,
    event_types=(OrderPlaced, OrderStatusChanged, OrderReminderSent),
)


# -- the job --------------------------------------------------------------------------------------


def plan_reminders(view: View, now: int) -> list[JobCommand]:
    """One `orders:sendReminder` per booking starting in `(now, now + 24 h]` that has not been
    reminded, as committed at this cut."""
    upcoming = view.projection(UPCOMING_BOOKINGS, UPCOMING_KEY)
    return [
        JobCommand(mutation=SEND_REMINDER, args={"orderId": booking.order_id}, key=booking.order_id)
        for booking in upcoming.starting_in(now, now + REMINDER_WINDOW_MS)
    ]


BOOKING_REMINDERS = CronJob(name=JOB_NAME, schedule=Every(minutes=15), plan=plan_reminders)


# -- the mutation ---------------------------------------------------------------------------------


def send_reminder(d: State, args: OrderIdArgs) -> str | None:
    """orders:sendReminder -> the notification's id, or null if the booking was reminded
    before (then nothing is emitted).

    Only the system may call it (Unauthenticated for anonymous callers, Forbidden for every
    user, whatever their capabilities). NotFound for a missing order; Conflict for an order
    that is not a booking, a booking that is no longer open (cancelled, completed) or that has
    already started. The notification (type `booking.reminder`, data `{orderId, locationId,
    locationName, customerId, scheduledAt, endsAt, services}`) goes to the customer's
    `userId`, or to the customer id if it has none, in this command's transaction."""
    require_authenticated(d.identity)
    if not d.identity.is_admin:
        raise Forbidden("Only the system sends booking reminders.")
    order = existing_order(d, args.order_id)
    if order.reminded_at is not None:
        return None
    if not order.is_booking:
        raise Conflict("Only a booking has a reminder.", orderId=order.id, type=order.type)
    if order.status not in OPEN_STATUSES:
        raise Conflict(
            f"The booking is {order.status}; it has no reminder.",
            orderId=order.id,
            status=order.status,
        )
    assert order.scheduled_at is not None and d.state.location is not None
    if order.scheduled_at <= d.now:
        raise Conflict(
            "The booking has already started.", orderId=order.id, scheduledAt=order.scheduled_at
        )
    location = d.state.location
    customer = d.co_decide(CUSTOMER, order.customer_id).state
    if customer.profile is None or customer.org_id != location.org_id:
        raise NotFound("Customer not found.")
    recipient = customer.profile.user_id or order.customer_id
    notification_id = notify(
        d.co_decide(INBOX, inbox_id(recipient)),
        type=REMINDER_TYPE,
        user_id=recipient,
        data={
            "orderId": order.id,
            "locationId": location.id,
            "locationName": location.name,
            "customerId": order.customer_id,
            "scheduledAt": order.scheduled_at,
            "endsAt": order.ends_at,
            "services": [line.name for line in order.lines if line.service_id is not None],
        },
    )
    d.emit(
        OrderReminderSent,
        order_id=order.id,
        customer_id=order.customer_id,
        scheduled_at=order.scheduled_at,
    )
    return notification_id
