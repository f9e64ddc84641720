"""Notifications end to end in-process, through the `turnstile` fixture and `open_harness`: the
24-hour expiry as a durable timer across restarts and downtime, live queries, and `notify` from
another module's command, all in virtual time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio.testing

from domain.errors import Conflict, Forbidden, InvalidArgs
from domain.identity import ADMIN, Identity
from domain.model import Aggregate, Decision, Event, Module, MutationSpec, replace
from domain.notifications import (
    EXPIRY_TIMER,
    INBOX,
    NOTIFICATION_TTL_MS,
    NOTIFICATIONS,
    inbox_id,
    notify,
)
from engine.testing import EngineHarness, open_harness, user

EMIT = "webhooks:emitWebhookEvent"
READ = "webhooks:getUserWebhookEvents"
DAY_MINUTES = 24 * 60


async def emit(t: EngineHarness, who: str = "ann", **data: Any) -> str:
    nid = await t.mutation(EMIT, {"type": "stripe.account.updated", "userId": who, "data": data})
    assert isinstance(nid, str)
    return nid


async def live_ids(t: EngineHarness, who: str = "ann") -> list[str]:
    found = await t.query(READ, {"userId": who, "since": 0}, user(who))
    return [doc["_id"] for doc in found]


def armed_expiry(t: EngineHarness, who: str = "ann") -> int | None:
    """When the user's inbox expiry timer is armed for (the engine's durable timer set)."""
    timers = t.engine.read_models.timers
    mine = {key: due for key, due in timers.items() if key[0] == INBOX.stream_of(inbox_id(who))}
    assert set(mine) <= {(INBOX.stream_of(inbox_id(who)), EXPIRY_TIMER)}
    return next(iter(mine.values()), None)


async def test_a_notification_is_removed_exactly_24_hours_after_emission(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    emitted_at = t.now_ms()
    nid = await emit(t, message="Your Stripe account is now active!")
    (doc,) = await t.query(READ, {"userId": "ann", "since": emitted_at - 1}, user("ann"))
    assert doc == {
        "_id": nid,
        "_creationTime": emitted_at,
        "type": "stripe.account.updated",
        "userId": "ann",
        "data": {"message": "Your Stripe account is now active!"},
        "createdAt": emitted_at,
        "expiresAt": emitted_at + NOTIFICATION_TTL_MS,
    }
    assert armed_expiry(t) == emitted_at + NOTIFICATION_TTL_MS
    await t.advance(minutes=DAY_MINUTES - 1)
    assert await live_ids(t) == [nid]
    await t.advance(seconds=59)
    assert await live_ids(t) == [nid]
    await t.advance(seconds=1)
    assert t.now_ms() - emitted_at == NOTIFICATION_TTL_MS
    assert await live_ids(t) == []
    assert armed_expiry(t) is None
    rows = t.engine.journal.read_stream(INBOX.stream_of(inbox_id("ann")))
    assert [(row.type, row.at) for row in rows] == [
        ("NotificationAdded", emitted_at),
        ("NotificationsExpired", emitted_at + NOTIFICATION_TTL_MS),
    ]


async def test_expiry_is_exact_across_a_restart(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    emitted_at = t.now_ms()
    nid = await emit(t)
    await t.advance(minutes=10 * 60)
    later = await emit(t)
    await t.restart()
    assert armed_expiry(t) == emitted_at + NOTIFICATION_TTL_MS
    await t.advance(minutes=14 * 60, seconds=-1)
    assert await live_ids(t) == [nid, later]
    await t.advance(seconds=1)
    assert await live_ids(t) == [later]
    # The one timer moved on to the next expiry, durably.
    await t.restart()
    assert armed_expiry(t) == emitted_at + 10 * 60 * 60_000 + NOTIFICATION_TTL_MS
    await t.advance(minutes=10 * 60, seconds=-1)
    assert await live_ids(t) == [later]
    await t.advance(seconds=1)
    assert await live_ids(t) == []
    assert armed_expiry(t) is None


async def test_an_expiry_while_the_server_is_down_happens_on_recovery(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    emitted_at = t.now_ms()
    await emit(t)
    await emit(t, "ben")
    await t.advance(minutes=60)
    bens_second = await emit(t, "ben")
    await t.stop()
    await trio.sleep(23 * 60 * 60 + 30 * 60)  # down across the first expiries, not the last
    recovered_at = emitted_at + NOTIFICATION_TTL_MS + 30 * 60_000
    await t.start()
    await t.settle()
    assert t.now_ms() == recovered_at  # removed at once: no time passed since recovery
    assert await live_ids(t, "ann") == []
    assert await live_ids(t, "ben") == [bens_second]
    ann_rows = t.engine.journal.read_stream(INBOX.stream_of(inbox_id("ann")))
    assert (ann_rows[-1].type, ann_rows[-1].at) == ("NotificationsExpired", recovered_at)
    assert armed_expiry(t, "ann") is None
    assert armed_expiry(t, "ben") == emitted_at + 60 * 60_000 + NOTIFICATION_TTL_MS


async def test_a_subscription_sees_the_notification_arrive_and_expire(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    args = {"userId": "ann", "since": t.now_ms() - 60_000}
    async with t.engine.subscribe(READ, args, user("ann")) as live:
        ts, value = await live.__anext__()
        assert value == []
        emitted = await t.engine.mutation(
            EMIT, {"type": "queue.update", "userId": "ann", "data": {"position": 3}}, ADMIN
        )
        ts, value = await live.__anext__()
        assert ts == emitted.ts
        assert [(doc["_id"], doc["data"]) for doc in value] == [(emitted.value, {"position": 3})]
        # Someone else's notification does not touch ann's subscription.
        await emit(t, "ben")
        await t.advance(minutes=DAY_MINUTES)
        with trio.fail_after(1):  # virtual time: nothing more may be needed for the removal
            ts, value = await live.__anext__()
        assert value == []
        assert ts > emitted.ts


async def test_refused_emits_write_nothing(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    seq = t.engine.committed_seq
    with pytest.raises(Forbidden):
        await t.mutation(EMIT, {"type": "t", "userId": "ann", "data": {}}, user("ann"))
    with pytest.raises(InvalidArgs) as too_big:
        await t.mutation(EMIT, {"type": "t", "userId": "ann", "data": {"s": "x" * 70_000}})
    assert too_big.value.data()["path"] == "data"
    assert t.engine.committed_seq == seq
    assert await live_ids(t) == []


# -- notify from another module's command -------------------------------------------------------


@attrs.frozen(kw_only=True)
class Booking:
    user_id: str | None = None


@attrs.frozen(kw_only=True)
class SampleBookingMade(Event):
    user_id: str


def _evolve(state: Booking, event: Event) -> Booking:
    if isinstance(event, SampleBookingMade):
        return replace(state, user_id=event.user_id)
    raise TypeError(type(event).__name__)


BOOKING: Aggregate[Booking] = Aggregate(
    kind="samplebooking", id_prefix="sb", state_type=Booking, initial=Booking(), evolve=_evolve
)


@attrs.frozen(kw_only=True)
class BookArgs:
    user_id: str
    refuse: bool = False
    note: str = "See you soon"


def book(d: Decision[Booking], args: BookArgs) -> dict[str, str]:
    """A booking that drops a reminder into the customer's inbox in the same command."""
    d.emit(SampleBookingMade, user_id=args.user_id)
    inbox = d.co_decide(INBOX, inbox_id(args.user_id))
    nid = notify(
        inbox,
        type="booking.confirmed",
        user_id=args.user_id,
        data={"bookingId": d.aggregate_id, "note": args.note},
    )
    if args.refuse:
        raise Conflict("The slot was taken meanwhile.")
    return {"bookingId": d.aggregate_id, "notificationId": nid}


