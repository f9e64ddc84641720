"""The customer and membership mutations (docs/reference/functions.md, "Customers and memberships").

Each handler checks who is calling (`customers:write`, the customer's organization: another
organization's customer is NotFound exactly like a missing one), then the rules of the current
state, and only then emits; a handler that raises leaves no trace anywhere, claims included
(the engine discards the whole decision). Uniqueness of email, phone and user id is taken in
the same step through the claim aggregates (`domain.customers.claims`).
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
import immutables

from domain.customers import profile as rules
from domain.customers.args import (
    AddPointsArgs,
    CreateCustomerArgs,
    CustomerIdArgs,
    EnrollArgs,
    SoftStateArgs,
    UpdateCustomerArgs,
    UploadPhotoArgs,
)
from domain.customers.claims import claims_of, release, require_location, update_claims
from domain.customers.events import (
    CustomerClvCalculated,
    CustomerCreated,
    CustomerErased,
    CustomerPhotoSet,
    CustomerStateChanged,
    CustomerUpdated,
    MembershipEnrolled,
    MembershipPointsAdded,
)
from domain.customers.profile import CLEARABLE, Profile
from domain.customers.state import (
    LOCKED_STATES,
    CustomerState,
    figures_of,
    membership_id,
    require_soft_transition,
)
from domain.customers.wire import Doc, figures_doc, membership_doc
from domain.errors import Conflict, InvalidArgs, NotFound
from domain.identity import Identity, org_for_new_record, require_cap, require_org
from domain.ids import is_root_id, owner_of
from domain.model import Decision, replace
from domain.storage import erase_file, require_file

State = Decision[CustomerState]

WRITE = "customers:write"
READ = "customers:read"


# -- routes and shared rules ----------------------------------------------------------------------


class NamesCustomer(Protocol):
    @property
    def customer_id(self) -> str: ...


def route_customer(args: NamesCustomer) -> str:
    """The aggregate id of `args.customer_id`; a malformed id names no customer (NotFound)."""
    if not is_root_id(args.customer_id, "cu"):
        raise NotFound("Customer not found.")
    return args.customer_id


def route_membership(args: AddPointsArgs) -> str:
    """The customer owning `args.membership_id`; an id that is not a membership id is NotFound."""
    owner = owner_of(args.membership_id, "ms", "cu")
    if owner is None:
        raise NotFound("Membership not found.")
    return owner


def actor_of(identity: Identity) -> str:
    """Who a timeline entry names: the user, or "admin" for a backend key."""
    return identity.subject if identity.subject is not None else "admin"


def existing(d: State, what: str = "Customer") -> CustomerState:
    """The customer, if it exists in the caller's organization; NotFound otherwise."""
    state = d.state
    if not state.exists:
        raise NotFound(f"{what} not found.")
    require_org(d.identity, state.org_id, what)
    return state


def require_unlocked(state: CustomerState) -> None:
    if state.soft_state == "erased":
        raise Conflict(
            "The customer's personal data was erased; the record cannot change.",
            state="erased",
            customerId=state.id,
        )
    if state.soft_state in LOCKED_STATES:
        raise Conflict(
            f"The customer is {state.soft_state}; restore it before changing it.",
            state=state.soft_state,
            customerId=state.id,
        )


def _org(state: CustomerState) -> str:
    assert state.org_id is not None
    return state.org_id


def _profile(state: CustomerState) -> Profile:
    assert state.profile is not None
    return state.profile


# -- customers ------------------------------------------------------------------------------------


def create_customer(d: State, args: CreateCustomerArgs) -> str:
    """customers:create -> the new customer's id (made by the engine: `d.aggregate_id`).

    The customer belongs to the caller's organization (an admin names it in `orgId`), starts
    active, and takes its email, phone and user id claims: Conflict (with `field` and
    `existingCustomerId`) if another customer of the organization holds one, in any soft state.
    A `locationId` must name a location of that organization: another organization's is
    NotFound, exactly as a missing one.
    """
    require_cap(d.identity, WRITE)
    org_id = org_for_new_record(d.identity, args.org_id)
    if d.state.exists:
        raise Conflict("A customer with this id already exists.", customerId=d.aggregate_id)
    profile = Profile(
        first_name=rules.text(args.first_name, "firstName"),
        last_name=rules.text(args.last_name, "lastName"),
        email=rules.email(args.email),
        phone=rules.phone(args.phone),
        notes=rules.text(args.notes, "notes", limit=rules.MAX_NOTES),
        tags=rules.tags(args.tags) or (),
        custom_fields=rules.custom_fields(args.custom_fields) or immutables.Map(),
        customer_type=rules.customer_type(args.customer_type) or rules.DEFAULT_CUSTOMER_TYPE,
        lifecycle=rules.lifecycle(args.lifecycle) or rules.DEFAULT_LIFECYCLE,
        location_id=rules.text(args.location_id, "locationId"),
        user_id=rules.text(args.user_id, "userId"),
    )
    rules.check_complete(profile)
    if profile.location_id is not None:
        require_location(d, org_id, profile.location_id)
    update_claims(d, org_id, None, profile)
    d.emit(
        CustomerCreated,
        org_id=org_id,
        by=actor_of(d.identity),
        **attrs.asdict(profile, recurse=False),
    )
    return d.aggregate_id


