"""Floods against a live server (short forms): connections opened and dropped by the thousand,
slow handshakes, a client that never reads, a client that sends as fast as it can, and the
limits per connection and per identity. While each runs, well-behaved clients (`Bystanders`)
keep doing rounds: their mutations succeed and their subscriptions converge to what the engine
says. Memory is compared within the run (psutil RSS and tracemalloc), never against a clock.

The long form: `python -m lab.hostile flood --connections 5000` (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import threading
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing

from domain.identity import ADMIN
from engine.journal import Batch
from engine.server import ServerConfig
from lab.hostile.bystanders import Bystanders
from lab.hostile.flood import (
    SenderReport,
    churn,
    fast_sender,
    hold_sessions,
    never_reading,
    rss_bytes,
    slow_handshake,
)
from lab.hostile.target import Target, open_target
from lab.hostile.wire import SyncPeer, http_call, open_ws
from lab.rawws import RawClient, open_many, read_until, subscribe_to_event
from tests.hostile.conftest import EVENT, admin, closed, connect, frame, mutation, until, user

CONFIG = ServerConfig(read_timeout=1.0, drain_seconds=5.0)
#: Connections opened and dropped per churn in the short form (the long form: thousands).
CHURN = 600


@asynccontextmanager
async def flooded(
    tmp_path: Path, config: ServerConfig = CONFIG
) -> AsyncIterator[tuple[Target, Bystanders]]:
    """A live server with bystanders doing rounds in the background the whole time; on leaving,
    one more round must pass and the server must not have logged a failure."""
    async with open_target(tmp_path / "data", config) as target:
        async with Bystanders(target, count=3) as crowd, trio.open_nursery() as nursery:
            stop = trio.Event()
            nursery.start_soon(crowd.keep_going, stop)
            yield target, crowd
            stop.set()
        async with Bystanders(target, count=1) as late:
            await late.round()
        target.assert_no_errors(" during the flood")


async def eventually(check: Callable[[], bool], what: str, within: float = 20) -> None:
    """Poll `check` (a gauge or count the server keeps: nothing to wait on) until it holds."""
    with trio.move_on_after(within):
        while True:
            if check():
                return
            await trio.sleep(0.02)
    raise AssertionError(f"{what}: not within {within} s")


async def gauge_reaches(target: Target, name: str, value: float) -> None:
    await eventually(lambda: target.gauge(name) == value, f"{name} == {value}")


#: What each connection or session of the server is made of: none may outlive its connection.
PER_CONNECTION = (
    "engine.server.http.Connection",
    "engine.sync.session.SyncSession",
    "engine.subscriptions.Subscription",
    "engine.sync.limits.Throttle",
    "trio_websocket._impl.WebSocketConnection",
    "engine.wire.connection.WebSocket",
    "wsproto.connection.Connection",
    "trio.SocketStream",
    "h11._connection.Connection",
    "wsproto.WSConnection",
)


def live_objects() -> Counter[str]:
    """Live objects of the PER_CONNECTION types, by type (both ends: this process is both)."""
    gc.collect()
    counts: Counter[str] = Counter()
    for thing in gc.get_objects():
        kind = type(thing)
        name = f"{kind.__module__}.{kind.__qualname__}"
        if name in PER_CONNECTION:
            counts[name] += 1
    return counts


#: trio's accept loop keeps its last accepted stream in a local until the next one arrives.
LISTENER_HOLDS = Counter({"trio.SocketStream": 1})


async def objects_return_to(before: Counter[str]) -> None:
    def back() -> bool:
        now = live_objects()
        return not (now - before - LISTENER_HOLDS or before - now)

    await eventually(back, f"per-connection objects back to {dict(before)} ({live_objects()})")


async def test_connections_opened_and_dropped_by_the_thousand_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    async with open_target(tmp_path / "data", CONFIG) as target, Bystanders(target) as crowd:
        baseline = target.gauge("turnstile_open_connections")
        before = live_objects()
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            nursery.start_soon(crowd.keep_going, stop)
            await churn(target.port, CHURN, event_id=crowd.event_id)  # bystanders keep going
            stop.set()
        assert crowd.rounds > 0
        await gauge_reaches(target, "turnstile_open_connections", baseline)
        await gauge_reaches(target, "turnstile_websocket_sessions", crowd.count + 1)
        await objects_return_to(before)  # the last closes finish
        warm = rss_bytes()
        await churn(target.port, CHURN, event_id=crowd.event_id)
        await gauge_reaches(target, "turnstile_open_connections", baseline)
        await objects_return_to(before)
        # A second churn keeps no memory (allocator noise aside: < 4 KiB a connection).
        assert rss_bytes() - warm < 4 * 1024 * CHURN
        await crowd.round()
        target.assert_no_errors()


async def test_memory_per_held_session_is_bounded_and_given_back(tmp_path: Path) -> None:
    sessions = 200
    async with open_target(tmp_path / "data", CONFIG) as target, Bystanders(target) as crowd:
        gc.collect()
        tracemalloc.start()
        try:
            async with trio.open_nursery() as nursery:
                held = await hold_sessions(nursery, target.port, sessions, crowd.event_id)
                gc.collect()
                holding = tracemalloc.get_traced_memory()[0]
                await crowd.round()  # every held session is sent the change too
                await held.aclose()
                # What is measured as given back is the server's: the test's own clients go too.
                held.sessions.clear()
            await gauge_reaches(target, "turnstile_websocket_sessions", crowd.count + 1)
            gc.collect()
            released = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        # Both ends live in this process: this bounds a server session and its client together.
        assert holding / sessions < 200 * 1024, holding / sessions
        assert released < holding / 5  # given back
        target.assert_no_errors()


async def test_sessions_watching_the_bystanders_event_each_end_on_its_last_value(
    tmp_path: Path,
) -> None:
    """Hundreds of sessions subscribed to the event the bystanders keep changing: every join
    is fanned out to all of them by one loop. The bystanders' rounds keep passing, and every
    watcher's last Transition shows what the engine answers at the end."""
    watchers = 300
    async with open_target(tmp_path / "data", CONFIG) as target, Bystanders(target) as crowd:
        clients = await trio.to_thread.run_sync(
            open_many, target.port, watchers, lambda: subscribe_to_event(crowd.event_id)
        )
        shown: dict[int, object] = {}

        def note(client: RawClient, _arrival: float, payload: bytes) -> None:
            message = orjson.loads(payload)
            if message["type"] == "Transition":
                for change in message["modifications"]:
                    if change["type"] == "QueryUpdated":
                        shown[id(client)] = change["value"]

        stop_reading, stop = os.pipe()
        try:
            async with trio.open_nursery() as nursery:
                reading = functools.partial(read_until, clients, stop_reading, note)
                nursery.start_soon(trio.to_thread.run_sync, reading)
                try:
                    for _ in range(30):
                        await crowd.round()
                    truth = await crowd.converge()
                    await eventually(
                        lambda: all(shown.get(id(client)) == truth for client in clients),
                        "every watcher shows the final availability",
                    )
                finally:
                    os.write(stop, b"x")  # the reading thread cannot be cancelled otherwise
        finally:
            os.close(stop)
            os.close(stop_reading)
            for client in clients:
                client.sock.close()
        assert all(client.open for client in clients)  # nobody was dropped
        target.assert_no_errors()


