"""Uniqueness of email, phone and user id within an organization, race-free.

Each (organization, field, normalized value) is a tiny aggregate of its own, kind "claim",
whose state is the customer holding the value (or None). Its id is `cl_` + a BLAKE2b digest of
the three, so no personal data appears in stream ids or in the journal.

A customer command takes and releases claims with `Decision.co_decide` in its own synchronous
step: the claim's events are committed in the same transaction as the customer's, or not at
all, and two commands racing for one value are serialized by the claim's actor, so at most one
of them can win. Soft states (deleted, suspended, archived) keep their claims.

The same aggregate says which locations an organization has: `locations:create` takes the
claim (organization, "locationId", id) for the new location, and a command of a module that
cannot reach the location aggregate itself (a customer's or a ticketing event's `locationId`)
reads that claim with `require_location`. A location of another organization and one that does
not exist leave the claim equally empty, so both are refused with the same NotFound.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import attrs

from domain.customers.events import CustomerClaimReleased, CustomerClaimTaken, LocationClaimTaken
from domain.customers.profile import Profile, email_key
from domain.errors import Conflict, NotFound
from domain.model import Aggregate, Decision, Event

#: claim field -> (wire name, the noun in a Conflict's message).
CLAIM_FIELDS: dict[str, tuple[str, str]] = {
    "email": ("email", "email"),
    "phone": ("phone", "phone number"),
    "userId": ("userId", "user id"),
}


@attrs.frozen(kw_only=True)
class ClaimState:
    """`owner` is the id of the customer (or, for a location claim, the location) holding the
    value, None when free."""

    owner: str | None = None


def evolve(state: ClaimState, event: Event) -> ClaimState:
    if isinstance(event, CustomerClaimTaken):
        return ClaimState(owner=event.customer_id)
    if isinstance(event, CustomerClaimReleased):
        return ClaimState()
    if isinstance(event, LocationClaimTaken):
        return ClaimState(owner=event.location_id)
    raise TypeError(f"{type(event).__name__} is not a claim event")


CLAIM: Aggregate[ClaimState] = Aggregate(
    kind="claim",
    id_prefix="cl",
    state_type=ClaimState,
    initial=ClaimState(),
    evolve=evolve,
)


def claim_id(org_id: str, field: str, value: str) -> str:
    """The claim aggregate's id for a normalized `value` of `field` in `org_id`."""
    digest = hashlib.blake2b(
        f"{org_id}\x1f{field}\x1f{value}".encode(), digest_size=16, person=b"customer-claim"
    ).hexdigest()
    return f"cl_{digest}"


def user_claim_id(org_id: str, user_id: str) -> str:
    """The claim that names the customer whose app user id is `user_id` in `org_id`; its
    state's `owner` is that customer's id (None: the user is no customer there)."""
    return claim_id(org_id, "userId", user_id)


def location_claim_id(org_id: str, location_id: str) -> str:
    """The claim whose state's `owner` is `location_id` if that is a location of `org_id`."""
    return claim_id(org_id, "locationId", location_id)


def register_location(d: Decision[Any], org_id: str) -> None:
    """Record the deciding location (`d`) as one of `org_id`'s (emits nothing if it is)."""
    part = d.co_decide(CLAIM, location_claim_id(org_id, d.aggregate_id))
    if part.state.owner != d.aggregate_id:
        part.emit(LocationClaimTaken, location_id=d.aggregate_id)


def require_location(d: Decision[Any], org_id: str, location_id: str) -> None:
    """Refuse `location_id` unless it names a location of `org_id`: a location of another
    organization, a missing one and a malformed id are the same NotFound, the one a command on
    a missing location answers."""
    part = d.co_decide(CLAIM, location_claim_id(org_id, location_id))
    if part.state.owner != location_id:
        raise NotFound("Location not found.")


def claims_of(org_id: str, profile: Profile) -> Iterator[tuple[str, str]]:
    """(field, claim id) for every unique value `profile` holds."""
    if profile.email is not None:
        yield "email", claim_id(org_id, "email", email_key(profile.email))
    if profile.phone is not None:
        yield "phone", claim_id(org_id, "phone", profile.phone)
    if profile.user_id is not None:
        yield "userId", user_claim_id(org_id, profile.user_id)


def take(d: Decision[Any], field: str, claim: str) -> None:
    """Make the deciding customer (`d`) the holder of `claim`, or raise `Conflict` naming the
    customer who holds it (emits nothing if `d` holds it already)."""
    part = d.co_decide(CLAIM, claim)
    owner = part.state.owner
    if owner == d.aggregate_id:
        return
    if owner is not None:
        wire, noun = CLAIM_FIELDS[field]
        raise Conflict(
            f"A customer with this {noun} already exists.", field=wire, existingCustomerId=owner
        )
    part.emit(CustomerClaimTaken, customer_id=d.aggregate_id)


def release(d: Decision[Any], claim: str) -> None:
    """Give `claim` up if the deciding customer holds it (emits nothing otherwise)."""
    part = d.co_decide(CLAIM, claim)
    if part.state.owner == d.aggregate_id:
        part.emit(CustomerClaimReleased, customer_id=d.aggregate_id)


def update_claims(d: Decision[Any], org_id: str, before: Profile | None, after: Profile) -> None:
    """Move the deciding customer's claims from `before`'s values to `after`'s: values no longer
    held are released, new ones taken (Conflict if another customer holds one)."""
    old = dict(claims_of(org_id, before)) if before is not None else {}
    new = dict(claims_of(org_id, after))
    for field, claim in old.items():
        if new.get(field) != claim:
            release(d, claim)
    for field, claim in new.items():
        if old.get(field) != claim:
            take(d, field, claim)
