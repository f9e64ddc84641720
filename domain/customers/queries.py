"""The customer, membership and activity queries: pure functions of what they read through the
View (no clock). Every one needs `customers:read`; another organization's customer reads as a
missing one (null where a missing one is null, NotFound where it is NotFound).

Lists and statistics read the directory projection under the caller's organization only, so a
subscription is re-evaluated only for changes in that organization; single customers read their
own aggregate.

The lists (customers:list, memberships:list, activity:list) answer one page in Convex's form
(`domain.pagination`) when `paginationOpts` is given, read exactly as without it.
"""

from __future__ import annotations

from collections.abc import Iterator

from domain.customers import profile as rules
from domain.customers.aggregate import CUSTOMER
from domain.customers.args import (
    ActivityArgs,
    CustomerIdArgs,
    ListCustomersArgs,
    MembershipListArgs,
    OrgArgs,
)
from domain.customers.commands import READ
from domain.customers.projections import (
    CUSTOMER_DIRECTORY,
    ENTRY_SEP,
    FIELD_SEP,
    CustomerSummary,
    OrgDirectory,
)
from domain.customers.state import CustomerState
from domain.customers.wire import (
    Doc,
    activity_doc,
    customer_doc,
    full_customer_doc,
    membership_doc,
    order_doc,
    state_change_doc,
    ticket_purchase_doc,
)
from domain.errors import InvalidArgs, NotFound
from domain.identity import Identity, org_for_new_record, require_cap
from domain.ids import is_root_id, owner_of
from domain.model import View
from domain.pagination import PaginationOpts, paginate, scope_of, start_key
from domain.storage import file_url

DEFAULT_PAGE = 50
MAX_PAGE = 1000
ENTITY_TYPES = ("customer", "membership")


def read_customer(view: View, identity: Identity, customer_id: str) -> CustomerState | None:
    """The committed customer if it exists in the caller's organization (any organization for
    admin), else None; nothing is read for a malformed id."""
    if not is_root_id(customer_id, "cu"):
        return None
    state = view.aggregate(CUSTOMER, customer_id)
    if state is None or not state.exists:
        return None
    if not identity.is_admin and identity.org_id != state.org_id:
        return None
    return state


def _require_customer(view: View, identity: Identity, customer_id: str) -> CustomerState:
    state = read_customer(view, identity, customer_id)
    if state is None:
        raise NotFound("Customer not found.")
    return state


