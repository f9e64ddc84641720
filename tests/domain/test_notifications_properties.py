"""Random emits, time passing and downtime across a few inboxes, against a plain model.

Whatever happens: every committed inbox passes `check_invariants`; a user reads exactly the
notifications emitted for them in the last 24 hours that are newer than `since`, oldest first;
each inbox with live notifications has exactly one timer, armed for its earliest expiry and
never overdue once time has moved on, and an empty inbox has none; folding the journal gives
the live state, and the snapshot codec gives it back unchanged.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.identity import Identity
from domain.notifications import (
    EXPIRY_TIMER,
    INBOX,
    NOTIFICATION_TTL_MS,
    NOTIFICATIONS,
    InboxState,
    inbox_id,
)
from engine.codec import decode_value, encode_value
from tests.domain.harness import MINUTE, World

USERS = ("ann", "ben", "cat")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_keys = st.text(max_size=6).filter(lambda key: not key.startswith("$"))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_keys, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(json_keys, json_values, max_size=4)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("emit"), st.sampled_from(USERS), json_objects),
        st.tuples(st.just("advance"), st.integers(0, 30 * 60), st.none()),
        st.tuples(st.just("down"), st.integers(1, 30 * 60), st.none()),
    ),
    max_size=40,
)


def stream(who: str) -> str:
    return INBOX.stream_of(inbox_id(who))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, since_back=st.integers(0, 26 * 60))
def test_inboxes_hold_exactly_the_last_24_hours(
    ops: list[tuple[str, Any, Any]], since_back: int
) -> None:
    w = World(NOTIFICATIONS)
    #: (notification id, user, createdAt, data) in emission order.
    emitted: list[tuple[str, str, int, dict[str, Any]]] = []
    for kind, arg, data in ops:
        if kind == "emit":
            nid = w.mutate("webhooks:emitWebhookEvent", {"type": "t", "userId": arg, "data": data})
            emitted.append((nid, arg, w.now, data))
        elif kind == "advance":
            w.advance(arg * MINUTE)
        else:
            w.now += arg * MINUTE  # the server is down: no timer runs...
            w.advance(0)  # ...until it recovers, when the overdue ones fire at once

        since = w.now - since_back * MINUTE
        for who in USERS:
            expected = [
                (nid, data)
                for nid, owner, created, data in emitted
                if owner == who and created + NOTIFICATION_TTL_MS > w.now and created > since
            ]
            found = w.query(
                "webhooks:getUserWebhookEvents",
                {"userId": who, "since": since},
                Identity(subject=who),
            )
            assert [(doc["_id"], doc["data"]) for doc in found] == expected

            state = w.states.get(stream(who))
            timer = w.timers.get((stream(who), EXPIRY_TIMER))
            if state is None:
                assert timer is None
                continue
            assert isinstance(state, InboxState)
            assert timer == state.next_expiry_at
            assert timer is None or timer > w.now
            assert w.replay(stream(who)) == state
            assert decode_value(encode_value(state, InboxState), InboxState) == state
        assert {key for key, _ in w.timers} <= {stream(who) for who in USERS}
