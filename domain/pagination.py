"""Convex-form pagination of a list query: `paginationOpts` in, `{page, isDone, continueCursor,
splitCursor, pageStatus}` out, as Convex's `usePaginatedQuery` and
`ConvexClient.onPaginatedUpdate_experimental` drive it (docs/reference/functions.md,
"Paginated lists").

Plan:

- A list query hands over its rows in the list's order, each with a *key*: a tuple of ints and
  strings, unique within the list and increasing along it (decreasing for a newest-first list,
  `descending=True`), e.g. `(created_at, id)` or a creation number. A row's key should not
  change while it exists; one that does moves, like a row deleted and inserted again.
- A cursor is the key of a boundary *between* rows, never a row itself: a page is the key range
  `(cursor, endCursor]`, so deleting the row a cursor was made from changes nothing about the
  ranges. `cursor: null` is the start of the list, and the cursor `continueCursor` takes on
  the last page is the list's end, past every key.
- A page asked for without `endCursor` takes the first `numItems` rows after `cursor`; its
  `continueCursor` is the key of its last row (the end once no row is left: `isDone`).
- A page asked for with `endCursor` is every row in `(cursor, endCursor]`, however many that is
  now: the pinned form. Pages pinned at consecutive cursors partition the whole key space, so
  at any one state each row lies in exactly one of them (none is skipped or repeated), and a
  pinned page changes only by the rows inserted into or deleted from its own range. Its
  `continueCursor` is its `endCursor`, and it `isDone` if that is the end.
- Convex's client subscribes each page once, without `endCursor`, and relies on the server to
  keep that page's range (its "query journal"): the sync session pins a page subscription at
  the `continueCursor` of its first answer (`pinned_args`) and sends that cursor as the query's
  journal, which the client sends back when it subscribes again after a reconnect.
- A pinned page that has grown past twice its `numItems` carries a `splitCursor` (between its
  two halves) and `pageStatus: "SplitRecommended"`: Convex's client then replaces it by the two
  pinned halves. One that holds more than `MAX_PAGE_ROWS` rows (or `maximumRowsRead`) answers
  only its first that many, with `pageStatus: "SplitRequired"` and a `splitCursor` inside them,
  until the client has split it.
- Cursors are opaque strings bound to the query: they carry a digest of the function's name and
  its other arguments (`scope_of`), so a cursor of another query, of the same query with other
  filters, or garbage is `InvalidCursor` (an `InvalidArgs` whose message names it, with
  `paginationError: "InvalidCursor"` as Convex's clients look for).
- `maximumRowsRead` bounds the rows a page answers (rows are read from memory, after the
  query's own filters); `maximumBytesRead` is accepted and checked, and bounds nothing, as
  rows here are not read from storage. `id` is the client's own tag and changes nothing.

Pure: no I/O, no clock; the same rows and options give the same page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import attrs

from domain.errors import InvalidArgs

__all__ = [
    "MAX_NUM_ITEMS",
    "MAX_PAGE_ROWS",
    "InvalidCursor",
    "Key",
    "Page",
    "PaginationOpts",
    "paginate",
    "pinned_args",
    "scope_of",
]

T = TypeVar("T")

#: A row's position in its list: ints and strings, compared as tuples.
Key = tuple[int | str, ...]

#: The largest `numItems` a page may ask for.
MAX_NUM_ITEMS = 1000
#: The most rows one page answers; a pinned range holding more is answered in part, with
#: `pageStatus: "SplitRequired"`.
MAX_PAGE_ROWS = 4 * MAX_NUM_ITEMS

_VERSION = "p1"
_DIGEST_BYTES = 8
#: No cursor made here is longer (keys are a few short fields).
_MAX_CURSOR_CHARS = 4096


@attrs.frozen(kw_only=True)
class PaginationOpts:
    """Convex's `PaginationOptions` (`paginationOpts` on the wire)."""

    num_items: int
    #: A previous `continueCursor` (or `splitCursor`); None for the start of the list.
    cursor: str | None
    #: The end of a pinned page, inclusive; None: `numItems` decides where the page ends.
    end_cursor: str | None = None
    #: The client's tag for one use of a paginated query; changes nothing here.
    id: float | None = None
    maximum_rows_read: int | None = None
    maximum_bytes_read: int | None = None


class InvalidCursor(InvalidArgs):
    """A cursor that is not one of this query's (another function's, other arguments', or no
    cursor at all). Code `InvalidArgs`; the message starts with "InvalidCursor"."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"InvalidCursor: {path} is not a cursor of this query with these arguments.",
            path=path,
            paginationError="InvalidCursor",
        )


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page: its rows and what Convex's clients read beside them."""

    rows: tuple[T, ...]
    is_done: bool
    continue_cursor: str
    split_cursor: str | None = None
    page_status: str | None = None

    def doc(self, render: Callable[[T], Any]) -> dict[str, Any]:
        """The page as the wire carries it, each row through `render`."""
        return {
            "page": [render(row) for row in self.rows],
            "isDone": self.is_done,
            "continueCursor": self.continue_cursor,
            "splitCursor": self.split_cursor,
            "pageStatus": self.page_status,
        }


