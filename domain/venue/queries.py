"""The venue queries: pure functions of what they read through the View (no clock).

Each checks its capability (`locations:manage` for locations and services,
`orders:manage` for orders) and the caller's organization: another organization's location,
service or order is NotFound exactly as a missing one, and never appears in a listing.
A malformed id reads nothing and is treated as a missing record.

The lists answer one page in Convex's form (`domain.pagination`) when `paginationOpts` is
given, read exactly as without it.
"""

from __future__ import annotations

from domain.errors import InvalidArgs, NotFound
from domain.identity import Identity, org_for_new_record, require_cap, require_org
from domain.ids import is_root_id
from domain.model import View
from domain.pagination import paginate, scope_of
from domain.venue.aggregate import LOCATION
from domain.venue.args import (
    CustomerIdArgs,
    ListLocationsArgs,
    ListOrdersByLocationArgs,
    ListServicesArgs,
    LocationIdArgs,
)
from domain.venue.hours import DAY_MS
from domain.venue.projections import CUSTOMER_ORDERS, LOCATION_DIRECTORY
from domain.venue.state import ORDER_STATUSES, LocationInfo, LocationState, Order
from domain.venue.wire import Doc, location_doc, order_doc, service_doc


def read_location(view: View, location_id: str, identity: Identity) -> LocationState:
    """The committed state of a location the caller's organization owns, else NotFound."""
    state = view.aggregate(LOCATION, location_id) if is_root_id(location_id, "lo") else None
    if state is None or state.location is None:
        raise NotFound("Location not found.")
    require_org(identity, state.location.org_id, "Location")
    return state


def get_location(view: View, args: LocationIdArgs, identity: Identity) -> Doc:
    """locations:get -> the location; NotFound if missing or another organization's."""
    require_cap(identity, "locations:manage")
    return location_doc(_info(read_location(view, args.location_id, identity)))


def list_locations(view: View, args: ListLocationsArgs, identity: Identity) -> list[Doc] | Doc:
    """locations:list -> the organization's locations, oldest first. Members list their own
    organization's; admin callers name one in `orgId`. With `paginationOpts`, a page of them
    keyed by `(createdAt, id)`."""
    require_cap(identity, "locations:manage")
    org_id = org_for_new_record(identity, args.org_id)
    directory = view.projection(LOCATION_DIRECTORY, org_id)
    ordered = sorted(directory.of(org_id).values(), key=_location_key)
    if args.pagination_opts is not None:
        page = paginate(
            ordered,
            key=_location_key,
            opts=args.pagination_opts,
            scope=scope_of("locations:list", args),
        )
        return page.doc(location_doc)
    return [location_doc(info) for info in ordered]


def _location_key(info: LocationInfo) -> tuple[int, str]:
    return (info.created_at, info.id)


def list_services(view: View, args: ListServicesArgs, identity: Identity) -> list[Doc] | Doc:
    """services:list -> the location's services (active or not) in creation order. With
    `paginationOpts`, a page of them keyed by creation number."""
    require_cap(identity, "locations:manage")
    state = read_location(view, args.location_id, identity)
    ordered = sorted(state.services.values(), key=lambda service: service.number)
    if args.pagination_opts is not None:
        page = paginate(
            ordered,
            key=lambda service: (service.number,),
            opts=args.pagination_opts,
            scope=scope_of("services:list", args),
        )
        return page.doc(lambda service: service_doc(args.location_id, service))
    return [service_doc(args.location_id, service) for service in ordered]


def list_orders_by_location(
    view: View, args: ListOrdersByLocationArgs, identity: Identity
) -> list[Doc] | Doc:
    """orders:listByLocation -> the location's orders whose listing time (a booking's
    `scheduledAt`, else `createdAt`) lies in `[from, to]` (either bound optional) and whose
    status is `status` if given; ordered by that time, then by placement. With
    `paginationOpts`, a page of them keyed by `(listing time, placement number)`."""
    require_cap(identity, "orders:manage")
    state = read_location(view, args.location_id, identity)
    if args.status is not None and args.status not in ORDER_STATUSES:
        raise InvalidArgs(f"status must be one of {', '.join(ORDER_STATUSES)}.", path="status")
    if args.from_ is not None and args.to is not None and args.to < args.from_:
        raise InvalidArgs("to must not be before from.", path="to")
    low, high = args.from_, args.to
    found = [
        order
        for order in _orders_listed_between(state, low, high)
        if (args.status is None or order.status == args.status)
        and (low is None or order.listed_at >= low)
        and (high is None or order.listed_at <= high)
    ]
    found.sort(key=_listing_key)
    if args.pagination_opts is not None:
        page = paginate(
            found,
            key=_listing_key,
            opts=args.pagination_opts,
            scope=scope_of("orders:listByLocation", args),
        )
        return page.doc(lambda order: order_doc(args.location_id, order))
    return [order_doc(args.location_id, order) for order in found]


def _listing_key(order: Order) -> tuple[int, int]:
    return (order.listed_at, order.number)


def _orders_listed_between(state: LocationState, low: int | None, high: int | None) -> list[Order]:
    """The orders in the UTC-day buckets that `[low, high]` touches: by day when the range
    is narrower than the buckets held, else every bucket."""
    by_day = state.orders_by_day
    if low is None or high is None or high // DAY_MS - low // DAY_MS >= len(by_day):
        buckets = list(by_day.values())
    else:
        empty: tuple[str, ...] = ()
        buckets = [by_day.get(str(day), empty) for day in range(low // DAY_MS, high // DAY_MS + 1)]
    return [state.orders[oid] for bucket in buckets for oid in bucket]


def list_orders_by_customer(
    view: View, args: CustomerIdArgs, identity: Identity
) -> list[Doc] | Doc:
    """orders:listByCustomer -> the customer's orders at the caller's organization's
    locations, oldest first. NotFound for an id that is not a customer id. With
    `paginationOpts`, a page of them keyed by `(createdAt, id)`."""
    require_cap(identity, "orders:manage")
    if not is_root_id(args.customer_id, "cu"):
        raise NotFound("Customer not found.")
    refs = view.projection(CUSTOMER_ORDERS, args.customer_id).of(args.customer_id)
    locations: dict[str, LocationState | None] = {}
    found: list[tuple[int, str, Doc]] = []
    for ref in refs:
        if ref.location_id not in locations:
            locations[ref.location_id] = _visible(view, ref.location_id, identity)
        state = locations[ref.location_id]
        if state is not None:
            order = state.orders[ref.order_id]
            found.append((order.created_at, order.id, order_doc(ref.location_id, order)))
    found.sort(key=lambda item: (item[0], item[1]))
    if args.pagination_opts is not None:
        page = paginate(
            found,
            key=lambda item: (item[0], item[1]),
            opts=args.pagination_opts,
            scope=scope_of("orders:listByCustomer", args),
        )
        return page.doc(lambda item: item[2])
    return [doc for _, _, doc in found]


def _visible(view: View, location_id: str, identity: Identity) -> LocationState | None:
    state = view.aggregate(LOCATION, location_id)
    if state is None or state.location is None:
        return None
    if not identity.is_admin and state.location.org_id != identity.org_id:
        return None
    return state


def _info(state: LocationState) -> LocationInfo:
    assert state.location is not None
    return state.location
