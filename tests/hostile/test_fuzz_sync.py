"""Hostile sync clients against a live server: the fuzzer's short form, then one regression
test for each defect it found (docs/reliability.md, "Hostile clients").

The long form: `python -m lab.hostile fuzz --transport sync --cases 20000`.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import trio
import trio.testing

import engine.wire.values
from domain.errors import Internal
from domain.identity import ADMIN
from engine.wire.protocol import decode_ts, subscribe_message
from lab.hostile.bystanders import Bystanders
from lab.hostile.fuzz import fuzz
from lab.hostile.target import Target
from lab.hostile.wire import SyncPeer, open_ws
from tests.hostile.conftest import EVENT, admin, closed, connect, mutation, until

#: Cases in the short form (a few seconds); the long form runs tens of thousands.
FUZZ_CASES = 200


async def test_hostile_sync_sessions_get_the_right_answers_and_bystanders_stay_correct(
    target: Target,
) -> None:
    async with Bystanders(target, count=3) as crowd:
        report = await fuzz(target, "sync", cases=FUZZ_CASES, bystanders=crowd)
        assert report.cases >= FUZZ_CASES
        assert report.bystander_rounds > FUZZ_CASES // 25
        # The server is still whole: a new client is served as the first one was.
        await crowd.round()
    assert target.gauge("turnstile_websocket_sessions") == 0


@pytest.mark.parametrize(
    "message",
    [
        mutation(2**63, "events:list", {}),
        mutation(2**64 - 1, "events:list", {}),
        mutation(2**53, "events:list", {}),
        {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 2**53, "modifications": []},
    ],
    ids=["requestId 2**63", "requestId 2**64-1", "requestId 2**53", "newVersion 2**53"],
)
async def test_protocol_integers_beyond_javascript_numbers_are_a_fatal_error(
    target: Target, message: dict[str, Any]
) -> None:
    # Found by the fuzzer: a requestId of 2**63 or more reached SQLite (OverflowError), and the
    # session ended as an internal error (1011, a logged traceback) instead of FatalError.
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        await peer.send(message)
        fatal = await until(peer, "FatalError")
        assert "larger than" in fatal["error"]
        await closed(peer)


async def test_session_ids_are_bounded(target: Target) -> None:
    # Found by the fuzzer: any sessionId was taken, and every executed mutation's idempotency
    # record holds it (a 1 MiB id per record).
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect("s" * 129))
        assert "sessionId" in (await until(peer, "FatalError"))["error"]
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect("s" * 128))
        await peer.send(subscribe_message(0, "events:list", {}))
        await until(peer, "Transition")


@pytest.mark.parametrize("query_id", [True, -1, 2**60, "1", 1.5])
async def test_query_ids_must_be_protocol_integers(target: Target, query_id: Any) -> None:
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        add = {"type": "Add", "queryId": query_id, "udfPath": "events:list", "args": [{}]}
        await peer.send(
            {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [add]}
        )
        await until(peer, "FatalError")


async def test_integers_beyond_64_bits_in_args_are_invalid_args(target: Target) -> None:
    # Found by the fuzzer: {"price": 18446744073709551615} was committed (the journal holds an
    # unsigned 64-bit number), and then every session subscribed to events:list ended with an
    # internal error, because the value cannot be sent back.
    before = target.engine.committed_seq
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        await peer.send(admin(target))
        await peer.send(
            '{"type":"Mutation","requestId":1,"udfPath":"events:create","args":[{"name":"x",'
            '"description":"","location":"x","eventDate":1900000000000,"totalTickets":1,'
            '"price":18446744073709551615,"orgId":"org_a"}]}'
        )
        answer = await until(peer, "MutationResponse")
        assert answer["errorData"]["code"] == "InvalidArgs"
        assert answer["errorData"]["path"] == "price"
    assert target.engine.committed_seq == before


async def test_a_result_the_wire_cannot_carry_fails_that_query_only(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the fuzzer (with the value above): a stored value that Convex's encoding cannot
    # carry ended the whole session of everyone subscribed to it. Now that query fails alone.
    encode = engine.wire.values.convex_to_json

    def refusing(value: Any) -> Any:
        if "unsendable" in repr(value):
            raise Internal("A result cannot be sent.")
        return encode(value)

    monkeypatch.setattr(engine.wire.values, "convex_to_json", refusing)
    kept = (await target.engine.mutation("events:create", EVENT, ADMIN)).value
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        await peer.send(subscribe_message(0, "events:list", {}))
        await peer.send(subscribe_message(1, "events:get", {"eventId": kept}, base_version=1))
        with trio.fail_after(10):
            while len(peer.results) < 2:
                await peer.next()
        await target.engine.mutation("events:create", dict(EVENT, name="unsendable"), ADMIN)
        await target.engine.mutation("events:update", {"eventId": kept, "name": "Renamed"}, ADMIN)
        with trio.fail_after(10):
            while peer.results[1][1]["name"] != "Renamed":
                await peer.next()
        refused = {"code": "Internal", "message": "A result cannot be sent."}
        assert peer.results[0] == ("error", refused)
    assert any("cannot be sent" in line for line in target.errors.take())


async def test_an_unknown_mutation_is_not_found_whatever_its_args(target: Target) -> None:
    # Found by the fuzzer: over the sync protocol a mutation's args were decoded before its name
    # was looked up, so `nope:x` with a malformed `$integer` said InvalidArgs, while HTTP and
    # queries say NotFound.
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        await peer.send(mutation(1, "nope:x", {"a": {"$integer": "AQ=="}}))
        answer = await until(peer, "MutationResponse")
        assert answer["errorData"]["code"] == "NotFound"


@pytest.mark.parametrize("args", [[], [{}, {}]])
async def test_a_malformed_action_is_a_fatal_error_as_a_malformed_mutation_is(
    target: Target, args: list[Any]
) -> None:
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        await peer.send({"type": "Action", "requestId": 1, "udfPath": "x:y", "args": args})
        await until(peer, "FatalError")


async def test_a_mutation_in_flight_when_its_connection_drops_runs_once_when_resent(
    threaded_target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the fuzzer: when a session ended, its mutations in flight were cancelled and the
    # engine forgot their request ids before they committed; the same (sessionId, requestId)
    # re-sent meanwhile (what a reconnecting Convex client does) ran a second time, and the
    # journal refused the duplicate idempotency record together with its whole batch.
    gate = threading.Event()
    reached = trio.Event()
    token = trio.lowlevel.current_trio_token()
    append = threaded_target.engine.journal.append

    def held(batch: Any) -> Any:  # runs in the engine's I/O thread
        token.run_sync_soon(reached.set)
        gate.wait(20)
        return append(batch)

    monkeypatch.setattr(threaded_target.engine.journal, "append", held)
    before = threaded_target.engine.committed_seq
    create = mutation(7, "events:create", EVENT)
    try:
        async with open_ws(threaded_target.port) as ws:
            peer = SyncPeer(ws)
            for message in (connect("dropping"), admin(threaded_target), create):
                await peer.send(message)
            with trio.fail_after(10):
                await reached.wait()  # the create is being committed
        await trio.testing.wait_all_tasks_blocked(cushion=0.1)  # the server saw the drop
        async with open_ws(threaded_target.port) as ws:
            peer = SyncPeer(ws)
            for message in (connect("dropping"), admin(threaded_target), create):
                await peer.send(message)
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)
            gate.set()
            answer = await until(peer, "MutationResponse")
    finally:
        gate.set()
    assert answer["success"], answer
    assert threaded_target.engine.committed_seq == before + 1  # created exactly once
    assert decode_ts(answer["ts"]) == before + 1


@pytest.mark.parametrize("kind", ["Mutation", "Action", "Add"])
async def test_function_names_are_bounded(target: Target, kind: str) -> None:
    # Found by the fuzzer: a failure names the function it was asked for, so a 600 KB name came
    # back as a 1.8 MB answer (more than a client with a 1 MiB frame limit takes). Names are
    # now at most 1,024 characters; a longer one is a malformed frame.
    def message(name: str) -> dict[str, Any]:
        if kind == "Add":
            return subscribe_message(0, name, {})
        return {"type": kind, "requestId": 1, "udfPath": name, "args": [{}]}

    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        await peer.send(message("x:" + "y" * 1022))
        if kind == "Add":
            await until(peer, "Transition")
            assert peer.results[0][1]["code"] == "NotFound"
        else:
            answer = await until(peer, f"{kind}Response")
            assert answer["errorData"]["code"] == "NotFound"
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        await peer.send(message("x:" + "y" * 1023))
        assert "at most 1024" in (await until(peer, "FatalError"))["error"]


async def test_the_apps_action_answers_its_text_or_invalid_args_and_others_not_found(
    target: Target,
) -> None:
    # The fuzzer's expectations for actions (lab.hostile.app's echo), pinned: several in
    # flight on one session, each answered by its own request id.
    async with open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        sent = {1: {"text": "hello"}, 2: {"text": 5}, 3: {"text": "é" * 40}, 4: {}}
        for request_id, args in sent.items():
            await peer.send(
                {
                    "type": "Action",
                    "requestId": request_id,
                    "udfPath": "hostile:echo",
                    "args": [args],
                }
            )
        await peer.send({"type": "Action", "requestId": 5, "udfPath": "nope:x", "args": [{}]})
        answers: dict[int, dict[str, Any]] = {}
        while len(answers) < 5:
            answer = await until(peer, "ActionResponse")
            answers[answer["requestId"]] = answer
    assert answers[1]["success"] and answers[1]["result"] == "hello"
    assert answers[3]["result"] == "é" * 40
    assert answers[2]["errorData"]["code"] == answers[4]["errorData"]["code"] == "InvalidArgs"
    assert answers[5]["errorData"]["code"] == "NotFound"
