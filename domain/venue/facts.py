"""`OrderFacts`: what another aggregate may know of one order, taken from the location's
state in one call.

This is the seam for reactions between the location and other actors: a customer's order
history and lifetime value, or an existence and organization check of the customer when an
order is placed, are decided with `Decision.co_decide` inside the order command, from the
`OrderFacts` of the order as it stands after the command's own events.
"""

from __future__ import annotations

import attrs

from domain.venue.state import LocationState


@attrs.frozen(kw_only=True)
class OrderFacts:
    order_id: str
    location_id: str
    org_id: str
    customer_id: str
    type: str
    status: str
    total: int
    paid_amount: int
    scheduled_at: int | None
    created_at: int
    completed_at: int | None


def order_facts(state: LocationState, order_id: str) -> OrderFacts:
    """The facts of `order_id` in `state`; KeyError if the location holds no such order."""
    if state.location is None:
        raise KeyError(order_id)
    order = state.orders[order_id]
    return OrderFacts(
        order_id=order.id,
        location_id=state.location.id,
        org_id=state.location.org_id,
        customer_id=order.customer_id,
        type=order.type,
        status=order.status,
        total=order.total,
        paid_amount=order.paid_amount,
        scheduled_at=order.scheduled_at,
        created_at=order.created_at,
        completed_at=order.completed_at,
    )
