"""A small owned table, and a view of it at one cut, for the tests of table indexes and of index
reads inside a mutation (tests/domain/test_tables_index.py, test_tables_in_mutation.py)."""

from __future__ import annotations

from typing import Any

import attrs

from domain.tables import Index, Table, TableIndex


@attrs.frozen(kw_only=True)
class Item:
    org_id: str
    shelf: str
    rank: int


ITEMS: Table[Item] = Table(
    namespace="indextest",
    name="items",
    document=Item,
    id_prefix="it",
    indexes=(Index.of("by_shelf", "org_id", "shelf", "rank"),),
    owner="org_id",
)


class Cut:
    """The table at one cut: its read model, and each document's state read from it."""

    def __init__(self, index: TableIndex[Item]) -> None:
        self.index = index

    def projection(self, projection: Any, key: str) -> Any:
        assert projection is ITEMS.projection
        return self.index

    def aggregate(self, aggregate: Any, aggregate_id: str) -> Any:
        stored = self.index.docs.get(aggregate_id)
        return None if stored is None else ITEMS.aggregate.state_type(stored=stored)

    def reach(self, aggregate: Any, stream: str) -> tuple[Any, int]:
        """What `domain.model.decide` reaches for a document: its state and version."""
        state = self.aggregate(aggregate, stream.partition("/")[2])
        return (aggregate.initial, 0) if state is None else (state, 1)
