"""Every list query with `paginationOpts` (docs/reference/functions.md, "Paginated lists"): its
pages walk the whole list in its order, pinned pages keep their ranges while rows come and go,
and a cursor of another query, of other arguments, or garbage is InvalidCursor."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from domain.errors import Forbidden, InvalidArgs, NotFound
from domain.identity import ADMIN, Identity
from domain.pagination import InvalidCursor
from tests.domain.harness import MINUTE, T0, World
from tests.domain.test_venue_support import (
    CUSTOMER,
    MANAGER,
    NO_CAPS,
    ORG,
    create_customer,
    create_location,
    create_service,
    new_world,
    place,
)
from tests.domain.ticketing_helpers import ORGANIZER, create_event, join_and_buy, user

DAY = 24 * 60 * MINUTE
#: customers:read and customers:write in ORG.
CRM = Identity(subject="u_crm", org_id=ORG, caps=frozenset({"customers:read", "customers:write"}))


@attrs.define
class Listing:
    """One list query over a world: its args (without paginationOpts), who asks, and `grow`,
    which adds one row to the list (`grow(w, n)` for the n-th)."""

    name: str
    args: dict[str, Any]
    who: Identity
    grow: Callable[[World, int], object]

    def whole(self, w: World) -> list[Any]:
        """The list as the query answers it without paginationOpts."""
        if self.name == "customers:list":
            return list(w.query(self.name, {**self.args, "limit": 1000}, self.who)["page"])
        found = w.query(self.name, self.args, self.who)
        assert isinstance(found, list)
        return found

    def page(self, w: World, num_items: int, cursor: str | None, **more: Any) -> dict[str, Any]:
        opts = {"numItems": num_items, "cursor": cursor, **more}
        found = w.query(self.name, {**self.args, "paginationOpts": opts}, self.who)
        assert isinstance(found, dict)
        assert set(found) == {"page", "isDone", "continueCursor", "splitCursor", "pageStatus"}
        return found


def _event_list(w: World) -> Listing:
    return Listing(
        "events:list",
        {},
        Identity(),
        # Dates out of creation order: some land in the middle of the list.
        lambda w, n: create_event(w, date=T0 + (n * 7 % 11) * DAY, name=f"Gig {n}"),
    )


def _user_tickets(w: World) -> Listing:
    def grow(w: World, n: int) -> object:
        w.now += MINUTE
        return join_and_buy(w, create_event(w, name=f"Gig {n}"), "ann")

    return Listing("events:getUserTickets", {"userId": "ann"}, user("ann"), grow)


def _tickets(w: World) -> Listing:
    event_id = create_event(w, total=50)
    return Listing(
        "tickets:listForEvent",
        {"eventId": event_id},
        ORGANIZER,
        lambda w, n: join_and_buy(w, event_id, f"fan{n}"),
    )


def _queue(w: World) -> Listing:
    event_id = create_event(w)

    def grow(w: World, n: int) -> object:
        who = f"fan{n}"
        return w.mutate("queue:joinQueue", {"eventId": event_id, "userId": who}, user(who))

    return Listing("queue:getEventQueue", {"eventId": event_id}, ORGANIZER, grow)


def _user_queue(w: World) -> Listing:
    def grow(w: World, n: int) -> object:
        w.now += n % 2 * MINUTE  # some join at the same time
        event_id = create_event(w, name=f"Gig {n}")
        return w.mutate("queue:joinQueue", {"eventId": event_id, "userId": "ann"}, user("ann"))

    return Listing("queue:getUserQueue", {"userId": "ann"}, user("ann"), grow)


def _notifications(w: World) -> Listing:
    def grow(w: World, n: int) -> object:
        w.now += n % 2  # some share a creation time
        args = {"type": "ping", "userId": "ann", "data": {"n": n}}
        return w.mutate("webhooks:emitWebhookEvent", args, ADMIN)

    return Listing(
        "webhooks:getUserWebhookEvents", {"userId": "ann", "since": 0}, user("ann"), grow
    )


def _customers(w: World) -> Listing:
    return Listing(
        "customers:list",
        {"search": "e"},
        NO_CAPS,
        lambda w, n: create_customer(
            w, ORG, firstName=f"Lee {n}", email=f"lee{n}@example.com", phone=f"0207 946 {n:04d}"
        ),
    )


def _memberships(w: World) -> Listing:
    def grow(w: World, n: int) -> object:
        args = {"customerId": CUSTOMER, "programId": f"prog_{n}", "tier": "gold"}
        return w.mutate("memberships:enroll", args, CRM)

    return Listing("memberships:list", {"customerId": CUSTOMER}, NO_CAPS, grow)


def _activity(w: World) -> Listing:
    def grow(w: World, n: int) -> object:
        return w.mutate("customers:update", {"customerId": CUSTOMER, "notes": f"note {n}"}, CRM)

    return Listing("activity:list", {"entityType": "customer", "entityId": CUSTOMER}, NO_CAPS, grow)


def _locations(w: World) -> Listing:
    def grow(w: World, n: int) -> object:
        w.now += MINUTE
        return create_location(w, name=f"Spa {n}")

    return Listing("locations:list", {}, MANAGER, grow)


def _services(w: World) -> Listing:
    location_id = create_location(w)
    return Listing(
        "services:list",
        {"locationId": location_id},
        MANAGER,
        lambda w, n: create_service(w, location_id, name=f"Service {n}"),
    )


def _orders_by_location(w: World) -> Listing:
    location_id = create_location(w)
    service_id = create_service(w, location_id)

    def grow(w: World, n: int) -> object:
        if n % 2:  # a booking is listed at its time: out of placement order
            at = T0 + (4 + n * 5 % 9) * DAY + 10 * 60 * MINUTE
            items = [{"serviceId": service_id, "quantity": 1}]
            return place(w, location_id, type="booking", items=items, scheduledAt=at)
        w.now += MINUTE
        return place(w, location_id)

    return Listing("orders:listByLocation", {"locationId": location_id}, MANAGER, grow)


def _orders_by_customer(w: World) -> Listing:
    locations = [create_location(w, name="North"), create_location(w, name="South")]

    def grow(w: World, n: int) -> object:
        w.now += n % 3
        return place(w, locations[n % 2])

    return Listing("orders:listByCustomer", {"customerId": CUSTOMER}, MANAGER, grow)


LISTINGS = {
    "events:list": _event_list,
    "events:getUserTickets": _user_tickets,
    "tickets:listForEvent": _tickets,
    "queue:getEventQueue": _queue,
    "queue:getUserQueue": _user_queue,
    "webhooks:getUserWebhookEvents": _notifications,
    "customers:list": _customers,
    "memberships:list": _memberships,
    "activity:list": _activity,
    "locations:list": _locations,
    "services:list": _services,
    "orders:listByLocation": _orders_by_location,
    "orders:listByCustomer": _orders_by_customer,
}


def grown(name: str, rows: int) -> tuple[World, Listing, Callable[[], None]]:
    """A world whose list `name` holds at least `rows` rows, and a function adding one more."""
    w = new_world()
    listing = LISTINGS[name](w)
    counter = itertools.count()
    while len(listing.whole(w)) < rows:
        listing.grow(w, next(counter))

    def more() -> None:
        listing.grow(w, next(counter))

    return w, listing, more


def walk(w: World, listing: Listing, num_items: int) -> list[tuple[str | None, dict[str, Any]]]:
    """Every page from the start, loaded as `loadMore` does: (cursor, answer) each."""
    pages: list[tuple[str | None, dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(100):
        answer = listing.page(w, num_items, cursor)
        pages.append((cursor, answer))
        if answer["isDone"]:
            return pages
        assert len(answer["page"]) == num_items
        cursor = answer["continueCursor"]
    raise AssertionError("the pages never end")


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_the_pages_walk_the_whole_list_in_its_order(name: str) -> None:
    w, listing, _ = grown(name, 7)
    whole = listing.whole(w)
    for num_items in (1, 3, 7, 8):
        pages = walk(w, listing, num_items)
        assert [doc for _, answer in pages for doc in answer["page"]] == whole
        assert all(answer["splitCursor"] is None for _, answer in pages)


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_pinned_pages_keep_their_ranges_and_still_cover_the_list_as_rows_are_added(
    name: str,
) -> None:
    w, listing, more = grown(name, 7)
    pinned = [(cursor, answer["continueCursor"]) for cursor, answer in walk(w, listing, 3)]
    before = [listing.page(w, 3, lo, endCursor=hi)["page"] for lo, hi in pinned]
    for _ in range(4):
        more()
    after = [listing.page(w, 3, lo, endCursor=hi) for lo, hi in pinned]
    assert [doc for answer in after for doc in answer["page"]] == listing.whole(w)
    assert [answer["isDone"] for answer in after] == [False] * (len(pinned) - 1) + [True]
    for was, now in zip(before, after, strict=True):  # rows only joined, none left
        assert all(doc in now["page"] for doc in was if isinstance(doc, dict) and "_id" in doc)


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_a_cursor_of_another_query_or_garbage_is_invalid_cursor(name: str) -> None:
    w, listing, _ = grown(name, 3)
    other = "locations:list" if name != "locations:list" else "services:list"
    other_listing = LISTINGS[other](w)
    for n in range(3):
        other_listing.grow(w, 100 + n)
    foreign = other_listing.page(w, 1, None)["continueCursor"]
    for cursor in (foreign, "garbage", "00"):
        for opts in ({"cursor": cursor}, {"cursor": None, "endCursor": cursor}):
            with pytest.raises(InvalidCursor) as caught:
                listing.page(w, 1, **opts)
            assert "InvalidCursor" in caught.value.message
            assert caught.value.data()["code"] == "InvalidArgs"


def test_a_cursor_of_the_same_query_with_other_filters_is_invalid_cursor() -> None:
    w, listing, _ = grown("customers:list", 3)
    cursor = listing.page(w, 1, None)["continueCursor"]
    other = attrs.evolve(listing, args={"search": "lee"})
    with pytest.raises(InvalidCursor):
        other.page(w, 1, cursor)
    w2, events, _ = grown("tickets:listForEvent", 2)
    cursor = events.page(w2, 1, None)["continueCursor"]
    another = attrs.evolve(events, args={"eventId": create_event(w2)})
    with pytest.raises(InvalidCursor):
        another.page(w2, 1, cursor)


def test_events_inserted_and_cancelled_mid_list_stay_within_their_pages() -> None:
    w = new_world()
    listing = _event_list(w)
    ids = {day: create_event(w, date=T0 + day * DAY, name=f"Day {day}") for day in (1, 3, 5, 7)}
    first = listing.page(w, 2, None)
    second = listing.page(w, 2, first["continueCursor"])
    assert second["isDone"]
    create_event(w, date=T0 + 2 * DAY, name="Day 2")  # into the first page
    create_event(w, date=T0 + 4 * DAY, name="Day 4")  # into the second
    w.mutate("events:cancelEvent", {"eventId": ids[3]}, ORGANIZER)  # the first page's boundary
    head = listing.page(w, 2, None, endCursor=first["continueCursor"])
    tail = listing.page(w, 2, first["continueCursor"], endCursor=second["continueCursor"])
    assert [doc["name"] for doc in head["page"]] == ["Day 1", "Day 2"]
    assert [doc["name"] for doc in tail["page"]] == ["Day 4", "Day 5", "Day 7"]
    assert head["continueCursor"] == first["continueCursor"] and not head["isDone"]


def test_customers_deleted_mid_list_leave_their_page_and_nothing_else_moves() -> None:
    w, listing, _ = grown("customers:list", 6)
    first = listing.page(w, 3, None)
    second = listing.page(w, 3, first["continueCursor"])
    gone = first["page"][1]["_id"]
    w.mutate("customers:delete", {"customerId": gone}, CRM)
    head = listing.page(w, 3, None, endCursor=first["continueCursor"])
    tail = listing.page(w, 3, first["continueCursor"], endCursor=second["continueCursor"])
    assert [doc["_id"] for doc in head["page"]] == [
        doc["_id"] for doc in first["page"] if doc["_id"] != gone
    ]
    assert tail["page"] == second["page"]


def test_the_queue_called_and_left_shrinks_only_its_own_page() -> None:
    w, listing, _ = grown("queue:getEventQueue", 6)
    event_id = listing.args["eventId"]
    first = listing.page(w, 3, None)
    second = listing.page(w, 3, first["continueCursor"])
    w.mutate("queue:callNext", {"eventId": event_id}, ORGANIZER)
    leaver = second["page"][1]["userId"]
    w.mutate("queue:leaveQueue", {"eventId": event_id, "userId": leaver}, user(leaver))
    head = listing.page(w, 3, None, endCursor=first["continueCursor"])
    tail = listing.page(w, 3, first["continueCursor"], endCursor=second["continueCursor"])
    assert [doc["userId"] for doc in head["page"]] == [doc["userId"] for doc in first["page"]][1:]
    assert [doc["position"] for doc in head["page"]] == [1, 2]
    assert [doc["userId"] for doc in tail["page"]] == [
        doc["userId"] for doc in second["page"] if doc["userId"] != leaver
    ]


def test_new_activity_joins_the_first_page_of_the_newest_first_timeline() -> None:
    w, listing, more = grown("activity:list", 4)
    first = listing.page(w, 2, None)
    rest = listing.page(w, 2, first["continueCursor"])
    more()
    head = listing.page(w, 2, None, endCursor=first["continueCursor"])
    assert len(head["page"]) == 3 and head["page"][1:] == first["page"]
    assert listing.page(w, 2, first["continueCursor"], endCursor=rest["continueCursor"]) == rest


def test_the_lists_with_a_limit_of_their_own_refuse_it_beside_pagination_opts() -> None:
    w, _, _ = grown("customers:list", 1)
    opts = {"numItems": 1, "cursor": None}
    for extra in ({"limit": 5}, {"cursor": "0"}):
        with pytest.raises(InvalidArgs) as caught:
            w.query("customers:list", {**extra, "paginationOpts": opts}, NO_CAPS)
        assert caught.value.details["path"] == "paginationOpts"
    activity = {"entityType": "customer", "entityId": CUSTOMER, "limit": 5}
    with pytest.raises(InvalidArgs):
        w.query("activity:list", {**activity, "paginationOpts": opts}, NO_CAPS)


def test_pagination_opts_are_checked_by_type_and_range() -> None:
    w, listing, _ = grown("services:list", 1)
    with pytest.raises(InvalidArgs) as caught:
        listing.page(w, 0, None)
    assert caught.value.details["path"] == "paginationOpts.numItems"
    with pytest.raises(InvalidArgs) as caught:
        w.query("services:list", {**listing.args, "paginationOpts": {"numItems": 2}}, MANAGER)
    assert caught.value.details["path"] == "paginationOpts.cursor"
    with pytest.raises(InvalidArgs) as caught:
        listing.page(w, 2, None, surprise=1)
    assert caught.value.details["path"] == "paginationOpts.surprise"
    assert listing.page(w, 2, None, id=-1, maximumRowsRead=5, maximumBytesRead=9)["isDone"]


def test_paging_keeps_each_querys_callers_and_tenancy() -> None:
    w, listing, _ = grown("services:list", 2)
    rival = Identity(subject="u_rival", org_id="org_b", caps=frozenset({"*"}))
    args = {**listing.args, "paginationOpts": {"numItems": 1, "cursor": None}}
    with pytest.raises(NotFound):
        w.query("services:list", args, rival)
    with pytest.raises(Forbidden):
        w.query("services:list", args, NO_CAPS)
