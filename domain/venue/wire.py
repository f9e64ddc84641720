"""The documents venue queries return: plain JSON-able dicts with camelCase keys, shaped like
Convex documents (`_id`, `_creationTime`, fields). Each is a pure
function of the record it is given."""

from __future__ import annotations

from typing import Any

from domain.venue.state import LocationInfo, Order, Service
from domain.venue.values import WEEKDAYS, Address, OperatingHours, OrderLine

Doc = dict[str, Any]


def address_doc(address: Address) -> Doc:
    return {
        "line1": address.line1,
        "line2": address.line2,
        "city": address.city,
        "region": address.region,
        "postalCode": address.postal_code,
        "country": address.country,
    }


def hours_doc(hours: OperatingHours) -> Doc:
    """Every weekday, closed days as null."""
    doc: Doc = {}
    for name in WEEKDAYS:
        day = getattr(hours, name)
        doc[name] = None if day is None else {"open": day.open, "close": day.close}
    return doc


def location_doc(info: LocationInfo) -> Doc:
    return {
        "_id": info.id,
        "_creationTime": info.created_at,
        "orgId": info.org_id,
        "name": info.name,
        "address": address_doc(info.address),
        "timezone": info.timezone,
        "operatingHours": hours_doc(info.operating_hours),
        "settings": dict(info.settings),
        "userId": info.user_id,
        "updatedAt": info.updated_at,
    }


def service_doc(location_id: str, service: Service) -> Doc:
    return {
        "_id": service.id,
        "_creationTime": service.created_at,
        "locationId": location_id,
        "name": service.name,
        "description": service.description,
        "categoryId": service.category_id,
        "duration": service.duration,
        "price": service.price,
        "isActive": service.is_active,
        "resources": list(service.resources),
        "updatedAt": service.updated_at,
    }


def line_doc(line: OrderLine) -> Doc:
    return {
        "serviceId": line.service_id,
        "name": line.name,
        "quantity": line.quantity,
        "price": line.price,
        "duration": line.duration,
    }


def order_doc(location_id: str, order: Order) -> Doc:
    """An order; `endsAt` and `resources` describe a booking's hold (null and [] otherwise),
    `remindedAt` when its reminder went out (null: not yet, or not a booking)."""
    return {
        "_id": order.id,
        "_creationTime": order.created_at,
        "locationId": location_id,
        "customerId": order.customer_id,
        "type": order.type,
        "status": order.status,
        "items": [line_doc(line) for line in order.lines],
        "total": order.total,
        "paidAmount": order.paid_amount,
        "scheduledAt": order.scheduled_at,
        "endsAt": order.ends_at,
        "resources": list(order.resources),
        "notes": order.notes,
        "completedAt": order.completed_at,
        "cancelledAt": order.cancelled_at,
        "remindedAt": order.reminded_at,
        "updatedAt": order.updated_at,
    }
