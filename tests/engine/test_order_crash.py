"""Crash safety of the reaction between a location and its customers: SIGKILL during a stream of
order completions, restart, and each completion has reached its customer exactly once.

The child (tests/engine/order_crash_worker.py) runs a concurrent front-desk workload on real disk
(`synchronous=FULL`, commits in worker threads, a snapshot now and then): it places orders for
its customers and moves them along (confirm, pay, complete, cancel), printing one line per
mutation `engine.mutation` returned. It is killed `RUNS` times on the same data dir, each run
with its own seed (its own idempotency session), each taking up the open orders of the runs
before, each killed after its Nth acknowledged completion: at once, or parked with a group
commit's rows written but not committed, with a commit durable but not yet acknowledged, or in
the middle of a snapshot (tests/engine/sigkill.py; `KILLS` says how many of each). So every run
completes orders, however busy the machine. Then the engine recovers in-process and is held to
every line and to the whole journal:

- each acknowledged order command's last row is its order event, and the row just before it is
  its customer's `CustomerOrderRecorded` of the same facts (one transaction, the customer's part
  first);
- each acknowledged completion is completed at its location and recorded as completed on its
  customer by exactly one row; anywhere in the journal, every completion row is paired so;
- every customer records exactly the orders its locations hold for it, in the same status with
  the same amounts, and its lifetime value is the sum of its completed orders' totals, counted
  once each; every stream keeps its invariants and equals the fold of its own rows;
- a repeat of each acknowledged request returns its original `(value, ts)` and writes nothing.

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

import attrs
import trio

from domain.customers import CUSTOMER, CustomerState
from domain.errors import TurnstileError
from domain.ids import owner_of
from domain.venue import LOCATION, LocationState, Order
from engine import Engine, EngineConfig, open_engine
from engine.journal import JOURNAL_FILE
from engine.snapshotting import fold_stream
from tests.engine.order_crash_worker import STAFF
from tests.engine.sigkill import integrity, kill_points, kill_runs

#: Runs killed at each kill point (None: at once after the Nth acknowledged completion, the
#: rest parked there after it; tests/engine/sigkill.py).
KILLS = {None: 4, "written": 2, "committed": 2, "snapshot": 2}
RUNS = sum(KILLS.values())
#: The N of each run, drawn uniformly: at least 100 completions in all.
KILL_AFTER_COMPLETIONS = (10, 40)

Ack = dict[str, Any]

#: The type of the last event each acknowledged mutation wrote (the row at its `ts`).
LAST_EVENT_TYPES = {
    "locations:create": "LocationCreated",
    "services:create": "ServiceCreated",
    "customers:create": "CustomerCreated",
    "orders:create": "OrderPlaced",
    "orders:updateStatus": "OrderStatusChanged",
    "orders:recordPayment": "OrderPaymentRecorded",
}
ORDER_COMMANDS = ("orders:create", "orders:updateStatus", "orders:recordPayment")


@attrs.frozen
class Row:
    seq: int
    stream: str
    type: str
    payload: dict[str, Any]


def crash_runs(data_dir: Path, log_dir: Path, rng: random.Random) -> tuple[list[Ack], int]:
    """Start and SIGKILL the worker `RUNS` times on `data_dir`, each at its kill point; return
    every line it acknowledged (a torn last line is dropped) and how many runs acknowledged a
    completion (all of them: each kill point comes after completions)."""
    points = kill_points(rng, KILLS, KILL_AFTER_COMPLETIONS)
    runs = kill_runs(
        "tests.engine.order_crash_worker", data_dir, log_dir, rng, points, counted=is_completion
    )
    completing = sum(any(is_completion(ack) for ack in run) for run in runs)
    return [ack for run in runs for ack in run], completing


def is_completion(ack: Ack) -> bool:
    return bool(ack["name"] == "orders:updateStatus" and ack["args"]["status"] == "completed")


def read_journal(data_dir: Path) -> dict[int, Row]:
    conn = sqlite3.connect(data_dir / JOURNAL_FILE)
    try:
        rows = conn.execute("SELECT seq, stream, type, payload FROM events").fetchall()
    finally:
        conn.close()
    return {
        seq: Row(seq, stream, type_, json.loads(payload)) for seq, stream, type_, payload in rows
    }


def order_of(ack: Ack) -> str:
    return str(ack["value"] if ack["name"] == "orders:create" else ack["args"]["orderId"])


def stream_of(ack: Ack) -> str:
    """The stream of the row at the acknowledgement's `ts`."""
    name, args, value = ack["name"], ack["args"], ack["value"]
    if name == "locations:create":
        return f"location/{value}"
    if name == "customers:create":
        return f"customer/{value}"
    if name in ("services:create", "orders:create"):
        return f"location/{args['locationId']}"
    owner = owner_of(args["orderId"], "or", "lo")
    assert owner is not None
    return f"location/{owner}"