BOOKINGS = Module(
    aggregates=(BOOKING,),
    projections=(),
    mutations=(
        MutationSpec(
            name="sampleBookings:book",
            args_type=BookArgs,
            aggregate=BOOKING,
            route=None,
            handle=book,
        ),
    ),
    queries=(),
)


async def test_notify_adds_to_the_inbox_atomically_with_the_calling_command(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_harness(tmp_path / "data", modules=(NOTIFICATIONS, BOOKINGS)) as t:
        booked_at = t.now_ms()
        reply = await t.mutation("sampleBookings:book", {"userId": "cat"}, user("cat"))
        (doc,) = await t.query(READ, {"userId": "cat", "since": 0}, user("cat"))
        assert doc["_id"] == reply["notificationId"]
        assert doc["data"] == {"bookingId": reply["bookingId"], "note": "See you soon"}
        inbox_rows = t.engine.journal.read_stream(INBOX.stream_of(inbox_id("cat")))
        booking_rows = t.engine.journal.read_stream(BOOKING.stream_of(reply["bookingId"]))
        # One command, one commit: the inbox's event is written right before the booking's.
        assert [row.seq for row in inbox_rows] == [booking_rows[0].seq - 1]

        seq = t.engine.committed_seq
        with pytest.raises(Conflict):
            await t.mutation("sampleBookings:book", {"userId": "cat", "refuse": True})
        with pytest.raises(InvalidArgs) as bad:
            await t.mutation("sampleBookings:book", {"userId": "cat", "note": "x" * 70_000})
        assert bad.value.data()["path"] == "data"
        assert t.engine.committed_seq == seq
        assert await live_ids(t, "cat") == [reply["notificationId"]]

        await t.restart()
        await t.advance(minutes=DAY_MINUTES)
        assert t.now_ms() - booked_at == NOTIFICATION_TTL_MS
        assert await live_ids(t, "cat") == []


async def test_only_the_user_or_admin_may_read_an_inbox(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    await emit(t)
    with pytest.raises(Forbidden):
        await t.query(READ, {"userId": "ann", "since": 0}, user("mallory"))
    staff = Identity(subject="u_staff", org_id="org_a", caps=frozenset({"*"}))
    with pytest.raises(Forbidden):
        await t.query(READ, {"userId": "ann", "since": 0}, staff)
    assert len(await t.query(READ, {"userId": "ann", "since": 0}, ADMIN)) == 1