async def test_slow_handshakes_are_cut_off_and_others_are_served(tmp_path: Path) -> None:
    config = ServerConfig(read_timeout=5.0, handshake_timeout=0.5, drain_seconds=5.0)
    async with flooded(tmp_path, config) as (target, _crowd):
        kinds = ("silent", "trickle", "no-connect") * 20
        lasted: list[float] = []

        async def one(kind: str) -> None:
            lasted.append(await slow_handshake(target.port, kind))

        async with trio.open_nursery() as nursery:
            for kind in kinds:
                nursery.start_soon(one, kind)
        assert len(lasted) == len(kinds)  # every one of them was closed by the server
        limited = target.metrics.registry.get_sample_value(
            "turnstile_limited_total", {"limit": "handshake"}
        )
        assert limited == len(kinds)


async def test_a_client_that_never_reads_is_disconnected_and_holds_nobody_up(
    tmp_path: Path,
) -> None:
    config = ServerConfig(read_timeout=1.0, send_timeout=1.0, drain_seconds=5.0)
    async with flooded(tmp_path, config) as (target, _crowd):
        big = dict(EVENT, description="d" * 20_000)
        ids = [(await target.engine.mutation("events:create", big, ADMIN)).value for _ in range(50)]
        async with never_reading(target.port, target.admin_key):
            with trio.fail_after(30):
                for round_ in range(10_000):  # each changes the events:list it subscribed to
                    event_id = ids[round_ % len(ids)]
                    await target.engine.mutation(
                        "events:update", {"eventId": event_id, "name": f"n{round_}"}, ADMIN
                    )
                    if target.metrics.registry.get_sample_value(
                        "turnstile_limited_total", {"limit": "send_timeout"}
                    ):
                        break
                    await trio.sleep(0.01)
        sessions = target.gauge("turnstile_websocket_sessions")
        assert sessions == 4  # the bystanders only: the silent reader is gone