def _proposed(args: UpdateCustomerArgs) -> dict[str, Any]:
    """The fields the update names, normalized; None means "remove" (clearable fields only)."""
    proposed: dict[str, Any] = {}
    if args.first_name is not None:
        proposed["first_name"] = rules.text(args.first_name, "firstName")
    if args.last_name is not None:
        proposed["last_name"] = rules.text(args.last_name, "lastName")
    if args.email is not None:
        proposed["email"] = rules.email(args.email)
    if args.phone is not None:
        proposed["phone"] = rules.phone(args.phone)
    if args.notes is not None:
        proposed["notes"] = rules.text(args.notes, "notes", limit=rules.MAX_NOTES)
    if args.tags is not None:
        proposed["tags"] = rules.tags(args.tags)
    if args.custom_fields is not None:
        proposed["custom_fields"] = rules.custom_fields(args.custom_fields)
    if args.customer_type is not None:
        proposed["customer_type"] = rules.customer_type(args.customer_type)
    if args.lifecycle is not None:
        proposed["lifecycle"] = rules.lifecycle(args.lifecycle)
    if args.location_id is not None:
        proposed["location_id"] = rules.text(args.location_id, "locationId")
    if args.user_id is not None:
        proposed["user_id"] = rules.text(args.user_id, "userId")
    assert all(value is not None for name, value in proposed.items() if name not in CLEARABLE)
    return proposed


def update_customer(d: State, args: UpdateCustomerArgs) -> None:
    """customers:update: change the fields given; "" removes an optional field. The whole
    resulting profile must still pass the customer rules (InvalidArgs), a changed email, phone
    or user id moves its claim (the old value is released, the new one taken: Conflict if
    another customer holds it); a new `locationId` must name a location of the customer's
    organization (NotFound otherwise, as for a missing one). Conflict while the customer is
    deleted or archived. Emits nothing when nothing changes."""
    require_cap(d.identity, WRITE)
    state = existing(d)
    require_unlocked(state)
    current = _profile(state)
    proposed = _proposed(args)
    changes = {
        name: value
        for name, value in proposed.items()
        if value is not None and value != getattr(current, name)
    }
    cleared = tuple(
        name
        for name, value in proposed.items()
        if value is None and getattr(current, name) is not None
    )
    if not changes and not cleared:
        return
    revised = replace(current, **changes, **dict.fromkeys(cleared))
    rules.check_complete(revised)
    if "location_id" in changes:
        require_location(d, _org(state), changes["location_id"])
    update_claims(d, _org(state), current, revised)
    d.emit(CustomerUpdated, org_id=_org(state), by=actor_of(d.identity), cleared=cleared, **changes)


def _move(d: State, args: SoftStateArgs, target: str) -> None:
    require_cap(d.identity, WRITE)
    state = existing(d)
    reason = rules.text(args.reason, "reason", limit=500)
    assert state.id is not None
    require_soft_transition(state.soft_state, target, state.id)
    d.emit(
        CustomerStateChanged,
        org_id=_org(state),
        by=actor_of(d.identity),
        from_state=state.soft_state,
        to_state=target,
        reason=reason,
    )


def delete_customer(d: State, args: SoftStateArgs) -> None:
    """customers:delete: soft delete (from active, suspended or archived). The record, its
    claims and its history stay; it leaves lists and refuses changes until restored."""
    _move(d, args, "deleted")


def restore_customer(d: State, args: SoftStateArgs) -> None:
    """customers:restore: back to active from deleted, suspended or archived."""
    _move(d, args, "active")


def suspend_customer(d: State, args: SoftStateArgs) -> None:
    """customers:suspend: active -> suspended (still changeable, not listed)."""
    _move(d, args, "suspended")


def archive_customer(d: State, args: SoftStateArgs) -> None:
    """customers:archive: active or suspended -> archived (kept, not listed, not changeable)."""
    _move(d, args, "archived")


