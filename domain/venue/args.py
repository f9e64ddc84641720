"""The argument objects of the venue functions (docs/reference/functions.md).

Field names are snake_case; the codec maps them to the wire's camelCase (`location_id` <->
`locationId`, `from_` <-> `from`), forbids unknown keys and checks types strictly before a
handler runs. Optional fields default to None, meaning "not given". Rules beyond types
(non-empty names, known timezones, opening hours, amounts) are the handlers' to check.
"""

from __future__ import annotations

from typing import Any

import attrs
import immutables

from domain.pagination import PaginationOpts
from domain.venue.values import Address, OperatingHours


@attrs.frozen(kw_only=True)
class CreateLocationArgs:
    name: str
    address: Address
    timezone: str
    operating_hours: OperatingHours
    settings: immutables.Map[str, Any]
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class UpdateLocationArgs:
    """Each given field replaces the location's whole field (hours and settings included)."""

    location_id: str
    name: str | None = None
    address: Address | None = None
    timezone: str | None = None
    operating_hours: OperatingHours | None = None
    settings: immutables.Map[str, Any] | None = None


@attrs.frozen(kw_only=True)
class LocationIdArgs:
    """`{locationId}`: locations:get."""

    location_id: str


@attrs.frozen(kw_only=True)
class ListServicesArgs:
    """`{locationId, paginationOpts?}`: services:list."""

    location_id: str
    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class ListLocationsArgs:
    """`{}` for members of an organization; admin callers name it in `orgId`."""

    org_id: str | None = None
    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class CreateServiceArgs:
    location_id: str
    name: str
    description: str
    duration: int
    price: int
    is_active: bool
    resources: tuple[str, ...]
    category_id: str | None = None


@attrs.frozen(kw_only=True)
class UpdateServiceArgs:
    service_id: str
    name: str | None = None
    description: str | None = None
    category_id: str | None = None
    duration: int | None = None
    price: int | None = None
    is_active: bool | None = None
    resources: tuple[str, ...] | None = None


@attrs.frozen(kw_only=True)
class OrderItemArgs:
    """A line as the client sends it: a service (its name, price and duration by default) or
    a free line with its own `name` and `price`."""

    quantity: int
    service_id: str | None = None
    name: str | None = None
    price: int | None = None


@attrs.frozen(kw_only=True)
class CreateOrderArgs:
    customer_id: str
    location_id: str
    type: str
    items: tuple[OrderItemArgs, ...]
    scheduled_at: int | None = None
    notes: str | None = None


@attrs.frozen(kw_only=True)
class UpdateOrderStatusArgs:
    order_id: str
    status: str


@attrs.frozen(kw_only=True)
class OrderIdArgs:
    """`{orderId}`: orders:sendReminder."""

    order_id: str


@attrs.frozen(kw_only=True)
class RecordPaymentArgs:
    order_id: str
    amount: int


@attrs.frozen(kw_only=True)
class ListOrdersByLocationArgs:
    """`from`/`to` (ms epoch, inclusive) filter a booking's `scheduledAt` and any other
    order's `createdAt`."""

    location_id: str
    from_: int | None = None
    to: int | None = None
    status: str | None = None
    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class CustomerIdArgs:
    """`{customerId, paginationOpts?}`: orders:listByCustomer."""

    customer_id: str
    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class DailyAnalyticsArgs:
    """`{locationId, metric, from, to}`: `from` and `to` are ms epoch; every local date from
    that of `from` to that of `to` (at most 366) is answered."""

    location_id: str
    metric: str
    from_: int
    to: int
