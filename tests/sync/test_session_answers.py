"""A sync session's MutationResponses: queued when each outcome is known (no task awaits it),
in order for mutations of one actor, within the in-flight limit, errors encoded, and a session
that ends with mutations in flight waiting for them (up to `mutation_grace`).

Most tests replace `Engine.begin_mutation` with one that hands out outcomes the test resolves
itself, in the order it likes."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from domain.errors import Overloaded
from engine.actor import Reply
from engine.engine import PendingMutation
from engine.sync.limits import ServerConfig, SessionLimits, SessionSlots, Throttle
from engine.sync.session import SyncSession
from engine.testing import EngineHarness
from engine.wire import values as convex_values
from engine.wire.protocol import decode_ts
from tests.sync.conftest import ORG_ARGS
from tests.sync.fake_ws import FakeWebSocket, StubServer


class Outcomes:
    """Stands in for `Engine.begin_mutation`: each mutation begun gets a `Reply` the test
    resolves (`begun` holds them by request id, in the order begun)."""

    def __init__(self) -> None:
        self.begun: dict[int, Reply] = {}

    def begin_mutation(self, name: str, args: Any, identity: Any, **kw: Any) -> PendingMutation:
        reply = Reply()
        self.begun[kw["request_id"]] = reply
        return PendingMutation(reply)


def limits(**config: Any) -> SessionLimits:
    server = ServerConfig(**config)
    return SessionLimits(
        config=server,
        throttle=Throttle.of(server),
        slots=SessionSlots(server.max_sessions_per_identity),
    )


def mutation(request_id: int, path: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}


async def start(
    nursery: trio.Nursery, h: EngineHarness, ended: list[SyncSession], **config: Any
) -> tuple[FakeWebSocket, SyncSession]:
    """A session (its `run()` notes in `ended` when it returns), after Connect."""
    ws = FakeWebSocket()
    session = SyncSession(ws.connection, StubServer(h.engine), limits=limits(**config))

    async def run() -> None:
        await session.run()
        ended.append(session)

    nursery.start_soon(run)
    await ws.send({"type": "Connect", "sessionId": "s", "connectionCount": 0, "clientTs": 0})
    return ws, session


async def responses(ws: FakeWebSocket, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        message = await ws.receive()
        if message["type"] == "MutationResponse":
            got.append(message)
    return got


async def test_many_mutations_of_one_session_are_answered_in_order_each_before_its_write(
    h: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    event_id = await h.mutation("events:create", dict(ORG_ARGS, totalTickets=500))
    async with trio.open_nursery() as nursery:
        ended: list[SyncSession] = []
        ws, session = await start(nursery, h, ended)
        await ws.send(
            {"type": "Authenticate", "tokenType": "Admin", "value": "admin-key", "baseVersion": 0}
        )
        query = {
            "type": "Add",
            "queryId": 1,
            "udfPath": "events:getEventAvailability",
            "args": [{"eventId": event_id}],
        }
        await ws.send(
            {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [query]}
        )
        count = 120  # sent without waiting: all in flight at once (the limit is 256)
        for i in range(count):
            await ws.send(
                mutation(i, "events:joinWaitingList", {"eventId": event_id, "userId": f"u{i}"})
            )
        answered: list[dict[str, Any]] = []
        seen_ts = 0  # the ts the last Transition reached
        remaining = None
        while len(answered) < count or remaining != 500 - count:
            message = await ws.receive()
            if message["type"] == "MutationResponse":
                assert message["success"] is True, message
                # Read-your-writes: no Transition sent before it already reached its ts.
                assert decode_ts(message["ts"]) > seen_ts
                answered.append(message)
            elif message["type"] == "Transition":
                seen_ts = decode_ts(message["endVersion"]["ts"])
                for change in message["modifications"]:
                    remaining = change["value"]["remainingTickets"]
        # One actor decides them in the order begun, and they are answered in that order.
        assert [m["requestId"] for m in answered] == list(range(count))
        stamps = [decode_ts(m["ts"]) for m in answered]
        assert stamps == sorted(stamps)
        assert session._in_flight.value == 256
        ws.disconnect()


async def test_the_in_flight_limit_holds_and_each_slot_is_given_back_once(
    h: EngineHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = Outcomes()
    monkeypatch.setattr(h.engine, "begin_mutation", outcomes.begin_mutation)
    async with trio.open_nursery() as nursery:
        ended: list[SyncSession] = []
        ws, session = await start(nursery, h, ended, max_mutations_in_flight=3)
        for i in range(6):
            await ws.send(mutation(i, "events:create", {}))
        await trio.testing.wait_all_tasks_blocked()
        assert list(outcomes.begun) == [0, 1, 2]  # reading waits past the limit
        outcomes.begun[1].resolve("one", 7)  # answered as soon as its outcome is known
        (first,) = await responses(ws, 1)
        assert (first["requestId"], first["result"]) == (1, "one")
        await trio.testing.wait_all_tasks_blocked()
        assert list(outcomes.begun) == [0, 1, 2, 3]
        for request_id in (3, 0, 2):
            outcomes.begun[request_id].resolve(request_id, 8)
        await trio.testing.wait_all_tasks_blocked()
        assert list(outcomes.begun) == [0, 1, 2, 3, 4, 5]
        assert session._in_flight.value == 1
        outcomes.begun[4].resolve(4, 9)
        outcomes.begun[5].fail(Overloaded("Busy; retry shortly."))
        rest = await responses(ws, 5)
        assert [m["requestId"] for m in rest] == [3, 0, 2, 4, 5]
        assert rest[-1]["success"] is False
        assert rest[-1]["errorData"]["code"] == "Overloaded"
        assert session._in_flight.value == 3
        assert session._unanswered == 0
        ws.disconnect()
    assert ended == [session]


async def test_a_result_that_cannot_be_answered_is_internal_and_frees_its_slot(
    h: EngineHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes = Outcomes()
    monkeypatch.setattr(h.engine, "begin_mutation", outcomes.begin_mutation)
    encode = convex_values.convex_to_json
    broken = object()

    def convex_to_json(value: Any) -> Any:
        if value == "bug":
            raise RuntimeError("a bug in encoding")
        return encode(value)

    monkeypatch.setattr(convex_values, "convex_to_json", convex_to_json)
    async with trio.open_nursery() as nursery:
        ended: list[SyncSession] = []
        ws, session = await start(nursery, h, ended, max_mutations_in_flight=2)
        for i in range(3):
            await ws.send(mutation(i, "events:create", {}))
        await trio.testing.wait_all_tasks_blocked()
        with caplog.at_level(logging.ERROR, "turnstile.sync"):
            outcomes.begun[0].resolve(broken, 5)  # the wire cannot carry it: Internal
            outcomes.begun[1].resolve("bug", 5)  # encoding fails unexpectedly: Internal too
        answers = await responses(ws, 2)
        assert [(m["requestId"], m["success"]) for m in answers] == [(0, False), (1, False)]
        assert {m["errorData"]["code"] for m in answers} == {"Internal"}
        assert "answering mutation 1 failed" in caplog.text
        await trio.testing.wait_all_tasks_blocked()
        outcomes.begun[2].resolve({"ok": True}, 6)  # the session goes on
        (last,) = await responses(ws, 1)
        assert last["result"] == {"ok": True}
        assert session._in_flight.value == 2
        ws.disconnect()


async def test_an_ended_session_waits_for_its_mutations_in_flight(
    h: EngineHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = Outcomes()
    monkeypatch.setattr(h.engine, "begin_mutation", outcomes.begin_mutation)
    async with trio.open_nursery() as nursery:
        ended: list[SyncSession] = []
        ws, session = await start(nursery, h, ended)
        await ws.send(mutation(1, "events:create", {}))
        await ws.send(mutation(2, "events:create", {}))
        await trio.testing.wait_all_tasks_blocked()
        ws.disconnect()
        await trio.testing.wait_all_tasks_blocked()
        assert session.over and not ended  # its subscriptions and slot are given back at once
        outcomes.begun[2].resolve(2, 3)
        await trio.testing.wait_all_tasks_blocked()
        assert not ended
        outcomes.begun[1].resolve(1, 3)
        await trio.testing.wait_all_tasks_blocked()
        assert ended == [session]
        assert ws.pending() == 0  # their answers go nowhere
        assert session._in_flight.value == 256


async def test_an_ended_session_waits_no_longer_than_the_grace(
    h: EngineHarness, monkeypatch: pytest.MonkeyPatch, mock_clock: trio.testing.MockClock
) -> None:
    outcomes = Outcomes()
    monkeypatch.setattr(h.engine, "begin_mutation", outcomes.begin_mutation)
    async with trio.open_nursery() as nursery:
        ended: list[SyncSession] = []
        ws, session = await start(nursery, h, ended, mutation_grace=3.0)
        await ws.send(mutation(1, "events:create", {}))
        await trio.testing.wait_all_tasks_blocked()
        ws.disconnect()
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(2.9)  # (the test's clock: only these jumps move it)
        await trio.testing.wait_all_tasks_blocked()
        assert session.over and not ended
        mock_clock.jump(0.2)
        await trio.testing.wait_all_tasks_blocked()
        assert ended == [session]
    outcomes.begun[1].resolve(1, 3)  # answered later still: the slot is given back
    assert session._in_flight.value == 256 and session._unanswered == 0


async def test_the_engine_goes_on_with_a_mutation_its_session_left(h: EngineHarness) -> None:
    event_id = await h.mutation("events:create", ORG_ARGS)
    async with trio.open_nursery() as nursery:
        ended: list[SyncSession] = []
        ws, session = await start(nursery, h, ended)
        await ws.send(
            {"type": "Authenticate", "tokenType": "Admin", "value": "admin-key", "baseVersion": 0}
        )
        await ws.send(mutation(1, "events:update", {"eventId": event_id, "name": "Renamed"}))
        ws.disconnect()
    assert ended == [session]
    assert (await h.query("events:get", {"eventId": event_id}))["name"] == "Renamed"


class RecordingSender:
    """A `Sender` that takes every frame at once and notes, for each, whether it was written
    inside the engine's commit processing (`inside` is set by the test around it)."""

    def __init__(self, responses: int) -> None:
        self.inside = False
        self.frames: list[tuple[dict[str, Any], bool]] = []
        self.pending = False
        self.broken = False
        self._responses = responses
        #: Set once `responses` MutationResponses are written.
        self.answered = trio.Event()

    def write_texts(self, payloads: list[bytes]) -> None:
        import orjson

        self.frames.extend((orjson.loads(payload), self.inside) for payload in payloads)
        if len(self.responses()) >= self._responses:
            self.answered.set()

    def responses(self) -> list[tuple[int, dict[str, Any]]]:
        """(index in `frames`, frame) of each MutationResponse written."""
        return [(i, f) for i, (f, _) in enumerate(self.frames) if f["type"] == "MutationResponse"]

    async def drain(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_answers_are_written_in_the_commit_processing_that_made_them_durable(
    h: EngineHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No other task's turn between a batch's outcome and its MutationResponses: they, and the
    Transition reaching their ts, are written by the engine's hook after the batch's answers
    (`Engine.after_answers` -> `Fanout.flush_urgent`), at the cut the batch left."""
    event_id = await h.mutation("events:create", dict(ORG_ARGS, totalTickets=500))
    sender = RecordingSender(responses=5)
    committed = h.engine._on_committed

    def on_committed(batch: Any, last_seq: int) -> None:
        sender.inside = True
        try:
            committed(batch, last_seq)
        finally:
            sender.inside = False

    monkeypatch.setattr(h.engine, "_on_committed", on_committed)
    monkeypatch.setattr(h.engine._commit, "_on_committed", on_committed)
    ws = FakeWebSocket()
    session = SyncSession(ws.connection, StubServer(h.engine), limits=limits(), outbox=sender)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run)
        for message in (
            {"type": "Connect", "sessionId": "s", "connectionCount": 0, "clientTs": 0},
            {"type": "Authenticate", "tokenType": "Admin", "value": "admin-key", "baseVersion": 0},
        ):
            await ws.send(message)
        for i in range(5):
            await ws.send(
                mutation(i, "events:joinWaitingList", {"eventId": event_id, "userId": f"u{i}"})
            )
        await sender.answered.wait()
        ws.disconnect()
    responses = sender.responses()
    assert [f["requestId"] for _, f in responses] == list(range(5))
    for at, response in responses:
        assert sender.frames[at][1], f"response {response['requestId']} written outside the commit"
        # The Transition that reaches its ts follows it in the same write.
        after = [f for f, _ in sender.frames[at + 1 :] if f["type"] == "Transition"]
        assert after and decode_ts(after[0]["endVersion"]["ts"]) >= decode_ts(response["ts"])
        assert sender.frames[sender.frames.index((after[0], True))][1]
