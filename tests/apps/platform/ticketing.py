"""Ticket tiers, orders, passes and check-ins: the records of the platform seed with serial rules.

- **Ticket tiers are an aggregate** (`EVENT_TIERS`, one per event): each tier has its own
  capacity and price, and `sold <= capacity` must hold across every purchase and refund. The
  engine decides one command at a time per aggregate, so two purchases racing for a tier's
  last ticket cannot both win (as a gift card's balance, tests/apps/giftcards.py). A purchase
  is routed to the event's tiers and writes the order and its passes in the same commit; a
  refund is routed to the order (so it cannot run twice) and co-decides the tiers.
- **A pass is a table document, routed to for its check-in** (`platform/passes:checkIn` has
  `route=pass_id` on the passes table's aggregate). Writes to one document are serial, so of
  any number of concurrent scans exactly one finds the pass without a check-in, writes the
  `CheckIn` document and patches the pass to name it, in one commit; every later scan reads
  that id and is a `Conflict` naming the first check-in. A separate aggregate per pass would
  hold the same rule but duplicate the document the order's screens already list by index.
"""

from __future__ import annotations

from typing import Any

import attrs
import immutables

from domain import (
    Aggregate,
    Conflict,
    Decision,
    Event,
    Identity,
    InvalidArgs,
    NotFound,
    PaginationOpts,
    View,
    db,
    org_for_new_record,
    require_org,
    scope_of,
)

from .access import CHECK_IN, EVENTS, ORDERS, require_capability, require_capability_to_read
from .records import CHECK_INS, NAMESPACE, PASSES, CheckIn, Order, Pass
from .records import ORDERS as ORDERS_TABLE

#: At most this many passes per order (an order's passes are written in its one commit).
MAX_QUANTITY = 20


class TierEvent(Event):
    """Every event of the tiers aggregate: journal type `platform_seed.<ClassName>`."""

    namespace = NAMESPACE


@attrs.frozen(kw_only=True)
class EventOpened(TierEvent):
    org_id: str
    name: str


@attrs.frozen(kw_only=True)
class TierAdded(TierEvent):
    tier: str
    capacity: int
    price: int


@attrs.frozen(kw_only=True)
class TicketsSold(TierEvent):
    tier: str
    quantity: int
    order_id: str


@attrs.frozen(kw_only=True)
class TicketsReleased(TierEvent):
    tier: str
    quantity: int
    order_id: str


@attrs.frozen(kw_only=True)
class Tier:
    capacity: int
    price: int
    sold: int = 0

    @property
    def remaining(self) -> int:
        return self.capacity - self.sold


@attrs.frozen(kw_only=True)
class EventTiers:
    org_id: str = ""
    name: str = ""
    tiers: immutables.Map[str, Tier] = attrs.field(factory=immutables.Map)


def evolve(state: EventTiers, event: Event) -> EventTiers:
    match event:
        case EventOpened():
            return EventTiers(org_id=event.org_id, name=event.name)
        case TierAdded():
            tier = Tier(capacity=event.capacity, price=event.price)
            return attrs.evolve(state, tiers=state.tiers.set(event.tier, tier))
        case TicketsSold(tier=name, quantity=n):
            tier = state.tiers[name]
            return attrs.evolve(
                state, tiers=state.tiers.set(name, attrs.evolve(tier, sold=tier.sold + n))
            )
        case TicketsReleased(tier=name, quantity=n):
            tier = state.tiers[name]
            return attrs.evolve(
                state, tiers=state.tiers.set(name, attrs.evolve(tier, sold=tier.sold - n))
            )
    raise TypeError(f"{type(event).__name__} is not an event of ticket tiers")


def check_invariants(state: EventTiers) -> None:
    for name, tier in state.tiers.items():
        assert 0 <= tier.sold <= tier.capacity, f"tier {name} sold {tier.sold} of {tier.capacity}"


EVENT_TIERS = Aggregate(
    kind=f"{NAMESPACE}.event_tiers",
    id_prefix="et",
    state_type=EventTiers,
    initial=EventTiers(),
    evolve=evolve,
    check_invariants=check_invariants,
)


# -- args ------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TierSpec:
    name: str
    capacity: int
    price: int


@attrs.frozen(kw_only=True)
class CreateEventArgs:
    name: str
    tiers: tuple[TierSpec, ...] = ()
    as_member: str | None = None
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class AddTierArgs:
    event_id: str
    name: str
    capacity: int
    price: int
    as_member: str | None = None


@attrs.frozen(kw_only=True)
class EventIdArgs:
    event_id: str


@attrs.frozen(kw_only=True)
class PlaceOrderArgs:
    event_id: str
    tier: str
    quantity: int
    buyer_name: str
    buyer_email: str
    as_member: str | None = None


@attrs.frozen(kw_only=True)
class OrderIdArgs:
    order_id: str
    as_member: str | None = None


