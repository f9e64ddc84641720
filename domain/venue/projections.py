"""Read models for the venue queries that span locations, folded from committed events.

- `LOCATION_DIRECTORY` (key: organization id): every location of an organization, by id, for
  `locations:list`.
- `CUSTOMER_ORDERS` (key: customer id): references `(locationId, orderId)` to a customer's
  orders in placement order; `orders:listByCustomer` reads each order through the View from
  its location, so tenancy is checked there and a status change re-evaluates the listing
  through the location's own dependency.

Both `apply`s are O(log n) (a customer's reference tuple grows by one); `keys` names the one
organization or customer an event may change. The daily analytics live in
`domain.venue.analytics`.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import immutables

from domain.model import Event, Projection
from domain.venue.events import LocationCreated, LocationUpdated, OrderPlaced
from domain.venue.state import LocationInfo, apply_location_update, location_info_of


def stream_id(event: Event) -> str:
    return event.stream.partition("/")[2]


@attrs.frozen(kw_only=True)
class LocationDirectory:
    """organization id -> location id -> the location's record."""

    by_org: immutables.Map[str, immutables.Map[str, LocationInfo]] = attrs.field(
        factory=immutables.Map
    )

    def of(self, org_id: str) -> immutables.Map[str, LocationInfo]:
        return self.by_org.get(org_id, immutables.Map())


def _apply_directory(directory: LocationDirectory, event: Event) -> LocationDirectory:
    if isinstance(event, LocationCreated):
        info = location_info_of(event)
    elif isinstance(event, LocationUpdated):
        known = directory.of(event.org_id).get(stream_id(event))
        if known is None:
            return directory
        info = apply_location_update(known, event)
    else:
        return directory
    mine = directory.of(info.org_id).set(info.id, info)
    return LocationDirectory(by_org=directory.by_org.set(info.org_id, mine))


def _directory_keys(event: Event) -> Iterable[str]:
    if isinstance(event, LocationCreated | LocationUpdated):
        return (event.org_id,)
    return ()


LOCATION_DIRECTORY: Projection[LocationDirectory] = Projection(
    name="venue.locationDirectory",
    state_type=LocationDirectory,
    initial=LocationDirectory(),
    apply=_apply_directory,
    keys=_directory_keys,
    event_types=(LocationCreated, LocationUpdated),
)


@attrs.frozen(kw_only=True)
class OrderRef:
    location_id: str
    order_id: str


@attrs.frozen(kw_only=True)
class CustomerOrders:
    """customer id -> references to the customer's orders, in placement order."""

    by_customer: immutables.Map[str, tuple[OrderRef, ...]] = attrs.field(factory=immutables.Map)

    def of(self, customer_id: str) -> tuple[OrderRef, ...]:
        return self.by_customer.get(customer_id, ())


def _apply_customer_orders(index: CustomerOrders, event: Event) -> CustomerOrders:
    if not isinstance(event, OrderPlaced):
        return index
    ref = OrderRef(location_id=stream_id(event), order_id=event.order_id)
    mine = (*index.of(event.customer_id), ref)
    return CustomerOrders(by_customer=index.by_customer.set(event.customer_id, mine))


def _customer_orders_keys(event: Event) -> Iterable[str]:
    return (event.customer_id,) if isinstance(event, OrderPlaced) else ()


CUSTOMER_ORDERS: Projection[CustomerOrders] = Projection(
    name="venue.customerOrders",
    state_type=CustomerOrders,
    initial=CustomerOrders(),
    apply=_apply_customer_orders,
    keys=_customer_orders_keys,
    event_types=(OrderPlaced,),
)