async def test_a_client_that_sends_as_fast_as_it_can_is_held_to_its_allowance(
    tmp_path: Path,
) -> None:
    rate, burst = 400.0, 200
    config = ServerConfig(
        read_timeout=1.0, max_messages_per_second=rate, message_burst=burst, drain_seconds=5.0
    )
    async with flooded(tmp_path, config) as (target, _crowd):
        report = await fast_sender(target.port, messages=800)
        assert report.answered == report.sent == 800, report
        # The server read no faster than its allowance: the burst, then `rate` per second.
        assert report.answered <= burst + rate * report.seconds + 1, report
        assert (target.metrics.registry.get_sample_value("turnstile_throttled_total") or 0) > 0


async def test_clients_that_send_large_frames_as_fast_as_they_can_are_held_to_their_bytes(
    tmp_path: Path,
) -> None:
    # Found by this flood: a throttled connection's WebSocket queue held up to 64 frames of up
    # to 1 MiB each, so four clients sending large frames made the server hold 140 MiB (this
    # test's peak: 48 MiB with the queue of 4 now shipped).
    rate, burst, size, clients = 2 * 2**20, 4 * 2**20, 1_000_000, 4
    config = ServerConfig(
        read_timeout=1.0, max_bytes_per_second=rate, byte_burst=burst, drain_seconds=5.0
    )
    async with flooded(tmp_path, config) as (target, _crowd):
        gc.collect()
        start = peak = rss_bytes()
        reports: list[SenderReport] = []

        async def send() -> None:
            report = await fast_sender(target.port, messages=64, payload_bytes=size, seconds=2)
            reports.append(report)

        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(send)
            while len(reports) < clients:
                peak = max(peak, rss_bytes())
                await trio.sleep(0.02)
        for report in reports:
            assert report.answered > 0, report
            assert report.answered * size <= burst + rate * report.seconds + size, report
        # Each connection holds a few frames on each side (this process is both ends): the
        # message being read (nothing is queued: a message is read when the session asks for
        # it), the one being written.
        assert peak - start < clients * 2 * 8 * size, (peak - start) / 2**20


async def test_one_users_calls_over_many_connections_share_one_allowance(
    tmp_path: Path,
) -> None:
    """A user spreading calls over many connections (each well within its own allowance) is
    held to the per-user allowance: everything is answered, some of it after a wait; another
    user's calls meanwhile do not wait at all."""
    rate, burst, connections, calls = 20.0, 10, 6, 5
    config = ServerConfig(
        read_timeout=5.0,
        max_messages_per_identity_per_second=rate,
        identity_message_burst=burst,
        drain_seconds=5.0,
    )
    async with open_target(tmp_path / "data", config) as target:
        event_id = await target.admin_mutation("events:create", EVENT)

        def throttled() -> float:
            sample = "turnstile_identity_throttled_total"
            return target.metrics.registry.get_sample_value(sample) or 0

        async def calls_as(sub: str, answers: list[object]) -> None:
            bearer = f"Bearer {target.user_token(sub)}"
            for _ in range(calls):  # one connection per call (Connection: close)
                answers.append(await http_call(
                    target.port, "query", "events:getEventAvailability",
                    {"eventId": event_id}, authorization=bearer,
                ))

        greedy: list[object] = []
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(calls_as, "greedy", greedy)
        took = trio.current_time() - started
        assert len(greedy) == connections * calls  # nothing refused
        over = connections * calls - burst
        assert throttled() >= 1
        assert took >= over / rate * 0.9  # not faster than the allowance lets it
        before = throttled()
        polite: list[object] = []
        await calls_as("polite", polite)
        assert len(polite) == calls and throttled() == before


