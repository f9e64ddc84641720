"""The notification rules of docs/reference/functions.md, one behaviour per test, on the pure
in-memory World (wire codec for args and replies, journal codec for every event)."""

from __future__ import annotations

import enum
from typing import Any

import immutables
import pytest

from domain.errors import Forbidden, InvalidArgs, TurnstileError, Unauthenticated
from domain.identity import ADMIN, Identity
from domain.model import Decision, replace
from domain.notifications import (
    EXPIRY_TIMER,
    INBOX,
    MAX_DATA_BYTES,
    MAX_DATA_DEPTH,
    NOTIFICATION_TTL_MS,
    NOTIFICATIONS,
    InboxState,
    NotificationAdded,
    NotificationsExpired,
    check_invariants,
    inbox_id,
    notification_id,
    notify,
)
from tests.domain.harness import MINUTE, T0, World, token_counter

EMIT = "webhooks:emitWebhookEvent"
READ = "webhooks:getUserWebhookEvents"
ANON = Identity()
HOUR = 60 * MINUTE


def user(name: str) -> Identity:
    return Identity(subject=name)


def emit(w: World, who: str = "ann", type: str = "stripe.account.updated", **data: Any) -> str:
    nid = w.mutate(EMIT, {"type": type, "userId": who, "data": data or {"n": 1}}, ADMIN)
    assert isinstance(nid, str)
    return nid


def read(w: World, who: str = "ann", since: float = 0) -> list[dict[str, Any]]:
    found = w.query(READ, {"userId": who, "since": since}, user(who))
    assert isinstance(found, list)
    return found


def stream(who: str) -> str:
    return INBOX.stream_of(inbox_id(who))


def inbox(w: World, who: str) -> InboxState:
    state = w.states.get(stream(who), INBOX.initial)
    assert isinstance(state, InboxState)
    return state


