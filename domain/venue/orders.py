"""The order mutations (docs/reference/functions.md: orders:create, orders:updateStatus,
orders:recordPayment), all needing `orders:manage` in the location's organization.

Every order belongs to a customer of the location's organization, and each of these commands
tells that customer the order as it then stands, in the same transaction
(`domain.venue.facts.tell_customer`): the customer's order record, lifetime value and timeline
follow the order exactly once, whatever crashes. A customer that is missing or of another
organization is NotFound, exactly alike; a deleted, archived or erased customer takes no new
order (Conflict: the customers module refuses changes to such a record until it is restored),
while its existing orders still move on and are still recorded on it.

A booking is placed only if its whole interval `[scheduledAt, scheduledAt + its services'
minutes)` lies inside the opening hours of the local date it starts on (the location's
timezone, on the wall clock: see `domain.venue.hours`), and none of the resources its services
need is held by another non-cancelled booking anywhere in that interval (a Conflict naming the
clashing `orderId`). Both checks read the state the command decides on, so two bookings decided
one after the other by the location's actor can never both take a resource.
"""

from __future__ import annotations

from domain.customers import CUSTOMER
from domain.customers.state import LOCKED_STATES
from domain.errors import Conflict, InvalidArgs, NotFound
from domain.identity import require_cap
from domain.ids import is_root_id
from domain.venue.args import (
    CreateOrderArgs,
    OrderItemArgs,
    RecordPaymentArgs,
    UpdateOrderStatusArgs,
)
from domain.venue.bookings import clash
from domain.venue.events import OrderPaymentRecorded, OrderPlaced, OrderStatusChanged
from domain.venue.facts import tell_customer
from domain.venue.hours import MINUTE_MS, local_date, opening_window
from domain.venue.locations import State, existing_location, require_text
from domain.venue.state import (
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    ORDER_TYPES,
    LocationInfo,
    LocationState,
    Order,
    order_id,
    require_transition,
)
from domain.venue.values import OrderLine

#: The largest total a JavaScript client reads exactly (Number.MAX_SAFE_INTEGER).
MAX_TOTAL = 2**53 - 1


def create_order(d: State, args: CreateOrderArgs) -> str:
    """orders:create -> orderId (`or_<core>_<n>`); the order starts `pending`.

    `customerId` must name a customer of the location's organization (NotFound otherwise)
    that is not deleted, archived or erased (Conflict with its `state`); the customer records
    the new order in the same transaction. Each item has `quantity` >= 1; a service item (an
    active service of this location) takes the service's name, price and duration unless it
    gives its own name or price; a free item needs a name and a price. `total` = sum of
    price * quantity. A purchase needs an item; a booking needs `scheduledAt` (not in the
    past) and a service item, and is checked against the opening hours and the booked
    resources (Conflict).
    """
    require_cap(d.identity, "orders:manage")
    info = existing_location(d)
    require_ordering_customer(d, info, args.customer_id)
    if args.type not in ORDER_TYPES:
        raise InvalidArgs(f"type must be one of {', '.join(ORDER_TYPES)}.", path="type")
    if args.scheduled_at is not None and args.scheduled_at < 0:
        raise InvalidArgs("scheduledAt must be a time in ms since the epoch.", path="scheduledAt")
    lines = tuple(_resolve(d.state, item, f"items[{i}]") for i, item in enumerate(args.items))
    total = sum(line.amount for line in lines)
    if total > MAX_TOTAL:
        raise InvalidArgs("The order's total is too large.", path="items")
    if args.type == "purchase" and not lines:
        raise InvalidArgs("A purchase needs at least one item.", path="items")
    ends_at: int | None = None
    resources: tuple[str, ...] = ()
    if args.type == "booking":
        ends_at, resources = _place_booking(d, info, args.scheduled_at, lines)
    number = d.state.order_count
    oid = order_id(info.id, number)
    d.emit(
        OrderPlaced,
        order_id=oid,
        number=number,
        customer_id=args.customer_id,
        type=args.type,
        lines=lines,
        total=total,
        scheduled_at=args.scheduled_at,
        ends_at=ends_at,
        resources=resources,
        notes=args.notes,
    )
    tell_customer(d, oid)
    return oid


def require_ordering_customer(d: State, info: LocationInfo, customer_id: str) -> None:
    """Refuse an order for anyone but a customer of the location's organization that may
    still order (read through a co-decision: the customer's working state)."""
    if not is_root_id(customer_id, "cu"):
        raise NotFound("Customer not found.")
    customer = d.co_decide(CUSTOMER, customer_id).state
    if not customer.exists or customer.org_id != info.org_id:
        raise NotFound("Customer not found.")
    if customer.soft_state in LOCKED_STATES:
        raise Conflict(
            f"The customer is {customer.soft_state} and cannot place new orders.",
            state=customer.soft_state,
            customerId=customer_id,
        )


