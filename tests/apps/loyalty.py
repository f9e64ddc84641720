"""The loyalty app's current version: what changed since `tests/fixtures/evolution/loyalty_v1.py`
wrote the journal checked in beside it, and how old rows are read (docs/apps.md, "Changing an
app"):

- `MemberJoined` is at schema 2: the one `name` became `firstName` and `lastName`, and emails
  are stored lower-case (a normalization, as venue CRMs run); its upcaster turns a schema-1
  payload into that.
- `PointsEarned` is at schema 2: it gained `reason`; rows written before say "purchase".
- The member state gained `tier` and split the name, so `MEMBER.state_version` is 2: the
  snapshot's version-1 states are not read; members are folded from their events.
- `MemberErased` is new: erasing a member rewrites its old rows, redacted, at schema 2.
"""

from __future__ import annotations

from typing import Any

import attrs

from domain import (
    Aggregate,
    App,
    Decision,
    Event,
    Identity,
    MutationSpec,
    NotFound,
    QuerySpec,
    View,
)
from domain.model import Erasure

GOLD_POINTS = 1000


class LoyaltyEvent(Event):
    namespace = "loyalty"


def _split_name(body: dict[str, Any]) -> dict[str, Any]:
    """MemberJoined, schema 1 -> 2."""
    first, _, last = body.pop("name").partition(" ")
    return {**body, "firstName": first, "lastName": last, "email": body["email"].lower()}


@attrs.frozen(kw_only=True)
class MemberJoined(LoyaltyEvent):
    schema = 2
    upcasters = {1: _split_name}
    personal_fields = ("first_name", "last_name", "email")

    first_name: str
    last_name: str
    email: str


@attrs.frozen(kw_only=True)
class PointsEarned(LoyaltyEvent):
    schema = 2
    upcasters = {1: lambda body: {**body, "reason": "purchase"}}

    points: int
    reason: str


@attrs.frozen(kw_only=True)
class MemberErased(Erasure):
    namespace = "loyalty"


@attrs.frozen(kw_only=True)
class Member:
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    points: int = 0
    tier: str = "none"
    reasons: tuple[str, ...] = ()


def evolve(member: Member, event: Event) -> Member:
    match event:
        case MemberJoined():
            return Member(
                first_name=event.first_name,
                last_name=event.last_name,
                email=event.email,
                tier="standard",
            )
        case PointsEarned(points=points, reason=reason):
            total = member.points + points
            tier = "gold" if total >= GOLD_POINTS else member.tier
            return attrs.evolve(member, points=total, tier=tier, reasons=(*member.reasons, reason))
        case MemberErased():
            return attrs.evolve(member, first_name="", last_name="", email="")
    raise TypeError(type(event).__name__)


MEMBER = Aggregate(
    kind="member",
    id_prefix="mb",
    state_type=Member,
    initial=Member(),
    evolve=evolve,
    state_version=2,
)


@attrs.frozen(kw_only=True)
class JoinArgs:
    first_name: str
    last_name: str
    email: str


@attrs.frozen(kw_only=True)
class EarnArgs:
    member_id: str
    points: int
    reason: str = "purchase"


@attrs.frozen(kw_only=True)
class MemberIdArgs:
    member_id: str


def join(d: Decision[Member], args: JoinArgs) -> str:
    d.emit(
        MemberJoined,
        first_name=args.first_name,
        last_name=args.last_name,
        email=args.email.lower(),
    )
    return d.aggregate_id


def _existing(d: Decision[Member]) -> None:
    if d.state.tier == "none":
        raise NotFound("Member not found.")


def earn(d: Decision[Member], args: EarnArgs) -> int:
    _existing(d)
    d.emit(PointsEarned, points=args.points, reason=args.reason)
    return d.state.points


def erase(d: Decision[Member], args: MemberIdArgs) -> None:
    _existing(d)
    d.emit(MemberErased)


def get(view: View, args: MemberIdArgs, identity: Identity) -> dict[str, object] | None:
    member = view.aggregate(MEMBER, args.member_id)
    if member is None:
        return None
    return {
        "firstName": member.first_name,
        "lastName": member.last_name,
        "email": member.email,
        "points": member.points,
        "tier": member.tier,
        "reasons": list(member.reasons),
    }


def _to_member(args: Any) -> str:
    return str(args.member_id)


app = App(
    name="loyalty",
    aggregates=(MEMBER,),
    mutations=(
        MutationSpec(
            name="loyalty:join", args_type=JoinArgs, aggregate=MEMBER, route=None, handle=join
        ),
        MutationSpec(
            name="loyalty:earn", args_type=EarnArgs, aggregate=MEMBER, route=_to_member, handle=earn
        ),
        MutationSpec(
            name="loyalty:erase",
            args_type=MemberIdArgs,
            aggregate=MEMBER,
            route=_to_member,
            handle=erase,
        ),
    ),
    queries=(QuerySpec(name="loyalty:get", args_type=MemberIdArgs, evaluate=get),),
)
