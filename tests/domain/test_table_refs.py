"""Fields that hold ids of other tables (`Table(refs=...)`, Convex's `v.id("table")`): the App
resolves them, a name that is no table of the app is refused when the App is declared, and a
write whose ref field holds anything but ids of that table is InvalidArgs naming the field."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from domain.app import App, AppError
from domain.errors import InvalidArgs
from domain.identity import ADMIN
from domain.model import decide
from domain.tables import Table, db


@attrs.frozen(kw_only=True)
class Shelf:
    label: str


@attrs.frozen(kw_only=True)
class Book:
    title: str
    shelf_id: str | None = None
    see_also: tuple[str, ...] = ()


SHELVES: Table[Shelf] = Table(namespace="library", name="shelves", document=Shelf, id_prefix="sh")
BOOKS: Table[Book] = Table(
    namespace="library",
    name="books",
    document=Book,
    id_prefix="bk",
    refs={"shelf_id": "shelves", "see_also": "books"},  # a table may name itself
)
LIBRARY = App(name="library", tables=(SHELVES, BOOKS))


def _insert(book: Book) -> Any:
    def handle(d: Any, _: Any) -> str:
        new_id: str = db(d).insert(BOOKS, book)
        return new_id

    return decide(
        BOOKS.aggregate,
        BOOKS.aggregate.stream_of("bk_route"),
        BOOKS.aggregate.initial,
        0,
        handle,
        None,
        identity=ADMIN,
        now=1,
        tokens=lambda: "tok1",
        reach=lambda aggregate, stream: (aggregate.initial, 0),
    ).value


def test_ids_of_the_named_tables_and_none_are_accepted() -> None:
    assert _insert(Book(title="A", shelf_id="sh_abcd", see_also=("bk_efgh", "bk_ijkl")))
    assert _insert(Book(title="B"))


@pytest.mark.parametrize(
    ("book", "path"),
    [
        (Book(title="A", shelf_id="bk_abcd"), "shelfId"),  # another table's id
        (Book(title="A", shelf_id="shelf 4"), "shelfId"),  # no id at all
        (Book(title="A", see_also=("bk_abcd", "sh_abcd")), "seeAlso"),  # one of a list
    ],
)
def test_a_ref_holding_anything_else_is_invalid_args_naming_the_field(
    book: Book, path: str
) -> None:
    with pytest.raises(InvalidArgs) as refused:
        _insert(book)
    assert refused.value.details["path"] == path


def test_a_ref_to_no_table_of_the_app_is_refused_when_the_app_is_declared() -> None:
    loose = Table(
        namespace="library",
        name="loans",
        document=Book,
        id_prefix="ln",
        refs={"shelf_id": "racks"},
    )
    with pytest.raises(AppError, match="racks"):
        App(name="library", tables=(SHELVES, loose))
    with pytest.raises(TypeError, match="no field"):
        Table(namespace="library", name="x", document=Book, id_prefix="xx", refs={"nope": "books"})