async def test_one_users_sync_messages_share_the_allowance_too(tmp_path: Path) -> None:
    """Two sessions of one signed-in user: their messages draw on one allowance (the user's
    mutations all run, some after a wait); an anonymous session's do not wait on it."""
    config = ServerConfig(
        read_timeout=5.0,
        max_messages_per_identity_per_second=20.0,
        identity_message_burst=5,
        drain_seconds=5.0,
    )
    async with open_target(tmp_path / "data", config) as target:
        event_id = await target.admin_mutation("events:create", EVENT)
        metric = "turnstile_identity_throttled_total"
        async with open_ws(target.port) as w1, open_ws(target.port) as w2:
            peers = [SyncPeer(w1), SyncPeer(w2)]
            for i, peer in enumerate(peers):
                await peer.send(connect(f"same-user-{i}"))
                await peer.send(user(target, "same-user"))
                await until(peer, "Transition")
            for i in range(6):
                for peer in peers:
                    await peer.send(mutation(i + 1, "events:get", {"eventId": event_id}))
            for peer in peers:
                for _ in range(6):
                    answer = await until(peer, "MutationResponse")
                    assert answer["success"] is False  # a query named as a mutation: refused
        waited = target.metrics.registry.get_sample_value(metric) or 0
        assert waited >= 1
        async with open_ws(target.port) as w3:
            anonymous = SyncPeer(w3)
            await anonymous.send(connect("anonymous"))
            for i in range(12):
                await anonymous.send(mutation(i + 1, "events:get", {"eventId": event_id}))
            for _ in range(12):
                await until(anonymous, "MutationResponse")
        assert (target.metrics.registry.get_sample_value(metric) or 0) == waited


async def test_sessions_per_identity_are_limited(tmp_path: Path) -> None:
    config = ServerConfig(read_timeout=1.0, max_sessions_per_identity=3, drain_seconds=5.0)
    async with open_target(tmp_path / "data", config) as target:
        async with open_ws(target.port) as w1, open_ws(target.port) as w2, open_ws(
            target.port
        ) as w3, open_ws(target.port) as w4, open_ws(target.port) as other:
            peers = [SyncPeer(ws) for ws in (w1, w2, w3, w4, other)]
            for i, peer in enumerate(peers[:3]):
                await peer.send(connect(f"greedy-{i}"))
                await peer.send(user(target, "greedy"))
                await until(peer, "Transition")
            await peers[3].send(connect("greedy-3"))
            await peers[3].send(user(target, "greedy"))
            fatal = await until(peers[3], "FatalError")
            assert "Too many open sessions" in fatal["error"]
            assert (await closed(peers[3])).code == 1008
            await peers[4].send(connect("someone-else"))
            await peers[4].send(user(target, "someone-else"))
            await until(peers[4], "Transition")
            # Signing in as someone else gives the slot back.
            await peers[0].send(user(target, "someone-new", base=1))
            await until(peers[0], "Transition")
        # ... as does leaving; and the admin key is not limited.
        async with open_ws(target.port) as again:
            peer = SyncPeer(again)
            await peer.send(connect("greedy-again"))
            await peer.send(user(target, "greedy"))
            await until(peer, "Transition")
        admins: list[SyncPeer] = []
        async with open_ws(target.port) as a1, open_ws(target.port) as a2, open_ws(
            target.port
        ) as a3, open_ws(target.port) as a4:
            for i, ws in enumerate((a1, a2, a3, a4)):
                peer = SyncPeer(ws)
                await peer.send(connect(f"admin-{i}"))
                await peer.send(admin(target))
                await until(peer, "Transition")
                admins.append(peer)
        limited = target.metrics.registry.get_sample_value(
            "turnstile_limited_total", {"limit": "identity"}
        )
        assert limited == 1
        target.assert_no_errors()


