"""Tables: Convex's documents on the actor engine (docs/tables.md is the design).

A `Table` declares a document type (a frozen attrs class), its indexes, the field that names its
organization (tenancy) and its personal fields. It makes, at declaration:
- an aggregate kind, `namespace.name` (streams `platform.workspaces/wo_...`): each document is one
  aggregate instance, so writes to one document are serial and a patch of a deleted document is
  `NotFound`;
- four event types in the app's namespace, typed by the document class so the codec checks the
  schema on every write and read: `<Name>Inserted(document)`, `<Name>Patched(document, before,
  fields)`, `<Name>Replaced(document, before)` and `<Name>Deleted(before)` (an `Erasure` when the
  table has personal fields: a deleted document's personal data leaves the journal);
- one read model holding every live document and each index as a `SortedKeys` of
  `(values..., _creationTime, _id)`, with the owner field first when the table has one.

Writes go through `db(decision)` in a mutation (`insert`, `get`, `patch`, `replace`, `delete`):
the mutation's own aggregate is the document it routes to, and every other document is reached
by co-decision, so everything one mutation writes commits together or not at all. Reads go
through `db(view, identity)` in a query: `get(table, id)` and `query(table)` with `with_index`,
range bounds on the field after the equal ones, `order`, `filter`, `take`, `first`, `unique`,
`collect` and `paginate`. Every read is recorded by the view, so a query is live.

Evolution: a table's documents change shape with `schema` (bumped) and `upcasters`
(`{1: fn}`: a schema-1 document's dict, wire names, to schema 2), applied to the documents of
its events wherever the journal is read; a new field with a default needs none. The schema is
also the table's state and read-model version, so snapshots of another schema are folded again.
A backfill is an `AtStart` job (domain.scheduling) patching what is left to migrate.

Tenancy: for a table with `owner`, a caller that is not admin writes only documents of its own
organization (another's is refused with `Forbidden` on insert, `NotFound` otherwise) and reads
only those (`get` answers None; queries are scoped to its organization).
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs
import immutables

from domain.core import Aggregate, Decision, Erasure, Event, Projection, View, blank, replace
from domain.errors import Conflict, Forbidden, InvalidArgs, NotFound
from domain.identity import Identity
from domain.ids import is_root_id, root_id
from domain.pagination import Page, PaginationOpts, paginate
from domain.sorted_keys import Bound, SortedKeys, encode_key

D = TypeVar("D")

#: Convex's built-in index over every table: by creation time.
BY_CREATION_TIME = "by_creation_time"


@attrs.frozen
class Index:
    """An index over `fields` (document field names, in order), named as Convex names it."""

    name: str
    fields: tuple[str, ...]
    #: No two documents may hold the same values of `fields` (the owner field included): a
    #: write that would is a `Conflict` naming the document that holds them.
    unique: bool = False

    @classmethod
    def of(cls, name: str, *fields: str, unique: bool = False) -> Index:
        return cls(name, tuple(fields), unique)


@attrs.frozen
class Search:
    """A search index over the text of `field`, with equality filters on `filter_fields` (the
    owner field first, when the table has one), as Convex's `searchIndex` declares it."""

    name: str
    field: str
    filter_fields: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, field: str, *filter_fields: str) -> Search:
        return cls(name, field, tuple(filter_fields))


#: What a search matches: runs of letters and digits, case folded.
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """The search terms of `text`, in order (case folded)."""
    return [word.casefold() for word in _WORD.findall(text)]


@attrs.frozen(kw_only=True)
class UniqueClaim:
    """Who holds one set of values of a unique index: the document's `_id`, or nobody."""

    owner: str | None = None


@attrs.frozen(kw_only=True)
class Stored(Generic[D]):
    """A document as a table keeps it: the value, its `_id` and `_creationTime`."""

    id: str
    creation_time: int
    document: D


