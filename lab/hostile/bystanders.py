"""Well-behaved clients that share the server with the hostile ones, and must not notice them.

`Bystanders` opens a few sync sessions (signed-in users and one admin "box office") subscribed
to one event's availability. Each `round()` the box office joins a new user through its own
session; the round passes when that mutation succeeded, a Transition reached its `ts` (read your
writes), and every bystander's subscribed value equals what the engine itself answers. Every
message each bystander receives is checked as Convex's client checks it (`SyncPeer`); a
bystander whose session ends, or that is sent FatalError or AuthError, fails the next round.
"""

from __future__ import annotations

import itertools
from contextlib import AsyncExitStack
from typing import Any

import attrs
import orjson
import trio
import trio_websocket

from engine.wire.protocol import connect_message, decode_ts, subscribe_message
from lab.hostile.target import Server
from lab.hostile.wire import ServerMisbehaved, SyncPeer, open_ws

QUERY = "events:getEventAvailability"
QUERY_ID = 0


@attrs.define
class Bystander:
    name: str
    peer: SyncPeer
    changed: trio.Event = attrs.field(factory=trio.Event)
    failure: str | None = None
    reading: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    latencies: list[float] = attrs.field(factory=list)


class Bystanders:
    """See the module doc: `async with Bystanders(target, 4) as crowd: await crowd.round()`."""

    def __init__(self, target: Server, count: int = 3) -> None:
        self.target = target
        self.count = count
        self.event_id = ""
        self.members: list[Bystander] = []
        self.office: Bystander | None = None
        self.rounds = 0
        #: Per round: seconds from sending the join until every bystander showed its result.
        self.seen: list[float] = []
        self._request_ids = itertools.count(1)
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Bystanders:
        event_id = await self.target.admin_mutation(
            "events:create",
            {
                "name": "Bystanders' gig",
                "description": "",
                "location": "Hall",
                "eventDate": 1_900_000_000_000,
                "price": 100,
                "totalTickets": 1_000_000,
                "orgId": "org_bystanders",
            },
        )
        self.event_id = str(event_id)
        nursery = await self._stack.enter_async_context(trio.open_nursery())
        self._nursery = nursery
        for i in range(self.count + 1):
            ws = await self._stack.enter_async_context(open_ws(self.target.port))
            member = Bystander(f"bystander-{i}" if i < self.count else "box-office", SyncPeer(ws))
            await member.peer.send(connect_message(f"{member.name}-{id(self)}"))
            if i < self.count:
                token = self.target.user_token(member.name)
                await member.peer.send(
                    {"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0}
                )
            else:
                await member.peer.send(
                    {"type": "Authenticate", "tokenType": "Admin",
                     "value": self.target.admin_key, "baseVersion": 0}
                )
            await member.peer.send(subscribe_message(QUERY_ID, QUERY, {"eventId": self.event_id}))
            nursery.start_soon(self._read, member)
            self.members.append(member)
        self.office = self.members[-1]
        await self.converge()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Stop our readers, but not trio-websocket's: it must read the server's close reply.
        for member in self.members:
            member.reading.cancel()
        await self._stack.aclose()

    async def _read(self, member: Bystander) -> None:
        with member.reading:
            await self._read_until_over(member)

    async def _read_until_over(self, member: Bystander) -> None:
        try:
            while True:
                message = await member.peer.next()
                if message["type"] in ("FatalError", "AuthError"):
                    member.failure = f"{member.name} was sent {message}"
                    return
                member.changed.set()
        except trio_websocket.ConnectionClosed as closed:
            member.failure = f"{member.name}'s session ended: {closed.reason}"
        except ServerMisbehaved as error:
            member.failure = f"{member.name}: {error}"
        finally:
            member.changed.set()

    def _check(self) -> None:
        for member in self.members:
            if member.failure is not None:
                raise ServerMisbehaved(member.failure)

    async def converge(self, within: float = 20.0) -> dict[str, Any]:
        """Wait until every bystander shows what the engine answers now; return that value."""
        with trio.move_on_after(within):
            while True:
                for member in self.members:
                    member.changed = trio.Event()
                self._check()
                truth = await self.target.read(QUERY, {"eventId": self.event_id})
                lagging = [m for m in self.members if m.peer.results.get(QUERY_ID) != ("ok", truth)]
                if not lagging:
                    return dict(truth)
                with trio.move_on_after(0.5):  # the engine may have moved on meanwhile
                    await lagging[0].changed.wait()
        self._check()
        shown = {m.name: m.peer.results.get(QUERY_ID) for m in self.members}
        raise ServerMisbehaved(f"bystanders did not converge in {within} s: {shown}")

    async def round(self) -> float:
        """One join by the box office, then convergence. Returns the join's round-trip time
        (from sending the mutation to applying a Transition at its ts), in seconds; `seen`
        gets the time until every bystander showed it."""
        assert self.office is not None
        self._check()
        self.rounds += 1
        request_id = next(self._request_ids)
        started = trio.current_time()
        await self.office.peer.send({
            "type": "Mutation",
            "requestId": request_id,
            "udfPath": "events:joinWaitingList",
            "args": [{"eventId": self.event_id, "userId": f"walk-in-{self.rounds}-{id(self)}"}],
        })
        with trio.move_on_after(20):
            while True:
                self.office.changed = trio.Event()
                self._check()
                answers = self.office.peer.responses.get(request_id)
                if answers and (not answers[0]["success"] or
                                self.office.peer.ts >= decode_ts(answers[0]["ts"])):
                    break
                await self.office.changed.wait()
        answers = self.office.peer.responses.get(request_id)
        if not answers:
            raise ServerMisbehaved("the box office's join was not answered in 20 s")
        if not answers[0]["success"]:
            raise ServerMisbehaved(f"the box office's join failed: {orjson.dumps(answers[0])!r}")
        elapsed = trio.current_time() - started
        self.office.latencies.append(elapsed)
        await self.converge()
        self.seen.append(trio.current_time() - started)
        return elapsed


    async def keep_going(self, stop: trio.Event) -> None:
        """Rounds one after another until `stop` is set; each must pass."""
        while not stop.is_set():
            await self.round()


__all__ = ["Bystanders"]
