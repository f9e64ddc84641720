"""Random interleavings of every ticketing and live-queue command across users and events.

Whatever happens: every committed state passes `check_invariants` (no overselling, one open
entry per user, counters agree); a refused command changes nothing; the armed timers are exactly
the live offers' expiry times and none is overdue once time has passed; and folding the journal
from `initial` reproduces every decided state and every projection exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import TurnstileError
from domain.identity import ADMIN
from domain.ticketing import EventQueueState, check_invariants
from engine.codec import decode_value, encode_value
from tests.domain.harness import MINUTE, World
from tests.domain.ticketing_helpers import ORGANIZER, create_event, new_world, state_of, user

USERS = ("ann", "ben", "cat", "dan", "eve")

Op = tuple[str, int, int, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "join",
                "join",
                "purchase",
                "purchase",
                "steal",
                "release",
                "advance",
                "advance",
                "refund",
                "check_in",
                "cancel",
                "resize",
                "queue_join",
                "queue_leave",
                "call_next",
                "complete",
            ]
        ),
        st.integers(0, len(USERS) - 1),
        st.integers(0, 2),
        st.integers(0, 40),
    ),
    max_size=60,
)


def latest_entry(w: World, event_id: str, who: str) -> str | None:
    ids = state_of(w, event_id).entries_by_user.get(who, ())
    return ids[-1] if ids else None


def run(w: World, events: list[str], op: Op) -> None:
    kind, u, e, n = op
    who, event_id = USERS[u], events[e]
    me = user(who)
    if kind == "join":
        w.mutate("events:joinWaitingList", {"eventId": event_id, "userId": who}, me)
    elif kind in ("purchase", "steal"):
        # "steal" names another user's entry as one's own.
        owner = USERS[(u + 1) % len(USERS)] if kind == "steal" else who
        wl = latest_entry(w, event_id, owner) or "wl_none_0"
        args = {
            "eventId": event_id,
            "userId": who,
            "waitingListId": wl,
            "paymentInfo": {"paymentIntentId": f"pi_{n % 6}", "amount": 2500},
        }
        w.mutate("events:purchaseTicket", args, me)
    elif kind == "release":
        wl = latest_entry(w, event_id, who) or "wl_none_0"
        w.mutate("waitingList:releaseTicket", {"eventId": event_id, "waitingListId": wl}, me)
    elif kind == "advance":
        w.advance(n * MINUTE)
    elif kind in ("refund", "check_in"):
        tickets = sorted(state_of(w, event_id).tickets)
        if tickets:
            name = "tickets:refund" if kind == "refund" else "tickets:checkIn"
            w.mutate(name, {"ticketId": tickets[n % len(tickets)]}, ORGANIZER)
    elif kind == "cancel":
        if n % 4 == 0:  # keep cancellations rare, so the other events stay busy
            w.mutate("events:cancelEvent", {"eventId": event_id}, ORGANIZER)
    elif kind == "resize":
        w.mutate("events:update", {"eventId": event_id, "totalTickets": n % 5}, ORGANIZER)
    elif kind == "queue_join":
        w.mutate("queue:joinQueue", {"eventId": event_id, "userId": who}, me)
    elif kind == "queue_leave":
        w.mutate("queue:leaveQueue", {"eventId": event_id, "userId": who}, me)
    elif kind == "call_next":
        w.mutate("queue:callNext", {"eventId": event_id}, ORGANIZER)
    elif kind == "complete":
        w.mutate("queue:complete", {"eventId": event_id, "userId": who}, ORGANIZER)


def check_world(w: World, events: list[str]) -> None:
    for event_id in events:
        stream = f"event/{event_id}"
        state = state_of(w, event_id)
        check_invariants(state)
        offers = {(stream, wl): state.entries[wl].offer_expires_at for wl in state.live_offers}
        armed = {key: due for key, due in w.timers.items() if key[0] == stream}
        assert armed == offers
        assert all(due is not None and due > w.now for due in offers.values()) or not offers


def query_everything(w: World, events: list[str]) -> None:
    """Every query answers (or refuses with a domain error) on every reachable state."""
    for event_id in events:
        for name in (
            "events:get",
            "events:getEventAvailability",
            "tickets:listForEvent",
            "queue:getEventQueue",
        ):
            w.query(name, {"eventId": event_id}, ORGANIZER)
        for who in USERS:
            pair: dict[str, Any] = {"eventId": event_id, "userId": who}
            w.query("waitingList:getQueuePosition", pair, user(who))
            w.query("tickets:getUserTicketForEvent", pair, user(who))
    w.query("events:list", {})
    for who in USERS:
        w.query("events:getUserTickets", {"userId": who}, user(who))
        w.query("queue:getUserQueue", {"userId": who}, user(who))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(totals=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), script=ops)
def test_random_interleavings_keep_every_invariant(
    totals: tuple[int, int, int], script: list[Op]
) -> None:
    w = new_world()
    events = [create_event(w, total=t) for t in totals]
    for op in script:
        before = (len(w.journal), dict(w.states), dict(w.timers))
        try:
            run(w, events, op)
        except TurnstileError:
            assert (len(w.journal), w.states, w.timers) == before
        check_world(w, events)
    query_everything(w, events)
    for event_id in events:
        stream = f"event/{event_id}"
        assert w.replay(stream) == w.states[stream]
        # The snapshot codec round-trips the state exactly.
        assert (
            decode_value(encode_value(w.states[stream], EventQueueState), EventQueueState)
            == (w.states[stream])
        )
        versions = [event.version for event in w.stream_events(stream)]
        assert versions == list(range(1, len(versions) + 1))
    assert w.replay_projections() == w.projections
    listed = {doc["_id"] for doc in w.query("events:list", {}, ADMIN)}
    assert listed == {
        e
        for e in events
        if not state_of(w, e).event.is_cancelled  # type: ignore[union-attr]
    }