def recorded_as(ack: Ack) -> dict[str, Any]:
    """What the customer's `CustomerOrderRecorded` of an order command must say."""
    name, args, value = ack["name"], ack["args"], ack["value"]
    if name == "orders:create":
        return {"orderId": value, "status": "pending", "paidAmount": 0}
    if name == "orders:updateStatus":
        return {"orderId": args["orderId"], "status": args["status"]}
    return {"orderId": args["orderId"], "paidAmount": value}


class Recovered:
    """The recovered engine's committed states of every location and customer."""

    def __init__(self, engine: Engine, rows: dict[int, Row]) -> None:
        streams = {row.stream for row in rows.values()}
        self.locations: dict[str, LocationState] = {
            s: engine.committed_state(LOCATION, s.partition("/")[2])
            for s in streams
            if s.startswith("location/")
        }
        self.customers: dict[str, CustomerState] = {
            s: engine.committed_state(CUSTOMER, s.partition("/")[2])
            for s in streams
            if s.startswith("customer/")
        }

    def order(self, order_id: str) -> Order | None:
        owner = owner_of(order_id, "or", "lo")
        return self.locations[f"location/{owner}"].orders.get(order_id)


def check_acks(acks: list[Ack], rows: dict[int, Row], world: Recovered) -> list[str]:
    problems: list[str] = []
    last_seq = max(rows, default=0)
    for ack in acks:
        where = f"{ack['session']}#{ack['request']} {ack['name']} (ts {ack['ts']})"
        row = rows.get(ack["ts"])
        if row is None:
            problems.append(f"{where}: no journal row at its ts (last seq {last_seq})")
            continue
        if (row.stream, row.type) != (stream_of(ack), LAST_EVENT_TYPES[ack["name"]]):
            problems.append(f"{where}: row {row.seq} is {row.type} on {row.stream}")
            continue
        if ack["name"] not in ORDER_COMMANDS:
            continue
        order = world.order(order_of(ack))
        if order is None:
            problems.append(f"{where}: the order is gone")
            continue
        before = rows.get(ack["ts"] - 1)
        wanted = recorded_as(ack)
        if (
            before is None
            or before.stream != f"customer/{order.customer_id}"
            or before.type != "CustomerOrderRecorded"
            or {key: before.payload.get(key) for key in wanted} != wanted
        ):
            problems.append(f"{where}: the row before is not its customer's record {wanted}")
    return problems


def check_completions(acks: list[Ack], rows: dict[int, Row], world: Recovered) -> list[str]:
    """Each acknowledged completion reached its location and its customer, each once; every
    completion in the journal is paired with its customer's record in one transaction."""
    problems: list[str] = []
    completed_at_location: Counter[str] = Counter()
    completed_on_customer: Counter[str] = Counter()
    for row in rows.values():
        if row.type == "OrderStatusChanged" and row.payload["status"] == "completed":
            completed_at_location[row.payload["orderId"]] += 1
            before = rows.get(row.seq - 1)
            if before is None or (before.type, before.payload.get("orderId")) != (
                "CustomerOrderRecorded",
                row.payload["orderId"],
            ):
                problems.append(f"the completion at seq {row.seq} has no customer record before")
        if row.type == "CustomerOrderRecorded" and row.payload["status"] == "completed":
            completed_on_customer[row.payload["orderId"]] += 1
            after = rows.get(row.seq + 1)
            if after is None or (after.type, after.payload.get("orderId")) != (
                "OrderStatusChanged",
                row.payload["orderId"],
            ):
                problems.append(f"the customer's completion at seq {row.seq} has no cause after")
    for ack in filter(is_completion, acks):
        order_id = ack["args"]["orderId"]
        order = world.order(order_id)
        if order is None or order.status != "completed":
            problems.append(f"acknowledged completion of {order_id}: not completed at its location")
            continue
        record = world.customers[f"customer/{order.customer_id}"].orders.get(order_id)
        if record is None or record.status != "completed" or record.total != order.total:
            problems.append(f"acknowledged completion of {order_id}: not so on its customer")
        counts = (completed_at_location[order_id], completed_on_customer[order_id])
        if counts != (1, 1):
            problems.append(f"{order_id} was completed {counts} times (location, customer)")
    return problems


