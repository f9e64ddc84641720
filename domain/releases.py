"""Release history (the platform seed's deployments): what a deploy pipeline reports, kept and
served live.

A deployment is one aggregate (`release/dpl_<digest of its deployment id>`), so reports of one
deployment are serial: the pipeline posts it as it goes (`queued`, `building`, `ready`,
`failed`...) and the newest report is its state; an identical re-post (a retry) writes nothing.
`releases:record` (admin: `POST /releases/ingest` calls it with the pipeline's JSON) records a
report; `releases:list` serves the history, newest deployment first, of every service or one,
live, to any signed-in caller (deployments are the platform's, not an organization's).
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs
import immutables

from domain.errors import Forbidden, InvalidArgs
from domain.identity import Identity, require_authenticated
from domain.model import (
    Aggregate,
    Decision,
    Event,
    Module,
    MutationSpec,
    Projection,
    QuerySpec,
    View,
)
from domain.pagination import PaginationOpts, paginate, scope_of

RELEASE_PREFIX = "dpl"
#: Longest deployment id, service, commit and status taken, in characters.
MAX_FIELD = 200
HISTORY = "releases"


@attrs.frozen(kw_only=True)
class ReleaseReported(Event):
    """Deployment `deployment_id` of `service` at `commit` was reported `status`; `deployed_at`
    is the pipeline's time for it (ms since the epoch)."""

    deployment_id: str
    service: str
    commit: str
    status: str
    deployed_at: int


@attrs.frozen(kw_only=True)
class Release:
    deployment_id: str = ""
    service: str = ""
    commit: str = ""
    status: str = ""
    deployed_at: int = 0
    #: When it was first and last reported (ms; the journal's times), and how many times.
    first_reported_at: int = 0
    reported_at: int = 0
    reports: int = 0


def _evolve(state: Release, event: Event) -> Release:
    if not isinstance(event, ReleaseReported):
        raise TypeError(f"{type(event).__name__} is not a release's")
    return Release(
        deployment_id=event.deployment_id,
        service=event.service,
        commit=event.commit,
        status=event.status,
        deployed_at=event.deployed_at,
        first_reported_at=state.first_reported_at or event.at,
        reported_at=event.at,
        reports=state.reports + 1,
    )


RELEASE: Aggregate[Release] = Aggregate(
    kind="release", id_prefix=RELEASE_PREFIX, state_type=Release, initial=Release(), evolve=_evolve
)


def release_id(deployment_id: str) -> str:
    digest = hashlib.blake2b(deployment_id.encode(), digest_size=12).hexdigest()
    return f"{RELEASE_PREFIX}_{digest}"


@attrs.frozen(kw_only=True)
class RecordReleaseArgs:
    """`{deploymentId, service, commit, status, deployedAt}`: releases:record."""

    deployment_id: str
    service: str
    commit: str
    status: str
    deployed_at: int


@attrs.frozen(kw_only=True)
class ListReleasesArgs:
    """`{service?, paginationOpts?}`: releases:list."""

    service: str | None = None
    pagination_opts: PaginationOpts | None = None


def _field(name: str, value: str) -> str:
    text = value.strip()
    if not text or len(text) > MAX_FIELD:
        raise InvalidArgs(f"{name} is 1 to {MAX_FIELD} characters.", path=name)
    return text


def record_release(d: Decision[Release], args: RecordReleaseArgs) -> str:
    """releases:record (admin) -> the release's id; a report equal to the last one writes
    nothing."""
    require_authenticated(d.identity)
    if not d.identity.is_admin:
        raise Forbidden("Only the deploy pipeline (admin key) records releases.")
    if args.deployed_at < 0:
        raise InvalidArgs("deployedAt is ms since the epoch.", path="deployedAt")
    fields = {
        "deployment_id": _field("deploymentId", args.deployment_id),
        "service": _field("service", args.service),
        "commit": _field("commit", args.commit),
        "status": _field("status", args.status),
    }
    state = d.state
    same = (state.deployment_id, state.service, state.commit, state.status, state.deployed_at)
    if state.reports and same == (*fields.values(), args.deployed_at):
        return d.aggregate_id
    if state.reports and state.deployment_id != fields["deployment_id"]:  # a digest collision
        raise InvalidArgs("This deployment id cannot be recorded.", path="deploymentId")
    d.emit(ReleaseReported, deployed_at=args.deployed_at, **fields)
    return d.aggregate_id


def route_release(args: RecordReleaseArgs) -> str:
    return release_id(args.deployment_id.strip())


@attrs.frozen(kw_only=True)
class ReleaseHistory:
    """Every deployment's newest report, by its aggregate id."""

    releases: immutables.Map[str, Release] = attrs.field(factory=immutables.Map)


def _apply(state: ReleaseHistory, event: Event) -> ReleaseHistory:
    assert isinstance(event, ReleaseReported)
    rid = event.stream.partition("/")[2]
    before = state.releases.get(rid, Release())
    return ReleaseHistory(releases=state.releases.set(rid, _evolve(before, event)))


def _keys(event: Event) -> list[str]:
    return [HISTORY]


RELEASE_HISTORY: Projection[ReleaseHistory] = Projection(
    name="releaseHistory",
    state_type=ReleaseHistory,
    initial=ReleaseHistory(),
    apply=_apply,
    keys=_keys,
    event_types=(ReleaseReported,),
)


def _wire(rid: str, release: Release) -> dict[str, Any]:
    return {
        "_id": rid,
        "deploymentId": release.deployment_id,
        "service": release.service,
        "commit": release.commit,
        "status": release.status,
        "deployedAt": release.deployed_at,
        "firstReportedAt": release.first_reported_at,
        "reportedAt": release.reported_at,
        "reports": release.reports,
    }


def list_releases(view: View, args: ListReleasesArgs, identity: Identity) -> Any:
    """releases:list -> the history, newest deployment first (by `deployedAt`, then id)."""
    require_authenticated(identity)
    history = view.projection(RELEASE_HISTORY, HISTORY)
    rows = sorted(
        (
            (rid, release)
            for rid, release in history.releases.items()
            if args.service is None or release.service == args.service
        ),
        key=lambda found: (found[1].deployed_at, found[0]),
        reverse=True,
    )
    if args.pagination_opts is None:
        return [_wire(rid, release) for rid, release in rows]
    page = paginate(
        rows,
        key=lambda found: (found[1].deployed_at, found[0]),
        opts=args.pagination_opts,
        scope=scope_of("releases:list", args),
        descending=True,
    )
    return page.doc(lambda found: _wire(*found))


RELEASES = Module(
    aggregates=(RELEASE,),
    projections=(RELEASE_HISTORY,),
    mutations=(
        MutationSpec(
            name="releases:record",
            args_type=RecordReleaseArgs,
            aggregate=RELEASE,
            route=route_release,
            handle=record_release,
        ),
    ),
    queries=(QuerySpec(name="releases:list", args_type=ListReleasesArgs, evaluate=list_releases),),
)
