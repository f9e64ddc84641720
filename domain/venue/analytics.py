"""Daily analytics per location (`analytics:daily`), a projection folded live from committed
events: no batch job, so a dashboard subscribed to a series sees each order as it commits.

How a figure gets there:

- A `Feed` turns one event type into `Fact`s: "this location's `metric` grew by `amount` at
  `at`, under the dimension label `label`". The feeds below serve the order metrics from the
  location streams, `ticketsSold` from the ticketing streams and `newCustomers` from the
  customer streams; another metric is one more feed function and one `Metric` row.
- The projection dates each fact by the local date, in the location's timezone as it stood
  when the fact happened, and adds it to that day's `DayTotal` (value and per-label breakdown).

What it knows of the world, beside the totals: each location's organization and timezone
(`sites`), and each ticketing event's organization and the location it names (`ticketed`,
`linked`). A ticketing event, or a customer, counts towards a location only when both belong
to the same organization, so nobody can feed another organization's figures.

Keys are location ids, except for ticket sales: a `TicketPurchased` does not name a location,
so its key is the ticketing event's id, and a `ticketsSold` query also reads the keys of the
events linked to its location. Every `apply` is O(log n).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
import immutables

from domain.customers import CustomerCreated
from domain.errors import InvalidArgs, NotFound
from domain.identity import Identity, require_cap, require_org
from domain.ids import is_root_id
from domain.model import Event, Projection, View, replace
from domain.ticketing.events import EventCreated, EventUpdated, TicketPurchased
from domain.venue.args import DailyAnalyticsArgs
from domain.venue.events import LocationCreated, LocationUpdated, OrderPlaced, OrderStatusChanged
from domain.venue.hours import iso_dates, local_date
from domain.venue.projections import stream_id

#: The longest series one query may ask for, in local dates.
MAX_DAYS = 366


@attrs.frozen(kw_only=True)
class Metric:
    """A daily series. `dimension` names the breakdown of each day's value by its facts'
    labels (None: no breakdown); a `linked` metric is fed by events of other streams that are
    linked to the location (ticketing events), whose keys its query reads too."""

    name: str
    dimension: str | None = None
    linked: bool = False


@attrs.frozen(kw_only=True)
class Fact:
    location_id: str
    metric: str
    at: int
    amount: int
    label: str | None = None


@attrs.frozen(kw_only=True)
class Site:
    """What analytics knows of a location."""

    org_id: str
    timezone: str


@attrs.frozen(kw_only=True)
class TicketedEvent:
    """A ticketing event; `location_id` is set only while it names a location of its own
    organization."""

    org_id: str
    location_id: str | None = None


@attrs.frozen(kw_only=True)
class DayTotal:
    value: int
    #: label -> that label's part of `value`.
    by: immutables.Map[str, int] = attrs.field(factory=immutables.Map)


def _empty() -> immutables.Map[Any, Any]:
    return immutables.Map()


# Not slotted: `replace` copies a dict-backed instance in one step.
@attrs.frozen(kw_only=True, slots=False)
class DailyAnalytics:
    sites: immutables.Map[str, Site] = attrs.field(factory=_empty)
    ticketed: immutables.Map[str, TicketedEvent] = attrs.field(factory=_empty)
    #: location id -> the ticketing events linked to it.
    linked: immutables.Map[str, tuple[str, ...]] = attrs.field(factory=_empty)
    #: location id -> metric -> local date `YYYY-MM-DD` -> that day's total.
    series: immutables.Map[str, immutables.Map[str, immutables.Map[str, DayTotal]]] = attrs.field(
        factory=_empty
    )


@attrs.frozen(kw_only=True)
class Feed:
    """How one event type feeds metrics: `facts(analytics, event)` (before the event is
    counted) and the projection keys the event may change."""

    event_type: type[Event]
    facts: Callable[[DailyAnalytics, Any], Iterable[Fact]]
    keys: Callable[[Any], Iterable[str]]


# -- metrics and feeds ----------------------------------------------------------------------------

METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric(name="revenue", dimension="type"),
        Metric(name="bookings"),
        Metric(name="orders", dimension="type"),
        Metric(name="ticketsSold", dimension="eventId", linked=True),
        Metric(name="newCustomers"),
    )
}


def _own_location(event: Event) -> Iterable[str]:
    return (stream_id(event),)


def _orders_placed(analytics: DailyAnalytics, e: OrderPlaced) -> Iterable[Fact]:
    """`orders` (by type) and `bookings`: orders created that day."""
    location_id = stream_id(e)
    yield Fact(location_id=location_id, metric="orders", at=e.at, amount=1, label=e.type)
    if e.type == "booking":
        yield Fact(location_id=location_id, metric="bookings", at=e.at, amount=1)


def _revenue(analytics: DailyAnalytics, e: OrderStatusChanged) -> Iterable[Fact]:
    """`revenue` (by type): the totals of the orders completed that day."""
    if e.status == "completed":
        location_id = stream_id(e)
        yield Fact(location_id=location_id, metric="revenue", at=e.at, amount=e.total, label=e.type)


def _revenue_keys(e: OrderStatusChanged) -> Iterable[str]:
    return _own_location(e) if e.status == "completed" else ()


def _tickets_sold(analytics: DailyAnalytics, e: TicketPurchased) -> Iterable[Fact]:
    """`ticketsSold` (by event): tickets bought that day for events linked to the location."""
    event_id = stream_id(e)
    link = analytics.ticketed.get(event_id)
    if link is not None and link.location_id is not None:
        yield Fact(
            location_id=link.location_id, metric="ticketsSold", at=e.at, amount=1, label=event_id
        )


def _new_customers(analytics: DailyAnalytics, e: CustomerCreated) -> Iterable[Fact]:
    """`newCustomers`: customers created that day with `locationId` naming a location of
    their own organization (a later change of the customer's location moves nothing)."""
    site = analytics.sites.get(e.location_id) if e.location_id is not None else None
    if e.location_id is not None and site is not None and site.org_id == e.org_id:
        yield Fact(location_id=e.location_id, metric="newCustomers", at=e.at, amount=1)


def _customer_location(e: CustomerCreated) -> Iterable[str]:
    return (e.location_id,) if e.location_id is not None else ()


FEEDS: tuple[Feed, ...] = (
    Feed(event_type=OrderPlaced, facts=_orders_placed, keys=_own_location),
    Feed(event_type=OrderStatusChanged, facts=_revenue, keys=_revenue_keys),
    Feed(event_type=TicketPurchased, facts=_tickets_sold, keys=_own_location),
    Feed(event_type=CustomerCreated, facts=_new_customers, keys=_customer_location),
)
_FEEDS_BY_TYPE: dict[type[Event], Feed] = {feed.event_type: feed for feed in FEEDS}


# -- the projection -------------------------------------------------------------------------------


def _directory(analytics: DailyAnalytics, event: Event) -> DailyAnalytics:
    """Follow the locations' timezones and the ticketing events' location links."""
    if isinstance(event, LocationCreated):
        site = Site(org_id=event.org_id, timezone=event.timezone)
        return replace(analytics, sites=analytics.sites.set(stream_id(event), site))
    if isinstance(event, LocationUpdated) and event.timezone is not None:
        location_id = stream_id(event)
        known = analytics.sites.get(location_id)
        if known is None:
            return analytics
        site = replace(known, timezone=event.timezone)
        return replace(analytics, sites=analytics.sites.set(location_id, site))
    if isinstance(event, EventCreated):
        ticketed = analytics.ticketed.set(stream_id(event), TicketedEvent(org_id=event.org_id))
        analytics = replace(analytics, ticketed=ticketed)
        return _link(analytics, stream_id(event), event.location_id)
    if isinstance(event, EventUpdated) and event.location_id is not None:
        return _link(analytics, stream_id(event), event.location_id)
    return analytics


def _link(analytics: DailyAnalytics, event_id: str, location_id: str | None) -> DailyAnalytics:
    """Link the ticketing event to `location_id` if that is a location of the event's
    organization, unlinking it from any other."""
    known = analytics.ticketed[event_id]
    site = analytics.sites.get(location_id) if location_id is not None else None
    target = location_id if site is not None and site.org_id == known.org_id else None
    if target == known.location_id:
        return analytics
    linked = analytics.linked
    if known.location_id is not None:
        rest = tuple(e for e in linked[known.location_id] if e != event_id)
        linked = linked.set(known.location_id, rest) if rest else linked.delete(known.location_id)
    if target is not None:
        linked = linked.set(target, (*linked.get(target, ()), event_id))
    ticketed = analytics.ticketed.set(event_id, replace(known, location_id=target))
    return replace(analytics, ticketed=ticketed, linked=linked)


def _directory_keys(event: Event) -> Iterable[str]:
    if isinstance(event, LocationCreated):
        return (stream_id(event),)
    if isinstance(event, LocationUpdated):
        return (stream_id(event),) if event.timezone is not None else ()
    if isinstance(event, EventCreated | EventUpdated) and event.location_id is not None:
        # The event's own key too: a location it leaves reads it.
        return (stream_id(event), event.location_id)
    return ()


def _count(analytics: DailyAnalytics, fact: Fact) -> DailyAnalytics:
    site = analytics.sites.get(fact.location_id)
    if site is None:
        return analytics
    day = local_date(fact.at, site.timezone).isoformat()
    metrics = analytics.series.get(fact.location_id, immutables.Map())
    days = metrics.get(fact.metric, immutables.Map())
    total = days.get(day) or DayTotal(value=0)
    by = total.by
    if fact.label is not None:
        by = by.set(fact.label, by.get(fact.label, 0) + fact.amount)
    days = days.set(day, DayTotal(value=total.value + fact.amount, by=by))
    series = analytics.series.set(fact.location_id, metrics.set(fact.metric, days))
    return replace(analytics, series=series)


def apply_event(analytics: DailyAnalytics, event: Event) -> DailyAnalytics:
    analytics = _directory(analytics, event)
    feed = _FEEDS_BY_TYPE.get(type(event))
    if feed is not None:
        for fact in feed.facts(analytics, event):
            analytics = _count(analytics, fact)
    return analytics


def analytics_keys(event: Event) -> Iterable[str]:
    keys = list(_directory_keys(event))
    feed = _FEEDS_BY_TYPE.get(type(event))
    if feed is not None:
        keys.extend(key for key in feed.keys(event) if key not in keys)
    return keys


DAILY_ANALYTICS: Projection[DailyAnalytics] = Projection(
    name="venue.dailyAnalytics",
    state_type=DailyAnalytics,
    initial=DailyAnalytics(),
    apply=apply_event,
    keys=analytics_keys,
    event_types=(
        LocationCreated,
        LocationUpdated,
        EventCreated,
        EventUpdated,
        *(feed.event_type for feed in FEEDS),
    ),
)


# -- the query ------------------------------------------------------------------------------------


def daily(view: View, args: DailyAnalyticsArgs, identity: Identity) -> list[dict[str, Any]]:
    """analytics:daily -> `[{date, value, dimensions}]` for every local date (location's
    timezone) from that of `from` to that of `to`, zeros included, oldest first.

    Needs `analytics:read` in the location's organization (NotFound otherwise, as for a missing
    location). InvalidArgs for an unknown `metric`, `to` before `from`, or more than 366 dates.
    `dimensions` holds the day's breakdown (`{"type": {"booking": 2}}`) when it has one.
    """
    require_cap(identity, "analytics:read")
    if not is_root_id(args.location_id, "lo"):
        raise NotFound("Location not found.")
    analytics = view.projection(DAILY_ANALYTICS, args.location_id)
    site = analytics.sites.get(args.location_id)
    if site is None:
        raise NotFound("Location not found.")
    require_org(identity, site.org_id, "Location")
    metric = METRICS.get(args.metric)
    if metric is None:
        raise InvalidArgs(f"metric must be one of {', '.join(METRICS)}.", path="metric")
    if args.from_ < 0:
        raise InvalidArgs("from must be a time in ms since the epoch.", path="from")
    if args.to < args.from_:
        raise InvalidArgs("to must not be before from.", path="to")
    first, last = local_date(args.from_, site.timezone), local_date(args.to, site.timezone)
    if (last - first).days >= MAX_DAYS:
        raise InvalidArgs(f"A series covers at most {MAX_DAYS} days.", path="to")
    if metric.linked:
        for event_id in analytics.linked.get(args.location_id, ()):
            view.projection(DAILY_ANALYTICS, event_id)
    days = analytics.series.get(args.location_id, immutables.Map()).get(
        metric.name, immutables.Map()
    )
    return [_point(date, days.get(date), metric) for date in iso_dates(first, last)]


def _point(date: str, total: DayTotal | None, metric: Metric) -> dict[str, Any]:
    if total is None:
        return {"date": date, "value": 0, "dimensions": {}}
    dimensions = {metric.dimension: dict(total.by)} if metric.dimension and total.by else {}
    return {"date": date, "value": total.value, "dimensions": dimensions}
