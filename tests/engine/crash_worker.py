"""The child program of tests/engine/test_crash.py: a busy ticketing engine, killed at the points
the test chooses (tests/engine/sigkill.py).

    python -m tests.engine.crash_worker DATA_DIR SEED

Opens the engine on DATA_DIR (real clock, disk work in worker threads, `synchronous=FULL`),
picks up to `OLD_EVENTS` events earlier runs left (the catalog read model) and creates
`NEW_EVENTS` small ones, then runs `TASKS` concurrent tasks of joins, purchases, releases,
refunds and check-ins over them until killed (or for `MAX_SECONDS` at most, so a worker the
test lost does not run on).

Each mutation carries a unique `(session_id, request_id)`: session `crash-SEED`, request ids
counting from 1. Once `engine.mutation` returns (the events are durable), one JSON line
`{name, args, identity, session, request, value, ts}` is written to stdout and flushed before
anything else happens (`sigkill.acknowledge`): the test holds the engine to every line it
reads, and counts them to choose its kill point; a point it arms on stdin parks the worker
there (`sigkill.install_kill_points`). The refusals a random
workload provokes (`Conflict`, `RateLimited`) are expected and not written; any other refusal is
reported on stderr, which the test expects to stay empty.
"""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path
from typing import Any

import trio

from domain.errors import TurnstileError
from domain.identity import Identity
from domain.ticketing.aggregate import EVENT_QUEUE
from engine import Engine, EngineConfig, open_engine
from tests.engine.sigkill import acknowledge, appends_in_child, install_kill_points

TASKS = 50
NEW_EVENTS = 3
OLD_EVENTS = 2
#: Far beyond any kill point (reached within seconds even on a busy machine).
MAX_SECONDS = 120.0
#: Small, so events sell out and the waiting list moves.
TOTAL_TICKETS = (3, 6)
#: Snapshots now and then, so kills also land during a snapshot and recovery starts from one.
SNAPSHOT_EVERY = 2_000
#: Refusals a random workload over shared state provokes: races on one offer or ticket, and
#: rejoins beyond the 3-per-30-minutes join limit.
EXPECTED_REFUSALS = frozenset({"Conflict", "RateLimited"})

ORG = "org1"
ORGANIZER = Identity(
    subject="org-admin", org_id=ORG, caps=frozenset({"events:manage", "tickets:checkin"})
)


def identity_doc(identity: Identity) -> dict[str, Any]:
    return {"subject": identity.subject, "orgId": identity.org_id, "caps": sorted(identity.caps)}


def identity_of(doc: dict[str, Any]) -> Identity:
    return Identity(subject=doc["subject"], org_id=doc["orgId"], caps=frozenset(doc["caps"]))


class Workload:
    def __init__(self, engine: Engine, seed: int) -> None:
        self.engine = engine
        self.seed = seed
        self.rng = random.Random(seed)
        self.session = f"crash-{seed}"
        self.requests = 0
        self.users = 0
        self.event_ids: list[str] = []

    async def send(self, name: str, args: dict[str, Any], identity: Identity) -> Any:
        """Run one mutation; on success write its acknowledgement line, else return None."""
        self.requests += 1
        request = self.requests
        try:
            out = await self.engine.mutation(
                name, args, identity, session_id=self.session, request_id=request
            )
        except TurnstileError as exc:
            if exc.code not in EXPECTED_REFUSALS:
                print(f"unexpected {exc.code} from {name} {args}: {exc}", file=sys.stderr)
            return None
        line = {
            "name": name,
            "args": args,
            "identity": identity_doc(identity),
            "session": self.session,
            "request": request,
            "value": out.value,
            "ts": out.ts,
        }
        acknowledge(line)
        return out.value

    async def setup_events(self) -> None:
        listed = (await self.engine.query("events:list", {})).value
        earlier = [doc["_id"] for doc in listed if doc["orgId"] == ORG]
        self.event_ids = self.rng.sample(earlier, min(OLD_EVENTS, len(earlier)))
        for n in range(NEW_EVENTS):
            args = {
                "name": f"crash {self.seed} #{n}",
                "description": "crash test",
                "location": "nowhere",
                "eventDate": 1_800_000_000_000 + self.seed % 1_000_000 * 10 + n,
                "price": 1_000,
                "totalTickets": self.rng.randint(*TOTAL_TICKETS),
            }
            event_id = await self.send("events:create", args, ORGANIZER)
            if event_id is not None:
                self.event_ids.append(event_id)

    def new_user(self) -> str:
        self.users += 1
        return f"u{self.seed}-{self.users}"

    async def step(self) -> None:
        """One mutation on a random event, chosen among those its committed state allows (a
        race with another task may still refuse it)."""
        rng = self.rng
        event_id = rng.choice(self.event_ids)
        state = self.engine.committed_state(EVENT_QUEUE, event_id)
        offers = list(state.live_offers)
        valid = [t.id for t in state.tickets.values() if t.status == "valid"]
        used = state.purchased_count - len(valid)
        choices = {"join": 20, "rejoin": 3 if state.entries_by_user else 0}
        if offers:
            choices |= {"purchase": 30, "release": 10}
        if valid:
            choices["refund"] = 15
            # A used ticket holds its seat for good: keep half the seats moving.
            if state.event is not None and used < state.event.total_tickets // 2:
                choices["checkIn"] = 5
        action = rng.choices(list(choices), weights=list(choices.values()))[0]
        if action == "purchase":
            entry = state.entries[rng.choice(offers)]
            args: dict[str, Any] = {
                "eventId": event_id,
                "userId": entry.user_id,
                "waitingListId": entry.id,
                "paymentInfo": {
                    "paymentIntentId": f"pi-{self.seed}-{self.requests + 1}",
                    "amount": 1_000,
                },
            }
            await self.send("events:purchaseTicket", args, Identity(subject=entry.user_id))
        elif action == "release":
            entry = state.entries[rng.choice(offers)]
            args = {"eventId": event_id, "waitingListId": entry.id}
            await self.send("waitingList:releaseTicket", args, Identity(subject=entry.user_id))
        elif action in ("refund", "checkIn"):
            name = "tickets:refund" if action == "refund" else "tickets:checkIn"
            await self.send(name, {"ticketId": rng.choice(valid)}, ORGANIZER)
        else:
            if action == "rejoin":
                user_id = rng.choice(list(state.entries_by_user))
            else:
                user_id = self.new_user()
            args = {"eventId": event_id, "userId": user_id}
            await self.send("events:joinWaitingList", args, Identity(subject=user_id))

    async def run_task(self) -> None:
        while True:
            await self.step()


async def run(data_dir: Path, seed: int, park: str) -> None:
    config = EngineConfig(snapshot_every=SNAPSHOT_EVERY, writer_process=appends_in_child(park))
    with trio.move_on_after(MAX_SECONDS):
        async with open_engine(data_dir, config=config) as engine:
            workload = Workload(engine, seed)
            await workload.setup_events()
            if not workload.event_ids:
                print("no event to work on", file=sys.stderr)
                return
            async with trio.open_nursery() as nursery:
                for _ in range(TASKS):
                    nursery.start_soon(workload.run_task)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    data_dir, seed, park = Path(argv[1]), int(argv[2]), argv[3]
    install_kill_points()
    trio.run(run, data_dir, seed, park)


if __name__ == "__main__":
    main(sys.argv)
