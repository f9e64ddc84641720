"""The child program of tests/engine/test_order_crash.py: a busy front desk, killed at the points
the test chooses (tests/engine/sigkill.py).

    python -m tests.engine.order_crash_worker DATA_DIR SEED

Opens the engine on DATA_DIR (real clock, disk work in worker threads, `synchronous=FULL`, a
snapshot now and then), opens a location with two services and creates `NEW_CUSTOMERS`
customers, picks up the open orders earlier runs left (and their customers), then runs `TASKS`
concurrent tasks until killed (or for `MAX_SECONDS` at most, so a worker the test lost does not
run on): each places an order (a booking
days ahead or a purchase) for a random customer, or moves one open order a step along its
lifecycle (confirm, take a payment, complete, now and then cancel). No two tasks work on one
order at a time, so no command is refused.

Each mutation carries a unique `(session_id, request_id)`: session `orders-SEED`, request ids
counting from 1. Once `engine.mutation` returns (its events and its customer's are durable),
one JSON line `{name, args, session, request, value, ts}` is written to stdout and flushed
before anything else happens (`sigkill.acknowledge`): the test holds the engine to every line it
reads, and counts them to choose its kill point; a point it arms on stdin parks the worker
there (`sigkill.install_kill_points`). Any refusal is
reported on stderr, which the test expects to stay empty.
"""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path
from typing import Any

import attrs
import trio

from domain.errors import TurnstileError
from domain.identity import Identity
from engine import Engine, EngineConfig, open_engine
from tests.engine.sigkill import acknowledge, appends_in_child, install_kill_points

TASKS = 40
NEW_CUSTOMERS = 6
#: Open orders of earlier runs taken up again, at most.
OLD_ORDERS = 60
#: Far beyond any kill point (reached within seconds even on a busy machine).
MAX_SECONDS = 120.0
SNAPSHOT_EVERY = 500
DAY_MS = 86_400_000
WEEK = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

ORG = "org-orders"
STAFF = Identity(
    subject="front-desk",
    org_id=ORG,
    caps=frozenset({"locations:manage", "orders:manage", "customers:read", "customers:write"}),
)


@attrs.define
class OpenOrder:
    id: str
    customer_id: str
    status: str
    total: int
    paid: int