def erase_customer(d: State, args: CustomerIdArgs) -> None:
    """customers:erase (capability customers:erase): forget the customer's personal data
    (GDPR). In this command: the profile's personal fields, state-change reasons
    and wallet passes go, and its email, phone and user-id claims are released (so the values
    may be used again); the photo's file is deleted; orders, figures and points stay as
    anonymous facts (the built-in app also erases the notes of the customer's orders at their
    locations: domain/catalog/erasure.py). After it commits,
    the engine blanks the personal fields of the customer's earlier journal rows and replaces
    the snapshots (engine/erasure.py). Erasing an erased customer changes nothing."""
    require_cap(d.identity, "customers:erase")
    state = existing(d)
    if state.soft_state == "erased":
        return
    require_soft_transition(state.soft_state, "erased", d.aggregate_id)
    for _, claim in claims_of(_org(state), _profile(state)):
        release(d, claim)
    if state.photo_storage_id is not None:
        erase_file(d, state.photo_storage_id)  # its bytes are gone once this commits
    d.emit(CustomerErased, org_id=_org(state), by=actor_of(d.identity))


def upload_photo(d: State, args: UploadPhotoArgs) -> None:
    """customers:uploadPhoto (capability customers:write): the customer's photo is now the
    stored file `storageId`, which must be a file of the customer's organization (InvalidArgs
    naming `storageId` otherwise). The photo it replaces is deleted, bytes and all. Conflict
    while the customer is deleted or archived; the same photo again changes nothing."""
    require_cap(d.identity, WRITE)
    state = existing(d)
    require_unlocked(state)
    if args.storage_id == state.photo_storage_id:
        return
    require_file(d, args.storage_id)
    if state.photo_storage_id is not None:
        erase_file(d, state.photo_storage_id)
    d.emit(
        CustomerPhotoSet,
        org_id=_org(state),
        by=actor_of(d.identity),
        photo_storage_id=args.storage_id,
    )


def calculate_clv(d: State, args: CustomerIdArgs) -> Doc:
    """customers:calculateCLV -> {clv, avgOrderValue, orderCount} over the completed orders the
    customer knows; emits `CustomerClvCalculated` only if the stored figures differed."""
    require_cap(d.identity, WRITE)
    state = existing(d)
    figures = figures_of(state.orders.values())
    if figures != state.figures:
        d.emit(
            CustomerClvCalculated,
            org_id=_org(state),
            by=actor_of(d.identity),
            clv=figures.clv,
            avg_order_value=figures.avg_order_value,
            order_count=figures.order_count,
        )
    return figures_doc(figures)


# -- memberships ----------------------------------------------------------------------------------


def enroll(d: State, args: EnrollArgs) -> str:
    """memberships:enroll -> membershipId (`ms_<core>_<n>`), starting now with 0 points.

    `expiryDate`, if given, must lie in the future. Conflict if the customer already holds a
    membership of that programme that has not expired, or is deleted or archived."""
    require_cap(d.identity, WRITE)
    state = existing(d)
    require_unlocked(state)
    program_id = rules.text(args.program_id, "programId")
    if program_id is None:
        raise InvalidArgs("programId must not be empty.", path="programId")
    tier = rules.text(args.tier, "tier")
    if tier is None:
        raise InvalidArgs("tier must not be empty.", path="tier")
    if args.expiry_date is not None and args.expiry_date <= d.now:
        raise InvalidArgs("expiryDate must be in the future.", path="expiryDate")
    for membership in state.memberships.values():
        live = membership.expiry_date is None or membership.expiry_date > d.now
        if membership.program_id == program_id and live:
            raise Conflict(
                "The customer is already a member of this programme.",
                membershipId=membership.id,
            )
    assert state.id is not None
    mid = membership_id(state.id, state.membership_count)
    d.emit(
        MembershipEnrolled,
        org_id=_org(state),
        by=actor_of(d.identity),
        membership_id=mid,
        program_id=program_id,
        tier=tier,
        start_date=d.now,
        expiry_date=args.expiry_date,
        wallet_pass_id=rules.text(args.wallet_pass_id, "walletPassId"),
    )
    return mid


def add_points(d: State, args: AddPointsArgs) -> Doc:
    """memberships:addPoints -> the membership: adds `points` (negative: redeems). The balance
    never goes below 0 (Conflict with the current `balance`); an expired membership takes no
    points (Conflict); 0 points is InvalidArgs."""
    require_cap(d.identity, WRITE)
    state = existing(d, "Membership")
    membership = state.memberships.get(args.membership_id)
    if membership is None:
        raise NotFound("Membership not found.")
    require_unlocked(state)
    if args.points == 0:
        raise InvalidArgs("points must not be 0.", path="points")
    if membership.expiry_date is not None and d.now >= membership.expiry_date:
        raise Conflict(
            "The membership has expired.",
            membershipId=membership.id,
            expiryDate=membership.expiry_date,
        )
    balance = membership.points + args.points
    if balance < 0:
        raise Conflict(
            "Not enough points on the membership.",
            membershipId=membership.id,
            balance=membership.points,
        )
    d.emit(
        MembershipPointsAdded,
        org_id=_org(state),
        by=actor_of(d.identity),
        membership_id=membership.id,
        points=args.points,
        balance=balance,
    )
    assert state.id is not None
    return membership_doc(state.id, d.state.memberships[membership.id])
