"""booking: front-desk staff book services for their customers at one location.

The harness's admin connection creates a location (open every day, UTC) and two services, each
needing its own resource. `--staff` staff users (tokens of the run's organization with
`customers:write`, `customers:read` and `orders:manage`), each on its own connection, watch the
location's `orders:listByLocation`, create a customer, then book until the load's deadline or
`--bookings` attempts in all. Slots are drawn at random from a pool half as large as the
attempts, so staff contend for the same resource at the same time: the server must acknowledge
at most one booking per (service, slot) and refuse the rest (`Conflict`).

The function shapes follow docs/reference/functions.md; the argument layouts the catalogue
leaves open (address, operatingHours, resources, items) are written once, below.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

from engine.client import FunctionError
from tools.loadtest.checks import Check, acknowledged_present
from tools.loadtest.recorder import Watch
from tools.loadtest.scenarios.base import (
    Audience,
    Participant,
    Scenario,
    ScenarioUnavailable,
    missing_function,
)
from tools.loadtest.users import MeasuredClient

LIST_BY_LOCATION = "orders:listByLocation"
LIST_BY_CUSTOMER = "orders:listByCustomer"
STAFF_CAPS = ("customers:read", "customers:write", "orders:manage")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
OPENS, CLOSES = 8, 20  # hours, UTC
SLOT_MINUTES = 30
SERVICES = 2
SERVICE_PRICE = 4500
DAY_MS = 24 * 3600 * 1000


def location_args(org_id: str, run_id: str) -> dict[str, Any]:
    return {
        "name": f"Load test studio {run_id}",
        "address": {"line1": "1 Loopback Lane", "city": "Localhost", "country": "GB"},
        "timezone": "UTC",
        "operatingHours": {
            day: {"open": f"{OPENS:02d}:00", "close": f"{CLOSES:02d}:00"} for day in WEEKDAYS
        },
        "settings": {},
        "orgId": org_id,
    }


def service_args(location_id: str, index: int) -> dict[str, Any]:
    return {
        "locationId": location_id,
        "name": f"Treatment {index}",
        "description": "Created by turnstile loadtest.",
        "duration": SLOT_MINUTES,
        "price": SERVICE_PRICE,
        "isActive": True,
        "resources": [f"room-{index}"],
    }


def slot_start(first_day_ms: int, slot: int) -> int:
    """The start of bookable slot `slot` (ms epoch): days from `first_day_ms` (a UTC midnight),
    each with the opening hours cut in `SLOT_MINUTES` slots."""
    per_day = (CLOSES - OPENS) * 60 // SLOT_MINUTES
    day, within = divmod(slot, per_day)
    return first_day_ms + day * DAY_MS + (OPENS * 60 + within * SLOT_MINUTES) * 60_000


class Booking(Scenario):
    name = "booking"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[str] = Counter()
        self.location_id = ""
        self.service_ids: list[str] = []
        #: order id -> customer id, for every booking acknowledged.
        self.acknowledged: dict[str, str] = {}
        #: (service id, scheduledAt) -> the acknowledged orders holding it.
        self.held: dict[tuple[str, int], list[str]] = {}
        self.customers: list[str] = []
        self._watchers: list[Watch] = []
        self._attempts_left = self.context.config.bookings or None
        tomorrow = (int(time.time() * 1000) // DAY_MS + 1) * DAY_MS
        self._first_day_ms = tomorrow
        self._slots = max(1, self.context.config.bookings // 2)

    @property
    def _list_args(self) -> dict[str, Any]:
        return {"locationId": self.location_id}

    @property
    def topic(self) -> str:
        return f"{LIST_BY_LOCATION} {self.location_id}"

    async def prepare(self, stack: AsyncExitStack) -> None:
        context = self.context
        admin = context.admin
        org_id = context.config.org_id
        try:
            created = await admin.call("locations:create", location_args(org_id, context.run_id))
        except FunctionError as error:
            if missing_function(error):
                raise ScenarioUnavailable(
                    "the server has no Venue CRM functions (locations:create)"
                ) from None
            raise
        self.location_id = str(created.value)
        for index in range(SERVICES):
            service = await admin.call("services:create", service_args(self.location_id, index))
            self.service_ids.append(str(service.value))

    def participants(self) -> list[Participant]:
        return [functools.partial(self._staff, i) for i in range(self.context.config.staff)]

    def audiences(self) -> list[Audience]:
        return [
            Audience(
                label="booking orders by location",
                topic=self.topic,
                name=LIST_BY_LOCATION,
                args=self._list_args,
                members=tuple(self._watchers),
            )
        ]

    def stats(self) -> dict[str, Any]:
        return {
            "locationId": self.location_id,
            "staff": self.context.config.staff,
            "slots": self._slots * len(self.service_ids),
            **{key: self.counts[key] for key in sorted(self.counts)},
        }

    async def verify(self) -> list[Check]:
        admin = self.context.admin
        found: dict[str, dict[str, Any] | None] = dict.fromkeys(self.acknowledged)
        for customer_id in self.customers:
            for order in await admin.query(LIST_BY_CUSTOMER, {"customerId": customer_id}):
                if order["_id"] in found:
                    found[order["_id"]] = order
        doubled = sorted(
            f"{service} at {when}"
            for (service, when), orders in self.held.items()
            if len(orders) > 1
        )
        booked = sum(1 for orders in self.held.values() if orders)
        return [
            acknowledged_present(
                "booking: orders",
                self.acknowledged,
                found,
                lambda _order_id, customer_id, order: order["customerId"] == customer_id,
            ),
            Check(
                name="booking: never double-booked",
                passed=not doubled,
                detail=(
                    f"{len(doubled)} (service, slot) pairs acknowledged twice: "
                    + ", ".join(doubled[:5])
                    if doubled
                    else f"{booked} slots booked once each; "
                    f"{self.counts['slotTaken']} contending bookings refused"
                ),
            ),
        ]

    async def _staff(self, index: int) -> None:
        context = self.context
        staff_id = f"{context.run_id}-staff-{index}"
        token = context.user_token(staff_id, context.config.org_id, STAFF_CAPS)
        async with (
            context.participant("booking staff") as me,
            context.connect(token=token) as client,
            client.watching(self.topic, LIST_BY_LOCATION, self._list_args) as watch,
        ):
            self._watchers.append(watch)
            me.ready()
            await context.start.wait()
            with context.load_scope():
                await self._book(client, index)
            me.done()
            await context.release.wait()

    def _take_attempt(self) -> bool:
        if self._attempts_left is None:
            return True
        if self._attempts_left <= 0:
            return False
        self._attempts_left -= 1
        return True

    async def _book(self, client: MeasuredClient, index: int) -> None:
        context = self.context
        digits = f"{int(context.run_id, 16) % 10**6:06d}{index:04d}"  # unique per run
        try:
            created = await client.call(
                "customers:create",
                {
                    "firstName": "Load",
                    "lastName": f"Test {index}",
                    "email": f"{context.run_id}-{index}@loadtest.invalid",
                    "phone": f"+44 7{digits}",
                    "locationId": self.location_id,
                },
            )
        except FunctionError:
            self.counts["customerRefused"] += 1
            return
        customer_id = str(created.value)
        self.customers.append(customer_id)
        while not context.load_over() and self._take_attempt():
            await context.think()
            if context.load_over():
                break
            service_id = context.rng.choice(self.service_ids)
            when = slot_start(self._first_day_ms, context.rng.randrange(self._slots))
            try:
                reply = await client.call(
                    "orders:create",
                    {
                        "customerId": customer_id,
                        "locationId": self.location_id,
                        "type": "booking",
                        "items": [{"serviceId": service_id, "quantity": 1}],
                        "scheduledAt": when,
                        "notes": "loadtest",
                    },
                )
            except FunctionError as error:
                self.counts["slotTaken" if error.code == "Conflict" else "bookingRefused"] += 1
                continue
            order_id = str(reply.value)
            self.counts["booked"] += 1
            self.acknowledged[order_id] = customer_id
            self.held.setdefault((service_id, when), []).append(order_id)


__all__ = ["Booking"]
