"""What other modules tell a customer, inside their own commands.

An order's or a ticket's handler reaches the customer with `Decision.co_decide(CUSTOMER,
customer_id)` and calls one of these on that decision, so the customer's events are committed
in the same transaction as the order's or ticket's own, or not at all. Each call is idempotent
in effect: telling the same facts twice emits nothing the second time, so a reaction that is
retried (also after a crash) lands once.

A ticketing handler that knows only a user id finds the customer through the claim aggregate:
`d.co_decide(CLAIM, user_claim_id(org_id, user_id)).state.owner` is the customer's id (None if
that user is no customer of the organization).

The timeline names the caller's subject as `by`, or "system" when the reaction runs with the
engine's own identity.
"""

from __future__ import annotations

import attrs

from domain.customers.claims import user_claim_id
from domain.customers.events import CustomerOrderRecorded, CustomerTicketPurchaseRecorded
from domain.customers.state import CustomerState, OrderRecord, figures_after
from domain.errors import NotFound
from domain.model import Decision

__all__ = ["OrderFacts", "record_order", "record_ticket_purchase", "user_claim_id"]


@attrs.frozen(kw_only=True)
class OrderFacts:
    """An order as the customer needs to know it. Times are ms since the epoch; money in
    minor units."""

    order_id: str
    location_id: str
    org_id: str
    type: str
    status: str
    total: int
    paid_amount: int
    scheduled_at: int | None
    created_at: int
    completed_at: int | None


def _reactor(customer: Decision[CustomerState]) -> str:
    subject = customer.identity.subject
    return subject if subject is not None else "system"


def _known(customer: Decision[CustomerState], org_id: str) -> CustomerState:
    """The customer, if it exists in `org_id` (in any soft state); NotFound otherwise."""
    state = customer.state
    if not state.exists or state.org_id != org_id:
        raise NotFound("Customer not found.")
    return state


def record_order(customer: Decision[CustomerState], facts: OrderFacts) -> None:
    """Record a new order of the customer, or the latest facts of one it knows, and move its
    lifetime-value figures with it (they always equal those over its completed orders).

    Raises NotFound if the customer does not exist or belongs to another organization than the
    order. Emits nothing if the customer already knows exactly these facts."""
    state = _known(customer, facts.org_id)
    order = OrderRecord(
        id=facts.order_id,
        location_id=facts.location_id,
        type=facts.type,
        status=facts.status,
        total=facts.total,
        paid_amount=facts.paid_amount,
        scheduled_at=facts.scheduled_at,
        created_at=facts.created_at,
        completed_at=facts.completed_at,
    )
    before = state.orders.get(order.id)
    if before == order:
        return
    figures = figures_after(state.figures, before, order)
    customer.emit(
        CustomerOrderRecorded,
        org_id=facts.org_id,
        by=_reactor(customer),
        order_id=order.id,
        location_id=order.location_id,
        type=order.type,
        status=order.status,
        total=order.total,
        paid_amount=order.paid_amount,
        scheduled_at=order.scheduled_at,
        created_at=order.created_at,
        completed_at=order.completed_at,
        clv=figures.clv,
        avg_order_value=figures.avg_order_value,
        order_count=figures.order_count,
    )


def record_ticket_purchase(
    customer: Decision[CustomerState], *, org_id: str, event_id: str, ticket_id: str, amount: int
) -> None:
    """Put a ticket purchase on the customer's timeline (and in its export). NotFound as for
    `record_order`; a ticket already recorded emits nothing."""
    state = _known(customer, org_id)
    if ticket_id in state.ticket_purchases:
        return
    customer.emit(
        CustomerTicketPurchaseRecorded,
        org_id=org_id,
        by=_reactor(customer),
        event_id=event_id,
        ticket_id=ticket_id,
        amount=amount,
    )
