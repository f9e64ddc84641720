"""A table's indexes against a scan of its documents, after every event of random histories:
what `query(...).with_index(...)` answers equals filtering and sorting every live document."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.identity import ADMIN
from domain.tables import Stored, TableIndex, db
from tests.domain.items_table import ITEMS, Cut, Item

ORGS = st.sampled_from(["org_a", "org_b"])
SHELVES = st.sampled_from(["x", "y", "z"])
OPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "patch", "delete"]),
        st.integers(0, 7),  # which document
        ORGS,
        SHELVES,
        st.integers(-3, 3),
        st.integers(0, 2),  # ms passing
    ),
    max_size=40,
)


def _event(kind: type, doc_id: str, at: int, **fields: Any) -> Any:
    return kind(stream=ITEMS.aggregate.stream_of(doc_id), version=1, at=at, **fields)


@settings(max_examples=150, deadline=None)
@given(OPS, ORGS, SHELVES, st.integers(-3, 3), st.booleans())
def test_index_queries_equal_a_scan_after_every_event(
    ops: list[tuple[str, int, str, str, int, int]],
    org: str,
    shelf: str,
    low: int,
    descending: bool,
) -> None:
    index = TableIndex.empty(ITEMS)
    live: dict[str, Stored[Item]] = {}
    at = 1_000
    for op, n, doc_org, doc_shelf, rank, passing in ops:
        at += passing
        doc_id = f"it_{n:04d}"
        document = Item(org_id=doc_org, shelf=doc_shelf, rank=rank)
        if op == "insert" and doc_id not in live:
            index = ITEMS.projection.apply(
                index, _event(ITEMS.inserted, doc_id, at, document=document)
            )
            live[doc_id] = Stored(id=doc_id, creation_time=at, document=document)
        elif op == "patch" and doc_id in live:
            before = live[doc_id].document
            document = attrs.evolve(document, org_id=before.org_id)
            event = _event(
                ITEMS.patched,
                doc_id,
                at,
                document=document,
                before=before,
                fields=("shelf", "rank"),
            )
            index = ITEMS.projection.apply(index, event)
            live[doc_id] = attrs.evolve(live[doc_id], document=document)
        elif op == "delete" and doc_id in live:
            event = _event(ITEMS.deleted, doc_id, at, before=live[doc_id].document)
            index = ITEMS.projection.apply(index, event)
            del live[doc_id]
        reads = db(Cut(index), ADMIN)
        query = reads.query(ITEMS).with_index("by_shelf", org_id=org, shelf=shelf).gte("rank", low)
        if descending:
            query = query.order("desc")
        found = [stored.id for stored in query.collect()]
        expected = sorted(
            (s for s in live.values() if (s.document.org_id, s.document.shelf) == (org, shelf)),
            key=lambda s: (s.document.rank, s.creation_time, s.id),
            reverse=descending,
        )
        assert found == [s.id for s in expected if s.document.rank >= low]
