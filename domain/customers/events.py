"""The facts journaled on customer streams (`customer/cu_...`) and on uniqueness claims
(`claim/cl_...`); docs/reference/functions.md, "Customers and memberships".

Every class name is its journal `type`, so names are unique across Turnstile and never renamed.
Every customer event carries the customer's `org_id` (so the directory projection knows which
organization's key it changes without reading the aggregate) and `by`, who made the change: a
user's subject, "admin" for a backend key, "system" for reactions to other records. Each event
becomes one entry of the customer's activity timeline when it is folded.

`PERSONAL_FIELDS` names, per event class, the fields that hold personal data about the customer
(what an erasure must remove); every other field is an anonymous figure or an id.
"""

from __future__ import annotations

import attrs
import immutables

from domain.model import Erasure, Event

#: A custom field's value: JSON scalars only, so a profile stays flat and cheap to copy.
Scalar = str | int | float | bool | None

#: The profile fields that describe the person. Free text counts as personal; so do tags and
#: custom fields, which staff fill with preferences and circumstances, and the app's user id.
PROFILE_PERSONAL_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "notes",
    "tags",
    "custom_fields",
    "user_id",
)


@attrs.frozen(kw_only=True)
class CustomerCreated(Event):
    """A customer record exists, in `soft_state` active, with this profile (already validated
    and normalized: `phone` is digits only, text fields are stripped, empty ones are None)."""

    personal_fields = PROFILE_PERSONAL_FIELDS

    org_id: str
    by: str
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    notes: str | None
    tags: tuple[str, ...]
    custom_fields: immutables.Map[str, Scalar]
    customer_type: str
    lifecycle: str
    location_id: str | None
    user_id: str | None


@attrs.frozen(kw_only=True)
class CustomerUpdated(Event):
    """Some profile fields changed. A field that is None did not change, unless its (snake_case)
    name is in `cleared`, which lists the optional fields that were removed."""

    personal_fields = PROFILE_PERSONAL_FIELDS

    org_id: str
    by: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] | None = None
    custom_fields: immutables.Map[str, Scalar] | None = None
    customer_type: str | None = None
    lifecycle: str | None = None
    location_id: str | None = None
    user_id: str | None = None
    cleared: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class CustomerStateChanged(Event):
    """The soft state moved `from_state` -> `to_state` (delete, restore, suspend, archive);
    `reason` is free text, so personal."""

    personal_fields = ("reason",)

    org_id: str
    by: str
    from_state: str
    to_state: str
    reason: str | None


@attrs.frozen(kw_only=True)
class CustomerErased(Erasure):
    """The customer's personal data is erased (a right-to-erasure request): the profile's
    personal fields, state-change reasons and wallet passes are forgotten, its uniqueness claims
    released; ids, orders, figures and memberships' points stay, anonymous. Being an `Erasure`,
    it also makes the engine blank the personal fields of this stream's earlier events in the
    journal and rebuild the snapshots (engine/erasure.py)."""

    org_id: str
    by: str


@attrs.frozen(kw_only=True)
class CustomerPhotoSet(Event):
    """The customer's photo is the stored file `photo_storage_id` (`domain.storage`). A picture
    of the person is personal: erasing the customer deletes the file's bytes as well."""

    personal_fields = ("photo_storage_id",)

    org_id: str
    by: str
    photo_storage_id: str


@attrs.frozen(kw_only=True)
class CustomerClvCalculated(Event):
    """The lifetime-value figures were recalculated from the completed orders and differed."""

    org_id: str
    by: str
    clv: int
    avg_order_value: int
    order_count: int


@attrs.frozen(kw_only=True)
class CustomerOrderRecorded(Event):
    """An order of this customer was created or changed at a location (a reaction to the
    order's own record). `clv`, `avg_order_value` and `order_count` are the customer's figures
    over its completed orders once this order is recorded."""

    org_id: str
    by: str
    order_id: str
    location_id: str
    type: str
    status: str
    total: int
    paid_amount: int
    scheduled_at: int | None
    created_at: int
    completed_at: int | None
    clv: int
    avg_order_value: int
    order_count: int


@attrs.frozen(kw_only=True)
class CustomerTicketPurchaseRecorded(Event):
    """The customer bought a ticket for an event (a reaction to the ticketing record)."""

    org_id: str
    by: str
    event_id: str
    ticket_id: str
    amount: int


@attrs.frozen(kw_only=True)
class MembershipEnrolled(Event):
    """The customer joined a loyalty programme; the membership starts with 0 points. The
    wallet pass id identifies the person's device pass, so it is personal."""

    personal_fields = ("wallet_pass_id",)

    org_id: str
    by: str
    membership_id: str
    program_id: str
    tier: str
    start_date: int
    expiry_date: int | None
    wallet_pass_id: str | None


@attrs.frozen(kw_only=True)
class MembershipPointsAdded(Event):
    """`points` (negative: redeemed) moved a membership's balance to `balance` (never < 0)."""

    org_id: str
    by: str
    membership_id: str
    points: int
    balance: int


@attrs.frozen(kw_only=True)
class CustomerClaimTaken(Event):
    """On a claim stream: the (organization, field, value) it stands for now belongs to
    `customer_id`. The stream id is a hash, so no personal data appears in the journal."""

    customer_id: str


@attrs.frozen(kw_only=True)
class CustomerClaimReleased(Event):
    """On a claim stream: `customer_id` no longer holds the value; anyone may take it."""

    customer_id: str


@attrs.frozen(kw_only=True)
class LocationClaimTaken(Event):
    """On a claim stream: the location `location_id` belongs to the claim's organization (taken
    once, when the location is created; never released). Commands of other modules that store
    a `locationId` read it to refuse a location that is not the organization's."""

    location_id: str


#: Every event type of a customer stream.
CUSTOMER_EVENTS: tuple[type[Event], ...] = (
    CustomerCreated,
    CustomerUpdated,
    CustomerStateChanged,
    CustomerErased,
    CustomerClvCalculated,
    CustomerOrderRecorded,
    CustomerTicketPurchaseRecorded,
    MembershipEnrolled,
    MembershipPointsAdded,
    CustomerPhotoSet,
)

#: Every event type of a claim stream.
CLAIM_EVENTS: tuple[type[Event], ...] = (
    CustomerClaimTaken,
    CustomerClaimReleased,
    LocationClaimTaken,
)

#: (event class, the names of its fields holding personal data), for every event class that
#: has any (each class also declares them as `Event.personal_fields`, which the engine's erasure
#: blanks). Ids of other records, amounts, statuses, times and figures are not personal; `by`
#: names staff, not the customer; claim events hold only a customer or location id.
PERSONAL_FIELDS: tuple[tuple[type[Event], tuple[str, ...]], ...] = tuple(
    (cls, cls.personal_fields) for cls in (*CUSTOMER_EVENTS, *CLAIM_EVENTS) if cls.personal_fields
)
