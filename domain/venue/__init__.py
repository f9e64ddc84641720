"""The venue CRM's locations, services, orders, daily analytics and booking reminders (seeds
000 and 004): one location actor per location, owning its services and orders; every order
belongs to a customer (`domain.customers`), which each order command tells of the order.

`VENUE` declares the aggregate, the projections, every client-callable function and the
booking-reminders job; `check_invariants` is the aggregate's full invariant check;
`order_facts` is what an order's customer learns of it; the event classes are the journal's
vocabulary for the `location/lo_...` streams.
"""

from domain.venue.aggregate import LOCATION
from domain.venue.analytics import DAILY_ANALYTICS, FEEDS, METRICS, DailyAnalytics, Fact, Feed
from domain.venue.events import (
    LOCATION_EVENTS,
    LocationCreated,
    LocationUpdated,
    OrderPaymentRecorded,
    OrderPlaced,
    OrderReminderSent,
    OrderStatusChanged,
    ServiceCreated,
    ServiceUpdated,
)
from domain.venue.facts import order_facts, tell_customer
from domain.venue.invariants import check_invariants
from domain.venue.module import MUTATIONS, QUERIES, VENUE
from domain.venue.projections import (
    CUSTOMER_ORDERS,
    LOCATION_DIRECTORY,
    CustomerOrders,
    LocationDirectory,
    OrderRef,
)
from domain.venue.reminders import (
    BOOKING_REMINDERS,
    REMINDER_TYPE,
    REMINDER_WINDOW_MS,
    UPCOMING_BOOKINGS,
    UpcomingBooking,
    UpcomingBookings,
)
from domain.venue.state import (
    OPEN_STATUSES,
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    ORDER_TYPES,
    LocationInfo,
    LocationState,
    Order,
    Service,
    evolve,
)
from domain.venue.values import Address, DayHours, OperatingHours, OrderLine

__all__ = [
    "BOOKING_REMINDERS",
    "CUSTOMER_ORDERS",
    "DAILY_ANALYTICS",
    "FEEDS",
    "LOCATION",
    "LOCATION_DIRECTORY",
    "LOCATION_EVENTS",
    "METRICS",
    "MUTATIONS",
    "OPEN_STATUSES",
    "ORDER_STATUSES",
    "ORDER_TRANSITIONS",
    "ORDER_TYPES",
    "QUERIES",
    "REMINDER_TYPE",
    "REMINDER_WINDOW_MS",
    "UPCOMING_BOOKINGS",
    "VENUE",
    "Address",
    "CustomerOrders",
    "DailyAnalytics",
    "DayHours",
    "Fact",
    "Feed",
    "LocationCreated",
    "LocationDirectory",
    "LocationInfo",
    "LocationState",
    "LocationUpdated",
    "OperatingHours",
    "Order",
    "OrderLine",
    "OrderPaymentRecorded",
    "OrderPlaced",
    "OrderRef",
    "OrderReminderSent",
    "OrderStatusChanged",
    "Service",
    "ServiceCreated",
    "ServiceUpdated",
    "UpcomingBooking",
    "UpcomingBookings",
    "check_invariants",
    "evolve",
    "order_facts",
    "tell_customer",
]
