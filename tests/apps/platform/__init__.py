"""The platform seed's records as an app of tables: `turnstile serve --app tests.apps.platform`.

Organizations, platform roles, team members, workspaces and their members, orders, passes,
check-ins, notifications and releases are tables (records.py); ticket tiers are an aggregate
per event, because a tier is never oversold (ticketing.py). Every function checks a capability
granted by the caller's role in its organization (access.py) and is scoped to that organization
by its tables' `owner`. docs/platform-app.md lists each function with its capability and
tenancy rule.
"""

from __future__ import annotations

from typing import Any

from domain import App, MutationSpec, QuerySpec

from . import directory, ticketing
from .records import (
    NAMESPACE,
    NOTIFICATIONS,
    ORDERS,
    ORGANIZATIONS,
    PASSES,
    RELEASES,
    ROLES,
    TABLES,
    TEAM,
    WORKSPACE_MEMBERS,
    WORKSPACES,
)
from .ticketing import EVENT_TIERS

__all__ = ["app"]


def _new(name: str, args_type: type[Any], aggregate: Any, handle: Any) -> MutationSpec[Any, Any]:
    """A mutation that writes a new document (or aggregate): no route."""
    return MutationSpec(
        name=name, args_type=args_type, aggregate=aggregate, route=None, handle=handle
    )


def _to(
    name: str, args_type: type[Any], aggregate: Any, field: str, handle: Any
) -> MutationSpec[Any, Any]:
    """A mutation routed to the document (or aggregate) whose id is the arg `field`."""
    return MutationSpec(
        name=name,
        args_type=args_type,
        aggregate=aggregate,
        route=lambda args: str(getattr(args, field)),
        handle=handle,
    )


d, t = directory, ticketing

app = App(
    name=NAMESPACE,
    aggregates=(EVENT_TIERS,),
    tables=TABLES,
    mutations=(
        _new(
            "platform/organizations:create",
            d.CreateOrganizationArgs,
            ORGANIZATIONS.aggregate,
            d.create_organization,
        ),
        _new("platform/roles:create", d.CreateRoleArgs, ROLES.aggregate, d.create_role),
        _new("platform/team:add", d.AddMemberArgs, TEAM.aggregate, d.add_member),
        _to("platform/team:setRole", d.SetRoleArgs, TEAM.aggregate, "member_id", d.set_role),
        _new(
            "platform/workspaces:create",
            d.CreateWorkspaceArgs,
            WORKSPACES.aggregate,
            d.create_workspace,
        ),
        _new(
            "platform/workspaces:addMember",
            d.AddWorkspaceMemberArgs,
            WORKSPACE_MEMBERS.aggregate,
            d.add_workspace_member,
        ),
        _new(
            "platform/notifications:send",
            d.SendNotificationArgs,
            NOTIFICATIONS.aggregate,
            d.send_notification,
        ),
        _to(
            "platform/notifications:markRead",
            d.NotificationIdArgs,
            NOTIFICATIONS.aggregate,
            "notification_id",
            d.mark_read,
        ),
        _new("platform/releases:record", d.RecordReleaseArgs, RELEASES.aggregate, d.record_release),
        _new("platform/tiers:createEvent", t.CreateEventArgs, EVENT_TIERS, t.create_event),
        _to("platform/tiers:add", t.AddTierArgs, EVENT_TIERS, "event_id", t.add_tier),
        _to("platform/orders:place", t.PlaceOrderArgs, EVENT_TIERS, "event_id", t.place_order),
        _to("platform/orders:refund", t.OrderIdArgs, ORDERS.aggregate, "order_id", t.refund_order),
        _to("platform/passes:checkIn", t.CheckInArgs, PASSES.aggregate, "pass_id", t.check_in),
    ),
    queries=(
        QuerySpec(
            name="platform/organizations:get", args_type=d.OrgArgs, evaluate=d.get_organization
        ),
        QuerySpec(name="platform/roles:list", args_type=d.OrgArgs, evaluate=d.list_roles),
        QuerySpec(name="platform/team:me", args_type=d.NoArgs, evaluate=d.me),
        QuerySpec(name="platform/team:list", args_type=d.OrgArgs, evaluate=d.list_team),
        QuerySpec(name="platform/workspaces:list", args_type=d.OrgArgs, evaluate=d.list_workspaces),
        QuerySpec(
            name="platform/workspaces:members",
            args_type=d.WorkspaceIdArgs,
            evaluate=d.workspace_members,
        ),
        QuerySpec(
            name="platform/notifications:listMine", args_type=d.NoArgs, evaluate=d.my_notifications
        ),
        QuerySpec(
            name="platform/releases:list", args_type=d.ListReleasesArgs, evaluate=d.list_releases
        ),
        QuerySpec(name="platform/tiers:get", args_type=t.EventIdArgs, evaluate=t.get_tiers),
        QuerySpec(name="platform/orders:get", args_type=t.OrderIdArgs, evaluate=t.get_order),
        QuerySpec(name="platform/orders:list", args_type=t.ListOrdersArgs, evaluate=t.list_orders),
        QuerySpec(name="platform/passes:get", args_type=t.PassIdArgs, evaluate=t.get_pass),
    ),
)
