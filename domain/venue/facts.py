"""What a customer learns of its orders: the location's half of the reaction between a location
and its customers (an order at a location updates its customer's orders, CLV and
timeline, exactly once in effect, also across a crash).

Every order command ends with `tell_customer(d, order_id)`: it co-decides on the order's
customer (`Decision.co_decide`) and hands it the order as it stands after the command's own
events (`domain.customers.reactions.record_order`). The customer's `CustomerOrderRecorded` is
therefore written in the same transaction as the order's own event, or not at all, and it
moves the customer's lifetime-value figures with it; telling the customer what it already
knows emits nothing, so a repeated command records nothing twice.
"""

from __future__ import annotations

from domain.customers import CUSTOMER, OrderFacts, record_order
from domain.model import Decision
from domain.venue.state import LocationState


def order_facts(state: LocationState, order_id: str) -> tuple[str, OrderFacts]:
    """`(customer id, facts)` of `order_id` in `state`: whose order it is and what that
    customer records of it. KeyError if the location holds no such order."""
    if state.location is None:
        raise KeyError(order_id)
    order = state.orders[order_id]
    facts = OrderFacts(
        order_id=order.id,
        location_id=state.location.id,
        org_id=state.location.org_id,
        type=order.type,
        status=order.status,
        total=order.total,
        paid_amount=order.paid_amount,
        scheduled_at=order.scheduled_at,
        created_at=order.created_at,
        completed_at=order.completed_at,
    )
    return order.customer_id, facts


def tell_customer(d: Decision[LocationState], order_id: str) -> None:
    """Record `order_id`, as it now stands, on its customer, within this command. Raises
    NotFound if the customer does not exist in the location's organization."""
    customer_id, facts = order_facts(d.state, order_id)
    record_order(d.co_decide(CUSTOMER, customer_id), facts)
