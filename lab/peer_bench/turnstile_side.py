"""Turnstile's side of the workloads (`onsale`, `spread`): the real engine in-process, through
`Engine.mutation`.

The engine runs on a fresh data dir with `EngineConfig(synchronous="FULL", snapshot_every=0)`
(the default config except that no automatic snapshot lands inside the timed window) and
`engine.tune_gc()`, as `lab.bench` runs it. `clients` trio tasks play the users; a mutation
returns only once its events are committed and fsynced (group commit), so every reply counted is
durable. The final state is each event actor's committed state as a fresh engine recovers it
from the journal after the run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lab.peer_bench.workload import (
    OFFERED,
    PRICE,
    FinalState,
    Replies,
    Sizes,
    Users,
    payment_intent,
    summarize,
)

CREATE = "events:create"
JOIN = "events:joinWaitingList"
PURCHASE = "events:purchaseTicket"


async def run_workload(data_dir: Path, sizes: Sizes) -> dict[str, Any]:
    """Run `sizes.workload` once on a fresh engine in `data_dir`; return its summary."""
    import trio

    from domain.errors import Overloaded, TurnstileError
    from domain.identity import ADMIN, Identity
    from domain.ticketing.aggregate import EVENT_QUEUE
    from domain.ticketing.state import HELD_TICKET_STATUSES
    from engine import EngineConfig, open_engine

    config = EngineConfig(synchronous="FULL", snapshot_every=0)
    replies = Replies()
    async with open_engine(data_dir, config=config) as engine:
        event_ids: list[Any] = [None] * sizes.events

        async def create(number: int) -> None:
            created = await engine.mutation(
                CREATE,
                {
                    "name": f"Event {number}",
                    "description": "The peer benchmark's event.",
                    "location": "Hall 1",
                    "eventDate": 1_800_000_000_000,
                    "price": PRICE,
                    "totalTickets": sizes.tickets,
                    "orgId": "org1",
                },
                ADMIN,
            )
            event_ids[number] = created.value

        async def creator(numbers: range) -> None:
            for number in numbers:
                await create(number)

        # Before the timed window; concurrently, so the creations share commits.
        async with trio.open_nursery() as nursery:
            for start in range(sizes.clients):
                nursery.start_soon(creator, range(start, sizes.events, sizes.clients))
        users = Users(sizes)
        perf = time.perf_counter

        async def call(name: str, args: dict[str, Any], who: Identity) -> Any:
            while True:
                t0 = perf()
                try:
                    outcome = await engine.mutation(name, args, who)
                except Overloaded:  # a full mailbox: back off and retry, as a client would
                    replies.retries += 1
                    await trio.sleep(0.001)
                    continue
                replies.latencies.append(perf() - t0)
                return outcome.value

        async def client() -> None:
            for user in users:
                who = Identity(subject=user)
                event_id = event_ids[users.event_of(user)]
                try:
                    joined = await call(JOIN, {"eventId": event_id, "userId": user}, who)
                    replies.joined[user] = joined["status"]
                    if joined["status"] != OFFERED:
                        continue
                    purchase = {
                        "eventId": event_id,
                        "userId": user,
                        "waitingListId": joined["waitingListId"],
                        "paymentInfo": {"paymentIntentId": payment_intent(user), "amount": PRICE},
                    }
                    replies.purchased[user] = await call(PURCHASE, purchase, who)
                except TurnstileError as exc:
                    replies.errors[type(exc).__name__] += 1

        started = perf()
        async with trio.open_nursery() as nursery:
            for _ in range(sizes.clients):
                nursery.start_soon(client)
        seconds = perf() - started
        await engine.wait_idle()
        config_text = (
            f"synchronous={engine.config.synchronous}, journal WAL, group commit "
            f"(max_batch={engine.config.max_batch})"
        )
    # The final state as recovered from the journal by a fresh engine on the same data dir.
    finals: list[FinalState] = []
    async with open_engine(data_dir, config=config) as engine:
        for event_id in event_ids:
            state = engine.committed_state(EVENT_QUEUE, event_id)
            EVENT_QUEUE.check_invariants(state)  # type: ignore[misc]
            assert state.event is not None
            entries: dict[str, list[str]] = {}
            for entry in sorted(state.entries.values(), key=lambda e: e.number):
                entries.setdefault(entry.user_id, []).append(entry.status)
            finals.append(
                FinalState(
                    total_tickets=state.event.total_tickets,
                    purchased_count=state.purchased_count,
                    entries=entries,
                    tickets=[
                        (t.user_id, t.waiting_list_id)
                        for t in state.tickets.values()
                        if t.status in HELD_TICKET_STATUSES
                    ],
                )
            )
    return summarize(
        f"Turnstile, {sizes.clients} tasks",
        sizes,
        replies,
        finals,
        seconds,
        not users.hit_deadline,
        durability=config_text,
        concurrency=f"{sizes.clients} trio tasks, in-process Engine.mutation",
    )


def run(scratch: Path, sizes: Sizes) -> dict[str, Any]:
    """One round in this process (the caller has applied `engine.tune_gc()` if it wants it)."""
    import trio

    return trio.run(run_workload, scratch / "turnstile-data", sizes)
