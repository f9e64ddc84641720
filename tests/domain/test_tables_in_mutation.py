"""Index reads inside a mutation (`db(d).query`): the committed documents with the mutation's
own writes in place, against a model of exactly that, over random committed tables and random
writes."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.identity import Identity
from domain.model import decide
from domain.tables import Stored, TableIndex, db
from tests.domain.items_table import ITEMS, Cut, Item

ANN = Identity(subject="ann", org_id="org_a")


def cut_of(docs: dict[str, Stored[Item]]) -> Cut:
    return Cut(TableIndex.of(ITEMS, docs.values()))


def _decide(cut: Cut, handle: Any, route: str | None = None) -> Any:
    tokens = iter(f"new{n:03d}" for n in range(1_000))
    stream = ITEMS.aggregate.stream_of(route or "it_route")
    state, version = cut.reach(ITEMS.aggregate, stream)
    return decide(
        ITEMS.aggregate,
        stream,
        state,
        version,
        handle,
        None,
        identity=ANN,
        now=5_000,
        tokens=lambda: next(tokens),
        reach=cut.reach,
        committed=lambda: cut,
    )


SHELVES = st.sampled_from(["x", "y"])
COMMITTED = st.dictionaries(
    st.integers(0, 9).map(lambda n: f"it_c{n:04d}"),
    st.tuples(st.sampled_from(["org_a", "org_b"]), SHELVES, st.integers(-3, 3), st.integers(0, 9)),
    max_size=10,
)
WRITES = st.lists(
    st.tuples(
        st.sampled_from(["insert", "patch", "delete"]),
        st.integers(0, 11),  # 0-9: a committed document's id; 10-11: one inserted here
        SHELVES,
        st.integers(-3, 3),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(COMMITTED, WRITES, SHELVES, st.integers(-3, 3), st.booleans())
def test_a_query_in_a_mutation_reads_the_cut_with_its_own_writes(
    committed: dict[str, tuple[str, str, int, int]],
    writes: list[tuple[str, int, str, int]],
    shelf: str,
    low: int,
    descending: bool,
) -> None:
    docs = {
        doc_id: Stored(id=doc_id, creation_time=at, document=Item(org_id=org, shelf=s, rank=r))
        for doc_id, (org, s, r, at) in committed.items()
    }
    cut = cut_of(docs)
    # The model: the caller's organization's documents, with each write applied as it lands.
    model = {k: v for k, v in docs.items() if v.document.org_id == "org_a"}
    inserted: list[str] = []

    def handle(d: Any, _: Any) -> list[str]:
        t = db(d)
        for op, n, s, r in writes:
            target = (
                f"it_c{n:04d}" if n < 10 else (inserted[n - 10] if n - 10 < len(inserted) else None)
            )
            if op == "insert":
                new_id = t.insert(ITEMS, Item(org_id="org_a", shelf=s, rank=r))
                inserted.append(new_id)
                model[new_id] = Stored(
                    id=new_id, creation_time=5_000, document=t.get(ITEMS, new_id)
                )
            elif target in model and op == "patch":
                model[target] = attrs.evolve(
                    model[target], document=t.patch(ITEMS, target, shelf=s, rank=r)
                )
            elif target in model and op == "delete":
                t.delete(ITEMS, target)
                del model[target]
        query = t.query(ITEMS).with_index("by_shelf", shelf=shelf).gte("rank", low)
        if descending:
            query = query.order("desc")
        return [stored.id for stored in query.collect()]

    found = _decide(cut, handle).value
    expected = sorted(
        (s for s in model.values() if s.document.shelf == shelf and s.document.rank >= low),
        key=lambda s: (s.document.rank, s.creation_time, s.id),
        reverse=descending,
    )
    assert found == [s.id for s in expected]


def test_without_a_committed_view_a_query_in_a_mutation_is_refused() -> None:
    cut = cut_of({})

    def handle(d: Any, _: Any) -> None:
        db(d).query(ITEMS)

    with pytest.raises(RuntimeError, match="no view of the committed"):
        decide(
            ITEMS.aggregate,
            ITEMS.aggregate.stream_of("it_x"),
            ITEMS.aggregate.initial,
            0,
            handle,
            None,
            identity=ANN,
            now=1,
            tokens=lambda: "t",
            reach=cut.reach,
        )
