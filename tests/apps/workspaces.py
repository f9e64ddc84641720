"""An app of tables (domain.tables): workspaces of an organization, and an audit log written in
the same commit as each change (both or neither)."""

from __future__ import annotations

from typing import Any

import attrs

from domain import (
    App,
    Conflict,
    Decision,
    Identity,
    MutationSpec,
    PaginationOpts,
    QuerySpec,
    View,
    org_for_new_record,
    require_cap,
    scope_of,
)
from domain.tables import Index, Search, Table, db

MANAGE = "locations:manage"


@attrs.frozen(kw_only=True)
class Settings:
    """A nested object of a document: checked by the table's schema like any field."""

    timezone: str = "UTC"
    features: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Workspace:
    org_id: str
    name: str
    slug: str
    description: str = ""
    settings: Settings = Settings()


@attrs.frozen(kw_only=True)
class AuditEntry:
    org_id: str
    action: str
    workspace_id: str
    by: str


WORKSPACES: Table[Workspace] = Table(
    namespace="platform",
    name="workspaces",
    document=Workspace,
    id_prefix="wo",
    indexes=(Index.of("by_slug", "org_id", "slug", unique=True),),
    owner="org_id",
    personal=("description",),
    search=(Search.of("search_name", "name"),),
)
AUDIT: Table[AuditEntry] = Table(
    namespace="platform",
    name="audit",
    document=AuditEntry,
    id_prefix="au",
    indexes=(Index.of("by_workspace", "org_id", "workspace_id"),),
    owner="org_id",
)


@attrs.frozen(kw_only=True)
class CreateArgs:
    name: str
    slug: str
    description: str = ""
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class RenameArgs:
    workspace_id: str
    name: str


@attrs.frozen(kw_only=True)
class DescribeArgs:
    workspace_id: str
    description: str


@attrs.frozen(kw_only=True)
class ConfigureArgs:
    workspace_id: str
    settings: Settings


@attrs.frozen(kw_only=True)
class IdArgs:
    workspace_id: str


@attrs.frozen(kw_only=True)
class ListArgs:
    org_id: str | None = None
    pagination_opts: PaginationOpts | None = None


def _audit(d: Decision[Any], org_id: str, action: str, workspace_id: str) -> None:
    by = d.identity.subject or "admin"
    db(d).insert(AUDIT, AuditEntry(org_id=org_id, action=action, workspace_id=workspace_id, by=by))


def create(d: Decision[Any], args: CreateArgs) -> str:
    require_cap(d.identity, MANAGE)
    org_id = org_for_new_record(d.identity, args.org_id)
    doc = Workspace(org_id=org_id, name=args.name, slug=args.slug, description=args.description)
    workspace_id: str = db(d).insert(WORKSPACES, doc)
    _audit(d, org_id, "create", workspace_id)
    return workspace_id


def rename(d: Decision[Any], args: RenameArgs) -> None:
    require_cap(d.identity, MANAGE)
    if not args.name.strip():
        raise Conflict("A workspace needs a name.")
    doc = db(d).patch(WORKSPACES, args.workspace_id, name=args.name)
    _audit(d, doc.org_id, "rename", args.workspace_id)


def describe(d: Decision[Any], args: DescribeArgs) -> None:
    require_cap(d.identity, MANAGE)
    doc = db(d).patch(WORKSPACES, args.workspace_id, description=args.description)
    _audit(d, doc.org_id, "describe", args.workspace_id)


def configure(d: Decision[Any], args: ConfigureArgs) -> None:
    require_cap(d.identity, MANAGE)
    doc = db(d).patch(WORKSPACES, args.workspace_id, settings=args.settings)
    _audit(d, doc.org_id, "configure", args.workspace_id)


def delete(d: Decision[Any], args: IdArgs) -> None:
    require_cap(d.identity, MANAGE)
    doc = db(d).get(WORKSPACES, args.workspace_id)
    db(d).delete(WORKSPACES, args.workspace_id)
    if doc is not None:
        _audit(d, doc.org_id, "delete", args.workspace_id)


def _doc(stored: Any) -> dict[str, Any]:
    return {
        "_id": stored.id,
        "_creationTime": stored.creation_time,
        "name": stored.document.name,
        "slug": stored.document.slug,
        "description": stored.document.description,
        "settings": {
            "timezone": stored.document.settings.timezone,
            "features": list(stored.document.settings.features),
        },
    }


def get(view: View, args: IdArgs, identity: Identity) -> dict[str, Any] | None:
    stored = db(view, identity).get_stored(WORKSPACES, args.workspace_id)
    return None if stored is None else _doc(stored)


def list_workspaces(view: View, args: ListArgs, identity: Identity) -> Any:
    equal = {"org_id": args.org_id} if args.org_id is not None else {}
    q = db(view, identity).query(WORKSPACES).with_index("by_slug", **equal)
    if args.pagination_opts is not None:
        page = q.paginate(args.pagination_opts, scope_of("workspaces:list", args))
        return page.doc(_doc)
    return [_doc(stored) for stored in q.collect()]


@attrs.frozen(kw_only=True)
class SearchArgs:
    text: str


def search(view: View, args: SearchArgs, identity: Identity) -> list[str]:
    found = db(view, identity).search(WORKSPACES, "search_name", args.text)
    return [stored.document.name for stored in found]


def audit_of(view: View, args: IdArgs, identity: Identity) -> list[str]:
    q = db(view, identity).query(AUDIT).with_index("by_workspace", workspace_id=args.workspace_id)
    return [stored.document.action for stored in q.collect()]


def _to(args: Any) -> str:
    return str(args.workspace_id)


app = App(
    name="platform",
    tables=(WORKSPACES, AUDIT),
    mutations=(
        MutationSpec(
            name="workspaces:create",
            args_type=CreateArgs,
            aggregate=WORKSPACES.aggregate,
            route=None,
            handle=create,
        ),
        MutationSpec(
            name="workspaces:rename",
            args_type=RenameArgs,
            aggregate=WORKSPACES.aggregate,
            route=_to,
            handle=rename,
        ),
        MutationSpec(
            name="workspaces:describe",
            args_type=DescribeArgs,
            aggregate=WORKSPACES.aggregate,
            route=_to,
            handle=describe,
        ),
        MutationSpec(
            name="workspaces:configure",
            args_type=ConfigureArgs,
            aggregate=WORKSPACES.aggregate,
            route=_to,
            handle=configure,
        ),
        MutationSpec(
            name="workspaces:delete",
            args_type=IdArgs,
            aggregate=WORKSPACES.aggregate,
            route=_to,
            handle=delete,
        ),
    ),
    queries=(
        QuerySpec(name="workspaces:get", args_type=IdArgs, evaluate=get),
        QuerySpec(name="workspaces:list", args_type=ListArgs, evaluate=list_workspaces),
        QuerySpec(name="workspaces:audit", args_type=IdArgs, evaluate=audit_of),
        QuerySpec(name="workspaces:search", args_type=SearchArgs, evaluate=search),
    ),
)
