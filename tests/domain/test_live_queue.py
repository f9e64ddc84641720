"""The live queue (docs/reference/functions.md, "Live queue"), in the event-queue aggregate."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import Conflict, Forbidden, NotFound, Unauthenticated
from domain.identity import ADMIN, Identity
from domain.ticketing import QueueEntryCalled
from tests.domain.harness import MINUTE, T0, World
from tests.domain.ticketing_helpers import (
    ANON,
    DOOR,
    ORGANIZER,
    QUEUE_STAFF,
    RIVAL,
    create_event,
    new_world,
    state_of,
    user,
)

SERVICE = 5 * MINUTE  # the default averageServiceMinutes


def join_queue(w: World, event_id: str, who: str) -> dict[str, Any]:
    reply = w.mutate("queue:joinQueue", {"eventId": event_id, "userId": who}, user(who))
    assert isinstance(reply, dict)
    return reply


def leave(w: World, event_id: str, who: str) -> None:
    w.mutate("queue:leaveQueue", {"eventId": event_id, "userId": who}, user(who))


def call_next(w: World, event_id: str, caller: Identity = QUEUE_STAFF) -> Any:
    return w.mutate("queue:callNext", {"eventId": event_id}, caller)


def waiting(w: World, event_id: str) -> list[tuple[str, int, int]]:
    rows = w.query("queue:getEventQueue", {"eventId": event_id}, QUEUE_STAFF)
    assert all(r["status"] == "waiting" for r in rows)
    return [(r["userId"], r["position"], r["estimatedTime"]) for r in rows]


def test_join_replies_with_position_and_estimate_from_the_first_waiters_join() -> None:
    w = new_world()
    event_id = create_event(w)
    assert join_queue(w, event_id, "alice") == {"position": 1, "estimatedTime": T0}
    w.now += 2 * MINUTE
    assert join_queue(w, event_id, "bob") == {"position": 2, "estimatedTime": T0 + SERVICE}
    assert join_queue(w, event_id, "carol") == {
        "position": 3,
        "estimatedTime": T0 + 2 * SERVICE,
    }


def test_the_events_average_service_time_drives_the_estimate() -> None:
    w = new_world()
    event_id = create_event(w, averageServiceMinutes=12)
    join_queue(w, event_id, "alice")
    assert join_queue(w, event_id, "bob")["estimatedTime"] == T0 + 12 * MINUTE
    w.mutate("events:update", {"eventId": event_id, "averageServiceMinutes": 3}, ORGANIZER)
    assert waiting(w, event_id) == [("alice", 1, T0), ("bob", 2, T0 + 3 * MINUTE)]


def test_call_next_calls_the_first_waiter_and_anchors_estimates_on_the_call() -> None:
    w = new_world()
    event_id = create_event(w)
    for name in ("alice", "bob", "carol"):
        join_queue(w, event_id, name)
    w.now += 20 * MINUTE
    called = call_next(w, event_id)
    assert called == {
        "_id": f"qe_{event_id[3:]}_0",
        "_creationTime": T0,
        "eventId": event_id,
        "userId": "alice",
        "status": "called",
        "position": 0,
        "estimatedTime": T0 + 20 * MINUTE,
    }
    assert isinstance(w.journal[-1], QueueEntryCalled)
    assert waiting(w, event_id) == [
        ("bob", 1, T0 + 20 * MINUTE),
        ("carol", 2, T0 + 20 * MINUTE + SERVICE),
    ]


def test_a_queue_that_ran_empty_restarts_its_estimate_from_the_new_first_waiter() -> None:
    w = new_world()
    event_id = create_event(w)
    join_queue(w, event_id, "alice")
    call_next(w, event_id)
    w.now += 60 * MINUTE
    assert join_queue(w, event_id, "bob") == {"position": 1, "estimatedTime": T0 + 60 * MINUTE}


def test_call_next_on_an_empty_queue_returns_null_and_writes_nothing() -> None:
    w = new_world()
    event_id = create_event(w)
    before = len(w.journal)
    assert call_next(w, event_id) is None
    join_queue(w, event_id, "alice")
    leave(w, event_id, "alice")
    assert call_next(w, event_id) is None
    assert len(w.journal) == before + 2


def test_leaving_from_the_middle_moves_everyone_behind_up() -> None:
    w = new_world()
    event_id = create_event(w)
    for name in ("u0", "u1", "u2", "u3", "u4"):
        join_queue(w, event_id, name)
    leave(w, event_id, "u2")
    leave(w, event_id, "u1")
    assert waiting(w, event_id) == [
        ("u0", 1, T0),
        ("u3", 2, T0 + SERVICE),
        ("u4", 3, T0 + 2 * SERVICE),
    ]
    assert state_of(w, event_id).queue_holes == (1, 2)
    assert call_next(w, event_id)["userId"] == "u0"
    assert state_of(w, event_id).queue_holes == ()
    assert call_next(w, event_id)["userId"] == "u3"
    leave(w, event_id, "u4")
    assert waiting(w, event_id) == []
    assert call_next(w, event_id) is None


def test_complete_finishes_a_called_entry_and_the_user_may_queue_again() -> None:
    w = new_world()
    event_id = create_event(w)
    join_queue(w, event_id, "alice")
    args = {"eventId": event_id, "userId": "alice"}
    with pytest.raises(Conflict) as err:
        w.mutate("queue:complete", args, QUEUE_STAFF)  # still waiting
    assert err.value.data()["status"] == "waiting"
    call_next(w, event_id)
    with pytest.raises(Conflict):
        join_queue(w, event_id, "alice")  # called is still in the queue
    with pytest.raises(Conflict):
        leave(w, event_id, "alice")  # only waiting users leave
    assert w.mutate("queue:complete", args, QUEUE_STAFF) is None
    with pytest.raises(Conflict):
        w.mutate("queue:complete", args, QUEUE_STAFF)
    assert join_queue(w, event_id, "alice")["position"] == 1
    entries = sorted(state_of(w, event_id).queue.values(), key=lambda e: e.number)
    assert [(e.user_id, e.status) for e in entries] == [
        ("alice", "completed"),
        ("alice", "waiting"),
    ]


def test_a_user_is_in_the_queue_once() -> None:
    w = new_world()
    event_id = create_event(w)
    join_queue(w, event_id, "alice")
    with pytest.raises(Conflict) as err:
        join_queue(w, event_id, "alice")
    assert err.value.data()["status"] == "waiting"


def test_leave_and_complete_need_an_entry() -> None:
    w = new_world()
    event_id = create_event(w)
    with pytest.raises(NotFound, match=r"Queue entry not found\."):
        leave(w, event_id, "alice")
    with pytest.raises(NotFound, match=r"Queue entry not found\."):
        w.mutate("queue:complete", {"eventId": event_id, "userId": "alice"}, QUEUE_STAFF)
    with pytest.raises(NotFound, match=r"Event not found\."):
        join_queue(w, "ev_nothere1", "alice")


@pytest.mark.parametrize(
    ("caller", "error"),
    [(user("bob"), Forbidden), (ANON, Unauthenticated), (QUEUE_STAFF, Forbidden)],
)
def test_only_the_user_joins_and_leaves(caller: Identity, error: type[Exception]) -> None:
    w = new_world()
    event_id = create_event(w)
    args = {"eventId": event_id, "userId": "alice"}
    with pytest.raises(error):
        w.mutate("queue:joinQueue", args, caller)
    w.mutate("queue:joinQueue", args, ADMIN)
    with pytest.raises(error):
        w.mutate("queue:leaveQueue", args, caller)


@pytest.mark.parametrize(
    ("caller", "error"),
    [(RIVAL, NotFound), (DOOR, Forbidden), (user("alice"), Forbidden), (ANON, Unauthenticated)],
)
def test_staff_functions_need_queue_manage_in_the_events_org(
    caller: Identity, error: type[Exception]
) -> None:
    w = new_world()
    event_id = create_event(w)
    join_queue(w, event_id, "alice")
    with pytest.raises(error):
        call_next(w, event_id, caller)
    with pytest.raises(error):
        w.mutate("queue:complete", {"eventId": event_id, "userId": "alice"}, caller)
    with pytest.raises(error):
        w.query("queue:getEventQueue", {"eventId": event_id}, caller)
    assert call_next(w, event_id, ORGANIZER)["userId"] == "alice"


def test_get_event_queue_for_a_missing_event_is_not_found() -> None:
    with pytest.raises(NotFound):
        new_world().query("queue:getEventQueue", {"eventId": "ev_nothere1"}, QUEUE_STAFF)


def test_get_user_queue_lists_the_users_open_entries_in_every_event() -> None:
    w = new_world()
    first, second, third = create_event(w), create_event(w), create_event(w)
    join_queue(w, first, "bob")
    join_queue(w, first, "alice")
    join_queue(w, second, "alice")
    join_queue(w, third, "alice")
    call_next(w, second)
    leave(w, third, "alice")
    mine = w.query("queue:getUserQueue", {"userId": "alice"}, user("alice"))
    assert [(e["eventId"], e["status"], e["position"]) for e in mine] == [
        (first, "waiting", 2),
        (second, "called", 0),
    ]
    assert mine[0]["estimatedTime"] == T0 + SERVICE
    w.mutate("queue:complete", {"eventId": second, "userId": "alice"}, QUEUE_STAFF)
    assert [
        e["eventId"] for e in w.query("queue:getUserQueue", {"userId": "alice"}, user("alice"))
    ] == [first]
    with pytest.raises(Forbidden):
        w.query("queue:getUserQueue", {"userId": "alice"}, user("bob"))
    assert w.query("queue:getUserQueue", {"userId": "zed"}, user("zed")) == []


def test_cancelling_the_event_cancels_the_queue() -> None:
    w = new_world()
    event_id = create_event(w)
    for name in ("alice", "bob", "carol"):
        join_queue(w, event_id, name)
    call_next(w, event_id)
    leave(w, event_id, "bob")
    w.mutate("events:cancelEvent", {"eventId": event_id}, ORGANIZER)
    statuses = {e.user_id: e.status for e in state_of(w, event_id).queue.values()}
    assert statuses == {"alice": "cancelled", "bob": "cancelled", "carol": "cancelled"}
    assert w.journal[-1].cancelled_queue_user_ids == ("alice", "carol")  # type: ignore[attr-defined]
    assert waiting(w, event_id) == []
    assert w.query("queue:getUserQueue", {"userId": "carol"}, user("carol")) == []
    with pytest.raises(Conflict):
        join_queue(w, event_id, "dave")
    assert call_next(w, event_id) is None
