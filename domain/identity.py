"""Who is calling, and the access rules every function applies (docs/reference/identity.md).

Pure data: the server turns an admin key or a verified JWT into an `Identity`; the domain only
reads it. Tenancy failures raise `NotFound`, never `Forbidden`, so another organization's
records are indistinguishable from records that do not exist.
"""

from __future__ import annotations

import attrs

from domain.errors import Forbidden, InvalidArgs, NotFound, Unauthenticated

CAPABILITIES: frozenset[str] = frozenset(
    {
        "events:manage",
        "queue:manage",
        "tickets:checkin",
        "locations:manage",
        "orders:manage",
        "customers:read",
        "customers:write",
        "customers:erase",
        "analytics:read",
        "*",
    }
)


@attrs.frozen(kw_only=True)
class Identity:
    """A caller. `subject` is the user id (None for anonymous and admin callers);
    `token_identifier` is Convex's `tokenIdentifier`, `iss|sub` of the token that signed the
    user in (None for anonymous and admin callers)."""

    subject: str | None = None
    org_id: str | None = None
    caps: frozenset[str] = frozenset()
    is_admin: bool = False
    token_identifier: str | None = None

    @property
    def is_anonymous(self) -> bool:
        return not self.is_admin and self.subject is None

    def has_cap(self, cap: str) -> bool:
        return self.is_admin or "*" in self.caps or cap in self.caps


ANONYMOUS = Identity()
ADMIN = Identity(is_admin=True)


def require_authenticated(identity: Identity) -> None:
    if identity.is_anonymous:
        raise Unauthenticated("This function needs a signed-in caller.")


def require_cap(identity: Identity, cap: str) -> None:
    require_authenticated(identity)
    if not identity.has_cap(cap):
        raise Forbidden(f"This function needs the capability {cap!r}.", capability=cap)


def require_user(identity: Identity, user_id: str, *, or_cap: str | None = None) -> None:
    """The caller must be `user_id` itself (or admin, or hold `or_cap`)."""
    require_authenticated(identity)
    if identity.is_admin or identity.subject == user_id:
        return
    if or_cap is not None and identity.has_cap(or_cap):
        return
    raise Forbidden("A user may act only for themselves.")


def org_for_new_record(identity: Identity, requested_org: str | None) -> str:
    """The organization a new record belongs to: the caller's, or for admin the `orgId` arg."""
    if identity.is_admin:
        if not requested_org:
            raise InvalidArgs("Admin callers must name the organization in orgId.", path="orgId")
        return requested_org
    if identity.org_id is None:
        raise Forbidden("This function needs a caller that belongs to an organization.")
    if requested_org is not None and requested_org != identity.org_id:
        raise Forbidden("orgId must be the caller's own organization.")
    return identity.org_id


def require_org(identity: Identity, record_org: str | None, what: str) -> None:
    """Refuse records of another organization exactly as if they did not exist."""
    if identity.is_admin:
        return
    if record_org is None or identity.org_id != record_org:
        raise NotFound(f"{what} not found.")
