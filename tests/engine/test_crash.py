"""Crash safety: SIGKILL a busy engine at points chosen by what it did; nothing it acknowledged is
lost, nothing is applied twice.

The child (tests/engine/crash_worker.py) runs a concurrent ticketing workload on real disk
(`synchronous=FULL`, commits in worker threads, a snapshot now and then) and prints one line per
mutation `engine.mutation` returned. It is killed `RUNS` times on the same data dir, each run
with its own seed (so its own idempotency session), each at a kill point drawn for it
(tests/engine/sigkill.py): after its Nth acknowledgement, at once or parked with a group
commit's rows written but not committed, with a commit durable but not yet acknowledged, or
in the middle of writing a snapshot (`KILLS` says how many of each). So every run acknowledged
something and died where it was meant to, however busy the machine. Then the engine recovers
in-process and is held to every acknowledged line: the journal is sound, each acknowledged
mutation's events are there, a repeat of its request returns the original `(value, ts)`
without executing again, every stream keeps its invariants and equals the fold of its own rows,
and every join's rate-limit take is journaled with it.

Set TURNSTILE_CRASH_SEED to repeat a failing run's choices (kill points, workload); where an
unparked kill lands among the child's commits stays up to the scheduler.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from domain.errors import TurnstileError
from domain.ids import owner_of
from domain.ticketing.aggregate import EVENT_QUEUE
from engine import Engine, EngineConfig, open_engine
from engine.journal import JOURNAL_FILE
from engine.snapshotting import fold_stream
from tests.engine.crash_worker import identity_of
from tests.engine.sigkill import Ack, integrity, kill_points, kill_runs

#: Runs killed at each kill point (None: at once after the Nth acknowledgement, the rest parked
#: there after it; tests/engine/sigkill.py).
KILLS = {None: 8, "written": 4, "committed": 4, "snapshot": 4}
RUNS = sum(KILLS.values())
#: The N of each run, drawn uniformly: a few hundred mutations of the workload at most.
KILL_AFTER_ACKS = (1, 600)


#: The type of the last event each acknowledged mutation can have written (its `ts` row).
LAST_EVENT_TYPES = {
    "events:create": {"EventCreated"},
    "events:joinWaitingList": {"WaitingListJoined", "OfferMade"},
    "events:purchaseTicket": {"TicketPurchased"},
    "waitingList:releaseTicket": {"OfferReleased", "OfferMade"},
    "tickets:refund": {"TicketRefunded", "OfferMade"},
    "tickets:checkIn": {"TicketCheckedIn"},
}


def crash_runs(data_dir: Path, log_dir: Path, rng: random.Random) -> tuple[list[Ack], int]:
    """Start and SIGKILL the worker `RUNS` times on `data_dir`, each at its kill point; return
    every line it acknowledged (a torn last line is dropped) and how many runs acknowledged
    anything (all of them: each kill point comes after an acknowledgement)."""
    points = kill_points(rng, KILLS, KILL_AFTER_ACKS)
    runs = kill_runs("tests.engine.crash_worker", data_dir, log_dir, rng, points)
    return [ack for run in runs for ack in run], sum(bool(run) for run in runs)


def journal_rows(data_dir: Path) -> dict[int, tuple[str, str]]:
    conn = sqlite3.connect(data_dir / JOURNAL_FILE)
    try:
        rows = conn.execute("SELECT seq, stream, type FROM events").fetchall()
    finally:
        conn.close()
    return {seq: (stream, type_) for seq, stream, type_ in rows}


def event_of(ack: Ack) -> str:
    if ack["name"] == "events:create":
        return str(ack["value"])
    args = ack["args"]
    if "eventId" in args:
        return str(args["eventId"])
    owner = owner_of(args["ticketId"], "tk", "ev")
    assert owner is not None
    return owner


def missing_effect(ack: Ack, state: Any) -> str | None:
    """What of `ack`'s effect the committed state lacks, or None. Only final facts count:
    a later acknowledged mutation may have moved a record on (an offer purchased, a ticket
    refunded), never back."""
    name, args, value = ack["name"], ack["args"], ack["value"]
    if name == "events:create":
        return None if state.event is not None else "the event does not exist"
    if name == "events:joinWaitingList":
        entry = state.entries.get(value["waitingListId"])
        ok = entry is not None and entry.user_id == args["userId"]
        return None if ok else f"entry {value['waitingListId']} is missing"
    if name == "events:purchaseTicket":
        ticket = state.tickets.get(value)
        intent = args["paymentInfo"]["paymentIntentId"]
        ok = ticket is not None and ticket.payment_intent_id == intent
        return None if ok else f"ticket {value} is missing"
    if name == "waitingList:releaseTicket":
        entry = state.entries.get(args["waitingListId"])
        ok = entry is not None and entry.status == "expired"
        return None if ok else f"entry {args['waitingListId']} is not expired"
    expected = {"tickets:refund": "refunded", "tickets:checkIn": "used"}[name]
    ticket = state.tickets.get(args["ticketId"])
    ok = ticket is not None and ticket.status == expected
    return None if ok else f"ticket {args['ticketId']} is not {expected}"


async def check_survivors(engine: Engine, acks: list[Ack]) -> list[str]:
    """Every way the recovered engine fails the acknowledged mutations (empty: none)."""
    problems: list[str] = []
    rows = journal_rows(engine.data_dir)
    last_seq = engine.journal.last_seq()
    if sorted(rows) != list(range(1, last_seq + 1)):
        problems.append(f"journal seqs are not 1..{last_seq} without gaps")

    streams = {stream for stream, _ in rows.values() if stream.startswith("event/")}
    states = {
        stream: engine.committed_state(EVENT_QUEUE, stream.partition("/")[2]) for stream in streams
    }
    for ack in acks:
        where = f"{ack['session']}#{ack['request']} {ack['name']} (ts {ack['ts']})"
        stream = f"event/{event_of(ack)}"
        row = rows.get(ack["ts"])
        if ack["ts"] > last_seq or row is None:
            problems.append(f"{where}: no journal row at its ts (last seq {last_seq})")
            continue
        if row[0] != stream or row[1] not in LAST_EVENT_TYPES[ack["name"]]:
            problems.append(f"{where}: row {ack['ts']} is {row[1]} on {row[0]}, not {stream}")
            continue
        lacking = missing_effect(ack, states[stream])
        if lacking is not None:
            problems.append(f"{where}: {lacking}")

    for ack in acks:
        where = f"{ack['session']}#{ack['request']} {ack['name']}"
        try:
            again = await engine.mutation(
                ack["name"],
                ack["args"],
                identity_of(ack["identity"]),
                session_id=ack["session"],
                request_id=ack["request"],
            )
        except TurnstileError as exc:
            problems.append(f"{where}: the repeat was refused: {exc.code} {exc}")
            continue
        # Through JSON, as the acknowledgement line went.
        if (json.loads(json.dumps(again.value)), again.ts) != (ack["value"], ack["ts"]):
            problems.append(
                f"{where}: the repeat answered {again.value!r} at {again.ts}, "
                f"not {ack['value']!r} at {ack['ts']}"
            )
    await engine.wait_idle()
    if engine.journal.last_seq() != last_seq:
        problems.append(
            f"repeating acknowledged requests executed something: the journal moved from "
            f"{last_seq} to {engine.journal.last_seq()}"
        )

    # Every stream: invariants, and recovery (snapshot + tail, loaded lazily) equals the fold of
    # the stream's own rows from nothing.
    for stream in sorted({stream for stream, _ in rows.values()}):
        aggregate = engine.registry.aggregate_of(stream)
        state = engine.committed_state(aggregate, stream.partition("/")[2])
        if aggregate.check_invariants is not None:
            try:
                aggregate.check_invariants(state)
            except AssertionError as exc:
                problems.append(f"{stream}: {exc}")
        folded, _ = fold_stream(aggregate, aggregate.initial, 0, engine.journal.read_stream(stream))
        if folded != state:
            problems.append(f"{stream}: the committed state is not the fold of its journal rows")

    # A join's rate-limit take is written in its transaction, at the seq of its last event:
    # one take per join, each at a row of an event's stream, and each limiter recovered (from
    # its last take) as it was taken.
    takes = list(engine.journal.takes())
    joins = sum(type_ == "WaitingListJoined" for _, type_ in rows.values())
    if len(takes) != joins:
        problems.append(f"{len(takes)} rate-limit takes journaled for {joins} joins")
    latest = {}
    for take in takes:
        latest[take.limiter] = take
        if not rows.get(take.seq, ("", ""))[0].startswith("event/"):
            problems.append(f"the take of {take.limiter} at seq {take.seq} follows no join")
    for limiter, take in latest.items():
        state = engine.limiters.state(limiter)
        if (state.count, state.updated_at) != (take.count, take.at):
            problems.append(f"{limiter}: recovered as {state}, not as its last take {take}")
    return problems


async def test_acknowledged_mutations_survive_sigkill(tmp_path: Path) -> None:
    seed = int(os.environ.get("TURNSTILE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"crash test seed: TURNSTILE_CRASH_SEED={seed}")  # pytest shows it on failure
    data_dir = tmp_path / "data"

    started = time.monotonic()
    acks, productive = await trio.to_thread.run_sync(
        crash_runs, data_dir, tmp_path / "runs", random.Random(seed)
    )
    print(
        f"{RUNS} kills, {productive} with acknowledgements, {len(acks)} acknowledged "
        f"({dict(Counter(ack['name'] for ack in acks))}) in {time.monotonic() - started:.1f}s"
    )
    assert productive == RUNS, "a run was killed before its first acknowledgement"
    assert {ack["name"] for ack in acks} == set(LAST_EVENT_TYPES), "the workload lost a kind"
    assert integrity(data_dir) == "ok"

    started = time.monotonic()
    async with open_engine(
        data_dir, config=EngineConfig(check_invariants=True, run_jobs=False)
    ) as engine:
        problems = await check_survivors(engine, acks)
        print(f"{engine.recovery}; checked in {time.monotonic() - started:.1f}s")
    assert not problems, f"{len(problems)} problems, the first ones:\n" + "\n".join(problems[:20])
    assert integrity(data_dir) == "ok"
