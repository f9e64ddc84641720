"""The customer aggregate's state: one customer of one organization, stream `customer/cu_...`.

It holds the profile, the soft state with its history, the memberships (child ids
`ms_<core>_<n>`), the orders and ticket purchases it was told of, the lifetime-value figures
over its completed orders, and the activity timeline: every event folded appends one entry, so
"every change lands on the timeline" holds by construction.

Collections are `immutables.Map`s (the timeline is keyed by its entry number), so folding an
event costs O(log n) and copies nothing else. The soft-state lifecycle is the table below;
`require_soft_transition` is the one place that refuses an illegal step, before anything is
emitted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, cast

import attrs
import immutables

from domain.customers.events import (
    CustomerClvCalculated,
    CustomerCreated,
    CustomerErased,
    CustomerOrderRecorded,
    CustomerPhotoSet,
    CustomerStateChanged,
    CustomerTicketPurchaseRecorded,
    CustomerUpdated,
    MembershipEnrolled,
    MembershipPointsAdded,
    Scalar,
)
from domain.customers.profile import (
    Profile,
    anonymized,
    apply_update,
    changed_fields,
    profile_of,
)
from domain.errors import Conflict
from domain.ids import child_id
from domain.model import Event, replace

SOFT_STATES: tuple[str, ...] = ("active", "deleted", "suspended", "archived", "erased")

#: soft state -> the soft states it may become (docs/reference/functions.md); any state may
#: be erased (GDPR), and an erased customer stays erased.
SOFT_STATE_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "active": frozenset({"deleted", "suspended", "archived", "erased"}),
    "suspended": frozenset({"active", "deleted", "archived", "erased"}),
    "archived": frozenset({"active", "deleted", "erased"}),
    "deleted": frozenset({"active", "erased"}),
    "erased": frozenset(),
}
#: Soft states in which the customer refuses changes (until restored, where it can be).
LOCKED_STATES: frozenset[str] = frozenset({"deleted", "archived", "erased"})

#: The order status whose orders count towards the lifetime value.
COMPLETED = "completed"


def require_soft_transition(current: str, target: str, customer_id: str) -> None:
    """Raise `Conflict` unless the customer may go from `current` to `target`."""
    if target not in SOFT_STATE_TRANSITIONS[current]:
        raise Conflict(
            f"The customer is {current} and cannot become {target}.",
            state=current,
            customerId=customer_id,
        )


@attrs.frozen(kw_only=True)
class StateChange:
    """One step of `stateHistory`; `by` made it, with an optional `reason`."""

    from_state: str
    to_state: str
    at: int
    by: str
    reason: str | None = None


@attrs.frozen(kw_only=True)
class Membership:
    """A loyalty-programme membership; `number` is its enrolment order within the customer."""

    id: str
    number: int
    program_id: str
    tier: str
    points: int
    start_date: int
    expiry_date: int | None
    wallet_pass_id: str | None


@attrs.frozen(kw_only=True)
class OrderRecord:
    """What the customer knows of one of its orders (the order's own record is elsewhere)."""

    id: str
    location_id: str
    type: str
    status: str
    total: int
    paid_amount: int
    scheduled_at: int | None
    created_at: int
    completed_at: int | None


@attrs.frozen(kw_only=True)
class TicketPurchase:
    ticket_id: str
    event_id: str
    amount: int
    at: int


@attrs.frozen(kw_only=True)
class ActivityEntry:
    """One timeline entry. `metadata` holds ids, statuses and figures only, never personal
    data (an update names the fields it changed, not their values)."""

    number: int
    action: str
    by: str
    at: int
    metadata: immutables.Map[str, Scalar] = attrs.field(factory=immutables.Map)


@attrs.frozen(kw_only=True)
class Figures:
    """Lifetime value over the completed orders: `clv` their total, `avg_order_value` the
    average rounded half up (0 without orders), `order_count` how many."""

    clv: int = 0
    avg_order_value: int = 0
    order_count: int = 0


def figures_of(orders: Iterable[OrderRecord]) -> Figures:
    """The figures recomputed from scratch (O(orders))."""
    totals = [order.total for order in orders if order.status == COMPLETED]
    return _figures(sum(totals), len(totals))


def figures_after(current: Figures, before: OrderRecord | None, after: OrderRecord) -> Figures:
    """`current` once `before` (None: a new order) becomes `after`, in O(1)."""
    clv, count = current.clv, current.order_count
    if before is not None and before.status == COMPLETED:
        clv, count = clv - before.total, count - 1
    if after.status == COMPLETED:
        clv, count = clv + after.total, count + 1
    return _figures(clv, count)


def _figures(clv: int, count: int) -> Figures:
    average = (2 * clv + count) // (2 * count) if count else 0
    return Figures(clv=clv, avg_order_value=average, order_count=count)


def _empty() -> immutables.Map[Any, Any]:
    return immutables.Map()


# Not slotted: `replace` copies a dict-backed instance in one step.
@attrs.frozen(kw_only=True, slots=False)
class CustomerState:
    """Everything one customer actor owns; `profile` is None until `CustomerCreated`."""

    id: str | None = None
    org_id: str | None = None
    created_at: int = 0
    updated_at: int = 0
    profile: Profile | None = None
    soft_state: str = "active"
    state_history: tuple[StateChange, ...] = ()
    memberships: immutables.Map[str, Membership] = attrs.field(factory=_empty)
    membership_count: int = 0
    orders: immutables.Map[str, OrderRecord] = attrs.field(factory=_empty)
    ticket_purchases: immutables.Map[str, TicketPurchase] = attrs.field(factory=_empty)
    figures: Figures = attrs.field(factory=Figures)
    #: str(entry number) -> entry; numbers run 0 .. activity_count - 1 in time order.
    activity: immutables.Map[str, ActivityEntry] = attrs.field(factory=_empty)
    activity_count: int = 0
    #: membership id -> the numbers of the timeline entries about it, oldest first.
    membership_activity: immutables.Map[str, tuple[int, ...]] = attrs.field(factory=_empty)
    #: The customer's photo, a stored file (`customers:uploadPhoto`); None once erased.
    photo_storage_id: str | None = None

    @property
    def exists(self) -> bool:
        return self.profile is not None

    def entry(self, number: int) -> ActivityEntry:
        return self.activity[str(number)]


INITIAL = CustomerState()


def membership_id(customer_id: str, number: int) -> str:
    return child_id("ms", customer_id, number)


# -- evolve ---------------------------------------------------------------------------------------


def evolve(state: CustomerState, event: Event) -> CustomerState:
    """The state after `event`, with its timeline entry appended: pure, O(log n). Raises
    TypeError for an event type this aggregate does not own."""
    fold = _FOLDS.get(type(event))
    if fold is None:
        raise TypeError(f"{type(event).__name__} is not a customer event")
    changed, action, metadata = fold(state, event)
    number = changed.activity_count
    entry = ActivityEntry(
        number=number,
        action=action,
        by=cast(_Attributed, event).by,
        at=event.at,
        metadata=immutables.Map(metadata),
    )
    about = metadata.get("membershipId")
    by_membership = changed.membership_activity
    if isinstance(about, str):
        by_membership = by_membership.set(about, (*by_membership.get(about, ()), number))
    return replace(
        changed,
        updated_at=event.at,
        activity=changed.activity.set(str(number), entry),
        activity_count=number + 1,
        membership_activity=by_membership,
    )


#: A fold's result: the changed state, the timeline action and its metadata.
Fold = tuple[CustomerState, str, dict[str, Scalar]]


class _Attributed(Protocol):
    """Every customer event names who made the change."""

    by: str


def _created(state: CustomerState, e: CustomerCreated) -> Fold:
    changed = replace(
        state,
        id=e.stream.partition("/")[2],
        org_id=e.org_id,
        created_at=e.at,
        profile=profile_of(e),
    )
    return changed, "customer.created", {"customerType": e.customer_type, "lifecycle": e.lifecycle}


def _updated(state: CustomerState, e: CustomerUpdated) -> Fold:
    assert state.profile is not None
    changed = replace(state, profile=apply_update(state.profile, e))
    return changed, "customer.updated", {"fields": ",".join(changed_fields(e))}


_STATE_ACTIONS = {
    "active": "customer.restored",
    "deleted": "customer.deleted",
    "suspended": "customer.suspended",
    "archived": "customer.archived",
}


def _state_changed(state: CustomerState, e: CustomerStateChanged) -> Fold:
    step = StateChange(
        from_state=e.from_state, to_state=e.to_state, at=e.at, by=e.by, reason=e.reason
    )
    changed = replace(state, soft_state=e.to_state, state_history=(*state.state_history, step))
    return changed, _STATE_ACTIONS[e.to_state], {"from": e.from_state, "to": e.to_state}


def _erased(state: CustomerState, e: CustomerErased) -> Fold:
    assert state.profile is not None
    step = StateChange(from_state=state.soft_state, to_state="erased", at=e.at, by=e.by)
    history = tuple(replace(change, reason=None) for change in state.state_history)
    memberships = immutables.Map(
        {mid: replace(m, wallet_pass_id=None) for mid, m in state.memberships.items()}
    )
    changed = replace(
        state,
        profile=anonymized(state.profile),
        soft_state="erased",
        state_history=(*history, step),
        memberships=memberships,
        photo_storage_id=None,
    )
    return changed, "customer.erased", {"from": state.soft_state, "to": "erased"}


def _photo_set(state: CustomerState, e: CustomerPhotoSet) -> Fold:
    return replace(state, photo_storage_id=e.photo_storage_id), "customer.photoSet", {}


def _figures_metadata(figures: Figures) -> dict[str, Scalar]:
    return {
        "clv": figures.clv,
        "avgOrderValue": figures.avg_order_value,
        "orderCount": figures.order_count,
    }


def _clv_calculated(state: CustomerState, e: CustomerClvCalculated) -> Fold:
    figures = Figures(clv=e.clv, avg_order_value=e.avg_order_value, order_count=e.order_count)
    return replace(state, figures=figures), "customer.clvCalculated", _figures_metadata(figures)


def order_of(e: CustomerOrderRecorded) -> OrderRecord:
    return OrderRecord(
        id=e.order_id,
        location_id=e.location_id,
        type=e.type,
        status=e.status,
        total=e.total,
        paid_amount=e.paid_amount,
        scheduled_at=e.scheduled_at,
        created_at=e.created_at,
        completed_at=e.completed_at,
    )


def _order_recorded(state: CustomerState, e: CustomerOrderRecorded) -> Fold:
    before = state.orders.get(e.order_id)
    if before is None:
        action = "order.created"
    elif before.status != e.status:
        action = f"order.{e.status}"
    else:
        action = "order.updated"
    figures = Figures(clv=e.clv, avg_order_value=e.avg_order_value, order_count=e.order_count)
    changed = replace(state, orders=state.orders.set(e.order_id, order_of(e)), figures=figures)
    metadata: dict[str, Scalar] = {
        "orderId": e.order_id,
        "locationId": e.location_id,
        "type": e.type,
        "status": e.status,
        "total": e.total,
        "paidAmount": e.paid_amount,
    }
    return changed, action, metadata


def _ticket_recorded(state: CustomerState, e: CustomerTicketPurchaseRecorded) -> Fold:
    purchase = TicketPurchase(ticket_id=e.ticket_id, event_id=e.event_id, amount=e.amount, at=e.at)
    changed = replace(state, ticket_purchases=state.ticket_purchases.set(e.ticket_id, purchase))
    metadata: dict[str, Scalar] = {
        "eventId": e.event_id,
        "ticketId": e.ticket_id,
        "amount": e.amount,
    }
    return changed, "ticket.purchased", metadata


def _enrolled(state: CustomerState, e: MembershipEnrolled) -> Fold:
    membership = Membership(
        id=e.membership_id,
        number=state.membership_count,
        program_id=e.program_id,
        tier=e.tier,
        points=0,
        start_date=e.start_date,
        expiry_date=e.expiry_date,
        wallet_pass_id=e.wallet_pass_id,
    )
    changed = replace(
        state,
        memberships=state.memberships.set(membership.id, membership),
        membership_count=state.membership_count + 1,
    )
    metadata: dict[str, Scalar] = {
        "membershipId": e.membership_id,
        "programId": e.program_id,
        "tier": e.tier,
    }
    return changed, "membership.enrolled", metadata


def _points_added(state: CustomerState, e: MembershipPointsAdded) -> Fold:
    membership = replace(state.memberships[e.membership_id], points=e.balance)
    changed = replace(state, memberships=state.memberships.set(membership.id, membership))
    metadata: dict[str, Scalar] = {
        "membershipId": e.membership_id,
        "points": e.points,
        "balance": e.balance,
    }
    return changed, "membership.pointsAdded", metadata


_FOLDS: dict[type[Event], Callable[[CustomerState, Any], Fold]] = {
    CustomerCreated: _created,
    CustomerUpdated: _updated,
    CustomerStateChanged: _state_changed,
    CustomerErased: _erased,
    CustomerPhotoSet: _photo_set,
    CustomerClvCalculated: _clv_calculated,
    CustomerOrderRecorded: _order_recorded,
    CustomerTicketPurchaseRecorded: _ticket_recorded,
    MembershipEnrolled: _enrolled,
    MembershipPointsAdded: _points_added,
}
