"""domain.pagination: pinned pages partition a list however rows come and go.

The client is played as Convex's does it: a page is first asked for with `cursor` and
`numItems`, then pinned at the `continueCursor` of that answer; `loadMore` asks for the next
page at the last page's `continueCursor`; a page with a `splitCursor` is replaced by its two
pinned halves. Between any two steps rows are inserted and deleted anywhere.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidArgs
from domain.pagination import (
    MAX_NUM_ITEMS,
    MAX_PAGE_ROWS,
    InvalidCursor,
    Page,
    PaginationOpts,
    paginate,
    pinned_args,
    scope_of,
)

SCOPE = "s" * 16


def opts(num_items: int = 2, cursor: str | None = None, **more: Any) -> PaginationOpts:
    return PaginationOpts(num_items=num_items, cursor=cursor, **more)


def page_of(
    rows: set[int], o: PaginationOpts, *, descending: bool = False, scope: str = SCOPE
) -> Page[int]:
    ordered = sorted(rows, reverse=descending)
    return paginate(ordered, key=lambda n: (n,), opts=o, scope=scope, descending=descending)


@attrs.define
class Client:
    """The pages of one paginated subscription, each once pinned: its `cursor`, its
    `endCursor` and the key that end stands for (None: the end of the list)."""

    num_items: int
    descending: bool
    pages: list[tuple[str | None, str, int | None]] = attrs.field(factory=list)

    def first(self, rows: set[int]) -> None:
        self._add(rows, None)

    def load_more(self, rows: set[int]) -> bool:
        last = self.evaluate(rows)[-1]
        if last.is_done:
            return False
        self._add(rows, last.continue_cursor)
        return True

    def _add(self, rows: set[int], cursor: str | None) -> None:
        answer = page_of(rows, opts(self.num_items, cursor), descending=self.descending)
        assert len(answer.rows) <= self.num_items
        assert answer.is_done or len(answer.rows) == self.num_items
        end = None if answer.is_done else answer.rows[-1]
        self.pages.append((cursor, answer.continue_cursor, end))

    def evaluate(self, rows: set[int]) -> list[Page[int]]:
        return [
            page_of(rows, opts(self.num_items, lo, end_cursor=hi), descending=self.descending)
            for lo, hi, _ in self.pages
        ]

    def split(self, rows: set[int]) -> None:
        for index, answer in enumerate(self.evaluate(rows)):
            if answer.split_cursor is not None:
                lo, hi, end = self.pages[index]
                middle = answer.rows[len(answer.rows) // 2 - 1]
                split = answer.split_cursor
                self.pages[index : index + 1] = [(lo, split, middle), (split, hi, end)]
                return

    def expected(self, rows: set[int]) -> list[int]:
        """Every current row up to the last page's end, in list order."""
        ordered = sorted(rows, reverse=self.descending)
        end = self.pages[-1][2]
        if end is None:
            return ordered
        return [row for row in ordered if (row >= end if self.descending else row <= end)]


def seen(pages: list[Page[int]]) -> list[int]:
    return [row for answer in pages for row in answer.rows]


