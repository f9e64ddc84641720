"""Organizations, roles, team members, workspaces, notifications and releases: plain documents
written and read through `db`, each function with its capability (access.py) and its tenancy
(the tables' `owner="org_id"`: another organization's document is None to a query and NotFound
to a mutation)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from domain import (
    Conflict,
    Decision,
    Forbidden,
    Identity,
    InvalidArgs,
    NotFound,
    View,
    db,
    org_for_new_record,
    require_authenticated,
)

from .access import (
    CAPABILITIES,
    MEMBERS,
    NOTIFY,
    require_capability,
    require_member,
    role_of,
)
from .access import (
    WORKSPACES as MANAGE_WORKSPACES,
)
from .records import (
    NOTIFICATIONS,
    ORGANIZATIONS,
    RELEASES,
    ROLES,
    TEAM,
    WORKSPACE_MEMBERS,
    WORKSPACES,
    Notification,
    Organization,
    PlatformRole,
    Release,
    TeamMember,
    Workspace,
    WorkspaceMember,
)

# -- args ------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CreateOrganizationArgs:
    org_id: str
    name: str
    owner_user_id: str
    owner_name: str = ""


@attrs.frozen(kw_only=True)
class OrgArgs:
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class CreateRoleArgs:
    name: str
    capabilities: tuple[str, ...]
    as_member: str | None = None
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class AddMemberArgs:
    user_id: str
    role_id: str
    display_name: str = ""
    as_member: str | None = None
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class SetRoleArgs:
    member_id: str
    role_id: str
    as_member: str | None = None


@attrs.frozen(kw_only=True)
class CreateWorkspaceArgs:
    name: str
    slug: str
    as_member: str | None = None
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class AddWorkspaceMemberArgs:
    workspace_id: str
    member_id: str
    access: Literal["editor", "viewer"] = "viewer"
    as_member: str | None = None


@attrs.frozen(kw_only=True)
class WorkspaceIdArgs:
    workspace_id: str


@attrs.frozen(kw_only=True)
class SendNotificationArgs:
    member_id: str
    title: str
    body: str
    as_member: str | None = None


@attrs.frozen(kw_only=True)
class NotificationIdArgs:
    notification_id: str


@attrs.frozen(kw_only=True)
class NoArgs:
    pass


@attrs.frozen(kw_only=True)
class RecordReleaseArgs:
    deployment_id: str
    service: str
    commit: str
    status: str
    deployed_at: int


@attrs.frozen(kw_only=True)
class ListReleasesArgs:
    service: str | None = None
    limit: int = 50


def _stored_doc(stored: Any, **fields: Any) -> dict[str, Any]:
    return {"_id": stored.id, "_creationTime": stored.creation_time, **fields}


# -- organizations ---------------------------------------------------------------------------------


def create_organization(d: Decision[Any], args: CreateOrganizationArgs) -> dict[str, str]:
    """platform/organizations:create (admin) -> {organizationId, ownerRoleId, ownerMemberId}:
    the organization, an "owner" role granting every capability, and its owner's membership,
    in one commit."""
    if not d.identity.is_admin:
        raise Forbidden("Organizations are created with the backend's admin key.")
    if not args.name.strip():
        raise InvalidArgs("An organization needs a name.", path="name")
    org_id = org_for_new_record(d.identity, args.org_id)
    writes = db(d)
    organization_id: str = writes.insert(ORGANIZATIONS, Organization(org_id=org_id, name=args.name))
    role_id: str = writes.insert(
        ROLES, PlatformRole(org_id=org_id, name="owner", capabilities=CAPABILITIES)
    )
    member_id: str = writes.insert(
        TEAM,
        TeamMember(
            org_id=org_id, user_id=args.owner_user_id, role_id=role_id, display_name=args.owner_name
        ),
    )
    return {"organizationId": organization_id, "ownerRoleId": role_id, "ownerMemberId": member_id}


def get_organization(view: View, args: OrgArgs, identity: Identity) -> dict[str, Any] | None:
    """platform/organizations:get -> the caller's organization (admin: `orgId`'s), or null."""
    require_member(view, identity)
    equal = {"org_id": args.org_id} if identity.is_admin else {}
    stored = db(view, identity).query(ORGANIZATIONS).with_index("by_creation_time", **equal).first()
    if stored is None:
        return None
    return _stored_doc(stored, orgId=stored.document.org_id, name=stored.document.name)


# -- roles and team members ------------------------------------------------------------------------


def _check_capabilities(capabilities: tuple[str, ...]) -> None:
    for n, cap in enumerate(capabilities):
        if cap not in CAPABILITIES:
            raise InvalidArgs(
                f"{cap!r} is not a platform capability ({', '.join(CAPABILITIES)}).",
                path=f"capabilities[{n}]",
            )


def create_role(d: Decision[Any], args: CreateRoleArgs) -> str:
    """platform/roles:create -> the role's id."""
    require_capability(d, args.as_member, MEMBERS)
    _check_capabilities(args.capabilities)
    org_id = org_for_new_record(d.identity, args.org_id)
    doc = PlatformRole(org_id=org_id, name=args.name, capabilities=tuple(args.capabilities))
    role_id: str = db(d).insert(ROLES, doc)
    return role_id