def _resolve(state: LocationState, item: OrderItemArgs, path: str) -> OrderLine:
    """The line `item` names, with the service's defaults filled in."""
    if item.quantity < 1:
        raise InvalidArgs("quantity must be an integer >= 1.", path=f"{path}.quantity")
    if item.price is not None and item.price < 0:
        raise InvalidArgs("price must be an integer >= 0 (minor units).", path=f"{path}.price")
    require_text(item.name, f"{path}.name", "An item's name")
    if item.service_id is None:
        if item.name is None:
            raise InvalidArgs("An item without a service needs a name.", path=f"{path}.name")
        if item.price is None:
            raise InvalidArgs("An item without a service needs a price.", path=f"{path}.price")
        return OrderLine(
            service_id=None, name=item.name, quantity=item.quantity, price=item.price, duration=0
        )
    service = state.services.get(item.service_id)
    if service is None:
        raise NotFound("Service not found.", path=f"{path}.serviceId")
    if not service.is_active:
        raise Conflict("The service is not active.", serviceId=service.id, path=f"{path}.serviceId")
    return OrderLine(
        service_id=service.id,
        name=service.name if item.name is None else item.name,
        quantity=item.quantity,
        price=service.price if item.price is None else item.price,
        duration=service.duration,
    )


def _place_booking(
    d: State, info: LocationInfo, start: int | None, lines: tuple[OrderLine, ...]
) -> tuple[int, tuple[str, ...]]:
    """`(ends_at, resources)` of a booking starting at `start`, or the refusal."""
    if start is None:
        raise InvalidArgs("A booking needs scheduledAt.", path="scheduledAt")
    booked = [line for line in lines if line.service_id is not None]
    if not booked:
        raise InvalidArgs("A booking needs at least one service item.", path="items")
    if start < d.now:
        raise InvalidArgs("A booking cannot start in the past.", path="scheduledAt")
    end = start + sum(line.duration * line.quantity for line in booked) * MINUTE_MS
    window = opening_window(info.operating_hours, start, info.timezone)
    if window is None:
        raise Conflict(
            "The location is closed on that day.",
            date=local_date(start, info.timezone).isoformat(),
        )
    opens, closes = window
    if start < opens or end > closes:
        raise Conflict(
            "The booking falls outside the location's opening hours.",
            opensAt=opens,
            closesAt=closes,
            endsAt=end,
        )
    resources: list[str] = []
    for line in booked:
        assert line.service_id is not None
        for resource in d.state.services[line.service_id].resources:
            if resource not in resources:
                resources.append(resource)
    for resource in resources:
        taken = clash(d.state.booked, resource, start, end)
        if taken is not None:
            raise Conflict(
                f"{resource!r} is already booked at that time.",
                orderId=taken.order_id,
                resource=resource,
            )
    return end, tuple(resources)


def existing_order(d: State, oid: str) -> Order:
    existing_location(d, "Order")
    order = d.state.orders.get(oid)
    if order is None:
        raise NotFound("Order not found.")
    return order


def update_status(d: State, args: UpdateOrderStatusArgs) -> None:
    """orders:updateStatus: one step of `ORDER_TRANSITIONS` (pending -> confirmed ->
    completed; pending or confirmed -> cancelled); any other step is a Conflict. A cancelled
    booking frees its resources at once; the customer records the new status (a completed
    order counts towards its lifetime value from this commit on)."""
    require_cap(d.identity, "orders:manage")
    order = existing_order(d, args.order_id)
    if args.status not in ORDER_STATUSES:
        raise InvalidArgs(f"status must be one of {', '.join(ORDER_STATUSES)}.", path="status")
    require_transition(ORDER_TRANSITIONS, "The order", order.status, args.status, orderId=order.id)
    d.emit(
        OrderStatusChanged,
        order_id=order.id,
        customer_id=order.customer_id,
        type=order.type,
        previous=order.status,
        status=args.status,
        total=order.total,
    )
    tell_customer(d, order.id)


def record_payment(d: State, args: RecordPaymentArgs) -> int:
    """orders:recordPayment -> the order's new `paidAmount`. `amount` > 0; a cancelled order
    takes no payment and `paidAmount` never exceeds `total` (Conflict with `outstanding`)."""
    require_cap(d.identity, "orders:manage")
    order = existing_order(d, args.order_id)
    if args.amount <= 0:
        raise InvalidArgs("amount must be an integer > 0 (minor units).", path="amount")
    if order.status == "cancelled":
        raise Conflict("A cancelled order takes no payment.", orderId=order.id, status="cancelled")
    outstanding = order.total - order.paid_amount
    if args.amount > outstanding:
        raise Conflict(
            "The payment would take paidAmount above the order's total.",
            orderId=order.id,
            total=order.total,
            paidAmount=order.paid_amount,
            outstanding=outstanding,
        )
    paid = order.paid_amount + args.amount
    d.emit(
        OrderPaymentRecorded,
        order_id=order.id,
        customer_id=order.customer_id,
        amount=args.amount,
        paid_amount=paid,
    )
    tell_customer(d, order.id)
    return paid
