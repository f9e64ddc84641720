"""The documents replies and query results carry: plain JSON-able dicts with camelCase keys,
shaped like Convex documents (`_id`, `_creationTime`, fields). Each is a pure
function of what it is given (no clock)."""

from __future__ import annotations

from typing import Any

from domain.customers.profile import Profile
from domain.customers.state import (
    ActivityEntry,
    CustomerState,
    Figures,
    Membership,
    OrderRecord,
    StateChange,
    TicketPurchase,
)
from domain.ids import child_id

Doc = dict[str, Any]


def figures_doc(figures: Figures) -> Doc:
    return {
        "clv": figures.clv,
        "avgOrderValue": figures.avg_order_value,
        "orderCount": figures.order_count,
    }


def customer_doc(
    *,
    customer_id: str,
    org_id: str,
    created_at: int,
    profile: Profile,
    soft_state: str,
    figures: Figures,
    photo_storage_id: str | None = None,
    photo_url: str | None = None,
) -> Doc:
    """A customer as lists show it: profile, soft `state`, lifetime-value figures, and its
    photo's storage id and URL (`domain.storage.file_url`; null without one)."""
    return {
        "_id": customer_id,
        "_creationTime": created_at,
        "orgId": org_id,
        "firstName": profile.first_name,
        "lastName": profile.last_name,
        "email": profile.email,
        "phone": profile.phone,
        "notes": profile.notes,
        "tags": list(profile.tags),
        "customFields": dict(profile.custom_fields),
        "customerType": profile.customer_type,
        "lifecycle": profile.lifecycle,
        "locationId": profile.location_id,
        "userId": profile.user_id,
        "state": soft_state,
        **figures_doc(figures),
        "photoStorageId": photo_storage_id,
        "photoUrl": photo_url,
    }


def state_change_doc(change: StateChange) -> Doc:
    return {
        "from": change.from_state,
        "to": change.to_state,
        "at": change.at,
        "by": change.by,
        "reason": change.reason,
    }


def full_customer_doc(state: CustomerState, photo_url: str | None = None) -> Doc:
    """A customer as customers:get shows it: the list document plus `stateHistory` and
    `updatedAt` (the time of its latest change of any kind)."""
    assert state.id is not None and state.org_id is not None and state.profile is not None
    return {
        **customer_doc(
            customer_id=state.id,
            org_id=state.org_id,
            created_at=state.created_at,
            profile=state.profile,
            soft_state=state.soft_state,
            figures=state.figures,
            photo_storage_id=state.photo_storage_id,
            photo_url=photo_url,
        ),
        "stateHistory": [state_change_doc(change) for change in state.state_history],
        "updatedAt": state.updated_at,
    }


def membership_doc(customer_id: str, membership: Membership) -> Doc:
    return {
        "_id": membership.id,
        "_creationTime": membership.start_date,
        "customerId": customer_id,
        "programId": membership.program_id,
        "tier": membership.tier,
        "points": membership.points,
        "startDate": membership.start_date,
        "expiryDate": membership.expiry_date,
        "walletPassId": membership.wallet_pass_id,
    }


def order_doc(order: OrderRecord) -> Doc:
    return {
        "orderId": order.id,
        "locationId": order.location_id,
        "type": order.type,
        "status": order.status,
        "total": order.total,
        "paidAmount": order.paid_amount,
        "scheduledAt": order.scheduled_at,
        "createdAt": order.created_at,
        "completedAt": order.completed_at,
    }


def ticket_purchase_doc(purchase: TicketPurchase) -> Doc:
    return {
        "ticketId": purchase.ticket_id,
        "eventId": purchase.event_id,
        "amount": purchase.amount,
        "at": purchase.at,
    }


def activity_doc(customer_id: str, entity_type: str, entity_id: str, entry: ActivityEntry) -> Doc:
    """One timeline entry (`_id` is `ac_<customer core>_<n>`). `metadata` of an update names
    the changed fields as a comma-separated `fields`."""
    return {
        "_id": child_id("ac", customer_id, entry.number),
        "entityType": entity_type,
        "entityId": entity_id,
        "action": entry.action,
        "by": entry.by,
        "at": entry.at,
        "metadata": dict(entry.metadata),
    }