def list_roles(view: View, args: OrgArgs, identity: Identity) -> list[dict[str, Any]]:
    """platform/roles:list -> the organization's roles by name."""
    require_member(view, identity)
    equal = {"org_id": args.org_id} if identity.is_admin else {}
    q = db(view, identity).query(ROLES).with_index("by_name", **equal)
    return [
        _stored_doc(s, name=s.document.name, capabilities=list(s.document.capabilities))
        for s in q.collect()
    ]


def _role_in_org(d: Decision[Any], role_id: str) -> PlatformRole:
    role: PlatformRole | None = db(d).get(ROLES, role_id)
    if role is None:
        raise NotFound("Role not found.", path="roleId")
    return role


def add_member(d: Decision[Any], args: AddMemberArgs) -> str:
    """platform/team:add -> the membership's id; the role must be the organization's."""
    require_capability(d, args.as_member, MEMBERS)
    org_id = org_for_new_record(d.identity, args.org_id)
    role = _role_in_org(d, args.role_id)
    if role.org_id != org_id:
        raise NotFound("Role not found.", path="roleId")
    doc = TeamMember(
        org_id=org_id, user_id=args.user_id, role_id=args.role_id, display_name=args.display_name
    )
    member_id: str = db(d).insert(TEAM, doc)
    return member_id


def set_role(d: Decision[Any], args: SetRoleArgs) -> None:
    """platform/team:setRole: the member's role; effective at its next call."""
    require_capability(d, args.as_member, MEMBERS)
    member = db(d).get(TEAM, args.member_id)
    if member is None:
        raise NotFound("Team member not found.")
    role = _role_in_org(d, args.role_id)
    if role.org_id != member.org_id:
        raise NotFound("Role not found.", path="roleId")
    db(d).patch(TEAM, args.member_id, role_id=args.role_id)


def me(view: View, args: NoArgs, identity: Identity) -> dict[str, Any] | None:
    """platform/team:me -> the caller's membership ({memberId, role, capabilities}), or null.
    The `memberId` is what mutations take as `asMember`."""
    require_authenticated(identity)
    role = role_of(view, identity)
    if role is None or role.member is None:
        return None
    return {
        "memberId": role.member_id,
        "orgId": role.member.org_id,
        "userId": role.member.user_id,
        "role": None if role.role is None else role.role.name,
        "capabilities": sorted(role.capabilities),
    }


def list_team(view: View, args: OrgArgs, identity: Identity) -> list[dict[str, Any]]:
    """platform/team:list -> the organization's members, by user id."""
    require_member(view, identity)
    equal = {"org_id": args.org_id} if identity.is_admin else {}
    reads = db(view, identity)
    out = []
    for stored in reads.query(TEAM).with_index("by_user", **equal).collect():
        role = reads.get(ROLES, stored.document.role_id)
        out.append(
            _stored_doc(
                stored,
                userId=stored.document.user_id,
                displayName=stored.document.display_name,
                roleId=stored.document.role_id,
                role=None if role is None else role.name,
            )
        )
    return out


# -- workspaces ------------------------------------------------------------------------------------


def create_workspace(d: Decision[Any], args: CreateWorkspaceArgs) -> str:
    """platform/workspaces:create -> the workspace's id."""
    require_capability(d, args.as_member, MANAGE_WORKSPACES)
    if not args.slug or not args.slug.replace("-", "").isalnum():
        raise InvalidArgs("A slug is letters, digits and dashes.", path="slug")
    org_id = org_for_new_record(d.identity, args.org_id)
    workspace_id: str = db(d).insert(
        WORKSPACES, Workspace(org_id=org_id, name=args.name, slug=args.slug)
    )
    return workspace_id