class Table(Generic[D]):
    """A table of `document`-typed documents (see the module's docstring)."""

    def __init__(
        self,
        *,
        namespace: str,
        name: str,
        document: type[D],
        id_prefix: str,
        indexes: Sequence[Index] = (),
        owner: str | None = None,
        personal: Sequence[str] = (),
        schema: int = 1,
        upcasters: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
        search: Sequence[Search] = (),
        refs: Mapping[str, str] | None = None,
    ) -> None:
        if not attrs.has(document):
            raise TypeError(f"table {name}: the document type must be an attrs class")
        fields = {f.name for f in attrs.fields(document)}
        searched = [f for each in search for f in (each.field, *each.filter_fields)]
        refs = dict(refs or {})
        named = [*(f for index in indexes for f in index.fields), owner, *personal, *searched]
        for field in [*named, *refs]:
            if field is not None and field not in fields:
                raise TypeError(f"table {name}: {document.__name__} has no field {field!r}")
        if not name.isidentifier():
            raise TypeError(f"table name {name!r} is not an identifier")
        self.namespace = namespace
        self.name = name
        self.document = document
        self.schema = schema
        self.upcasters = dict(upcasters or {})
        self.id_prefix = id_prefix
        self.owner = owner
        self.personal = tuple(personal)
        #: Fields holding ids of other tables of the app (Convex's `v.id("table")`): field ->
        #: that table's name. `App` resolves them to id prefixes (`resolve_refs`).
        self.refs = refs
        self._ref_prefixes: dict[str, str] | None = None if refs else {}
        scoped = (owner,) if owner is not None else ()
        self.indexes: dict[str, tuple[str, ...]] = {BY_CREATION_TIME: scoped}
        for index in indexes:
            if index.name in self.indexes:
                raise TypeError(f"table {name}: index {index.name!r} is declared twice")
            rest = index.fields[1:] if index.fields[:1] == scoped else index.fields
            self.indexes[index.name] = (*scoped, *rest)
        #: Search index name -> (the searched field, its filter fields, the owner's first).
        self.searches: dict[str, tuple[str, tuple[str, ...]]] = {}
        for each in search:
            if each.name in self.indexes or each.name in self.searches:
                raise TypeError(f"table {name}: index {each.name!r} is declared twice")
            rest = tuple(f for f in each.filter_fields if f != owner)
            self.searches[each.name] = (each.field, (*scoped, *rest))
        self.unique = tuple(index.name for index in indexes if index.unique)
        if self.unique and len(id_prefix) > 3:
            raise TypeError(
                f"table {name}: a table with unique indexes has an id prefix of 2-3 letters"
            )
        self.claim_prefix = f"{id_prefix}u"
        self._make_events()
        self.state_type: type[Any] = attrs.make_class(
            f"{_camel(name)}State",
            {
                "stored": attrs.field(type=Stored[document] | None, default=None),  # type: ignore[valid-type,arg-type]
                "deleted": attrs.field(type=bool, default=False),
            },
            frozen=True,
            kw_only=True,
        )
        self.aggregate: Aggregate[Any] = Aggregate(
            kind=f"{namespace}.{name}",
            id_prefix=id_prefix,
            state_type=self.state_type,
            initial=self.state_type(),
            evolve=self._evolve,
            # Documents of another schema in a snapshot are folded again from their events.
            state_version=schema,
        )
        # Snapshots store the documents; the index keys are derived again when loaded.
        self.docs_type: type[Any] = attrs.make_class(
            f"{_camel(name)}Documents",
            {"docs": attrs.field(type=immutables.Map[str, Stored[document]])},  # type: ignore[valid-type]
            frozen=True,
            kw_only=True,
        )
        #: A unique index's claims: one aggregate per set of values (kind `<kind>.unique`).
        self.claims: Aggregate[UniqueClaim] = Aggregate(
            kind=f"{namespace}.{name}.unique",
            id_prefix=self.claim_prefix,
            state_type=UniqueClaim,
            initial=UniqueClaim(),
            evolve=self._evolve_claim,
        )
        self.projection: Projection[TableIndex[D]] = Projection(
            name=f"{namespace}.{name}",
            state_type=TableIndex,
            initial=TableIndex.empty(self),
            apply=self._apply,
            keys=self._keys,
            event_types=(self.inserted, self.patched, self.replaced, self.deleted),
            version=schema,
            snapshot_type=self.docs_type,
            to_snapshot=lambda index: self.docs_type(docs=index.docs),
            from_snapshot=lambda stored: TableIndex.of(self, stored.docs.values()),
        )

    def __repr__(self) -> str:
        return f"Table({self.namespace}.{self.name})"

    def resolve_refs(self, tables: Iterable[Table[Any]]) -> None:
        """Resolve `refs` against the tables of the app (`App` does it when it is declared);
        a name that is not one of them raises TypeError."""
        by_name = {t.name: t.id_prefix for t in tables if t.namespace == self.namespace}
        missing = sorted(set(self.refs.values()) - set(by_name))
        if missing:
            raise TypeError(
                f"table {self.name}: refs name no table of app {self.namespace}: "
                + ", ".join(missing)
            )
        self._ref_prefixes = {field: by_name[target] for field, target in self.refs.items()}

    def check_refs(self, document: D) -> None:
        """InvalidArgs unless each ref field holds ids of its table (None, one id, or a
        list of them), as Convex's `v.id` checks an id's table but not that it exists."""
        prefixes = self._ref_prefixes
        if prefixes is None:
            raise RuntimeError(f"table {self.name}: its refs are resolved by the App it is in")
        for field, prefix in prefixes.items():
            value = getattr(document, field)
            values = value if isinstance(value, list | tuple) else (value,)
            for each in values:
                if each is not None and not (isinstance(each, str) and is_root_id(each, prefix)):
                    head, *rest = field.split("_")
                    raise InvalidArgs(
                        f"{head}{''.join(w.title() for w in rest)} must be an id of table"
                        f" {self.refs[field]}, not {each!r}.",
                        path="".join([head, *(w.title() for w in rest)]),
                    )

    # -- events and folding ----------------------------------------------------------------------

    def _make_events(self) -> None:
        doc, camel, ns = self.document, _camel(self.name), self.namespace
        personal = self.personal

        def body(extra: dict[str, Any]) -> dict[str, Any]:
            steps = {n: _on_documents(step) for n, step in self.upcasters.items()}
            return {
                "namespace": ns,
                "__module__": doc.__module__,
                "schema": self.schema,
                "upcasters": steps,
                **extra,
            }

        def redacted(event: Any) -> Any:
            return replace(
                event,
                **{
                    name: _blank_fields(getattr(event, name), personal)
                    for name in ("document", "before")
                    if hasattr(event, name)
                },
            )

        redaction = {"personal_fields": ("document",), "redacted": redacted} if personal else {}
        self.inserted: type[Event] = attrs.make_class(
            f"{camel}Inserted",
            {"document": attrs.field(type=doc)},
            bases=(Event,),
            frozen=True,
            kw_only=True,
            class_body=body(redaction),
        )
        self.patched: type[Event] = attrs.make_class(
            f"{camel}Patched",
            {
                "document": attrs.field(type=doc),
                "before": attrs.field(type=doc),
                "fields": attrs.field(type=tuple[str, ...]),
            },
            bases=(Event,),
            frozen=True,
            kw_only=True,
            class_body=body(redaction),
        )
        self.replaced: type[Event] = attrs.make_class(
            f"{camel}Replaced",
            {"document": attrs.field(type=doc), "before": attrs.field(type=doc)},
            bases=(Event,),
            frozen=True,
            kw_only=True,
            class_body=body(redaction),
        )
        self.claim_taken: type[Event] = attrs.make_class(
            f"{camel}ClaimTaken",
            {"owner": attrs.field(type=str)},
            bases=(Event,),
            frozen=True,
            kw_only=True,
            class_body=body({}),
        )
        self.claim_released: type[Event] = attrs.make_class(
            f"{camel}ClaimReleased",
            {},
            bases=(Event,),
            frozen=True,
            kw_only=True,
            class_body=body({}),
        )
        self.deleted: type[Event] = attrs.make_class(
            f"{camel}Deleted",
            {"before": attrs.field(type=doc)},
            bases=(Erasure if personal else Event,),
            frozen=True,
            kw_only=True,
            class_body=body(redaction),
        )

    def _evolve(self, state: Any, event: Event) -> Any:
        kind = type(event)
        if kind is self.inserted:
            doc_id = event.stream.partition("/")[2]
            stored = Stored(id=doc_id, creation_time=event.at, document=event.document)  # type: ignore[attr-defined]
            return self.state_type(stored=stored)
        if kind is self.patched or kind is self.replaced:
            old = state.stored
            return self.state_type(stored=replace(old, document=event.document))  # type: ignore[attr-defined]
        if kind is self.deleted:
            return self.state_type(stored=None, deleted=True)
        raise TypeError(f"{type(event).__name__} is not an event of table {self.name}")

    def _evolve_claim(self, state: UniqueClaim, event: Event) -> UniqueClaim:
        if type(event) is self.claim_taken:
            return UniqueClaim(owner=event.owner)  # type: ignore[attr-defined]
        if type(event) is self.claim_released:
            return UniqueClaim()
        raise TypeError(f"{type(event).__name__} is not a claim of table {self.name}")

    @property
    def aggregates(self) -> tuple[Aggregate[Any], ...]:
        """The aggregate kinds the table brings: its documents', and its claims' if any."""
        return (self.aggregate, self.claims) if self.unique else (self.aggregate,)

    def claim_id(self, index: str, document: D) -> str:
        values = tuple(getattr(document, f) for f in self.indexes[index])
        digest = hashlib.blake2b(repr((index, values)).encode(), digest_size=12).hexdigest()
        return root_id(self.claim_prefix, digest)

    def _apply(self, index: TableIndex[D], event: Event) -> TableIndex[D]:
        doc_id = event.stream.partition("/")[2]
        kind = type(event)
        if kind is self.inserted:
            return index.put(Stored(id=doc_id, creation_time=event.at, document=event.document))  # type: ignore[attr-defined]
        if kind is self.patched or kind is self.replaced:
            old = index.docs[doc_id]
            return index.put(replace(old, document=event.document))  # type: ignore[attr-defined]
        if kind is self.deleted:
            return index.drop(doc_id)
        return index

    def _keys(self, event: Event) -> Iterator[str]:
        """The read keys an event may change: for each index, every equal-prefix of the
        document's key before and after (a query registers the prefix it fixes)."""
        for name in ("document", "before"):
            doc = getattr(event, name, None)
            if doc is None:
                continue
            for index, fields in self.indexes.items():
                values = tuple(getattr(doc, f) for f in fields)
                for n in range(len(values) + 1):
                    yield read_key(index, values[:n])
            for name, (_, filters) in self.searches.items():
                values = tuple(getattr(doc, f) for f in filters)
                for n in range(len(values) + 1):
                    yield read_key(name, values[:n])

    # -- helpers ------------------------------------------------------------------------------

    def owner_of(self, document: D) -> str | None:
        return None if self.owner is None else getattr(document, self.owner)

    def search_keys(self, name: str, stored: Stored[D]) -> list[tuple[Any, ...]]:
        """A document's keys in search index `name`: one per distinct word of its field."""
        field, filters = self.searches[name]
        values = tuple(getattr(stored.document, f) for f in filters)
        text = getattr(stored.document, field)
        terms = sorted(set(words(text))) if isinstance(text, str) else []
        return [(*values, term, stored.creation_time, stored.id) for term in terms]

    def index_key(self, index: str, stored: Stored[D]) -> tuple[Any, ...]:
        fields = self.indexes[index]
        values = tuple(getattr(stored.document, f) for f in fields)
        return (*values, stored.creation_time, stored.id)