steps = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "more", "split"]),
        st.integers(min_value=0, max_value=200),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    initial=st.sets(st.integers(min_value=0, max_value=200), max_size=40),
    num_items=st.integers(min_value=1, max_value=5),
    descending=st.booleans(),
    script=steps,
)
def test_pinned_pages_never_skip_or_repeat_a_row_and_change_only_in_their_range(
    initial: set[int], num_items: int, descending: bool, script: list[tuple[str, int]]
) -> None:
    rows = set(initial)
    client = Client(num_items, descending)
    client.first(rows)
    for action, value in script:
        before = client.evaluate(rows)
        old = set(rows)
        if action == "insert":
            rows.add(value)
        elif action == "delete" and rows:
            rows.discard(sorted(rows)[value % len(rows)])
        elif action == "more":
            client.load_more(rows)
        elif action == "split":
            client.split(rows)
        after = client.evaluate(rows)
        if action in ("insert", "delete"):
            # Each page changes by exactly the rows inserted into / deleted from it.
            for was, now in zip(before, after, strict=True):
                assert set(now.rows) - set(was.rows) <= rows - old
                assert set(was.rows) - set(now.rows) <= old - rows
                assert now.continue_cursor == was.continue_cursor
        got = seen(after)
        assert len(got) == len(set(got)), "a row repeated"
        assert got == client.expected(rows), "a row skipped or out of order"
        assert not any(answer.is_done for answer in after[:-1])
        assert after[-1].is_done is (client.pages[-1][2] is None)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.sets(
        st.tuples(st.integers(min_value=-3, max_value=3), st.text(alphabet="abc", max_size=2)),
        max_size=30,
    ),
    num_items=st.integers(min_value=1, max_value=4),
)
def test_unpinned_pages_walk_the_whole_list_once(
    rows: set[tuple[int, str]], num_items: int
) -> None:
    ordered = sorted(rows)
    cursor: str | None = None
    walked: list[tuple[int, str]] = []
    for _ in range(len(ordered) + 2):
        answer = paginate(ordered, key=lambda r: r, opts=opts(num_items, cursor), scope=SCOPE)
        assert 0 < len(answer.rows) <= num_items or answer.is_done
        walked += answer.rows
        cursor = answer.continue_cursor
        if answer.is_done:
            break
    assert walked == ordered


def test_a_last_page_pinned_at_the_end_takes_rows_appended_later() -> None:
    first = page_of({1, 2}, opts(5))
    assert first.is_done and first.rows == (1, 2)
    pinned = opts(5, end_cursor=first.continue_cursor)
    later = page_of({1, 2, 3, 4}, pinned)
    assert later.rows == (1, 2, 3, 4) and later.is_done
    assert later.continue_cursor == first.continue_cursor


def test_a_middle_page_keeps_its_range_and_is_not_done() -> None:
    rows = set(range(10))
    first = page_of(rows, opts(3))
    assert first.rows == (0, 1, 2) and not first.is_done
    second = page_of(rows, opts(3, first.continue_cursor))
    assert second.rows == (3, 4, 5)
    rows.discard(4)
    rows.update({-1, 4})  # 4 deleted and inserted again, -1 into the first page
    rows.discard(3)
    pinned = page_of(rows, opts(3, first.continue_cursor, end_cursor=second.continue_cursor))
    assert pinned.rows == (4, 5) and not pinned.is_done
    head = page_of(rows, opts(3, None, end_cursor=first.continue_cursor))
    assert head.rows == (-1, 0, 1, 2)


def test_a_page_grown_past_twice_its_size_recommends_a_split_between_its_halves() -> None:
    first = page_of({1, 2}, opts(2))
    pinned = opts(2, end_cursor=first.continue_cursor)
    assert page_of({1, 2, 3, 4}, pinned).split_cursor is None
    grown = page_of({1, 2, 3, 4, 5}, pinned)
    assert grown.page_status == "SplitRecommended" and grown.split_cursor is not None
    low = page_of({1, 2, 3, 4, 5}, opts(2, end_cursor=grown.split_cursor))
    high = page_of({1, 2, 3, 4, 5}, opts(2, grown.split_cursor, end_cursor=first.continue_cursor))
    assert low.rows == (1, 2) and high.rows == (3, 4, 5) and high.is_done and not low.is_done


def test_a_pinned_range_past_the_row_cap_answers_in_part_and_requires_a_split() -> None:
    rows = set(range(10))
    end = page_of(rows, opts(20)).continue_cursor  # the whole list
    capped = page_of(rows, opts(5, end_cursor=end, maximum_rows_read=4))
    assert capped.rows == (0, 1, 2, 3) and capped.page_status == "SplitRequired"
    assert capped.split_cursor is not None and capped.is_done
    low = page_of(rows, opts(5, end_cursor=capped.split_cursor, maximum_rows_read=4))
    high = page_of(rows, opts(5, capped.split_cursor, end_cursor=end))
    assert low.rows == (0, 1) and low.page_status is None
    assert high.rows == tuple(range(2, 10))
    assert page_of(rows, opts(5, maximum_rows_read=3)).rows == (0, 1, 2)