async def test_connections_beyond_the_limit_are_closed_at_once(tmp_path: Path) -> None:
    config = ServerConfig(read_timeout=1.0, max_connections=20, drain_seconds=5.0)
    async with open_target(tmp_path / "data", config) as target:
        held = [await trio.open_tcp_stream("127.0.0.1", target.port) for _ in range(20)]
        try:
            await gauge_reaches(target, "turnstile_open_connections", 20)
            extra = await trio.open_tcp_stream("127.0.0.1", target.port)
            with trio.fail_after(10), contextlib.suppress(trio.BrokenResourceError):  # or reset
                assert await extra.receive_some(100) == b""  # closed unread
            await extra.aclose()
            for stream in held[:5]:
                await stream.aclose()
            await gauge_reaches(target, "turnstile_open_connections", 15)
            async with open_ws(target.port) as ws:  # room again
                peer = SyncPeer(ws)
                await peer.send(connect())
                await peer.send(frame({"type": "ModifyQuerySet", "baseVersion": 0,
                                       "newVersion": 1, "modifications": []}))
                await until(peer, "Transition")
        finally:
            for stream in held:
                await trio.aclose_forcefully(stream)
        assert target.metrics.registry.get_sample_value(
            "turnstile_limited_total", {"limit": "connections"}
        ) == 1


async def test_live_queries_per_session_are_limited(tmp_path: Path) -> None:
    config = ServerConfig(read_timeout=1.0, max_queries_per_session=10, drain_seconds=5.0)
    async with open_target(tmp_path / "data", config) as target, open_ws(target.port) as ws:
        peer = SyncPeer(ws)
        await peer.send(connect())
        adds = [
            {"type": "Add", "queryId": i, "udfPath": "events:list", "args": [{}]}
            for i in range(11)
        ]
        await peer.send({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                         "modifications": adds[:10]})
        await until(peer, "Transition")
        await peer.send({"type": "ModifyQuerySet", "baseVersion": 1, "newVersion": 2,
                         "modifications": adds[10:]})
        assert "Too many live queries" in (await until(peer, "FatalError"))["error"]
        assert (await closed(peer)).code == 1008


async def test_reading_pauses_while_a_session_has_its_most_mutations_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ServerConfig(read_timeout=1.0, max_mutations_in_flight=2, drain_seconds=5.0)
    async with (
        open_target(tmp_path / "data", config, writer_process=False) as target,  # held below
        open_ws(target.port) as ws,
    ):
        gate = threading.Event()
        append = target.engine.journal.append

        def held(batch: Batch) -> None:  # the engine's I/O thread waits at the gate
            gate.wait(20)
            append(batch)

        monkeypatch.setattr(target.engine.journal, "append", held)
        try:
            peer = SyncPeer(ws)
            await peer.send(connect())
            await peer.send(admin(target))
            for i in range(5):
                await peer.send(mutation(i, "events:create", dict(EVENT, name=f"e{i}")))
            await peer.send({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                             "modifications": []})
            with trio.move_on_after(0.5):  # what the session answers meanwhile
                while True:
                    await peer.next()
            assert peer.query_set == 0  # its reader waits behind the two in flight
            gate.set()
            with trio.fail_after(20):
                while peer.query_set != 1 or len(peer.responses) < 5:
                    await peer.next()
            assert all(peer.responses[i][0]["success"] for i in range(5))
        finally:
            gate.set()
        target.assert_no_errors()


async def test_a_dropped_session_gives_its_users_slot_back_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the fuzzer (cases replayed in a row as one user): a session that ended with a
    # mutation in flight kept its user's slot for as long as that mutation kept it alive (up to
    # mutation_grace), so a user reconnecting at once was refused as over the limit.
    config = ServerConfig(read_timeout=1.0, max_sessions_per_identity=1, drain_seconds=5.0)
    async with open_target(tmp_path / "data", config, writer_process=False) as target:  # held
        gate = threading.Event()
        append = target.engine.journal.append

        def held(batch: Batch) -> None:
            gate.wait(20)
            append(batch)

        event_id = (await target.engine.mutation("events:create", EVENT, ADMIN)).value
        monkeypatch.setattr(target.engine.journal, "append", held)
        try:
            async with open_ws(target.port) as ws:
                peer = SyncPeer(ws)
                await peer.send(connect("first"))
                await peer.send(user(target, "ann"))
                await until(peer, "Transition")
                await peer.send(mutation(1, "events:joinWaitingList",
                                         {"eventId": event_id, "userId": "ann"}))
                await trio.testing.wait_all_tasks_blocked(cushion=0.1)  # it waits at the gate
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)  # the server saw the close
            assert target.gauge("turnstile_websocket_sessions") == 1  # kept for its mutation
            async with open_ws(target.port) as ws:
                peer = SyncPeer(ws)
                await peer.send(connect("second"))
                await peer.send(user(target, "ann"))
                await until(peer, "Transition")  # not FatalError: the slot was given back
        finally:
            gate.set()
