"""The location and service mutations (docs/reference/functions.md: locations:*, services:*).

Each handler checks the caller's capability (`locations:manage`), then that the location exists
in the caller's organization (another organization's location is NotFound, exactly like a
missing one), then the arguments, and only then emits; a handler that raises leaves no trace.
The routes here are shared by every venue function: a command naming only a service or an
order reaches the location that owns it through the id's embedded owner.
"""

from __future__ import annotations

from typing import Protocol

from domain.customers.claims import register_location
from domain.errors import Conflict, InvalidArgs, NotFound
from domain.identity import org_for_new_record, require_cap, require_org
from domain.ids import is_root_id, owner_of
from domain.model import Decision
from domain.venue.args import (
    CreateLocationArgs,
    CreateServiceArgs,
    UpdateLocationArgs,
    UpdateServiceArgs,
)
from domain.venue.events import LocationCreated, LocationUpdated, ServiceCreated, ServiceUpdated
from domain.venue.hours import MINUTES_PER_DAY, validate_hours, validate_timezone
from domain.venue.state import LocationInfo, LocationState, Service, service_id
from domain.venue.values import OperatingHours

State = Decision[LocationState]


# -- routes and shared rules ----------------------------------------------------------------------


class NamesLocation(Protocol):
    @property
    def location_id(self) -> str: ...


class NamesService(Protocol):
    @property
    def service_id(self) -> str: ...


class NamesOrder(Protocol):
    @property
    def order_id(self) -> str: ...


def route_location(args: NamesLocation) -> str:
    """The aggregate id of `args.location_id`; a malformed id names no location (NotFound)."""
    if not is_root_id(args.location_id, "lo"):
        raise NotFound("Location not found.")
    return args.location_id


def route_service(args: NamesService) -> str:
    """The location owning `args.service_id`; an id that is not a service id is NotFound."""
    owner = owner_of(args.service_id, "sv", "lo")
    if owner is None:
        raise NotFound("Service not found.")
    return owner


def route_order(args: NamesOrder) -> str:
    """The location owning `args.order_id`; an id that is not an order id is NotFound."""
    owner = owner_of(args.order_id, "or", "lo")
    if owner is None:
        raise NotFound("Order not found.")
    return owner


def existing_location(d: State, what: str = "Location") -> LocationInfo:
    """The location of this stream if it exists in the caller's organization, else NotFound
    phrased for `what` (the record the caller named)."""
    info = d.state.location
    if info is None:
        raise NotFound(f"{what} not found.")
    require_org(d.identity, info.org_id, what)
    return info


def require_text(value: str | None, path: str, what: str) -> None:
    """InvalidArgs at `path` if `value` is given but blank."""
    if value is not None and not value.strip():
        raise InvalidArgs(f"{what} must not be empty.", path=path)


def _validate_location(
    *, name: str | None, timezone: str | None, hours: OperatingHours | None
) -> None:
    require_text(name, "name", "The location's name")
    if timezone is not None:
        validate_timezone(timezone)
    if hours is not None:
        validate_hours(hours)


def _validate_service(
    *,
    name: str | None,
    duration: int | None,
    price: int | None,
    resources: tuple[str, ...] | None,
) -> None:
    require_text(name, "name", "The service's name")
    if duration is not None and not 1 <= duration <= MINUTES_PER_DAY:
        raise InvalidArgs("duration must be from 1 to 1440 minutes.", path="duration")
    if price is not None and price < 0:
        raise InvalidArgs("price must be an integer >= 0 (minor units).", path="price")
    if resources is not None:
        for i, resource in enumerate(resources):
            require_text(resource, f"resources[{i}]", "A resource name")
            if resource in resources[:i]:
                raise InvalidArgs(f"Resource {resource!r} is listed twice.", path=f"resources[{i}]")


# -- locations ------------------------------------------------------------------------------------


def create_location(d: State, args: CreateLocationArgs) -> str:
    """locations:create -> the new location's id (made by the engine: `d.aggregate_id`).

    Needs `locations:manage`; the location belongs to the caller's organization (an admin
    names it in `orgId`). `timezone` must be an IANA key and `operatingHours` well-formed
    (InvalidArgs with the bad field's path). Conflict if the stream already has a location.
    The organization's location claim is taken in the same transaction
    (`domain.customers.claims.register_location`), so a customer or a ticketing event may name
    the location from the commit on.
    """
    require_cap(d.identity, "locations:manage")
    org_id = org_for_new_record(d.identity, args.org_id)
    _validate_location(name=args.name, timezone=args.timezone, hours=args.operating_hours)
    if d.state.location is not None:
        raise Conflict("A location with this id already exists.", locationId=d.aggregate_id)
    d.emit(
        LocationCreated,
        org_id=org_id,
        name=args.name,
        address=args.address,
        timezone=args.timezone,
        operating_hours=args.operating_hours,
        settings=args.settings,
        user_id=d.identity.subject,
    )
    register_location(d, org_id)
    return d.aggregate_id


def update_location(d: State, args: UpdateLocationArgs) -> None:
    """locations:update: replace the fields given (None = keep). Needs `locations:manage` in
    the location's organization. Bookings already made keep their times; new bookings follow
    the new hours and timezone. Emits nothing when no field is given. Also takes the location
    claim if the location has none (one created before locations took it at creation)."""
    require_cap(d.identity, "locations:manage")
    info = existing_location(d)
    register_location(d, info.org_id)
    _validate_location(name=args.name, timezone=args.timezone, hours=args.operating_hours)
    changes = {
        "name": args.name,
        "address": args.address,
        "timezone": args.timezone,
        "operating_hours": args.operating_hours,
        "settings": args.settings,
    }
    if all(value is None for value in changes.values()):
        return
    d.emit(LocationUpdated, org_id=info.org_id, **changes)


# -- services -------------------------------------------------------------------------------------


def create_service(d: State, args: CreateServiceArgs) -> str:
    """services:create -> the new service's id (`sv_<core>_<n>`, numbered in creation order).

    Needs `locations:manage` in the location's organization. `duration` is 1 to 1440 minutes,
    `price` >= 0 minor units, `resources` distinct non-empty names.
    """
    require_cap(d.identity, "locations:manage")
    info = existing_location(d)
    _validate_service(
        name=args.name, duration=args.duration, price=args.price, resources=args.resources
    )
    number = d.state.service_count
    sid = service_id(info.id, number)
    d.emit(
        ServiceCreated,
        service_id=sid,
        number=number,
        name=args.name,
        description=args.description,
        category_id=args.category_id,
        duration=args.duration,
        price=args.price,
        is_active=args.is_active,
        resources=args.resources,
    )
    return sid


def existing_service(d: State, sid: str) -> Service:
    existing_location(d, "Service")
    service = d.state.services.get(sid)
    if service is None:
        raise NotFound("Service not found.")
    return service


def update_service(d: State, args: UpdateServiceArgs) -> None:
    """services:update: replace the fields given (None = keep). Needs `locations:manage` in
    the location's organization. Orders already placed keep their lines and resources.
    Emits nothing when no field is given."""
    require_cap(d.identity, "locations:manage")
    service = existing_service(d, args.service_id)
    _validate_service(
        name=args.name, duration=args.duration, price=args.price, resources=args.resources
    )
    changes = {
        "name": args.name,
        "description": args.description,
        "category_id": args.category_id,
        "duration": args.duration,
        "price": args.price,
        "is_active": args.is_active,
        "resources": args.resources,
    }
    if all(value is None for value in changes.values()):
        return
    d.emit(ServiceUpdated, service_id=service.id, **changes)