class Workload:
    def __init__(self, engine: Engine, seed: int) -> None:
        self.engine = engine
        self.seed = seed
        self.rng = random.Random(seed)
        self.session = f"orders-{seed}"
        self.requests = 0
        self.location_id = ""
        #: service id -> its price.
        self.prices: dict[str, int] = {}
        self.customers: list[str] = []
        #: Orders no task is working on; a task takes one out while it moves it.
        self.idle: list[OpenOrder] = []

    async def send(self, name: str, args: dict[str, Any]) -> Any:
        """Run one mutation; write its acknowledgement line and return its value."""
        self.requests += 1
        request = self.requests
        try:
            out = await self.engine.mutation(
                name, args, STAFF, session_id=self.session, request_id=request
            )
        except TurnstileError as exc:
            print(f"unexpected {exc.code} from {name} {args}: {exc}", file=sys.stderr)
            raise
        line = {
            "name": name,
            "args": args,
            "session": self.session,
            "request": request,
            "value": out.value,
            "ts": out.ts,
        }
        acknowledge(line)
        return out.value

    async def setup(self) -> None:
        for location in (await self.engine.query("locations:list", {}, STAFF)).value:
            listed = await self.engine.query(
                "orders:listByLocation", {"locationId": location["_id"]}, STAFF
            )
            for doc in listed.value:
                self.customers.append(doc["customerId"])
                if doc["status"] in ("pending", "confirmed"):
                    self.idle.append(
                        OpenOrder(
                            id=doc["_id"],
                            customer_id=doc["customerId"],
                            status=doc["status"],
                            total=doc["total"],
                            paid=doc["paidAmount"],
                        )
                    )
        self.customers = sorted(set(self.customers))
        self.idle = self.rng.sample(self.idle, min(OLD_ORDERS, len(self.idle)))
        self.location_id = await self.send(
            "locations:create",
            {
                "name": f"Desk {self.seed}",
                "address": {},
                "timezone": "UTC",
                "operatingHours": {day: {"open": "00:00", "close": "24:00"} for day in WEEK},
                "settings": {},
            },
        )
        for name, minutes, price in (("Cut", 30, 1_500), ("Colour", 90, 4_000)):
            service_id = await self.send(
                "services:create",
                {
                    "locationId": self.location_id,
                    "name": name,
                    "description": "",
                    "duration": minutes,
                    "price": price,
                    "isActive": True,
                    "resources": [],
                },
            )
            self.prices[service_id] = price

        async def new_customer(n: int) -> None:
            customer_id = await self.send(
                "customers:create",
                {"firstName": f"C{self.seed}-{n}", "customerType": "new"},
            )
            self.customers.append(customer_id)

        async with trio.open_nursery() as nursery:
            for n in range(NEW_CUSTOMERS):
                nursery.start_soon(new_customer, n)

    async def place(self) -> None:
        rng = self.rng
        customer_id = rng.choice(self.customers)
        args: dict[str, Any] = {"customerId": customer_id, "locationId": self.location_id}
        if rng.random() < 0.5:
            service_id = rng.choice(sorted(self.prices))
            # A day 2-30 days ahead, at a minute between 00:00 and 21:59 UTC: the longest
            # service (90 min) then ends that same day, whatever the wall clock says now.
            day = self.engine.now_ms() // DAY_MS + rng.randint(2, 30)
            start = day * DAY_MS + rng.randrange(22 * 60) * 60_000
            args |= {
                "type": "booking",
                "items": [{"serviceId": service_id, "quantity": 1}],
                "scheduledAt": start,
            }
            total = self.prices[service_id]
        else:
            total = rng.randint(100, 9_999)
            args |= {
                "type": "purchase",
                "items": [{"name": "Product", "quantity": 1, "price": total}],
            }
        order_id = await self.send("orders:create", args)
        self.idle.append(
            OpenOrder(id=order_id, customer_id=customer_id, status="pending", total=total, paid=0)
        )

    async def advance(self, order: OpenOrder) -> None:
        """One step of `order`; it goes back among the idle ones while it is still open."""
        rng = self.rng
        outstanding = order.total - order.paid
        if order.status == "pending":
            target = "cancelled" if rng.random() < 0.1 else "confirmed"
        elif outstanding and rng.random() < 0.4:
            amount = rng.randint(1, outstanding)
            order.paid = await self.send(
                "orders:recordPayment", {"orderId": order.id, "amount": amount}
            )
            self.idle.append(order)
            return
        else:
            target = "cancelled" if rng.random() < 0.05 else "completed"
        await self.send("orders:updateStatus", {"orderId": order.id, "status": target})
        order.status = target
        if target == "confirmed":
            self.idle.append(order)

    async def run_task(self) -> None:
        while True:
            if self.idle and self.rng.random() < 0.75:
                order = self.idle.pop(self.rng.randrange(len(self.idle)))
                await self.advance(order)
            else:
                await self.place()


async def run(data_dir: Path, seed: int, park: str) -> None:
    config = EngineConfig(snapshot_every=SNAPSHOT_EVERY, writer_process=appends_in_child(park))
    with trio.move_on_after(MAX_SECONDS):
        async with open_engine(data_dir, config=config) as engine:
            workload = Workload(engine, seed)
            await workload.setup()
            async with trio.open_nursery() as nursery:
                for _ in range(TASKS):
                    nursery.start_soon(workload.run_task)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    data_dir, seed, park = Path(argv[1]), int(argv[2]), argv[3]
    install_kill_points()
    trio.run(run, data_dir, seed, park)


if __name__ == "__main__":
    main(sys.argv)
