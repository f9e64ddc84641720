"""Properties of the whole engine on the ticketing domain (docs/engine.md, "Invariants").

Random interleavings of create/join/purchase/release/expire/refund/cancel/check-in by many
users over several events, with restarts and a snapshot somewhere in the middle, must:
- never break the ticketing invariants of any committed state, at any step;
- leave a journal whose replay from nothing gives exactly the live states and read models;
- recover, from the snapshot plus the journal tail, exactly the state of a full replay.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import TurnstileError
from domain.identity import Identity
from domain.ticketing import EVENT_QUEUE, check_invariants
from engine import codec
from engine.readmodels import ReadModels
from engine.snapshotting import fold_stream
from engine.testing import open_harness
from engine.testing.harness import EngineHarness

ORGANIZER = Identity(
    subject="u_org", org_id="org_a", caps=frozenset({"events:manage", "tickets:checkin"})
)
USERS = [f"user{i}" for i in range(8)]

ops = st.one_of(
    st.tuples(st.just("join"), st.integers(0, 2), st.sampled_from(USERS)),
    st.tuples(st.just("purchase"), st.integers(0, 2), st.sampled_from(USERS)),
    st.tuples(st.just("release"), st.integers(0, 2), st.sampled_from(USERS)),
    st.tuples(st.just("refund"), st.integers(0, 2), st.integers(0, 5)),
    st.tuples(st.just("checkin"), st.integers(0, 2), st.integers(0, 5)),
    st.tuples(st.just("resize"), st.integers(0, 2), st.integers(0, 4)),
    st.tuples(st.just("cancel"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("advance"), st.integers(1, 40), st.just(0)),
    st.tuples(st.just("restart"), st.just(0), st.just(0)),
)


async def entry_of(t: EngineHarness, event_id: str, who: str) -> dict[str, Any] | None:
    found = await t.query(
        "waitingList:getQueuePosition", {"eventId": event_id, "userId": who}, Identity(subject=who)
    )
    return found  # type: ignore[no-any-return]


async def apply(t: EngineHarness, events: list[str], op: tuple[str, int, Any]) -> None:
    kind, a, b = op
    if kind == "advance":
        await t.advance(minutes=a)
        return
    if kind == "restart":
        await t.restart()
        return
    event_id = events[a]
    if kind == "join":
        await t.mutation(
            "events:joinWaitingList", {"eventId": event_id, "userId": b}, Identity(subject=b)
        )
    elif kind in ("purchase", "release"):
        entry = await entry_of(t, event_id, b)
        entry_id = entry["_id"] if entry else "wl_nosuchentry_1"
        if kind == "purchase":
            await t.mutation(
                "events:purchaseTicket",
                {
                    "eventId": event_id,
                    "userId": b,
                    "waitingListId": entry_id,
                    "paymentInfo": {"paymentIntentId": f"pi_{b}_{entry_id}", "amount": 100},
                },
                Identity(subject=b),
            )
        else:
            await t.mutation(
                "waitingList:releaseTicket",
                {"eventId": event_id, "waitingListId": entry_id},
                Identity(subject=b),
            )
    elif kind in ("refund", "checkin"):
        tickets = await t.query("tickets:listForEvent", {"eventId": event_id}, ORGANIZER)
        if not tickets:
            return
        ticket_id = tickets[b % len(tickets)]["_id"]
        name = "tickets:refund" if kind == "refund" else "tickets:checkIn"
        await t.mutation(name, {"ticketId": ticket_id}, ORGANIZER)
    elif kind == "resize":
        await t.mutation("events:update", {"eventId": event_id, "totalTickets": b}, ORGANIZER)
    elif kind == "cancel":
        await t.mutation("events:cancelEvent", {"eventId": event_id}, ORGANIZER)


def full_replay(t: EngineHarness, streams: list[str]) -> tuple[dict[str, Any], ReadModels]:
    journal = t.engine.journal
    states = {}
    for stream in streams:
        state, _ = fold_stream(EVENT_QUEUE, EVENT_QUEUE.initial, 0, journal.read_stream(stream))
        states[stream] = state
    models = ReadModels(t.engine.registry.projections.values())
    for row in journal.scan():
        models.apply(codec.decode_row(row))
    return states, models


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(ops, min_size=5, max_size=45), snapshot_after=st.integers(0, 45))
async def test_random_interleavings_keep_every_promise(
    steps: list[tuple[str, int, Any]], snapshot_after: int, autojump_clock: trio.testing.MockClock
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_harness(Path(tmp) / "data") as t:
            events = []
            for total in (1, 2, 3):
                events.append(
                    await t.mutation(
                        "events:create",
                        {
                            "name": f"E{total}",
                            "description": "d",
                            "location": "l",
                            "eventDate": t.now_ms() + 10**9,
                            "price": 100,
                            "totalTickets": total,
                        },
                        ORGANIZER,
                    )
                )
            for i, step in enumerate(steps):
                if i == snapshot_after:
                    await t.engine.snapshot_now()
                before = t.engine.committed_seq
                try:
                    await apply(t, events, step)
                except TurnstileError:
                    # A refused command leaves the journal where it was.
                    assert t.engine.committed_seq == before
                await t.settle()
                for event_id in events:
                    check_invariants(t.engine.committed_state(EVENT_QUEUE, event_id))

            streams = [EVENT_QUEUE.stream_of(e) for e in events]
            live = {
                s: t.engine.committed_state(EVENT_QUEUE, e)
                for s, e in zip(streams, events, strict=True)
            }
            replayed, models = full_replay(t, streams)
            assert replayed == live
            assert models.states == t.engine.read_models.states
            assert models.timers == t.engine.read_models.timers

            await t.restart()  # recovery: newest snapshot (if one was taken) + journal tail
            recovered = {
                s: t.engine.committed_state(EVENT_QUEUE, e)
                for s, e in zip(streams, events, strict=True)
            }
            assert recovered == replayed
            assert t.engine.read_models.states == models.states
            assert t.engine.read_models.timers == models.timers