def refused(w: World, args: dict[str, Any], identity: Identity = ADMIN) -> TurnstileError:
    """Emit `args`, expecting a refusal that leaves no trace; returns the error."""
    before = (list(w.journal), dict(w.states), dict(w.timers))
    with pytest.raises(TurnstileError) as caught:
        w.mutate(EMIT, args, identity)
    assert (w.journal, w.states, w.timers) == before
    return caught.value


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` deep counting itself: nested(1) == {}."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


# -- webhooks:emitWebhookEvent --------------------------------------------------------------------


def test_emit_stores_the_notification_for_24_hours_under_a_child_id_of_the_inbox() -> None:
    w = World(NOTIFICATIONS)
    nid = emit(w, message="Your Stripe account is now active!", ok=True)
    box = inbox_id("ann")
    assert box.startswith("ib_") and "ann" not in box
    assert nid == notification_id(box, 0) == f"nt_{box[3:]}_0"
    assert read(w) == [
        {
            "_id": nid,
            "_creationTime": T0,
            "type": "stripe.account.updated",
            "userId": "ann",
            "data": {"message": "Your Stripe account is now active!", "ok": True},
            "createdAt": T0,
            "expiresAt": T0 + NOTIFICATION_TTL_MS,
        }
    ]
    assert NOTIFICATION_TTL_MS == 24 * HOUR
    (added,) = w.stream_events(stream("ann"))
    assert isinstance(added, NotificationAdded)
    assert w.timers == {(stream("ann"), EXPIRY_TIMER): T0 + NOTIFICATION_TTL_MS}


def test_each_user_has_an_inbox_of_their_own() -> None:
    w = World(NOTIFICATIONS)
    emit(w, "ann")
    second = emit(w, "ann")
    bens = emit(w, "ben")
    assert second.endswith("_1") and bens == notification_id(inbox_id("ben"), 0)
    assert [doc["_id"] for doc in read(w, "ben")] == [bens]
    assert len(read(w, "ann")) == 2


@pytest.mark.parametrize(
    ("caller", "error"),
    [
        (ANON, Unauthenticated),
        (user("ann"), Forbidden),
        (Identity(subject="u_boss", org_id="org_a", caps=frozenset({"*"})), Forbidden),
    ],
)
def test_only_admin_may_emit(caller: Identity, error: type[Exception]) -> None:
    w = World(NOTIFICATIONS)
    args = {"type": "t", "userId": "ann", "data": {}}
    assert isinstance(refused(w, args, caller), error)
    assert w.journal == []


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ({"userId": "ann", "data": {}}, "type"),
        ({"type": "t", "data": {}}, "userId"),
        ({"type": "t", "userId": "ann"}, "data"),
        ({"type": "", "userId": "ann", "data": {}}, "type"),
        ({"type": "   ", "userId": "ann", "data": {}}, "type"),
        ({"type": "t" * 129, "userId": "ann", "data": {}}, "type"),
        ({"type": 5, "userId": "ann", "data": {}}, "type"),
        ({"type": "t", "userId": "", "data": {}}, "userId"),
        ({"type": "t", "userId": "u" * 257, "data": {}}, "userId"),
        ({"type": "t", "userId": "ann", "data": []}, "data"),
        ({"type": "t", "userId": "ann", "data": "hello"}, "data"),
        ({"type": "t", "userId": "ann", "data": None}, "data"),
        ({"type": "t", "userId": "ann", "data": {}, "extra": 1}, "extra"),
        ({"type": "t", "userId": "ann", "data": {"blob": b"\x00"}}, "data.blob"),
        ({"type": "t", "userId": "ann", "data": {"x": [1, float("nan")]}}, "data.x[1]"),
        ({"type": "t", "userId": "ann", "data": {"x": float("inf")}}, "data.x"),
        ({"type": "t", "userId": "ann", "data": {"x": 2**63}}, "data.x"),
        ({"type": "t", "userId": "ann", "data": {"a": {"$id": 1}}}, "data.a"),
        ({"type": "t", "userId": "ann", "data": {"s": "\ud800"}}, "data"),
    ],
)
def test_bad_args_are_invalid_with_the_wire_path(args: dict[str, Any], path: str) -> None:
    error = refused(World(NOTIFICATIONS), args)
    assert isinstance(error, InvalidArgs)
    assert error.data()["path"] == path


def test_data_may_be_exactly_64_kib_but_not_one_byte_more() -> None:
    w = World(NOTIFICATIONS)
    overhead = len('{"s":""}')
    emit(w, s="x" * (MAX_DATA_BYTES - overhead))
    error = refused(w, {"type": "t", "userId": "ann", "data": {"s": "x" * (MAX_DATA_BYTES - 7)}})
    assert isinstance(error, InvalidArgs)
    assert error.data() | {"message": ""} == {
        "code": "InvalidArgs",
        "message": "",
        "path": "data",
        "size": MAX_DATA_BYTES + 1,
        "limit": MAX_DATA_BYTES,
    }


def test_data_size_counts_utf8_bytes() -> None:
    w = World(NOTIFICATIONS)
    three_bytes = "\u20ac"
    fits = (MAX_DATA_BYTES - len('{"s":""}')) // 3
    emit(w, s=three_bytes * fits)
    error = refused(w, {"type": "t", "userId": "ann", "data": {"s": three_bytes * (fits + 1)}})
    assert isinstance(error, InvalidArgs) and error.data()["path"] == "data"


def test_data_may_nest_32_levels_but_not_33() -> None:
    w = World(NOTIFICATIONS)
    w.mutate(EMIT, {"type": "t", "userId": "ann", "data": nested(MAX_DATA_DEPTH)}, ADMIN)
    assert read(w)[0]["data"] == nested(MAX_DATA_DEPTH)
    error = refused(w, {"type": "t", "userId": "ann", "data": nested(MAX_DATA_DEPTH + 1)})
    assert isinstance(error, InvalidArgs)
    assert error.data()["path"] == "data" + ".a" * MAX_DATA_DEPTH
    in_a_list: dict[str, Any] = {"xs": [[[]]]}  # data 1, xs 2, its arrays 3 and 4
    w.mutate(EMIT, {"type": "t", "userId": "ann", "data": in_a_list}, ADMIN)
    deep_list: Any = []
    for _ in range(MAX_DATA_DEPTH - 1):
        deep_list = [deep_list]
    error = refused(w, {"type": "t", "userId": "ann", "data": {"xs": deep_list}})
    assert error.data()["path"] == "data.xs" + "[0]" * (MAX_DATA_DEPTH - 1)


def test_data_keeps_every_json_value() -> None:
    w = World(NOTIFICATIONS)
    data = {
        "null": None,
        "flag": False,
        "big": 2**63 - 1,
        "small": -(2**63),
        "half": 0.5,
        "text": "caf\u00e9 \U0001f389",
        "list": [1, "two", {"three": [3.0]}],
        "": "empty keys are allowed",
    }
    w.mutate(EMIT, {"type": "t", "userId": "ann", "data": data}, ADMIN)
    assert read(w)[0]["data"] == data


# -- webhooks:getUserWebhookEvents ----------------------------------------------------------------


def test_a_user_reads_only_their_own_inbox() -> None:
    w = World(NOTIFICATIONS)
    emit(w, "ann")
    with pytest.raises(Forbidden):
        w.query(READ, {"userId": "ann", "since": 0}, user("mallory"))
    with pytest.raises(Forbidden):
        w.query(READ, {"userId": "ann", "since": 0}, Identity(subject="x", caps=frozenset({"*"})))
    with pytest.raises(Unauthenticated):
        w.query(READ, {"userId": "ann", "since": 0}, ANON)
    assert len(w.query(READ, {"userId": "ann", "since": 0}, ADMIN)) == 1
    assert len(read(w, "ann")) == 1


def test_reading_an_inbox_that_never_received_anything_is_empty() -> None:
    w = World(NOTIFICATIONS)
    assert read(w, "nobody") == []
    with pytest.raises(InvalidArgs) as bad:
        w.query(READ, {"userId": "", "since": 0}, ADMIN)
    assert bad.value.data()["path"] == "userId"
    with pytest.raises(InvalidArgs) as missing:
        w.query(READ, {"userId": "ann"}, ADMIN)
    assert missing.value.data()["path"] == "since"


def test_since_keeps_strictly_newer_notifications_oldest_first() -> None:
    w = World(NOTIFICATIONS)
    first = emit(w, n=1)
    w.advance(MINUTE)
    second = emit(w, n=2)
    third = emit(w, n=3)  # same millisecond: arrival order decides
    w.advance(MINUTE)
    fourth = emit(w, n=4)

    def ids(since: float) -> list[str]:
        return [doc["_id"] for doc in read(w, since=since)]

    assert ids(0) == [first, second, third, fourth]
    assert ids(T0 - 1) == [first, second, third, fourth]
    assert ids(T0) == [second, third, fourth]
    assert ids(T0 + MINUTE - 0.5) == [second, third, fourth]
    assert ids(T0 + MINUTE) == [fourth]
    assert ids(T0 + 2 * MINUTE) == []
    assert [doc["data"]["n"] for doc in read(w)] == [1, 2, 3, 4]


# -- expiry ---------------------------------------------------------------------------------------


def test_a_notification_is_removed_exactly_24_hours_after_it_was_emitted() -> None:
    w = World(NOTIFICATIONS)
    nid = emit(w)
    assert w.advance(NOTIFICATION_TTL_MS - 1) == []
    assert [doc["_id"] for doc in read(w)] == [nid]
    (expired,) = w.advance(1)
    assert isinstance(expired, NotificationsExpired)
    assert (expired.at, expired.notification_ids, expired.next_expiry_at) == (
        T0 + NOTIFICATION_TTL_MS,
        (nid,),
        None,
    )
    assert read(w) == []
    assert w.timers == {}
    assert inbox(w, "ann").count == 1  # ids are never reused
    assert emit(w).endswith("_1")


def test_one_timer_per_inbox_follows_the_earliest_expiry() -> None:
    w = World(NOTIFICATIONS)
    timer = (stream("ann"), EXPIRY_TIMER)
    first = emit(w)
    w.advance(HOUR)
    second = emit(w)
    third = emit(w)
    assert w.timers == {timer: T0 + NOTIFICATION_TTL_MS}
    assert [type(e) for e in w.stream_events(stream("ann"))[1:]] == [NotificationAdded] * 2
    assert all(not tuple(e.timer_changes()) for e in w.stream_events(stream("ann"))[1:])
    (expired,) = w.advance(NOTIFICATION_TTL_MS - HOUR)
    assert isinstance(expired, NotificationsExpired) and expired.notification_ids == (first,)
    assert w.timers == {timer: T0 + HOUR + NOTIFICATION_TTL_MS}
    assert [doc["_id"] for doc in read(w)] == [second, third]
    (expired,) = w.advance(HOUR)
    assert isinstance(expired, NotificationsExpired)
    assert expired.notification_ids == (second, third)
    assert w.timers == {}


def test_an_early_or_stale_timer_changes_nothing() -> None:
    w = World(NOTIFICATIONS)
    emit(w)
    assert w.fire(stream("ann"), EXPIRY_TIMER) == ()
    assert w.fire(stream("ann"), "not-a-timer") == ()
    assert w.fire(stream("nobody"), EXPIRY_TIMER) == ()
    assert len(read(w)) == 1


def test_a_late_timer_does_not_let_an_emit_keep_expired_notifications() -> None:
    w = World(NOTIFICATIONS)
    old = emit(w)
    w.now += NOTIFICATION_TTL_MS + HOUR  # the timer has not run (server down, or busy)
    new = emit(w)
    expired, added = w.stream_events(stream("ann"))[1:]
    assert isinstance(expired, NotificationsExpired) and expired.notification_ids == (old,)
    assert isinstance(added, NotificationAdded) and added.notification_id == new
    assert [doc["_id"] for doc in read(w)] == [new]
    assert w.timers == {(stream("ann"), EXPIRY_TIMER): w.now + NOTIFICATION_TTL_MS}


def test_replaying_the_journal_gives_the_live_inbox() -> None:
    w = World(NOTIFICATIONS)
    emit(w, deep={"list": [1, {"x": None}]})
    w.advance(20 * HOUR)
    emit(w)
    w.advance(5 * HOUR)
    emit(w, "ben")
    for who in ("ann", "ben"):
        assert w.replay(stream(who)) == inbox(w, who)


# -- notify, for other modules --------------------------------------------------------------------


class Kind(enum.IntEnum):
    REMINDER = 2


def inbox_decision(who: str, state: InboxState = INBOX.initial, now: int = T0) -> Decision[Any]:
    return Decision(
        stream=stream(who),
        state=state,
        version=0,
        now=now,
        identity=user("someone-else"),
        evolve=INBOX.evolve,
        tokens=token_counter(),
    )


def test_notify_adds_a_private_copy_of_the_data_checking_no_identity() -> None:
    d = inbox_decision("ann")
    data: dict[str, Any] = {
        "when": (1, 2),
        "where": immutables.Map({"room": [1]}),
        "kind": Kind.REMINDER,
    }
    nid = notify(d, type="booking.reminder", user_id="ann", data=data)
    data["where"] = "changed"
    (added,) = d.events
    assert isinstance(added, NotificationAdded) and added.notification_id == nid
    stored = d.state.notifications[nid].data
    assert stored == immutables.Map({"when": [1, 2], "where": {"room": [1]}, "kind": 2})
    assert type(stored["kind"]) is int  # as the journal gives it back
    check_invariants(d.state)


def test_notify_checks_the_fields_and_the_inbox() -> None:
    with pytest.raises(InvalidArgs) as bad:
        notify(inbox_decision("ann"), type="t", user_id="ann", data={"at": object()})
    assert bad.value.data()["path"] == "data.at"
    with pytest.raises(InvalidArgs):
        notify(inbox_decision("ann"), type="t", user_id="ann", data={1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="not the inbox"):
        notify(inbox_decision("ann"), type="t", user_id="ben", data={})


# -- invariants and purity ------------------------------------------------------------------------


def test_check_invariants_catches_a_wrong_timer_or_lifetime() -> None:
    d = inbox_decision("ann")
    nid = notify(d, type="t", user_id="ann", data={})
    good = d.state
    check_invariants(good)
    with pytest.raises(AssertionError, match="earliest expiry"):
        check_invariants(replace(good, next_expiry_at=None))
    with pytest.raises(AssertionError, match="24 hours"):
        wrong = replace(good.notifications[nid], expires_at=T0 + 1)
        check_invariants(replace(good, notifications=good.notifications.set(nid, wrong)))
    with pytest.raises(AssertionError, match="without a user"):
        check_invariants(replace(good, user_id=None))