def test_the_row_cap_holds_without_maximum_rows_read() -> None:
    rows = set(range(MAX_PAGE_ROWS + 10))
    end = page_of(rows, opts(1)).continue_cursor
    rows |= set(range(-MAX_PAGE_ROWS, 0))
    huge = page_of(rows, opts(1, end_cursor=end))
    assert len(huge.rows) == MAX_PAGE_ROWS and huge.page_status == "SplitRequired"
    assert page_of(rows, opts(MAX_NUM_ITEMS)).rows == tuple(range(-MAX_PAGE_ROWS, -3000))


def test_a_cursor_at_the_end_gives_an_empty_done_page() -> None:
    done = page_of({1}, opts(3))
    after = page_of({1, 2}, opts(3, done.continue_cursor))
    assert after.rows == () and after.is_done


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "zz",
        "5b5d",  # []
        b'["p1","0000000000000000",[1]]'.hex(),  # another scope
        b'["p1","ssssssssssssssss",[true]]'.hex(),
        b'["p1","ssssssssssssssss",[1.5]]'.hex(),
        b'["p1","ssssssssssssssss",{"a":1}]'.hex(),
        b'["p0","ssssssssssssssss",[1]]'.hex(),
        ("[" * 5000).encode().hex()[:4000],
        "ab" * 3000,
    ],
)
def test_a_cursor_not_of_this_query_is_invalid_cursor(cursor: str) -> None:
    for o in (opts(2, cursor), opts(2, None, end_cursor=cursor)):
        with pytest.raises(InvalidCursor) as caught:
            page_of({1, 2, 3}, o)
        assert "InvalidCursor" in caught.value.message
        assert caught.value.code == "InvalidArgs"
        assert caught.value.data()["paginationError"] == "InvalidCursor"


def test_a_cursor_of_another_scope_is_refused_even_when_well_formed() -> None:
    mine = page_of({1, 2, 3}, opts(1)).continue_cursor
    with pytest.raises(InvalidCursor):
        page_of({1, 2, 3}, opts(1, mine), scope="t" * 16)


@pytest.mark.parametrize(
    ("o", "path"),
    [
        (opts(0), "paginationOpts.numItems"),
        (opts(MAX_NUM_ITEMS + 1), "paginationOpts.numItems"),
        (opts(2, maximum_rows_read=0), "paginationOpts.maximumRowsRead"),
        (opts(2, maximum_bytes_read=0), "paginationOpts.maximumBytesRead"),
    ],
)
def test_bad_options_are_invalid_args(o: PaginationOpts, path: str) -> None:
    with pytest.raises(InvalidArgs) as caught:
        page_of({1}, o)
    assert caught.value.details["path"] == path


@attrs.frozen(kw_only=True)
class _Args:
    event_id: str
    pagination_opts: PaginationOpts | None = None


def test_the_scope_is_the_name_and_the_other_arguments() -> None:
    a = scope_of("x:list", _Args(event_id="e1"))
    assert a == scope_of("x:list", _Args(event_id="e1", pagination_opts=opts(3, "c")))
    assert a != scope_of("x:list", _Args(event_id="e2"))
    assert a != scope_of("y:list", _Args(event_id="e1"))


def test_pinned_args_sets_the_end_of_a_page_asked_for_without_one() -> None:
    args = {"eventId": "e1", "paginationOpts": {"numItems": 2, "cursor": None, "id": -1}}
    assert pinned_args(args, "c") == {
        "eventId": "e1",
        "paginationOpts": {"numItems": 2, "cursor": None, "id": -1, "endCursor": "c"},
    }
    assert args["paginationOpts"] == {"numItems": 2, "cursor": None, "id": -1}
    assert pinned_args({**args, "paginationOpts": {"numItems": 2, "endCursor": "d"}}, "c") is None
    assert pinned_args({"eventId": "e1"}, "c") is None
    assert pinned_args(args, None) is None
    assert pinned_args(["not", "a", "dict"], "c") is None
    null_end = {"paginationOpts": {"numItems": 2, "cursor": None, "endCursor": None}}
    assert pinned_args(null_end, "c") == {
        "paginationOpts": {"numItems": 2, "cursor": None, "endCursor": "c"}
    }