def read_key(index: str, prefix: tuple[Any, ...]) -> str:
    """The key a query over `index` with equal `prefix` registers (and events name)."""
    return f"{index}:{prefix!r}"


def _on_documents(
    step: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A table's document upcaster as its events' upcaster: applied to each document the
    payload holds (`document`, `before`); a patch's `fields` names are left as written."""

    def upcast(body: dict[str, Any]) -> dict[str, Any]:
        return {
            key: step(value) if key in ("document", "before") and isinstance(value, dict) else value
            for key, value in body.items()
        }

    return upcast


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _blank_fields(document: Any, names: Sequence[str]) -> Any:
    return replace(document, **{name: blank(getattr(document, name)) for name in names})


# -- the read model -------------------------------------------------------------------------------


class TableIndex(Generic[D]):
    """Every live document of a table and its indexes: a persistent value (each update is a new
    one sharing the rest), so a query evaluated at an earlier journal position keeps what it
    read."""

    __slots__ = ("docs", "keys", "table")

    def __init__(
        self, table: Table[D], docs: immutables.Map[str, Stored[D]], keys: dict[str, SortedKeys]
    ) -> None:
        self.table = table
        self.docs = docs
        self.keys = keys

    @classmethod
    def empty(cls, table: Table[D]) -> TableIndex[D]:
        names = [*table.indexes, *table.searches]
        return cls(table, immutables.Map(), {name: SortedKeys.EMPTY for name in names})

    @classmethod
    def of(cls, table: Table[D], documents: Iterable[Stored[D]]) -> TableIndex[D]:
        index = cls.empty(table)
        for stored in documents:
            index = index.put(stored)
        return index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TableIndex) and other.docs == self.docs

    def __hash__(self) -> int:
        return hash(self.docs)

    def _keys_of(self, name: str, stored: Stored[D]) -> list[tuple[Any, ...]]:
        if name in self.table.searches:
            return self.table.search_keys(name, stored)
        return [self.table.index_key(name, stored)]

    def put(self, stored: Stored[D]) -> TableIndex[D]:
        keys = dict(self.keys)
        old = self.docs.get(stored.id)
        for name in keys:
            if old is not None:
                for key in self._keys_of(name, old):
                    keys[name] = keys[name].remove(key)
            for key in self._keys_of(name, stored):
                keys[name] = keys[name].add(key)
        return TableIndex(self.table, self.docs.set(stored.id, stored), keys)

    def drop(self, doc_id: str) -> TableIndex[D]:
        old = self.docs.get(doc_id)
        if old is None:
            return self
        keys = dict(self.keys)
        for name in keys:
            for key in self._keys_of(name, old):
                keys[name] = keys[name].remove(key)
        return TableIndex(self.table, self.docs.delete(doc_id), keys)