def add_workspace_member(d: Decision[Any], args: AddWorkspaceMemberArgs) -> str:
    """platform/workspaces:addMember -> the workspace membership's id, for a team member of
    the same organization."""
    require_capability(d, args.as_member, MANAGE_WORKSPACES)
    writes = db(d)
    workspace = writes.get(WORKSPACES, args.workspace_id)
    if workspace is None:
        raise NotFound("Workspace not found.")
    member = writes.get(TEAM, args.member_id)
    if member is None or member.org_id != workspace.org_id:
        raise NotFound("Team member not found.", path="memberId")
    doc = WorkspaceMember(
        org_id=workspace.org_id,
        workspace_id=args.workspace_id,
        user_id=member.user_id,
        access=args.access,
    )
    member_doc_id: str = writes.insert(WORKSPACE_MEMBERS, doc)
    return member_doc_id


def list_workspaces(view: View, args: OrgArgs, identity: Identity) -> list[dict[str, Any]]:
    """platform/workspaces:list -> the organization's workspaces, by slug."""
    require_member(view, identity)
    equal = {"org_id": args.org_id} if identity.is_admin else {}
    q = db(view, identity).query(WORKSPACES).with_index("by_slug", **equal)
    return [_stored_doc(s, name=s.document.name, slug=s.document.slug) for s in q.collect()]


def workspace_members(
    view: View, args: WorkspaceIdArgs, identity: Identity
) -> list[dict[str, Any]] | None:
    """platform/workspaces:members -> the workspace's members, or null for no such workspace."""
    require_member(view, identity)
    reads = db(view, identity)
    workspace = reads.get(WORKSPACES, args.workspace_id)
    if workspace is None:
        return None
    # The workspace was visible to the caller, so its organization is one the caller may read.
    q = reads.query(WORKSPACE_MEMBERS).with_index(
        "by_workspace", org_id=workspace.org_id, workspace_id=args.workspace_id
    )
    return [
        _stored_doc(s, userId=s.document.user_id, access=s.document.access) for s in q.collect()
    ]


# -- notifications ---------------------------------------------------------------------------------


def send_notification(d: Decision[Any], args: SendNotificationArgs) -> str:
    """platform/notifications:send -> the notification's id, for a team member's user."""
    require_capability(d, args.as_member, NOTIFY)
    member = db(d).get(TEAM, args.member_id)
    if member is None:
        raise NotFound("Team member not found.", path="memberId")
    doc = Notification(
        org_id=member.org_id, user_id=member.user_id, title=args.title, body=args.body
    )
    notification_id: str = db(d).insert(NOTIFICATIONS, doc)
    return notification_id


def mark_read(d: Decision[Any], args: NotificationIdArgs) -> None:
    """platform/notifications:markRead: only its recipient may (anyone else: NotFound)."""
    require_authenticated(d.identity)
    found = db(d).get(NOTIFICATIONS, args.notification_id)
    if found is None or not (d.identity.is_admin or found.user_id == d.identity.subject):
        raise NotFound("Notification not found.")
    if found.read:
        raise Conflict("This notification is read already.")
    db(d).patch(NOTIFICATIONS, args.notification_id, read=True)


def my_notifications(view: View, args: NoArgs, identity: Identity) -> list[dict[str, Any]]:
    """platform/notifications:listMine -> the caller's notifications, newest first."""
    require_authenticated(identity)
    if identity.subject is None or identity.org_id is None:
        return []
    q = (
        db(view, identity)
        .query(NOTIFICATIONS)
        .with_index("by_user", user_id=identity.subject)
        .order("desc")
    )
    return [
        _stored_doc(s, title=s.document.title, body=s.document.body, read=s.document.read)
        for s in q.collect()
    ]


# -- releases --------------------------------------------------------------------------------------


def record_release(d: Decision[Any], args: RecordReleaseArgs) -> str:
    """platform/releases:record (admin: the deploy pipeline) -> the release's id."""
    if not d.identity.is_admin:
        raise Forbidden("Releases are recorded with the backend's admin key.")
    doc = Release(
        deployment_id=args.deployment_id,
        service=args.service,
        commit=args.commit,
        status=args.status,
        deployed_at=args.deployed_at,
    )
    release_id: str = db(d).insert(RELEASES, doc)
    return release_id


def list_releases(view: View, args: ListReleasesArgs, identity: Identity) -> list[dict[str, Any]]:
    """platform/releases:list -> the release history, newest first (of one service if given)."""
    require_authenticated(identity)
    if not 1 <= args.limit <= 500:
        raise InvalidArgs("limit must be between 1 and 500.", path="limit")
    q = db(view, identity).query(RELEASES)
    if args.service is not None:
        q = q.with_index("by_service", service=args.service)
    else:
        q = q.with_index("by_deployed_at")
    return [
        _stored_doc(
            s,
            deploymentId=s.document.deployment_id,
            service=s.document.service,
            commit=s.document.commit,
            status=s.document.status,
            deployedAt=s.document.deployed_at,
        )
        for s in q.order("desc").take(args.limit)
    ]
