"""The boards app's current version, serving the journal its first version wrote
(tests/fixtures/table_evolution): what changed in its table, and how (docs/apps.md,
"Changing an app"):

- `title` was renamed `name`: the table is at schema 2, with an upcaster for schema-1 documents;
- `archived` is new, with a default: old documents decode with it, no upcaster needed;
- names are now stored trimmed: `normalizeCardNames`, an `AtStart` job, patches the cards whose
  name is not; it is resumable (its plan is computed again from the documents at each start, one
  idempotent command per card) and writes nothing once every card is trimmed.
"""

from __future__ import annotations

from typing import Any

import attrs

from domain import (
    ADMIN,
    App,
    AtStart,
    CronJob,
    Decision,
    Identity,
    Index,
    JobCommand,
    MutationSpec,
    NotFound,
    QuerySpec,
    Table,
    View,
    db,
)


@attrs.frozen(kw_only=True)
class Card:
    org_id: str
    name: str
    archived: bool = False


def _renamed(document: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: `title` is `name`."""
    moved = dict(document)
    moved["name"] = moved.pop("title")
    return moved


CARDS: Table[Card] = Table(
    namespace="boards",
    name="cards",
    document=Card,
    id_prefix="cd",
    indexes=(Index.of("by_name", "org_id", "name"),),
    owner="org_id",
    schema=2,
    upcasters={1: _renamed},
)


@attrs.frozen(kw_only=True)
class AddArgs:
    name: str
    org_id: str


@attrs.frozen(kw_only=True)
class CardArgs:
    card_id: str


@attrs.frozen(kw_only=True)
class ListArgs:
    org_id: str


def add(d: Decision[Any], args: AddArgs) -> str:
    card_id: str = db(d).insert(CARDS, Card(org_id=args.org_id, name=args.name.strip()))
    return card_id


def normalize(d: Decision[Any], args: CardArgs) -> None:
    """cards:normalize (the backfill's command; admin only): trim the card's name."""
    if not d.identity.is_admin:
        raise NotFound("No such card.")
    card = db(d).get(CARDS, args.card_id)
    if card is not None and card.name != card.name.strip():
        db(d).patch(CARDS, args.card_id, name=card.name.strip())


def list_cards(view: View, args: ListArgs, identity: Identity) -> list[dict[str, Any]]:
    q = db(view, identity).query(CARDS).with_index("by_name", org_id=args.org_id)
    return [{"name": s.document.name, "archived": s.document.archived} for s in q.collect()]


def plan_normalize(view: View, now: int) -> list[JobCommand]:
    """Every card whose name is not trimmed yet (all organizations: the system caller)."""
    every = db(view, ADMIN).query(CARDS).with_index("by_name").collect()
    return [
        JobCommand(mutation="cards:normalize", args={"cardId": stored.id}, key=stored.id)
        for stored in every
        if stored.document.name != stored.document.name.strip()
    ]


def _to(args: Any) -> str:
    return str(args.card_id)


app = App(
    name="boards",
    tables=(CARDS,),
    mutations=(
        MutationSpec(
            name="cards:add", args_type=AddArgs, aggregate=CARDS.aggregate, route=None, handle=add
        ),
        MutationSpec(
            name="cards:normalize",
            args_type=CardArgs,
            aggregate=CARDS.aggregate,
            route=_to,
            handle=normalize,
        ),
    ),
    queries=(QuerySpec(name="cards:list", args_type=ListArgs, evaluate=list_cards),),
    jobs=(CronJob(name="normalizeCardNames", schedule=AtStart(), plan=plan_normalize),),
)
