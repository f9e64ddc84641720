"""The ticketing rules of docs/reference/functions.md, one behaviour per test."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import Conflict, Forbidden, InvalidArgs, NotFound, Unauthenticated
from domain.identity import ADMIN, Identity
from domain.ticketing import (
    EVENT_QUEUE,
    OFFER_DURATION_MS,
    EventCancelled,
    EventQueueState,
    OfferExpired,
    OfferMade,
    TicketPurchased,
)
from domain.ticketing.module import MUTATIONS
from tests.domain.harness import MINUTE, T0, decide
from tests.domain.test_customers_world import open_location
from tests.domain.ticketing_helpers import (
    ANON,
    DOOR,
    ORG,
    ORGANIZER,
    OTHER_ORG,
    QUEUE_STAFF,
    RIVAL,
    STAFF_NO_CAPS,
    availability,
    create_event,
    join,
    join_and_buy,
    new_world,
    position,
    purchase,
    state_of,
    user,
)

SPECS = {spec.name: spec for spec in MUTATIONS}
CREATE_ARGS: dict[str, Any] = {
    "name": "Concert",
    "description": "An evening of music",
    "location": "Main hall",
    "eventDate": T0 + 1000,
    "price": 2500,
    "totalTickets": 10,
}


# -- events:create --------------------------------------------------------------------------------


def test_create_records_the_event_for_the_callers_org_and_creator() -> None:
    w = new_world()
    open_location(w, "lo_x1y2", ORG)
    event_id = w.mutate("events:create", {**CREATE_ARGS, "locationId": "lo_x1y2"}, ORGANIZER)
    assert event_id == "ev_t0001"
    assert w.query("events:get", {"eventId": event_id}, ANON) == {
        "_id": event_id,
        "_creationTime": T0,
        "name": "Concert",
        "description": "An evening of music",
        "location": "Main hall",
        "eventDate": T0 + 1000,
        "price": 2500,
        "totalTickets": 10,
        "userId": "u_organizer",
        "orgId": ORG,
        "locationId": "lo_x1y2",
        "averageServiceMinutes": 5,
        "isCancelled": False,
        "imageStorageId": None,
        "imageUrl": None,
    }


def test_admin_creates_in_the_named_org_without_a_creator() -> None:
    w = new_world()
    event_id = w.mutate("events:create", {**CREATE_ARGS, "orgId": OTHER_ORG}, ADMIN)
    doc = w.query("events:get", {"eventId": event_id})
    assert (doc["orgId"], doc["userId"]) == (OTHER_ORG, None)


def test_admin_must_name_the_org() -> None:
    with pytest.raises(InvalidArgs) as err:
        new_world().mutate("events:create", CREATE_ARGS, ADMIN)
    assert err.value.data()["path"] == "orgId"


@pytest.mark.parametrize(
    ("caller", "error"),
    [(ANON, Unauthenticated), (user("alice"), Forbidden), (STAFF_NO_CAPS, Forbidden)],
)
def test_create_needs_events_manage(caller: Identity, error: type[Exception]) -> None:
    w = new_world()
    with pytest.raises(error):
        w.mutate("events:create", CREATE_ARGS, caller)
    assert w.journal == []


def test_create_refuses_another_orgs_id() -> None:
    with pytest.raises(Forbidden):
        new_world().mutate("events:create", {**CREATE_ARGS, "orgId": OTHER_ORG}, ORGANIZER)


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("name", "  ", "name"),
        ("totalTickets", -1, "totalTickets"),
        ("price", -1, "price"),
        ("eventDate", -5, "eventDate"),
        ("averageServiceMinutes", 0, "averageServiceMinutes"),
        ("totalTickets", "5", "totalTickets"),
        ("price", 12.5, "price"),
        ("totalTickets", True, "totalTickets"),
    ],
)
def test_create_validates_fields_with_wire_paths(field: str, value: object, path: str) -> None:
    w = new_world()
    with pytest.raises(InvalidArgs) as err:
        w.mutate("events:create", {**CREATE_ARGS, field: value}, ORGANIZER)
    assert err.value.data()["path"] == path
    assert w.journal == []


def test_create_on_a_stream_that_has_an_event_is_a_conflict() -> None:
    w = new_world()
    event_id = create_event(w)
    spec = SPECS["events:create"]
    args = spec.args_type(
        **{
            "name": "B",
            "description": "",
            "location": "",
            "event_date": 1,
            "price": 0,
            "total_tickets": 0,
        }
    )
    with pytest.raises(Conflict):
        decide(
            spec,
            state_of(w, event_id),
            aggregate_id=event_id,
            args=args,
            version=1,
            identity=ORGANIZER,
        )


def test_zero_ticket_event_makes_everyone_wait() -> None:
    w = new_world()
    event_id = create_event(w, total=0)
    assert join(w, event_id, "alice")["status"] == "waiting"
    assert availability(w, event_id) == {
        "isSoldOut": True,
        "totalTickets": 0,
        "purchasedCount": 0,
        "activeOffers": 0,
        "remainingTickets": 0,
    }


# -- events:update --------------------------------------------------------------------------------


def test_update_changes_only_given_fields_and_the_catalog() -> None:
    w = new_world()
    event_id = create_event(w)
    assert (
        w.mutate("events:update", {"eventId": event_id, "name": "Gala", "price": 0}, ORGANIZER)
        is None
    )
    doc = w.query("events:get", {"eventId": event_id})
    assert (doc["name"], doc["price"], doc["location"]) == ("Gala", 0, "Main hall")
    assert [e["name"] for e in w.query("events:list", {}, ANON)] == ["Gala"]


def test_update_with_no_fields_emits_nothing() -> None:
    w = new_world()
    event_id = create_event(w)
    w.mutate("events:update", {"eventId": event_id}, ORGANIZER)
    assert len(w.journal) == 1


def test_update_cannot_drop_total_below_sold_and_offered() -> None:
    w = new_world()
    event_id = create_event(w, total=3)
    join_and_buy(w, event_id, "alice")
    join(w, event_id, "bob")  # offered
    with pytest.raises(Conflict) as err:
        w.mutate("events:update", {"eventId": event_id, "totalTickets": 1}, ORGANIZER)
    assert err.value.data()["minimum"] == 2
    w.mutate("events:update", {"eventId": event_id, "totalTickets": 2}, ORGANIZER)
    assert availability(w, event_id)["remainingTickets"] == 0


def test_raising_total_offers_seats_to_waiting_users_in_join_order() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    for name in ("alice", "bob", "carol", "dave"):
        join(w, event_id, name)
    w.now += 5 * MINUTE
    before = len(w.journal)
    w.mutate("events:update", {"eventId": event_id, "totalTickets": 3}, ORGANIZER)
    offers = [e for e in w.journal[before:] if isinstance(e, OfferMade)]
    assert [(o.user_id, o.offer_expires_at) for o in offers] == [
        ("bob", w.now + OFFER_DURATION_MS),
        ("carol", w.now + OFFER_DURATION_MS),
    ]
    assert position(w, event_id, "dave") == {
        "_id": f"wl_{event_id[3:]}_3",
        "_creationTime": T0,
        "eventId": event_id,
        "userId": "dave",
        "status": "waiting",
        "offerExpiresAt": None,
        "position": 4,
    }


@pytest.mark.parametrize(
    ("caller", "error"),
    [(RIVAL, NotFound), (DOOR, Forbidden), (user("alice"), Forbidden), (ANON, Unauthenticated)],
)
def test_update_needs_events_manage_in_the_events_org(
    caller: Identity, error: type[Exception]
) -> None:
    w = new_world()
    event_id = create_event(w)
    with pytest.raises(error):
        w.mutate("events:update", {"eventId": event_id, "name": "X"}, caller)


def test_update_cannot_move_the_event_to_another_org() -> None:
    w = new_world()
    event_id = create_event(w)
    with pytest.raises(InvalidArgs) as err:
        w.mutate("events:update", {"eventId": event_id, "orgId": OTHER_ORG}, ADMIN)
    assert err.value.data()["path"] == "orgId"


def test_update_validates_fields() -> None:
    w = new_world()
    event_id = create_event(w)
    with pytest.raises(InvalidArgs) as err:
        w.mutate("events:update", {"eventId": event_id, "price": -1}, ORGANIZER)
    assert err.value.data()["path"] == "price"


@pytest.mark.parametrize("event_id", ["ev_nothere1", "not-an-id", "tk_abcd_1"])
def test_commands_on_missing_events_are_not_found(event_id: str) -> None:
    w = new_world()
    with pytest.raises(NotFound, match=r"Event not found\."):
        w.mutate("events:update", {"eventId": event_id, "name": "X"}, ORGANIZER)
    with pytest.raises(NotFound, match=r"Event not found\."):
        w.mutate("events:joinWaitingList", {"eventId": event_id, "userId": "al"}, user("al"))
    assert w.journal == []


# -- events:cancelEvent ---------------------------------------------------------------------------


def test_cancel_refunds_valid_tickets_expires_open_entries_and_disarms_offers() -> None:
    w = new_world()
    event_id = create_event(w, total=3)
    used = join_and_buy(w, event_id, "alice")
    valid = join_and_buy(w, event_id, "bob")
    offered = join(w, event_id, "carol")["waitingListId"]
    waiting = join(w, event_id, "dave")["waitingListId"]
    w.mutate("tickets:checkIn", {"ticketId": used}, DOOR)
    assert (f"event/{event_id}", offered) in w.timers

    assert w.mutate("events:cancelEvent", {"eventId": event_id}, ORGANIZER) is None

    cancelled = w.journal[-1]
    assert isinstance(cancelled, EventCancelled)
    assert cancelled.refunded_ticket_ids == (valid,)
    assert cancelled.withdrawn_offer_ids == (offered,)
    assert cancelled.expired_waiting_ids == (waiting,)
    assert w.timers == {}
    s = state_of(w, event_id)
    assert s.event is not None and s.event.is_cancelled
    assert {t.id: t.status for t in s.tickets.values()} == {used: "used", valid: "refunded"}
    assert {e.user_id: e.status for e in s.entries.values()} == {
        "alice": "purchased",
        "bob": "purchased",
        "carol": "expired",
        "dave": "expired",
    }
    assert availability(w, event_id)["purchasedCount"] == 1
    assert w.query("events:list", {}) == []
    assert w.query("events:get", {"eventId": event_id})["isCancelled"] is True
    assert position(w, event_id, "dave") is None


def test_a_cancelled_event_refuses_changes() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    wl = join(w, event_id, "alice")["waitingListId"]
    w.mutate("events:cancelEvent", {"eventId": event_id}, ORGANIZER)
    before = len(w.journal)
    with pytest.raises(Conflict):
        w.mutate("events:cancelEvent", {"eventId": event_id}, ORGANIZER)
    with pytest.raises(Conflict):
        w.mutate("events:update", {"eventId": event_id, "name": "X"}, ORGANIZER)
    with pytest.raises(Conflict):
        join(w, event_id, "bob")
    with pytest.raises(Conflict):
        purchase(w, event_id, "alice", wl)
    assert len(w.journal) == before


@pytest.mark.parametrize(
    ("caller", "error"), [(RIVAL, NotFound), (QUEUE_STAFF, Forbidden), (ANON, Unauthenticated)]
)
def test_cancel_needs_events_manage_in_the_events_org(
    caller: Identity, error: type[Exception]
) -> None:
    w = new_world()
    event_id = create_event(w)
    with pytest.raises(error):
        w.mutate("events:cancelEvent", {"eventId": event_id}, caller)


# -- events:joinWaitingList -----------------------------------------------------------------------


def test_join_offers_at_once_for_exactly_thirty_minutes() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    reply = join(w, event_id, "alice")
    wl = f"wl_{event_id[3:]}_0"
    assert reply == {"success": True, "status": "offered", "waitingListId": wl}
    assert [type(e).__name__ for e in w.journal[1:]] == ["WaitingListJoined", "OfferMade"]
    assert w.timers == {(f"event/{event_id}", wl): T0 + 30 * 60 * 1000}
    assert position(w, event_id, "alice") == {
        "_id": wl,
        "_creationTime": T0,
        "eventId": event_id,
        "userId": "alice",
        "status": "offered",
        "offerExpiresAt": T0 + 1_800_000,
        "position": 1,
    }


def test_join_waits_when_no_seat_is_free() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    join(w, event_id, "alice")
    reply = join(w, event_id, "bob")
    assert reply == {"success": True, "status": "waiting", "waitingListId": f"wl_{event_id[3:]}_1"}
    assert availability(w, event_id) == {
        "isSoldOut": True,
        "totalTickets": 1,
        "purchasedCount": 0,
        "activeOffers": 1,
        "remainingTickets": 0,
    }


def test_a_user_holds_one_open_entry_per_event() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    first = join(w, event_id, "alice")["waitingListId"]
    with pytest.raises(Conflict) as err:
        join(w, event_id, "alice")
    assert err.value.data()["waitingListId"] == first
    join(w, event_id, "bob")
    with pytest.raises(Conflict) as err:
        join(w, event_id, "bob")
    assert (err.value.data()["waitingListId"], err.value.data()["status"]) == (
        f"wl_{event_id[3:]}_1",
        "waiting",
    )


def test_a_ticket_holder_cannot_join_again_until_refunded() -> None:
    w = new_world()
    event_id = create_event(w, total=2)
    ticket = join_and_buy(w, event_id, "alice")
    with pytest.raises(Conflict) as err:
        join(w, event_id, "alice")
    assert err.value.data()["ticketId"] == ticket
    w.mutate("tickets:refund", {"ticketId": ticket}, ORGANIZER)
    assert join(w, event_id, "alice")["status"] == "offered"


def test_a_user_may_join_again_after_their_offer_expired() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    join(w, event_id, "alice")
    w.advance(30 * MINUTE)
    assert join(w, event_id, "alice") == {
        "success": True,
        "status": "offered",
        "waitingListId": f"wl_{event_id[3:]}_1",
    }


@pytest.mark.parametrize(
    ("caller", "error"), [(user("mallory"), Forbidden), (ANON, Unauthenticated), (RIVAL, Forbidden)]
)
def test_only_the_user_joins_for_themselves(caller: Identity, error: type[Exception]) -> None:
    w = new_world()
    event_id = create_event(w)
    with pytest.raises(error):
        w.mutate("events:joinWaitingList", {"eventId": event_id, "userId": "alice"}, caller)
    assert (
        w.mutate("events:joinWaitingList", {"eventId": event_id, "userId": "alice"}, ADMIN)[
            "status"
        ]
        == "offered"
    )


# -- events:purchaseTicket ------------------------------------------------------------------------


def test_purchase_turns_a_live_offer_into_a_valid_ticket() -> None:
    w = new_world()
    event_id = create_event(w, total=2)
    wl = join(w, event_id, "alice")["waitingListId"]
    w.now += 29 * MINUTE
    ticket = purchase(w, event_id, "alice", wl, intent="pi_123")
    assert ticket == f"tk_{event_id[3:]}_0"
    assert w.timers == {}
    assert isinstance(w.journal[-1], TicketPurchased)
    assert w.query(
        "tickets:getUserTicketForEvent", {"eventId": event_id, "userId": "alice"}, user("alice")
    ) == {
        "_id": ticket,
        "_creationTime": T0 + 29 * MINUTE,
        "eventId": event_id,
        "userId": "alice",
        "waitingListId": wl,
        "purchasedAt": T0 + 29 * MINUTE,
        "status": "valid",
        "paymentIntentId": "pi_123",
        "amount": 2500,
    }
    assert position(w, event_id, "alice")["status"] == "purchased"  # type: ignore[index]
    assert availability(w, event_id) == {
        "isSoldOut": False,
        "totalTickets": 2,
        "purchasedCount": 1,
        "activeOffers": 0,
        "remainingTickets": 1,
    }


def test_the_same_payment_twice_returns_the_first_ticket_and_writes_nothing() -> None:
    w = new_world()
    event_id = create_event(w, total=2)
    wl = join(w, event_id, "alice")["waitingListId"]
    first = purchase(w, event_id, "alice", wl, intent="pi_1")
    before = len(w.journal)
    assert purchase(w, event_id, "alice", wl, intent="pi_1") == first
    assert purchase(w, event_id, "alice", "wl_whatever_9", intent="pi_1") == first
    assert len(w.journal) == before


def test_another_users_payment_intent_is_a_conflict() -> None:
    w = new_world()
    event_id = create_event(w, total=2)
    purchase(w, event_id, "alice", join(w, event_id, "alice")["waitingListId"], intent="pi_1")
    bob_wl = join(w, event_id, "bob")["waitingListId"]
    with pytest.raises(Conflict):
        purchase(w, event_id, "bob", bob_wl, intent="pi_1")


def test_using_another_users_offer_is_forbidden() -> None:
    w = new_world()
    event_id = create_event(w, total=2)
    alice_wl = join(w, event_id, "alice")["waitingListId"]
    with pytest.raises(Forbidden):
        purchase(w, event_id, "bob", alice_wl)
    with pytest.raises(Forbidden):  # bob naming alice as the buyer
        w.mutate(
            "events:purchaseTicket",
            {
                "eventId": event_id,
                "userId": "alice",
                "waitingListId": alice_wl,
                "paymentInfo": {"paymentIntentId": "pi_x", "amount": 1},
            },
            user("bob"),
        )


def test_purchase_needs_a_live_offer() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    alice_wl = join(w, event_id, "alice")["waitingListId"]
    bob_wl = join(w, event_id, "bob")["waitingListId"]
    with pytest.raises(Conflict) as err:
        purchase(w, event_id, "bob", bob_wl)  # still waiting
    assert err.value.data()["status"] == "waiting"
    with pytest.raises(NotFound, match=r"Waiting list entry not found\."):
        purchase(w, event_id, "bob", f"wl_{event_id[3:]}_7")
    w.advance(30 * MINUTE)  # alice's offer expires, bob's begins
    with pytest.raises(Conflict) as err:
        purchase(w, event_id, "alice", alice_wl)
    assert err.value.data()["status"] == "expired"


def test_an_offer_past_its_time_cannot_be_bought_even_before_its_timer_runs() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    wl = join(w, event_id, "alice")["waitingListId"]
    w.now += OFFER_DURATION_MS  # the clock moved, the timer has not fired yet
    with pytest.raises(Conflict, match="expired"):
        purchase(w, event_id, "alice", wl)
    assert state_of(w, event_id).entries[wl].status == "offered"


@pytest.mark.parametrize(
    ("payment", "path"),
    [
        ({"paymentIntentId": "pi_1", "amount": -1}, "paymentInfo.amount"),
        ({"paymentIntentId": "", "amount": 1}, "paymentInfo.paymentIntentId"),
        ({"paymentIntentId": "pi_1", "amount": "1"}, "paymentInfo.amount"),
        ({"paymentIntentId": "pi_1"}, "paymentInfo.amount"),
    ],
)
def test_purchase_validates_the_payment(payment: dict[str, Any], path: str) -> None:
    w = new_world()
    event_id = create_event(w)
    wl = join(w, event_id, "alice")["waitingListId"]
    args = {"eventId": event_id, "userId": "alice", "waitingListId": wl, "paymentInfo": payment}
    with pytest.raises(InvalidArgs) as err:
        w.mutate("events:purchaseTicket", args, user("alice"))
    assert err.value.data()["path"] == path


# -- waitingList:releaseTicket and expiry ---------------------------------------------------------


def test_release_gives_the_seat_to_the_next_in_line() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    alice_wl = join(w, event_id, "alice")["waitingListId"]
    bob_wl = join(w, event_id, "bob")["waitingListId"]
    w.now += 10 * MINUTE
    args = {"eventId": event_id, "waitingListId": alice_wl}
    assert w.mutate("waitingList:releaseTicket", args, user("alice")) is None
    s = state_of(w, event_id)
    assert (s.entries[alice_wl].status, s.entries[bob_wl].status) == ("expired", "offered")
    assert w.timers == {(f"event/{event_id}", bob_wl): w.now + OFFER_DURATION_MS}
    assert type(w.journal[-2]).__name__ == "OfferReleased"
    assert position(w, event_id, "alice") is None


def test_release_rules() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    alice_wl = join(w, event_id, "alice")["waitingListId"]
    bob_wl = join(w, event_id, "bob")["waitingListId"]
    with pytest.raises(Forbidden):
        w.mutate(
            "waitingList:releaseTicket",
            {"eventId": event_id, "waitingListId": alice_wl},
            user("bob"),
        )
    with pytest.raises(Unauthenticated):
        w.mutate(
            "waitingList:releaseTicket", {"eventId": event_id, "waitingListId": alice_wl}, ANON
        )
    with pytest.raises(Conflict):
        w.mutate(
            "waitingList:releaseTicket", {"eventId": event_id, "waitingListId": bob_wl}, user("bob")
        )
    with pytest.raises(NotFound):
        w.mutate(
            "waitingList:releaseTicket",
            {"eventId": event_id, "waitingListId": "wl_zzzz_1"},
            user("bob"),
        )
    w.mutate("waitingList:releaseTicket", {"eventId": event_id, "waitingListId": alice_wl}, ADMIN)
    assert state_of(w, event_id).entries[bob_wl].status == "offered"


def test_an_offer_expires_exactly_thirty_minutes_after_it_was_made() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    alice_wl = join(w, event_id, "alice")["waitingListId"]
    w.now += 7 * MINUTE
    bob_wl = join(w, event_id, "bob")["waitingListId"]
    assert w.advance(OFFER_DURATION_MS - 7 * MINUTE - 1) == []
    fired = w.advance(1)
    assert [type(e) for e in fired] == [OfferExpired, OfferMade]
    assert fired[0].at == T0 + OFFER_DURATION_MS
    s = state_of(w, event_id)
    assert s.entries[alice_wl].status == "expired"
    assert s.entries[bob_wl].offer_expires_at == T0 + 2 * OFFER_DURATION_MS
    assert position(w, event_id, "bob")["position"] == 1  # type: ignore[index]


def test_stale_and_early_timers_do_nothing() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    stream = f"event/{event_id}"
    wl = join(w, event_id, "alice")["waitingListId"]
    assert w.fire(stream, wl) == ()  # not yet due
    assert w.fire(stream, "wl_nope_1") == ()
    purchase(w, event_id, "alice", wl)
    w.now += OFFER_DURATION_MS
    assert w.fire(stream, wl) == ()  # already purchased


def test_expiry_passes_seats_down_the_line_in_join_order() -> None:
    w = new_world()
    event_id = create_event(w, total=2)
    names = ["u0", "u1", "u2", "u3", "u4"]
    for name in names:
        join(w, event_id, name)
    assert [position(w, event_id, n)["position"] for n in names] == [1, 2, 3, 4, 5]  # type: ignore[index]
    w.advance(OFFER_DURATION_MS)
    s = state_of(w, event_id)
    assert [s.entries[s.entries_by_user[n][0]].status for n in names] == [
        "expired",
        "expired",
        "offered",
        "offered",
        "waiting",
    ]
    assert position(w, event_id, "u4")["position"] == 3  # type: ignore[index]
    assert position(w, event_id, "u0") is None


# -- tickets:checkIn and tickets:refund -----------------------------------------------------------


def test_check_in_uses_a_valid_ticket_once() -> None:
    w = new_world()
    event_id = create_event(w)
    ticket = join_and_buy(w, event_id, "alice")
    assert w.mutate("tickets:checkIn", {"ticketId": ticket}, DOOR) is None
    assert state_of(w, event_id).tickets[ticket].status == "used"
    with pytest.raises(Conflict) as err:
        w.mutate("tickets:checkIn", {"ticketId": ticket}, DOOR)
    assert err.value.data()["status"] == "used"
    with pytest.raises(Conflict):
        w.mutate("tickets:refund", {"ticketId": ticket}, ORGANIZER)
    assert availability(w, event_id)["purchasedCount"] == 1


@pytest.mark.parametrize(
    ("name", "caller", "error"),
    [
        ("tickets:checkIn", RIVAL, NotFound),
        ("tickets:checkIn", QUEUE_STAFF, Forbidden),
        ("tickets:checkIn", user("alice"), Forbidden),
        ("tickets:refund", DOOR, Forbidden),
        ("tickets:refund", RIVAL, NotFound),
        ("tickets:refund", ANON, Unauthenticated),
    ],
)
def test_ticket_staff_rules(name: str, caller: Identity, error: type[Exception]) -> None:
    w = new_world()
    event_id = create_event(w)
    ticket = join_and_buy(w, event_id, "alice")
    with pytest.raises(error):
        w.mutate(name, {"ticketId": ticket}, caller)


@pytest.mark.parametrize("ticket_id", ["tk_nothere_0", "nonsense", "wl_abcd_0", "ev_abcd"])
def test_unknown_tickets_are_not_found(ticket_id: str) -> None:
    w = new_world()
    event_id = create_event(w)
    join_and_buy(w, event_id, "alice")
    with pytest.raises(NotFound, match=r"Ticket not found\."):
        w.mutate("tickets:checkIn", {"ticketId": ticket_id}, DOOR)
    with pytest.raises(NotFound, match=r"Ticket not found\."):
        w.mutate("tickets:refund", {"ticketId": f"tk_{event_id[3:]}_5"}, ORGANIZER)


def test_refund_frees_the_seat_for_the_next_in_line() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    ticket = join_and_buy(w, event_id, "alice")
    bob_wl = join(w, event_id, "bob")["waitingListId"]
    assert w.mutate("tickets:refund", {"ticketId": ticket}, ORGANIZER) is None
    s = state_of(w, event_id)
    assert (s.tickets[ticket].status, s.entries[bob_wl].status) == ("refunded", "offered")
    assert availability(w, event_id)["activeOffers"] == 1
    assert (
        w.query(
            "tickets:getUserTicketForEvent", {"eventId": event_id, "userId": "alice"}, user("alice")
        )["status"]
        == "refunded"
    )
    with pytest.raises(Conflict):
        w.mutate("tickets:refund", {"ticketId": ticket}, ORGANIZER)
    with pytest.raises(Conflict):
        w.mutate("tickets:checkIn", {"ticketId": ticket}, DOOR)


# -- queries --------------------------------------------------------------------------------------


def test_list_shows_events_not_cancelled_soonest_first_to_anyone() -> None:
    w = new_world()
    late = create_event(w, date=T0 + 3000)
    early = create_event(w, date=T0 + 1000)
    middle = create_event(w, date=T0 + 2000)
    gone = create_event(w, date=T0 + 500)
    w.mutate("events:cancelEvent", {"eventId": gone}, ORGANIZER)
    w.mutate("events:update", {"eventId": middle, "eventDate": T0 + 4000}, ORGANIZER)
    assert [e["_id"] for e in w.query("events:list", {}, ANON)] == [early, late, middle]
    assert [e["_id"] for e in w.query("events:list", {}, RIVAL)] == [early, late, middle]


def test_get_and_availability_for_missing_events() -> None:
    w = new_world()
    assert w.query("events:get", {"eventId": "ev_nothere1"}) is None
    assert w.query("events:get", {"eventId": "garbage"}) is None
    with pytest.raises(NotFound):
        availability(w, "ev_nothere1")


def test_get_user_tickets_lists_every_ticket_with_its_event() -> None:
    w = new_world()
    first = create_event(w, total=1)
    second = create_event(w, total=1)
    w.now += MINUTE
    t2 = join_and_buy(w, second, "alice")
    w.now += MINUTE
    t1 = join_and_buy(w, first, "alice")
    w.mutate("tickets:refund", {"ticketId": t2}, ORGANIZER)
    w.now += MINUTE
    t3 = join_and_buy(w, second, "alice")
    found = w.query("events:getUserTickets", {"userId": "alice"}, user("alice"))
    assert [(t["_id"], t["status"], t["event"]["_id"]) for t in found] == [
        (t2, "refunded", second),
        (t1, "valid", first),
        (t3, "valid", second),
    ]
    assert w.query("events:getUserTickets", {"userId": "bob"}, user("bob")) == []
    with pytest.raises(Forbidden):
        w.query("events:getUserTickets", {"userId": "alice"}, user("bob"))


def test_queue_position_readers() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    join(w, event_id, "alice")
    join(w, event_id, "bob")
    args = {"eventId": event_id, "userId": "bob"}
    assert w.query("waitingList:getQueuePosition", args, ORGANIZER)["position"] == 2
    assert w.query("waitingList:getQueuePosition", args, RIVAL) is None
    with pytest.raises(Forbidden):
        w.query("waitingList:getQueuePosition", args, user("carol"))
    with pytest.raises(Forbidden):
        w.query("waitingList:getQueuePosition", args, DOOR)
    with pytest.raises(Unauthenticated):
        w.query("waitingList:getQueuePosition", args, ANON)
    assert (
        w.query(
            "waitingList:getQueuePosition", {"eventId": "ev_none1", "userId": "bob"}, user("bob")
        )
        is None
    )


def test_user_ticket_for_event_prefers_the_held_ticket() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    args = {"eventId": event_id, "userId": "alice"}
    assert w.query("tickets:getUserTicketForEvent", args, user("alice")) is None
    old = join_and_buy(w, event_id, "alice")
    w.mutate("tickets:refund", {"ticketId": old}, ORGANIZER)
    new = join_and_buy(w, event_id, "alice")
    assert w.query("tickets:getUserTicketForEvent", args, user("alice"))["_id"] == new
    with pytest.raises(Forbidden):
        w.query("tickets:getUserTicketForEvent", args, user("bob"))


def test_list_for_event_is_for_the_events_managers() -> None:
    w = new_world()
    event_id = create_event(w, total=3)
    tickets = [join_and_buy(w, event_id, n) for n in ("alice", "bob", "carol")]
    listed = w.query("tickets:listForEvent", {"eventId": event_id}, ORGANIZER)
    assert [t["_id"] for t in listed] == tickets
    assert [t["userId"] for t in listed] == ["alice", "bob", "carol"]
    with pytest.raises(NotFound):
        w.query("tickets:listForEvent", {"eventId": event_id}, RIVAL)
    with pytest.raises(Forbidden):
        w.query("tickets:listForEvent", {"eventId": event_id}, DOOR)
    with pytest.raises(NotFound):
        w.query("tickets:listForEvent", {"eventId": "ev_none1"}, ORGANIZER)


# -- the engine-facing surface --------------------------------------------------------------------


def test_a_rejected_command_leaves_the_state_untouched() -> None:
    w = new_world()
    event_id = create_event(w, total=1)
    join(w, event_id, "alice")
    before: EventQueueState = state_of(w, event_id)
    spec = SPECS["events:joinWaitingList"]
    args = spec.args_type(event_id=event_id, user_id="alice")
    with pytest.raises(Conflict):
        decide(spec, before, aggregate_id=event_id, args=args, version=3, identity=user("alice"))
    assert state_of(w, event_id) is before
    assert w.replay(f"event/{event_id}") == before


def test_every_function_is_declared_once_under_its_convex_name() -> None:
    from domain.ticketing import TICKETING

    assert sorted(m.name for m in TICKETING.mutations) == sorted(
        [
            "events:create",
            "events:update",
            "events:cancelEvent",
            "events:joinWaitingList",
            "events:purchaseTicket",
            "waitingList:releaseTicket",
            "tickets:checkIn",
            "tickets:refund",
            "queue:joinQueue",
            "queue:leaveQueue",
            "queue:callNext",
            "queue:complete",
        ]
    )
    assert sorted(q.name for q in TICKETING.queries) == sorted(
        [
            "events:get",
            "events:list",
            "events:getEventAvailability",
            "events:getUserTickets",
            "waitingList:getQueuePosition",
            "tickets:getUserTicketForEvent",
            "tickets:listForEvent",
            "queue:getEventQueue",
            "queue:getUserQueue",
        ]
    )
    assert TICKETING.aggregates == (EVENT_QUEUE,)
    assert EVENT_QUEUE.stream_of("ev_abcd") == "event/ev_abcd"


def test_positions_count_the_live_offers_ahead_across_offer_blocks() -> None:
    # 150 seats over three blocks of join numbers (0-62, 63-125, 126-149): offers bought at
    # either edge of each block leave the others ranked by the offers still ahead of them.
    w = new_world()
    event_id = create_event(w, total=150)
    names = [f"u{n}" for n in range(160)]
    entries = {name: join(w, event_id, name)["waitingListId"] for name in names}
    bought = {0, 5, 62, 63, 100, 125, 126, 149}
    for n in sorted(bought):
        purchase(w, event_id, names[n], entries[names[n]])
    offered = [n for n in range(150) if n not in bought]
    for rank, n in enumerate(offered, start=1):
        assert position(w, event_id, names[n])["position"] == rank  # type: ignore[index]
    # No seat came free (bought ones are sold): the waiting ten stand behind every offer.
    for n in range(150, 160):
        assert position(w, event_id, names[n])["position"] == len(offered) + n - 149  # type: ignore[index]
