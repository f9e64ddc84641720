"""The platform's plain documents (the platform seed's foundational records), each a `Table` in the
app's namespace: organizations, platform roles, team members, workspaces, workspace members,
orders, passes, check-ins, notifications and releases. Every organization-owned table declares
`owner="org_id"`, so tenancy is the table's, not each handler's."""

from __future__ import annotations

from typing import Literal

import attrs

from domain import Index, Table

#: The app's name: the namespace of every table (and event type) of this package.
NAMESPACE = "platform_seed"


@attrs.frozen(kw_only=True)
class Organization:
    org_id: str
    name: str


@attrs.frozen(kw_only=True)
class PlatformRole:
    """A role of an organization: the capabilities it grants (access.CAPABILITIES)."""

    org_id: str
    name: str
    capabilities: tuple[str, ...]


@attrs.frozen(kw_only=True)
class TeamMember:
    """A user's membership of an organization, with its role (a PlatformRole's id)."""

    org_id: str
    user_id: str
    role_id: str
    display_name: str = ""


@attrs.frozen(kw_only=True)
class Workspace:
    org_id: str
    name: str
    slug: str


@attrs.frozen(kw_only=True)
class WorkspaceMember:
    org_id: str
    workspace_id: str
    user_id: str
    access: Literal["editor", "viewer"]


@attrs.frozen(kw_only=True)
class Order:
    """Tickets of one tier of an event, sold to a buyer; `pass_ids` are its passes."""

    org_id: str
    event_id: str
    tier: str
    quantity: int
    total: int
    buyer_name: str
    buyer_email: str
    status: Literal["paid", "refunded"] = "paid"
    pass_ids: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Pass:
    """One admission of an order. `check_in_id` names its check-in once it has one."""

    org_id: str
    order_id: str
    event_id: str
    tier: str
    status: Literal["valid", "void"] = "valid"
    check_in_id: str | None = None


@attrs.frozen(kw_only=True)
class CheckIn:
    org_id: str
    pass_id: str
    event_id: str
    gate: str
    by: str
    at: int


@attrs.frozen(kw_only=True)
class Notification:
    org_id: str
    user_id: str
    title: str
    body: str
    read: bool = False


@attrs.frozen(kw_only=True)
class Release:
    """A deployment as a deploy pipeline reports it: platform-wide, not an organization's."""

    deployment_id: str
    service: str
    commit: str
    status: str
    deployed_at: int


ORGANIZATIONS: Table[Organization] = Table(
    namespace=NAMESPACE, name="organizations", document=Organization, id_prefix="or", owner="org_id"
)
ROLES: Table[PlatformRole] = Table(
    namespace=NAMESPACE,
    name="platform_roles",
    document=PlatformRole,
    id_prefix="ro",
    indexes=(Index.of("by_name", "org_id", "name"),),
    owner="org_id",
)
TEAM: Table[TeamMember] = Table(
    namespace=NAMESPACE,
    name="team_members",
    document=TeamMember,
    id_prefix="tm",
    indexes=(Index.of("by_user", "org_id", "user_id"),),
    owner="org_id",
    personal=("display_name",),
    refs={"role_id": "platform_roles"},
)
WORKSPACES: Table[Workspace] = Table(
    namespace=NAMESPACE,
    name="workspaces",
    document=Workspace,
    id_prefix="ws",
    indexes=(Index.of("by_slug", "org_id", "slug"),),
    owner="org_id",
)
WORKSPACE_MEMBERS: Table[WorkspaceMember] = Table(
    namespace=NAMESPACE,
    name="workspace_members",
    document=WorkspaceMember,
    id_prefix="wm",
    indexes=(Index.of("by_workspace", "org_id", "workspace_id", "user_id"),),
    owner="org_id",
    refs={"workspace_id": "workspaces"},
)
ORDERS: Table[Order] = Table(
    namespace=NAMESPACE,
    name="orders",
    document=Order,
    id_prefix="od",
    indexes=(Index.of("by_event", "org_id", "event_id"),),
    owner="org_id",
    personal=("buyer_name", "buyer_email"),
    refs={"pass_ids": "passes"},
)
PASSES: Table[Pass] = Table(
    namespace=NAMESPACE,
    name="passes",
    document=Pass,
    id_prefix="ps",
    indexes=(Index.of("by_order", "org_id", "order_id"),),
    owner="org_id",
    refs={"order_id": "orders", "check_in_id": "check_ins"},
)
CHECK_INS: Table[CheckIn] = Table(
    namespace=NAMESPACE,
    name="check_ins",
    document=CheckIn,
    id_prefix="ci",
    indexes=(Index.of("by_event", "org_id", "event_id", "at"),),
    owner="org_id",
    refs={"pass_id": "passes"},
)
NOTIFICATIONS: Table[Notification] = Table(
    namespace=NAMESPACE,
    name="notifications",
    document=Notification,
    id_prefix="nt",
    indexes=(Index.of("by_user", "org_id", "user_id"),),
    owner="org_id",
    personal=("title", "body"),
)
RELEASES: Table[Release] = Table(
    namespace=NAMESPACE,
    name="releases",
    document=Release,
    id_prefix="rls",
    indexes=(
        Index.of("by_deployed_at", "deployed_at"),
        Index.of("by_service", "service", "deployed_at"),
    ),
)

TABLES = (
    ORGANIZATIONS,
    ROLES,
    TEAM,
    WORKSPACES,
    WORKSPACE_MEMBERS,
    ORDERS,
    PASSES,
    CHECK_INS,
    NOTIFICATIONS,
    RELEASES,
)
