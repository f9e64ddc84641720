"""Capabilities granted by roles (the platform seed's `requireCapability()`), read from the tables.

A caller's rights in an organization are those of its role there: its `TeamMember` document
names a `PlatformRole`, whose `capabilities` are what it may do. The token's own `caps` claim is
not consulted: a role is changed by `platform/team:setRole` and takes effect at the next call.
Admin callers (the backend's key) hold every capability.

- In a query, `role_of(view, identity)` finds the caller's membership through the team's
  `by_user` index (live: a subscription is re-run when the membership or its role changes).
- In a mutation, `require_capability(d, member_id, cap)` finds the caller's membership through
  the same index at the committed cut (`db(d).query`), unless the caller names it (`asMember`,
  the `_id` that `platform/team:me` answers), then reads it, and its role, by id with
  `db(d).get`. A membership of another user, of another organization, or a role without the
  capability is `Forbidden`; the documents read by id are part of the decision, so a role
  changed concurrently is decided before or after, never halfway.
"""

from __future__ import annotations

from typing import Any

import attrs

from domain import Decision, Forbidden, Identity, View, db, require_authenticated

from .records import ROLES, TEAM, PlatformRole, TeamMember

MEMBERS = "members:manage"
WORKSPACES = "workspaces:manage"
EVENTS = "events:manage"
ORDERS = "orders:manage"
CHECK_IN = "tickets:checkin"
NOTIFY = "notifications:send"
#: Every capability a platform role may grant.
CAPABILITIES = (MEMBERS, WORKSPACES, EVENTS, ORDERS, CHECK_IN, NOTIFY)


@attrs.frozen(kw_only=True)
class Role:
    """The caller's standing in its organization: its membership and what its role grants."""

    member_id: str | None
    member: TeamMember | None
    role_id: str | None
    role: PlatformRole | None
    capabilities: frozenset[str]

    def grants(self, cap: str) -> bool:
        return cap in self.capabilities


#: What an admin caller holds: everything, without a membership.
ADMIN_ROLE = Role(
    member_id=None, member=None, role_id=None, role=None, capabilities=frozenset(CAPABILITIES)
)


def _refuse(cap: str) -> Forbidden:
    return Forbidden(f"Your role does not grant {cap!r}.", capability=cap)


def require_capability(d: Decision[Any], member_id: str | None, cap: str) -> Role:
    """In a mutation: the caller's role, read by id; Forbidden unless it grants `cap`."""
    identity = d.identity
    require_authenticated(identity)
    if identity.is_admin:
        return ADMIN_ROLE
    if member_id is None:
        found_member = db(d).query(TEAM).with_index("by_user", user_id=identity.subject).first()
        if found_member is None:
            raise Forbidden("You are not a member of this organization.")
        member_id = found_member.id
    member = db(d).get(TEAM, member_id)
    if member is None or member.user_id != identity.subject:
        raise Forbidden("asMember must be your own membership of this organization.")
    role = db(d).get(ROLES, member.role_id)
    found = Role(
        member_id=member_id,
        member=member,
        role_id=member.role_id,
        role=role,
        capabilities=frozenset(() if role is None else role.capabilities),
    )
    if not found.grants(cap):
        raise _refuse(cap)
    return found


def role_of(view: View, identity: Identity) -> Role | None:
    """In a query: the caller's role in its organization, or None if it has no membership."""
    if identity.is_admin:
        return ADMIN_ROLE
    if identity.subject is None or identity.org_id is None:
        return None
    reads = db(view, identity)
    stored = reads.query(TEAM).with_index("by_user", user_id=identity.subject).first()
    if stored is None:
        return None
    role = reads.get(ROLES, stored.document.role_id)
    return Role(
        member_id=stored.id,
        member=stored.document,
        role_id=stored.document.role_id,
        role=role,
        capabilities=frozenset(() if role is None else role.capabilities),
    )


def require_member(view: View, identity: Identity) -> Role:
    """In a query: the caller must be a member of its organization (any role)."""
    require_authenticated(identity)
    role = role_of(view, identity)
    if role is None:
        raise Forbidden("Only members of the organization may read this.")
    return role


def require_capability_to_read(view: View, identity: Identity, cap: str) -> Role:
    """In a query: the caller's role must grant `cap`."""
    role = require_member(view, identity)
    if not role.grants(cap):
        raise _refuse(cap)
    return role