def check_customers(world: Recovered) -> list[str]:
    """Every customer records exactly its orders as its locations hold them, and its figures
    count each completed order once."""
    problems: list[str] = []
    held: dict[str, dict[str, Order]] = {stream: {} for stream in world.customers}
    for location in world.locations.values():
        for order in location.orders.values():
            owner = f"customer/{order.customer_id}"
            if owner not in held:
                problems.append(f"order {order.id} belongs to no customer in the journal")
                continue
            held[owner][order.id] = order
    for stream, customer in world.customers.items():
        orders = held[stream]
        if set(customer.orders) != set(orders):
            problems.append(
                f"{stream} records {len(customer.orders)} orders; its locations hold {len(orders)}"
            )
        for order_id, record in customer.orders.items():
            known = orders.get(order_id)
            if known is None:
                continue
            facts = (record.status, record.total, record.paid_amount, record.completed_at)
            truth = (known.status, known.total, known.paid_amount, known.completed_at)
            if facts != truth:
                problems.append(f"{stream} records {order_id} as {facts}, its location {truth}")
        completed = [o.total for o in orders.values() if o.status == "completed"]
        figures = (customer.figures.clv, customer.figures.order_count)
        if figures != (sum(completed), len(completed)):
            problems.append(
                f"{stream}: clv and orderCount {figures}, its completed orders "
                f"{(sum(completed), len(completed))}"
            )
    return problems


async def check_streams(engine: Engine, rows: dict[int, Row]) -> list[str]:
    """Every stream keeps its invariants, and recovery (snapshot + tail, loaded lazily) equals
    the fold of the stream's own rows from nothing."""
    problems: list[str] = []
    for stream in sorted({row.stream for row in rows.values()}):
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
    return problems


async def check_repeats(engine: Engine, acks: list[Ack]) -> list[str]:
    """A repeat of each acknowledged request answers as the first time and executes nothing."""
    problems: list[str] = []
    last_seq = engine.journal.last_seq()
    for ack in acks:
        where = f"{ack['session']}#{ack['request']} {ack['name']}"
        try:
            again = await engine.mutation(
                ack["name"],
                ack["args"],
                STAFF,
                session_id=ack["session"],
                request_id=ack["request"],
            )
        except TurnstileError as exc:
            problems.append(f"{where}: the repeat was refused: {exc.code} {exc}")
            continue
        if (json.loads(json.dumps(again.value)), again.ts) != (ack["value"], ack["ts"]):
            problems.append(f"{where}: the repeat answered {again.value!r} at {again.ts}")
    await engine.wait_idle()
    if engine.journal.last_seq() != last_seq:
        problems.append(f"repeats executed something: the journal moved past {last_seq}")
    return problems


async def test_each_acknowledged_completion_reaches_its_customer_once_across_sigkills(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("TURNSTILE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"order crash test seed: TURNSTILE_CRASH_SEED={seed}")  # pytest shows it on failure
    data_dir = tmp_path / "data"

    started = time.monotonic()
    acks, completing = await trio.to_thread.run_sync(
        crash_runs, data_dir, tmp_path / "runs", random.Random(seed)
    )
    completions = sum(map(is_completion, acks))
    print(
        f"{RUNS} kills, {completing} with completions, {len(acks)} acknowledged "
        f"({dict(Counter(ack['name'] for ack in acks))}) in {time.monotonic() - started:.1f}s"
    )
    assert completing == RUNS, "a run was killed before it completed an order"
    assert completions >= RUNS * KILL_AFTER_COMPLETIONS[0] >= 100
    assert {ack["name"] for ack in acks} == set(LAST_EVENT_TYPES), "the workload lost a kind"
    assert integrity(data_dir) == "ok"

    started = time.monotonic()
    async with open_engine(
        data_dir, config=EngineConfig(check_invariants=True, run_jobs=False)
    ) as engine:
        rows = read_journal(data_dir)
        last_seq = engine.journal.last_seq()
        problems = []
        if sorted(rows) != list(range(1, last_seq + 1)):
            problems.append(f"journal seqs are not 1..{last_seq} without gaps")
        world = Recovered(engine, rows)
        problems += check_acks(acks, rows, world)
        problems += check_completions(acks, rows, world)
        problems += check_customers(world)
        problems += await check_streams(engine, rows)
        problems += await check_repeats(engine, acks)
        print(f"{engine.recovery}; checked in {time.monotonic() - started:.1f}s")
    assert not problems, f"{len(problems)} problems, the first ones:\n" + "\n".join(problems[:20])
    assert integrity(data_dir) == "ok"