# -- writing, in a mutation -----------------------------------------------------------------------


class Writes:
    """`db(decision)`: a mutation's reads and writes of documents (see the module's docstring)."""

    def __init__(self, decision: Decision[Any]) -> None:
        self._d = decision

    def _part(self, table: Table[Any], doc_id: str) -> Decision[Any]:
        d = self._d
        if not isinstance(doc_id, str) or not is_root_id(doc_id, table.id_prefix):
            raise NotFound(f"No {table.name} document with id {doc_id!r}.")
        if d.stream == table.aggregate.stream_of(doc_id):
            return d
        return d.co_decide(table.aggregate, doc_id)

    def _visible(self, table: Table[D], part: Decision[Any]) -> Stored[D] | None:
        stored: Stored[D] | None = part.state.stored
        if stored is None:
            return None
        owner = table.owner_of(stored.document)
        identity = self._d.identity
        if owner is not None and not identity.is_admin and owner != identity.org_id:
            return None
        return stored

    def insert(self, table: Table[D], document: D) -> str:
        """Insert `document`; its new `_id`. The mutation's own document when it routes to a
        new one (`route=None`) of this table, else a new document co-decided with it."""
        if not isinstance(document, table.document):
            raise TypeError(f"{table.name} stores {table.document.__name__}, not {type(document)}")
        table.check_refs(document)
        owner = table.owner_of(document)
        identity = self._d.identity
        if owner is not None and not identity.is_admin and owner != identity.org_id:
            raise Forbidden(f"A {table.name} document must belong to the caller's organization.")
        d = self._d
        own = d.stream.partition("/")[0] == table.aggregate.kind
        if own and d.version == 0 and d.state.stored is None and not d.events:
            part = d
        else:
            part = d.co_decide(table.aggregate, root_id(table.id_prefix, d.new_token()))
        self._take(table, document, part.aggregate_id)
        part.emit(table.inserted, document=document)
        return part.aggregate_id

    def _take(self, table: Table[D], document: D, doc_id: str) -> None:
        """Hold `document`'s values of each unique index for `doc_id`, or `Conflict`."""
        for index in table.unique:
            claim = self._d.co_decide(table.claims, table.claim_id(index, document))
            owner = claim.state.owner
            if owner == doc_id:
                continue
            if owner is not None:
                fields = ", ".join(table.indexes[index])
                raise Conflict(
                    f"A {table.name} document with this {fields} exists.",
                    index=index,
                    existingId=owner,
                )
            claim.emit(table.claim_taken, owner=doc_id)

    def _release(self, table: Table[D], document: D, doc_id: str, kept: D | None = None) -> None:
        """Give up `document`'s unique values held by `doc_id` (those `kept` still holds
        aside)."""
        for index in table.unique:
            claim_id = table.claim_id(index, document)
            if kept is not None and table.claim_id(index, kept) == claim_id:
                continue
            claim = self._d.co_decide(table.claims, claim_id)
            if claim.state.owner == doc_id:
                claim.emit(table.claim_released)

    def get(self, table: Table[D], doc_id: str) -> D | None:
        """The document (this mutation's writes included), or None: missing, deleted, or of
        another organization."""
        try:
            stored = self._visible(table, self._part(table, doc_id))
        except NotFound:
            return None
        return None if stored is None else stored.document

    def _existing(self, table: Table[D], doc_id: str) -> tuple[Decision[Any], Stored[D]]:
        part = self._part(table, doc_id)
        stored = self._visible(table, part)
        if stored is None:
            raise NotFound(f"No {table.name} document with id {doc_id!r}.")
        return part, stored

    def patch(self, table: Table[D], doc_id: str, **changes: Any) -> D:
        """Change the fields given; the new document. NotFound for a missing, deleted or
        another organization's document; InvalidArgs for a field the document has not."""
        part, stored = self._existing(table, doc_id)
        known = {f.name for f in attrs.fields(table.document)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidArgs(f"{table.name} has no field {unknown[0]!r}.", path=unknown[0])
        document = attrs.evolve(stored.document, **changes)  # type: ignore[misc]
        if not table.refs.keys().isdisjoint(changes):
            table.check_refs(document)
        self._keep_owner(table, stored.document, document)
        self._take(table, document, doc_id)
        self._release(table, stored.document, doc_id, kept=document)
        part.emit(table.patched, document=document, before=stored.document, fields=tuple(changes))
        return document

    def replace(self, table: Table[D], doc_id: str, document: D) -> None:
        part, stored = self._existing(table, doc_id)
        table.check_refs(document)
        self._keep_owner(table, stored.document, document)
        self._take(table, document, doc_id)
        self._release(table, stored.document, doc_id, kept=document)
        part.emit(table.replaced, document=document, before=stored.document)

    def delete(self, table: Table[D], doc_id: str) -> None:
        part, stored = self._existing(table, doc_id)
        self._release(table, stored.document, doc_id)
        part.emit(table.deleted, before=stored.document)

    def query(self, table: Table[D]) -> Query[D]:
        """`query(table)` as a query has it (`Reads.query`: indexes, ranges, order, filter,
        `take`, `first`, `unique`, `collect`, `paginate`), over the committed documents
        (`Decision.committed_view`) with this mutation's own writes in place: what it inserted,
        patched or replaced is read as written, what it deleted is gone. Documents other
        commands wrote and that are not yet durable are not seen, so a rule that no two
        documents may share a value needs a `unique` index, not a query that finds none."""
        mine: dict[str, Stored[D] | None] = {}
        kind = table.aggregate.kind
        d = self._d
        for part in (d, *d.co_decided()):
            if part.events and part.stream.partition("/")[0] == kind:
                mine[part.aggregate_id] = part.state.stored
        query = Reads(d.committed_view(), d.identity).query(table)
        return query._with(overlay=mine) if mine else query

    @staticmethod
    def _keep_owner(table: Table[D], before: D, after: D) -> None:
        if table.owner_of(before) != table.owner_of(after):
            raise Forbidden(f"A {table.name} document cannot move to another organization.")


# -- reading, in a query --------------------------------------------------------------------------


class Reads:
    """`db(view, identity)`: a query's reads of documents."""

    def __init__(self, view: View, identity: Identity) -> None:
        self._view = view
        self._identity = identity

    def get(self, table: Table[D], doc_id: str) -> D | None:
        stored = self.get_stored(table, doc_id)
        return None if stored is None else stored.document

    def get_stored(self, table: Table[D], doc_id: str) -> Stored[D] | None:
        """The document with its `_id` and `_creationTime`, or None (as `get`)."""
        if not isinstance(doc_id, str) or not is_root_id(doc_id, table.id_prefix):
            return None
        state = self._view.aggregate(table.aggregate, doc_id)
        stored: Stored[D] | None = None if state is None else state.stored
        if stored is None:
            return None
        owner = table.owner_of(stored.document)
        if owner is not None and not self._identity.is_admin and owner != self._identity.org_id:
            return None
        return stored

    def query(self, table: Table[D]) -> Query[D]:
        query = Query(self._view, self._identity, table)
        # Scoped to the caller's organization from the start (an admin's: every one).
        return query.with_index(BY_CREATION_TIME) if table.owner is not None else query

    def search(
        self, table: Table[D], name: str, text: str, *, limit: int = 100, **filters: Any
    ) -> list[Stored[D]]:
        """The documents whose field holds every word of `text` (the last one as a prefix, as
        a user types it), filtered by `filters` equal (the owner's is the caller's
        organization), newest first, at most `limit`. Live, as every read here."""
        found = table.searches.get(name)
        if found is None:
            raise InvalidArgs(f"{table.name} has no search index {name!r}.", path="index")
        field, filter_fields = found
        owner = table.owner
        if owner is not None and owner not in filters:
            if not self._identity.is_admin:
                filters = {owner: self._identity.org_id, **filters}
            else:
                raise InvalidArgs(f"Admin callers name the organization ({owner}).", path=owner)
        if set(filters) != set(filter_fields):
            raise InvalidArgs(
                f"Search {name} of {table.name} filters on {', '.join(filter_fields)}.",
                path="filters",
            )
        terms = words(text)
        if not terms:
            return []
        prefix = tuple(filters[f] for f in filter_fields)
        state = self._view.projection(table.projection, read_key(name, prefix))
        last = terms[-1]
        ids: set[str] = set()
        for key in state.keys[name].scan(
            prefix=prefix,
            lower=Bound(last, inclusive=True),
            upper=Bound(last + "\U0010ffff", inclusive=False),
        ):
            ids.add(str(key[-1]))
        matches = []
        whole = set(terms[:-1])
        for doc_id in ids:
            stored = state.docs[doc_id]
            have = set(words(getattr(stored.document, field)))
            if whole <= have:
                matches.append(stored)
        matches.sort(key=lambda s: (s.creation_time, s.id), reverse=True)
        return matches[:limit]


@attrs.frozen
class _Range:
    lower: Bound | None = None
    upper: Bound | None = None


class Query(Generic[D]):
    """`db(view, identity).query(table)`: which documents, in which order (see the module's
    docstring). Immutable: each step returns a new query."""

    def __init__(
        self,
        view: View,
        identity: Identity,
        table: Table[D],
        *,
        index: str = BY_CREATION_TIME,
        equal: tuple[Any, ...] = (),
        bounds: _Range = _Range(),
        descending: bool = False,
        predicate: Callable[[D], bool] | None = None,
        nothing: bool = False,
        overlay: Mapping[str, Stored[D] | None] | None = None,
    ) -> None:
        self._view, self._identity, self._table = view, identity, table
        #: In a mutation: the documents it wrote itself, by id (None: deleted), read in place
        #: of their committed versions.
        self._overlay = overlay
        #: A query that can match nothing (another organization's documents, for a user).
        self._nothing = nothing
        self._index, self._equal, self._bounds = index, equal, bounds
        self._descending, self._predicate = descending, predicate

    def _with(self, **changes: Any) -> Query[D]:
        fields = {
            "index": self._index,
            "equal": self._equal,
            "bounds": self._bounds,
            "descending": self._descending,
            "predicate": self._predicate,
            "nothing": self._nothing,
            "overlay": self._overlay,
            **changes,
        }
        return Query(self._view, self._identity, self._table, **fields)

    def with_index(self, name: str, **equal: Any) -> Query[D]:
        """Use index `name`, with its leading fields equal to `equal` (a prefix of its fields,
        the owner field aside: it is the caller's organization; an admin names it, or names no
        field at all and reads every organization's documents)."""
        fields = self._table.indexes.get(name)
        if fields is None:
            raise InvalidArgs(f"{self._table.name} has no index {name!r}.", path="index")
        owner = self._table.owner
        foreign = owner is not None and owner in equal and equal[owner] != self._identity.org_id
        if foreign and not self._identity.is_admin:
            # Another organization's documents read as if there were none.
            return self._with(index=name, equal=(), nothing=True)
        if owner is not None and owner not in equal:
            if not self._identity.is_admin:
                equal = {owner: self._identity.org_id, **equal}
            elif equal:  # an admin's other equal fields come after the organization's
                raise InvalidArgs(
                    f"Admin callers name the organization ({owner}) of {self._table.name}.",
                    path=owner,
                )
        names = fields[: len(equal)]
        if set(names) != set(equal):
            raise InvalidArgs(
                f"Index {name} of {self._table.name} is over {', '.join(fields)}; the equal"
                f" fields must be its first ones.",
                path="index",
            )
        return self._with(index=name, equal=tuple(equal[n] for n in names))

    def _range(self, field: str, lower: Bound | None, upper: Bound | None) -> Query[D]:
        fields = self._table.indexes[self._index]
        if len(self._equal) >= len(fields) or fields[len(self._equal)] != field:
            raise InvalidArgs("A range is on the index field after the equal ones.", path=field)
        bounds = _Range(lower or self._bounds.lower, upper or self._bounds.upper)
        return self._with(bounds=bounds)

    def gt(self, field: str, value: Any) -> Query[D]:
        return self._range(field, Bound(value, inclusive=False), None)

    def gte(self, field: str, value: Any) -> Query[D]:
        return self._range(field, Bound(value, inclusive=True), None)

    def lt(self, field: str, value: Any) -> Query[D]:
        return self._range(field, None, Bound(value, inclusive=False))

    def lte(self, field: str, value: Any) -> Query[D]:
        return self._range(field, None, Bound(value, inclusive=True))

    def order(self, direction: str) -> Query[D]:
        if direction not in ("asc", "desc"):
            raise InvalidArgs("order is 'asc' or 'desc'.", path="order")
        return self._with(descending=direction == "desc")

    def filter(self, predicate: Callable[[D], bool]) -> Query[D]:
        return self._with(predicate=predicate)

    def _rows(self) -> Iterator[Stored[D]]:
        table = self._table
        if self._nothing:
            return
        state = self._view.projection(table.projection, read_key(self._index, self._equal))
        keys = self._scan(state.keys[self._index])
        docs: Mapping[str, Stored[D] | None] = state.docs
        overlay = self._overlay
        if overlay:
            # This mutation's own writes: its documents' committed keys are skipped, and the
            # keys of what it wrote are merged in, in index order.
            own = SortedKeys(
                self._table.index_key(self._index, stored)
                for stored in overlay.values()
                if stored is not None
            )
            committed = (key for key in keys if key[-1] not in overlay)
            keys = heapq.merge(committed, self._scan(own), key=encode_key, reverse=self._descending)
            docs = collections.ChainMap(overlay, docs)  # type: ignore[arg-type]
        predicate = self._predicate
        for key in keys:
            stored = docs[str(key[-1])]
            assert stored is not None
            if predicate is None or predicate(stored.document):
                yield stored

    def _scan(self, keys: SortedKeys) -> Iterator[tuple[Any, ...]]:
        return keys.scan(
            prefix=self._equal,
            lower=self._bounds.lower,
            upper=self._bounds.upper,
            reverse=self._descending,
        )

    def collect(self) -> list[Stored[D]]:
        return list(self._rows())

    def take(self, n: int) -> list[Stored[D]]:
        out: list[Stored[D]] = []
        for stored in self._rows():
            if len(out) >= n:
                break
            out.append(stored)
        return out

    def first(self) -> Stored[D] | None:
        return next(iter(self._rows()), None)

    def unique(self) -> Stored[D] | None:
        found = self.take(2)
        if len(found) > 1:
            raise InvalidArgs(f"More than one {self._table.name} document matches.", path="")
        return found[0] if found else None

    def paginate(self, opts: PaginationOpts, scope: str) -> Page[Stored[D]]:
        """A page in Convex's form, keyed by the index key (`domain.pagination.paginate`);
        `scope` is `scope_of(function name, args)`."""
        table, index = self._table, self._index

        def key(stored: Stored[D]) -> tuple[int | str, ...]:
            found = table.index_key(index, stored)
            if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in found):
                raise InvalidArgs(
                    f"Pages of {table.name} by {index} need an index over strings and integers.",
                    path="paginationOpts",
                )
            return found

        return paginate(
            self._rows(),
            key=key,
            opts=opts,
            scope=scope,
            descending=self._descending,
        )


def db(context: Decision[Any] | View, identity: Identity | None = None) -> Any:
    """A mutation's `Writes` (`db(decision)`) or a query's `Reads` (`db(view, identity)`)."""
    if isinstance(context, Decision):
        return Writes(context)
    if identity is None:
        raise TypeError("db(view, identity): a query's reads need its caller")
    return Reads(context, identity)
