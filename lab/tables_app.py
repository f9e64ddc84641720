"""The app lab.tables_bench serves: one record shape written two ways, side by side.

A message of an organization's channel (`org_id`, `channel`, `author`, `number`, `body`):

- as a table (`domain.tables`): `MESSAGES`, owned by `org_id`, indexed `by_channel` (org,
  channel, number) and `by_author` (org, author); `benchTable:insert` inserts one document and
  `benchTable:latest` reads a channel's newest messages from an index range;
- by hand, the way an app wrote records before tables (tests/apps/giftcards.py): an aggregate
  `POST` with one event, `PostWritten`, and two read models of the same two groupings
  (`CHANNELS`, `AUTHORS`: per organization and channel or author, id -> number);
  `benchAggregate:create` creates one and `benchAggregate:latest` reads a channel's newest by
  sorting its entries.

Both write one journal row per call and keep both groupings, so their difference is what the
table machinery costs (or saves) over the hand-written path.
"""

from __future__ import annotations

from typing import Any

import attrs
import immutables

from domain import (
    Aggregate,
    App,
    Decision,
    Event,
    Identity,
    MutationSpec,
    Projection,
    QuerySpec,
    View,
    org_for_new_record,
)
from domain.tables import Index, Table, db

NAMESPACE = "tablebench"
#: How many messages a `latest` query answers at most.
LATEST = 20


# -- the table --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Message:
    org_id: str
    channel: str
    author: str
    number: int
    body: str


MESSAGES: Table[Message] = Table(
    namespace=NAMESPACE,
    name="messages",
    document=Message,
    id_prefix="ms",
    indexes=(
        Index.of("by_channel", "org_id", "channel", "number"),
        Index.of("by_author", "org_id", "author"),
    ),
    owner="org_id",
)


@attrs.frozen(kw_only=True)
class WriteArgs:
    channel: str
    author: str
    number: int
    body: str
    org_id: str | None = None


@attrs.frozen(kw_only=True)
class LatestArgs:
    channel: str
    #: Only messages numbered at least this (the index range's lower bound).
    since: int = 0
    org_id: str | None = None


def insert(d: Decision[Any], args: WriteArgs) -> str:
    """benchTable:insert -> the new document's id."""
    org_id = org_for_new_record(d.identity, args.org_id)
    document = Message(
        org_id=org_id, channel=args.channel, author=args.author, number=args.number, body=args.body
    )
    doc_id: str = db(d).insert(MESSAGES, document)
    return doc_id


def _message(doc_id: str, number: int, author: str, body: str) -> dict[str, Any]:
    return {"_id": doc_id, "number": number, "author": author, "body": body}


def latest_documents(view: View, args: LatestArgs, identity: Identity) -> list[dict[str, Any]]:
    """benchTable:latest -> the channel's newest `LATEST` messages numbered `since` or more,
    newest first."""
    q = db(view, identity).query(MESSAGES).with_index("by_channel", channel=args.channel)
    found = q.gte("number", args.since).order("desc").take(LATEST)
    return [_message(s.id, s.document.number, s.document.author, s.document.body) for s in found]


# -- the same records by hand: an aggregate and two read models ----------------------------------


class BenchEvent(Event):
    namespace = NAMESPACE


@attrs.frozen(kw_only=True)
class PostWritten(BenchEvent):
    org_id: str
    channel: str
    author: str
    number: int
    body: str


@attrs.frozen(kw_only=True)
class Post:
    org_id: str = ""
    channel: str = ""
    author: str = ""
    number: int = 0
    body: str = ""


def evolve(post: Post, event: Event) -> Post:
    if isinstance(event, PostWritten):
        return Post(
            org_id=event.org_id,
            channel=event.channel,
            author=event.author,
            number=event.number,
            body=event.body,
        )
    raise TypeError(f"{type(event).__name__} is not a post event")


POST = Aggregate(
    kind="tablebench_post", id_prefix="bp", state_type=Post, initial=Post(), evolve=evolve
)

#: Per "org/channel" (or "org/author"), its posts: id -> number.
Groups = immutables.Map[str, immutables.Map[str, int]]


def _grouping(name: str, field: str) -> Projection[Groups]:
    def key(event: PostWritten) -> str:
        return f"{event.org_id}/{getattr(event, field)}"

    def apply(groups: Groups, event: Event) -> Groups:
        if not isinstance(event, PostWritten):
            return groups
        group = key(event)
        entries = groups.get(group, immutables.Map())
        return groups.set(group, entries.set(event.stream.partition("/")[2], event.number))

    def keys(event: Event) -> tuple[str, ...]:
        return (key(event),) if isinstance(event, PostWritten) else ()

    return Projection(
        name=f"{NAMESPACE}.{name}",
        state_type=Groups,
        initial=immutables.Map(),
        apply=apply,
        keys=keys,
        event_types=(PostWritten,),
    )


CHANNELS = _grouping("channels", "channel")
AUTHORS = _grouping("authors", "author")


def create(d: Decision[Post], args: WriteArgs) -> str:
    """benchAggregate:create -> the new post's id."""
    org_id = org_for_new_record(d.identity, args.org_id)
    d.emit(
        PostWritten,
        org_id=org_id,
        channel=args.channel,
        author=args.author,
        number=args.number,
        body=args.body,
    )
    return d.aggregate_id


def latest_posts(view: View, args: LatestArgs, identity: Identity) -> list[dict[str, Any]]:
    """benchAggregate:latest -> as benchTable:latest, from the channel's read-model entries
    (sorted by number on every evaluation) and each post's aggregate state."""
    group = f"{org_for_new_record(identity, args.org_id)}/{args.channel}"
    entries = view.projection(CHANNELS, group).get(group, immutables.Map())
    newest = sorted(
        ((number, post_id) for post_id, number in entries.items() if number >= args.since),
        reverse=True,
    )[:LATEST]
    out = []
    for _, post_id in newest:
        post = view.aggregate(POST, post_id)
        assert post is not None, "a listed post has events"
        out.append(_message(post_id, post.number, post.author, post.body))
    return out


app = App(
    name=NAMESPACE,
    tables=(MESSAGES,),
    aggregates=(POST,),
    projections=(CHANNELS, AUTHORS),
    mutations=(
        MutationSpec(
            name="benchTable:insert",
            args_type=WriteArgs,
            aggregate=MESSAGES.aggregate,
            route=None,
            handle=insert,
        ),
        MutationSpec(
            name="benchAggregate:create",
            args_type=WriteArgs,
            aggregate=POST,
            route=None,
            handle=create,
        ),
    ),
    queries=(
        QuerySpec(name="benchTable:latest", args_type=LatestArgs, evaluate=latest_documents),
        QuerySpec(name="benchAggregate:latest", args_type=LatestArgs, evaluate=latest_posts),
    ),
)