def _limit(value: int | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not 1 <= value <= MAX_PAGE:
        raise InvalidArgs(f"limit must be between 1 and {MAX_PAGE}.", path="limit")
    return value


def get_customer(view: View, args: CustomerIdArgs, identity: Identity) -> Doc | None:
    """customers:get -> the customer in any soft state, with `stateHistory`, or null."""
    require_cap(identity, READ)
    state = read_customer(view, identity, args.customer_id)
    if state is None:
        return None
    return full_customer_doc(state, file_url(view, state.photo_storage_id))


def list_customers(view: View, args: ListCustomersArgs, identity: Identity) -> Doc:
    """customers:list -> {page, continueCursor, isDone}: the organization's active customers in
    creation order, filtered by `locationId` and `lifecycle`, and by `search` (case-insensitive
    substring of first name, last name or email). `cursor` is a previous `continueCursor`;
    `isDone` is true once the end was reached. Admin callers name the organization (`orgId`).

    With `paginationOpts` (and neither `limit` nor `cursor`), Convex's page of the same list,
    keyed by creation number in the organization."""
    require_cap(identity, READ)
    org_id = org_for_new_record(identity, args.org_id)
    if args.pagination_opts is not None:
        if args.limit is not None or args.cursor is not None:
            raise InvalidArgs(
                "limit and cursor are not taken with paginationOpts.", path="paginationOpts"
            )
        return _customer_page(view, args, org_id, args.pagination_opts)
    limit = _limit(args.limit)
    lifecycle = rules.lifecycle(args.lifecycle)
    start = _cursor(args.cursor)
    needle = (args.search or "").strip().casefold() or None
    directory = view.projection(CUSTOMER_DIRECTORY, org_id).of(org_id)
    found: list[CustomerSummary] = []
    resume: int | None = None
    # No name or email holds a separator, so a needle with one matches nothing.
    if needle is None or (FIELD_SEP not in needle and ENTRY_SEP not in needle):
        found, resume = directory.page(
            start=start,
            limit=limit,
            needle=needle,
            lifecycle=lifecycle,
            location_id=args.location_id,
        )
    page = [
        customer_doc(
            customer_id=summary.id,
            org_id=org_id,
            created_at=summary.created_at,
            profile=summary.profile,
            soft_state=summary.soft_state,
            figures=summary.figures,
            photo_storage_id=summary.photo_storage_id,
            photo_url=file_url(view, summary.photo_storage_id),
        )
        for summary in found
    ]
    end = resume if resume is not None else max(start, directory.size)
    return {"page": page, "continueCursor": str(end), "isDone": resume is None}


def _customer_page(view: View, args: ListCustomersArgs, org_id: str, opts: PaginationOpts) -> Doc:
    lifecycle = rules.lifecycle(args.lifecycle)
    needle = (args.search or "").strip().casefold() or None
    directory = view.projection(CUSTOMER_DIRECTORY, org_id).of(org_id)
    scope = scope_of("customers:list", args)
    after = start_key(opts, scope)
    start = after[0] + 1 if after and isinstance(after[0], int) else 0
    rows: Iterator[CustomerSummary] = iter(())
    # No name or email holds a separator, so a needle with one matches nothing.
    if needle is None or (FIELD_SEP not in needle and ENTRY_SEP not in needle):
        rows = _matching(directory, start, needle, lifecycle, args.location_id)
    page = paginate(rows, key=lambda summary: (summary.number,), opts=opts, scope=scope)
    return page.doc(
        lambda summary: customer_doc(
            customer_id=summary.id,
            org_id=org_id,
            created_at=summary.created_at,
            profile=summary.profile,
            soft_state=summary.soft_state,
            figures=summary.figures,
            photo_storage_id=summary.photo_storage_id,
            photo_url=file_url(view, summary.photo_storage_id),
        )
    )


def _matching(
    directory: OrgDirectory,
    start: int,
    needle: str | None,
    lifecycle: str | None,
    location_id: str | None,
) -> Iterator[CustomerSummary]:
    """The matching active customers numbered `start` or later, in creation order, found a
    page of the directory at a time as they are read."""
    resume: int | None = start
    while resume is not None:
        found, resume = directory.page(
            start=resume,
            limit=DEFAULT_PAGE,
            needle=needle,
            lifecycle=lifecycle,
            location_id=location_id,
        )
        yield from found


def _cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 12:
        raise InvalidArgs("cursor is not a continueCursor of this list.", path="cursor")
    return int(cursor)


def type_statistics(view: View, args: OrgArgs, identity: Identity) -> Doc:
    """customers:typeStatistics -> {total, byCustomerType, byLifecycle}: counts of the
    organization's active customers (every type and lifecycle named, 0 included)."""
    require_cap(identity, READ)
    org_id = org_for_new_record(identity, args.org_id)
    facets = view.projection(CUSTOMER_DIRECTORY, org_id).of(org_id).facets
    return {
        "total": facets.get("active", 0),
        "byCustomerType": {kind: facets.get(f"type:{kind}", 0) for kind in rules.CUSTOMER_TYPES},
        "byLifecycle": {stage: facets.get(f"lifecycle:{stage}", 0) for stage in rules.LIFECYCLES},
    }


def export_data(view: View, args: CustomerIdArgs, identity: Identity) -> Doc:
    """customers:exportData -> everything held about the customer (the right to data
    portability): the profile, its state history, the orders and ticket purchases it knows,
    its memberships and its whole activity timeline (oldest first). NotFound if missing."""
    require_cap(identity, READ)
    state = _require_customer(view, identity, args.customer_id)
    assert state.id is not None
    customer_id = state.id
    orders = sorted(state.orders.values(), key=lambda order: (order.created_at, order.id))
    purchases = sorted(state.ticket_purchases.values(), key=lambda p: (p.at, p.ticket_id))
    memberships = sorted(state.memberships.values(), key=lambda m: m.number)
    return {
        "customer": full_customer_doc(state, file_url(view, state.photo_storage_id)),
        "stateHistory": [state_change_doc(change) for change in state.state_history],
        "orders": [order_doc(order) for order in orders],
        "ticketPurchases": [ticket_purchase_doc(purchase) for purchase in purchases],
        "memberships": [membership_doc(customer_id, m) for m in memberships],
        "activity": [
            activity_doc(customer_id, "customer", customer_id, state.entry(n))
            for n in range(state.activity_count)
        ],
    }


def list_memberships(view: View, args: MembershipListArgs, identity: Identity) -> list[Doc] | Doc:
    """memberships:list -> the customer's memberships in enrolment order; NotFound if missing.
    With `paginationOpts`, a page of them keyed by enrolment number."""
    require_cap(identity, READ)
    state = _require_customer(view, identity, args.customer_id)
    assert state.id is not None
    customer_id = state.id
    ordered = sorted(state.memberships.values(), key=lambda m: m.number)
    if args.pagination_opts is not None:
        page = paginate(
            ordered,
            key=lambda m: (m.number,),
            opts=args.pagination_opts,
            scope=scope_of("memberships:list", args),
        )
        return page.doc(lambda m: membership_doc(customer_id, m))
    return [membership_doc(customer_id, m) for m in ordered]


def list_activity(view: View, args: ActivityArgs, identity: Identity) -> list[Doc] | Doc:
    """activity:list -> up to `limit` (default 50) timeline entries, newest first: of a
    customer (`entityType` "customer": every change) or of a membership ("membership": the
    entries about it). NotFound for a missing entity; another entity type is InvalidArgs.
    With `paginationOpts` (and no `limit`), a page of the whole timeline, newest first, keyed
    by entry number (new entries join the first page)."""
    require_cap(identity, READ)
    if args.pagination_opts is not None:
        if args.limit is not None:
            raise InvalidArgs("limit is not taken with paginationOpts.", path="paginationOpts")
        return _activity_page(view, args, identity, args.pagination_opts)
    limit = _limit(args.limit)
    if args.entity_type == "customer":
        state = _require_customer(view, identity, args.entity_id)
        assert state.id is not None
        numbers = range(state.activity_count - 1, max(-1, state.activity_count - 1 - limit), -1)
        return [activity_doc(state.id, "customer", state.id, state.entry(n)) for n in numbers]
    if args.entity_type == "membership":
        owner = owner_of(args.entity_id, "ms", "cu")
        holder = read_customer(view, identity, owner) if owner is not None else None
        if holder is None or args.entity_id not in holder.memberships:
            raise NotFound("Membership not found.")
        assert holder.id is not None
        about = holder.membership_activity.get(args.entity_id, ())
        return [
            activity_doc(holder.id, "membership", args.entity_id, holder.entry(n))
            for n in reversed(about[-limit:])
        ]
    raise InvalidArgs(f"entityType must be one of {', '.join(ENTITY_TYPES)}.", path="entityType")


def _activity_page(view: View, args: ActivityArgs, identity: Identity, opts: PaginationOpts) -> Doc:
    scope = scope_of("activity:list", args)
    if args.entity_type == "customer":
        state = _require_customer(view, identity, args.entity_id)
        assert state.id is not None
        customer_id = state.id
        after = start_key(opts, scope)
        first = state.activity_count - 1
        if after and isinstance(after[0], int):  # newest first: older than the cursor's
            first = min(first, after[0] - 1)
        customer_page = paginate(
            range(first, -1, -1), key=lambda n: (n,), opts=opts, scope=scope, descending=True
        )
        return customer_page.doc(
            lambda n: activity_doc(customer_id, "customer", customer_id, state.entry(n))
        )
    if args.entity_type == "membership":
        owner = owner_of(args.entity_id, "ms", "cu")
        holder = read_customer(view, identity, owner) if owner is not None else None
        if holder is None or args.entity_id not in holder.memberships:
            raise NotFound("Membership not found.")
        assert holder.id is not None
        holder_id = holder.id
        about = holder.membership_activity.get(args.entity_id, ())
        membership_page = paginate(
            reversed(about), key=lambda n: (n,), opts=opts, scope=scope, descending=True
        )
        return membership_page.doc(
            lambda n: activity_doc(holder_id, "membership", args.entity_id, holder.entry(n))
        )
    raise InvalidArgs(f"entityType must be one of {', '.join(ENTITY_TYPES)}.", path="entityType")