def scope_of(name: str, args: Any) -> str:
    """What a cursor of `name` called with `args` is bound to: the function's name and every
    argument but `pagination_opts` (an attrs instance of flat values)."""
    fields = {
        field.name: getattr(args, field.name)
        for field in attrs.fields(type(args))
        if field.name != "pagination_opts"
    }
    text = json.dumps([name, fields], sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.blake2b(text.encode(), digest_size=_DIGEST_BYTES).hexdigest()


# -- cursors ----------------------------------------------------------------------------------

#: A key as compared: each part tagged, so that a key never compares an int with a string.
_Rank = tuple[tuple[int, int | str], ...]


def _rank(key: Key) -> _Rank:
    return tuple((1, part) if isinstance(part, str) else (0, part) for part in key)


def _encode(scope: str, key: Key | None) -> str:
    """A cursor of `scope` at `key` (None: the end of the list)."""
    body: list[Any] = [_VERSION, scope] if key is None else [_VERSION, scope, list(key)]
    return json.dumps(body, separators=(",", ":")).encode().hex()


def _decode(cursor: str, scope: str, path: str) -> _Rank | None:
    """The rank of a cursor of `scope` (None for the end); InvalidCursor for anything else."""
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise InvalidCursor(path)
    try:
        body = json.loads(bytes.fromhex(cursor).decode())
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        raise InvalidCursor(path) from None
    if not isinstance(body, list) or body[:2] != [_VERSION, scope] or len(body) > 3:
        raise InvalidCursor(path)
    if len(body) == 2:
        return None
    key = body[2]
    if not isinstance(key, list) or not all(
        isinstance(part, str) or (isinstance(part, int) and not isinstance(part, bool))
        for part in key
    ):
        raise InvalidCursor(path)
    return _rank(tuple(key))


def _check(opts: PaginationOpts) -> None:
    if not 1 <= opts.num_items <= MAX_NUM_ITEMS:
        raise InvalidArgs(
            f"numItems must be between 1 and {MAX_NUM_ITEMS}.", path="paginationOpts.numItems"
        )
    for name, value in (
        ("maximumRowsRead", opts.maximum_rows_read),
        ("maximumBytesRead", opts.maximum_bytes_read),
    ):
        if value is not None and value < 1:
            raise InvalidArgs(f"{name} must be at least 1.", path=f"paginationOpts.{name}")


# -- pages ------------------------------------------------------------------------------------


def start_key(opts: PaginationOpts, scope: str) -> Key | None:
    """The key the page starts after (None: the start, or the end of the list), for a query
    that can begin reading there; InvalidCursor for a cursor not of `scope`."""
    if opts.cursor is None:
        return None
    rank = _decode(opts.cursor, scope, "paginationOpts.cursor")
    return None if rank is None else tuple(part for _, part in rank)


def paginate(
    rows: Iterable[T],
    *,
    key: Callable[[T], Key],
    opts: PaginationOpts,
    scope: str,
    descending: bool = False,
) -> Page[T]:
    """The page of `rows` (in list order, keys increasing, or decreasing if `descending`)
    that `opts` asks for. `rows` is read only as far as the page needs, so it may be a
    generator that begins anywhere at or before the cursor.

    Raises InvalidArgs for bad options and InvalidCursor for a cursor not of `scope`."""
    _check(opts)
    after: _Rank | None = None
    if opts.cursor is not None:
        after = _decode(opts.cursor, scope, "paginationOpts.cursor")
        if after is None:  # the cursor is the end: nothing lies past it
            return Page(rows=(), is_done=True, continue_cursor=_encode(scope, None))
    pinned = opts.end_cursor is not None
    until: _Rank | None = None
    if opts.end_cursor is not None:
        until = _decode(opts.end_cursor, scope, "paginationOpts.endCursor")
    cap = min(opts.maximum_rows_read or MAX_PAGE_ROWS, MAX_PAGE_ROWS)
    limit = cap if pinned else min(opts.num_items, cap)

    def past(rank: _Rank, edge: _Rank) -> bool:
        return rank < edge if descending else rank > edge

    taken: list[T] = []
    keys: list[Key] = []
    more = False
    for row in rows:
        row_key = key(row)
        rank = _rank(row_key)
        if after is not None and not past(rank, after):
            continue
        if until is not None and past(rank, until):
            break
        if len(taken) == limit:
            more = True
            break
        taken.append(row)
        keys.append(row_key)

    if not pinned:
        if more:
            return Page(rows=tuple(taken), is_done=False, continue_cursor=_encode(scope, keys[-1]))
        return Page(rows=tuple(taken), is_done=True, continue_cursor=_encode(scope, None))
    assert opts.end_cursor is not None
    split: str | None = None
    status: str | None = None
    if more:
        status = "SplitRequired"
    elif len(taken) > 2 * opts.num_items:
        status = "SplitRecommended"
    if status is not None:
        split = _encode(scope, keys[len(keys) // 2 - 1])
    return Page(
        rows=tuple(taken),
        is_done=until is None,
        continue_cursor=opts.end_cursor,
        split_cursor=split,
        page_status=status,
    )


def pinned_args(args: Any, end_cursor: Any) -> dict[str, Any] | None:
    """The wire args of a page subscription pinned at `end_cursor` (a string): `args` with
    `paginationOpts.endCursor` set. None if `args` is not a page asked for without an
    `endCursor` (nothing to pin) or `end_cursor` is not a string.

    The sync session pins a page at the `continueCursor` of its first answer, and at the
    journal a client sends back when it subscribes to that page again."""
    if not isinstance(args, dict) or not isinstance(end_cursor, str):
        return None
    opts = args.get("paginationOpts")
    if not isinstance(opts, dict) or opts.get("endCursor") is not None:
        return None
    return {**args, "paginationOpts": {**opts, "endCursor": end_cursor}}