@attrs.frozen(kw_only=True)
class ListOrdersArgs:
    event_id: str
    org_id: str | None = None
    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class CheckInArgs:
    pass_id: str
    gate: str = "main"
    as_member: str | None = None


@attrs.frozen(kw_only=True)
class PassIdArgs:
    pass_id: str


# -- tiers -----------------------------------------------------------------------------------------


def _add_tier(d: Decision[EventTiers], spec: TierSpec) -> None:
    if not spec.name.strip():
        raise InvalidArgs("A tier needs a name.", path="name")
    if spec.name in d.state.tiers:
        raise Conflict(f"The event already has a tier {spec.name!r}.", tier=spec.name)
    if not 1 <= spec.capacity <= 1_000_000:
        raise InvalidArgs("capacity must be between 1 and 1000000.", path="capacity")
    if not 0 <= spec.price <= 100_000_000:
        raise InvalidArgs("price must be between 0 and 100000000 (minor units).", path="price")
    d.emit(TierAdded, tier=spec.name, capacity=spec.capacity, price=spec.price)


def create_event(d: Decision[EventTiers], args: CreateEventArgs) -> str:
    """platform/tiers:createEvent -> the event's id, its tiers opened in the same commit."""
    require_capability(d, args.as_member, EVENTS)
    org_id = org_for_new_record(d.identity, args.org_id)
    if not args.name.strip():
        raise InvalidArgs("An event needs a name.", path="name")
    d.emit(EventOpened, org_id=org_id, name=args.name)
    for spec in args.tiers:
        _add_tier(d, spec)
    return d.aggregate_id


def _tiers(d: Decision[EventTiers]) -> EventTiers:
    require_org(d.identity, d.state.org_id or None, "Event")
    return d.state


def add_tier(d: Decision[EventTiers], args: AddTierArgs) -> None:
    """platform/tiers:add: a further tier with its own capacity and price."""
    require_capability(d, args.as_member, EVENTS)
    _tiers(d)
    _add_tier(d, TierSpec(name=args.name, capacity=args.capacity, price=args.price))


def _tiers_doc(event_id: str, state: EventTiers) -> dict[str, Any]:
    return {
        "_id": event_id,
        "name": state.name,
        "tiers": [
            {
                "name": name,
                "capacity": tier.capacity,
                "price": tier.price,
                "sold": tier.sold,
                "remaining": tier.remaining,
            }
            for name, tier in sorted(state.tiers.items())
        ],
    }


def get_tiers(view: View, args: EventIdArgs, identity: Identity) -> dict[str, Any] | None:
    """platform/tiers:get -> the event's tiers with what is left of each, or null."""
    require_capability_to_read(view, identity, ORDERS)
    state = view.aggregate(EVENT_TIERS, args.event_id)
    if state is None or not (identity.is_admin or state.org_id == identity.org_id):
        return None
    return _tiers_doc(args.event_id, state)


# -- orders ----------------------------------------------------------------------------------------


def place_order(d: Decision[EventTiers], args: PlaceOrderArgs) -> dict[str, Any]:
    """platform/orders:place -> {orderId, passIds, total}. Routed to the event's tiers: the tier
    is never oversold (Conflict with what remains); the order and its passes commit with it."""
    require_capability(d, args.as_member, ORDERS)
    state = _tiers(d)
    tier = state.tiers.get(args.tier)
    if tier is None:
        raise NotFound(f"The event has no tier {args.tier!r}.", tier=args.tier)
    if not 1 <= args.quantity <= MAX_QUANTITY:
        raise InvalidArgs(f"quantity must be between 1 and {MAX_QUANTITY}.", path="quantity")
    if tier.remaining < args.quantity:
        raise Conflict(
            f"Only {tier.remaining} left in tier {args.tier!r}.",
            tier=args.tier,
            remaining=tier.remaining,
        )
    writes = db(d)
    order = Order(
        org_id=state.org_id,
        event_id=d.aggregate_id,
        tier=args.tier,
        quantity=args.quantity,
        total=tier.price * args.quantity,
        buyer_name=args.buyer_name,
        buyer_email=args.buyer_email,
    )
    order_id: str = writes.insert(ORDERS_TABLE, order)
    pass_ids = tuple(
        writes.insert(
            PASSES,
            Pass(org_id=state.org_id, order_id=order_id, event_id=d.aggregate_id, tier=args.tier),
        )
        for _ in range(args.quantity)
    )
    # The passes' ids exist only once they are inserted: the order learns them by a patch.
    writes.patch(ORDERS_TABLE, order_id, pass_ids=pass_ids)
    d.emit(TicketsSold, tier=args.tier, quantity=args.quantity, order_id=order_id)
    return {"orderId": order_id, "passIds": list(pass_ids), "total": order.total}


