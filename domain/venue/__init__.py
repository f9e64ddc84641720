"""The venue CRM's locations, services, orders and daily analytics (seeds 000 and 004): one
location actor per location, owning its services and orders.

`VENUE` declares the aggregate, the projections and every client-callable function;
`check_invariants` is the aggregate's full invariant check; `order_facts` is what other
aggregates may learn of an order; the event classes are the journal's vocabulary for the
`location/lo_...` streams.
"""

from domain.venue.aggregate import LOCATION
from domain.venue.analytics import DAILY_ANALYTICS, FEEDS, METRICS, DailyAnalytics, Fact, Feed
from domain.venue.events import (
    LOCATION_EVENTS,
    LocationCreated,
    LocationUpdated,
    OrderPaymentRecorded,
    OrderPlaced,
    OrderStatusChanged,
    ServiceCreated,
    ServiceUpdated,
)
from domain.venue.facts import OrderFacts, order_facts
from domain.venue.invariants import check_invariants
from domain.venue.module import MUTATIONS, QUERIES, VENUE
from domain.venue.projections import (
    CUSTOMER_ORDERS,
    LOCATION_DIRECTORY,
    CustomerOrders,
    LocationDirectory,
    OrderRef,
)
from domain.venue.state import (
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
    "CUSTOMER_ORDERS",
    "DAILY_ANALYTICS",
    "FEEDS",
    "LOCATION",
    "LOCATION_DIRECTORY",
    "LOCATION_EVENTS",
    "METRICS",
    "MUTATIONS",
    "ORDER_STATUSES",
    "ORDER_TRANSITIONS",
    "ORDER_TYPES",
    "QUERIES",
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
    "OrderFacts",
    "OrderLine",
    "OrderPaymentRecorded",
    "OrderPlaced",
    "OrderRef",
    "OrderStatusChanged",
    "Service",
    "ServiceCreated",
    "ServiceUpdated",
    "check_invariants",
    "evolve",
    "order_facts",
]
