"""The argument objects of the customer, membership and activity functions.

Field names are snake_case; the engine's codec maps them to and from the wire's camelCase and
checks types strictly before a handler runs. Optional fields default to None, meaning "not
given". In an update, "" (or [] for tags, {} for customFields) removes an optional field.
Rules beyond types are the handlers' to check.
"""

from __future__ import annotations

import attrs

from domain.customers.events import Scalar
from domain.pagination import PaginationOpts


@attrs.frozen(kw_only=True)
class CreateCustomerArgs:
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] | None = None
    custom_fields: dict[str, Scalar] | None = None
    customer_type: str | None = None
    lifecycle: str | None = None
    location_id: str | None = None
    #: The app's user id of this customer (unique within the organization).
    user_id: str | None = None
    #: Admin callers name the organization.
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class UpdateCustomerArgs:
    customer_id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] | None = None
    custom_fields: dict[str, Scalar] | None = None
    customer_type: str | None = None
    lifecycle: str | None = None
    location_id: str | None = None
    user_id: str | None = None


@attrs.frozen(kw_only=True)
class CustomerIdArgs:
    """`{customerId}`: customers:get, customers:calculateCLV, customers:exportData."""

    customer_id: str


@attrs.frozen(kw_only=True)
class UploadPhotoArgs:
    """`{customerId, storageId}`: customers:uploadPhoto (a file `storage:generateUploadUrl`'s
    URL took)."""

    customer_id: str
    storage_id: str


@attrs.frozen(kw_only=True)
class SoftStateArgs:
    """`{customerId, reason?}`: customers:delete, restore, suspend, archive."""

    customer_id: str
    reason: str | None = None


@attrs.frozen(kw_only=True)
class ListCustomersArgs:
    location_id: str | None = None
    lifecycle: str | None = None
    search: str | None = None
    limit: int | None = None
    #: `continueCursor` of the previous page; None for the first.
    cursor: str | None = None
    org_id: str | None = None
    #: Convex's form of paging, instead of `limit` and `cursor` (domain.pagination).
    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class MembershipListArgs:
    """`{customerId, paginationOpts?}`: memberships:list."""

    customer_id: str
    pagination_opts: PaginationOpts | None = None


@attrs.frozen(kw_only=True)
class OrgArgs:
    """`{}` (admin callers: `{orgId}`): customers:typeStatistics."""

    org_id: str | None = None


@attrs.frozen(kw_only=True)
class EnrollArgs:
    customer_id: str
    program_id: str
    tier: str
    expiry_date: int | None = None
    wallet_pass_id: str | None = None


@attrs.frozen(kw_only=True)
class AddPointsArgs:
    membership_id: str
    points: int


@attrs.frozen(kw_only=True)
class ActivityArgs:
    """`{entityType: "customer" | "membership", entityId, limit?, paginationOpts?}`."""

    entity_type: str
    entity_id: str
    limit: int | None = None
    #: Convex's form of paging, instead of `limit` (domain.pagination).
    pagination_opts: PaginationOpts | None = None