def refund_order(d: Decision[Any], args: OrderIdArgs) -> int:
    """platform/orders:refund -> the tier's remaining tickets. Routed to the order (a refund
    runs once); its passes are voided and its tickets released to the tier in one commit. A
    Conflict if it was refunded already or one of its passes has checked in (naming it)."""
    require_capability(d, args.as_member, ORDERS)
    writes = db(d)
    order = writes.get(ORDERS_TABLE, args.order_id)
    if order is None:
        raise NotFound("Order not found.")
    if order.status == "refunded":
        raise Conflict("This order was refunded already.", orderId=args.order_id)
    for pass_id in order.pass_ids:
        ticket = writes.get(PASSES, pass_id)
        if ticket is not None and ticket.check_in_id is not None:
            raise Conflict(
                "A pass of this order has checked in; it cannot be refunded.",
                passId=pass_id,
                checkInId=ticket.check_in_id,
            )
    for pass_id in order.pass_ids:
        writes.patch(PASSES, pass_id, status="void")
    writes.patch(ORDERS_TABLE, args.order_id, status="refunded")
    tiers = d.co_decide(EVENT_TIERS, order.event_id)
    tiers.emit(TicketsReleased, tier=order.tier, quantity=order.quantity, order_id=args.order_id)
    remaining: int = tiers.state.tiers[order.tier].remaining
    return remaining


def _order_doc(stored: Any) -> dict[str, Any]:
    order: Order = stored.document
    return {
        "_id": stored.id,
        "_creationTime": stored.creation_time,
        "eventId": order.event_id,
        "tier": order.tier,
        "quantity": order.quantity,
        "total": order.total,
        "buyerName": order.buyer_name,
        "buyerEmail": order.buyer_email,
        "status": order.status,
        "passIds": list(order.pass_ids),
    }


def get_order(view: View, args: OrderIdArgs, identity: Identity) -> dict[str, Any] | None:
    """platform/orders:get -> the order, or null (also another organization's)."""
    require_capability_to_read(view, identity, ORDERS)
    stored = db(view, identity).get_stored(ORDERS_TABLE, args.order_id)
    return None if stored is None else _order_doc(stored)


def list_orders(view: View, args: ListOrdersArgs, identity: Identity) -> Any:
    """platform/orders:list -> the event's orders, oldest first (a page with paginationOpts)."""
    require_capability_to_read(view, identity, ORDERS)
    # Only an admin names the organization: the caller's own is implied (and enforced).
    equal: dict[str, Any] = {"org_id": args.org_id} if identity.is_admin else {}
    q = (
        db(view, identity)
        .query(ORDERS_TABLE)
        .with_index("by_event", event_id=args.event_id, **equal)
    )
    if args.pagination_opts is not None:
        return q.paginate(args.pagination_opts, scope_of("platform/orders:list", args)).doc(
            _order_doc
        )
    return [_order_doc(stored) for stored in q.collect()]


# -- passes and check-ins --------------------------------------------------------------------------


def check_in(d: Decision[Any], args: CheckInArgs) -> str:
    """platform/passes:checkIn -> the check-in's id. Routed to the pass: serial, so a pass
    checks in once; a second scan is a Conflict naming the first check-in (checkInId, at,
    gate); a voided pass (refunded order) is a Conflict too."""
    require_capability(d, args.as_member, CHECK_IN)
    writes = db(d)
    ticket = writes.get(PASSES, args.pass_id)
    if ticket is None:
        raise NotFound("Pass not found.")
    if ticket.check_in_id is not None:
        first = writes.get(CHECK_INS, ticket.check_in_id)
        raise Conflict(
            "This pass has checked in already.",
            checkInId=ticket.check_in_id,
            checkedInAt=None if first is None else first.at,
            gate=None if first is None else first.gate,
        )
    if ticket.status == "void":
        raise Conflict("This pass was voided (its order was refunded).", passId=args.pass_id)
    by = d.identity.subject or "admin"
    entry = CheckIn(
        org_id=ticket.org_id,
        pass_id=args.pass_id,
        event_id=ticket.event_id,
        gate=args.gate,
        by=by,
        at=d.now,
    )
    check_in_id: str = writes.insert(CHECK_INS, entry)
    writes.patch(PASSES, args.pass_id, check_in_id=check_in_id)
    return check_in_id


def get_pass(view: View, args: PassIdArgs, identity: Identity) -> dict[str, Any] | None:
    """platform/passes:get -> the pass and its check-in (or null), or null for no such pass."""
    require_capability_to_read(view, identity, CHECK_IN)
    reads = db(view, identity)
    stored = reads.get_stored(PASSES, args.pass_id)
    if stored is None:
        return None
    ticket: Pass = stored.document
    entry = None if ticket.check_in_id is None else reads.get(CHECK_INS, ticket.check_in_id)
    return {
        "_id": stored.id,
        "orderId": ticket.order_id,
        "eventId": ticket.event_id,
        "tier": ticket.tier,
        "status": ticket.status,
        "checkIn": None
        if entry is None
        else {"_id": ticket.check_in_id, "at": entry.at, "gate": entry.gate, "by": entry.by},
    }
