"""One event on sale, as the ticketing scenarios (onsale, fanout) use it.

The harness's admin connection creates the event and keeps a reference subscription to its
availability; simulated users subscribe to the same query through `watched_by`. Every purchase
acknowledged to a user is remembered and becomes a commit-to-update marker: `purchasedCount`
only grows in these scenarios (nothing refunds or cancels), so every availability value computed
at or past a purchase's commit differs from every value before it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from engine.client import FunctionError
from tools.loadtest.checks import Check, acknowledged_present, never_oversold, oversold_in
from tools.loadtest.recorder import Watch
from tools.loadtest.scenarios.base import Audience, RunContext
from tools.loadtest.users import MeasuredClient, Reply

AVAILABILITY = "events:getEventAvailability"
JOIN = "events:joinWaitingList"
PURCHASE = "events:purchaseTicket"
RELEASE = "waitingList:releaseTicket"
QUEUE_POSITION = "waitingList:getQueuePosition"
USER_TICKET = "tickets:getUserTicketForEvent"
LIST_TICKETS = "tickets:listForEvent"
PRICE = 2500
#: Read-backs in flight at once after the run.
READ_BACK_CONCURRENCY = 16


class SaleEvent:
    def __init__(self, context: RunContext, label: str, tickets: int) -> None:
        self.context = context
        self.label = label
        self.tickets = tickets
        self.event_id = ""
        self.reference: Watch | None = None
        #: ticket id -> the user it was acknowledged to.
        self.acknowledged: dict[str, str] = {}
        #: Oversold availability values any connection observed (with why).
        self.observed_oversold: list[str] = []
        self._watchers: list[Watch] = []
        self._on_change: Callable[[Any], None] | None = None

    @property
    def args(self) -> dict[str, Any]:
        return {"eventId": self.event_id}

    @property
    def topic(self) -> str:
        return f"{AVAILABILITY} {self.event_id}"

    async def create(
        self, stack: AsyncExitStack, on_change: Callable[[Any], None] | None = None
    ) -> None:
        """Create the event (admin, in the run's organization) and subscribe the reference;
        `on_change` is called with each new availability it reads."""
        month_ms = 30 * 24 * 3600 * 1000
        admin = self.context.admin
        created = await admin.call(
            "events:create",
            {
                "name": f"Load test {self.label} {self.context.run_id}",
                "description": "Created by turnstile loadtest.",
                "location": "Loopback Arena",
                "eventDate": int(time.time() * 1000) + month_ms,
                "price": PRICE,
                "totalTickets": self.tickets,
                "orgId": self.context.config.org_id,
            },
        )
        self.event_id = str(created.value)
        self._on_change = on_change
        self.reference = await stack.enter_async_context(
            admin.watching(
                self.topic, AVAILABILITY, self.args, self._inspect_reference, measured=False
            )
        )

    @asynccontextmanager
    async def watched_by(self, client: MeasuredClient) -> AsyncIterator[Watch]:
        """`client` subscribed to the availability for the block."""
        async with client.watching(self.topic, AVAILABILITY, self.args, self._inspect) as watch:
            self._watchers.append(watch)
            yield watch

    def _inspect(self, availability: Any) -> None:
        why = oversold_in(availability)
        if why is not None:
            self.observed_oversold.append(why)

    def _inspect_reference(self, availability: Any) -> None:
        self._inspect(availability)
        if self._on_change is not None:
            self._on_change(availability)

    async def join(self, client: MeasuredClient, user_id: str) -> Reply:
        return await client.call(JOIN, {"eventId": self.event_id, "userId": user_id})

    async def purchase(
        self, client: MeasuredClient, user_id: str, waiting_list_id: str, payment_id: str
    ) -> Reply:
        """Buy the offered seat; an acknowledged purchase is remembered and marked."""
        reply = await client.call(
            PURCHASE,
            {
                "eventId": self.event_id,
                "userId": user_id,
                "waitingListId": waiting_list_id,
                "paymentInfo": {"paymentIntentId": payment_id, "amount": PRICE},
            },
        )
        self.acknowledged[str(reply.value)] = user_id
        if reply.acked_at is not None and reply.ts is not None:
            self.context.recorder.mark(
                self.topic, client.connection, reply.sent_at, reply.acked_at, reply.ts
            )
        return reply

    async def release(self, client: MeasuredClient, waiting_list_id: str) -> Reply:
        return await client.call(
            RELEASE, {"eventId": self.event_id, "waitingListId": waiting_list_id}
        )

    def audience(self) -> Audience:
        return Audience(
            label=f"{self.label} availability",
            topic=self.topic,
            name=AVAILABILITY,
            args=self.args,
            members=tuple(self._watchers),
        )

    async def verify(self) -> list[Check]:
        """Never oversold (final availability, the event's tickets, every value observed) and
        every acknowledged purchase read back as that user's valid ticket."""
        admin = self.context.admin
        final = await admin.query(AVAILABILITY, self.args)
        tickets = await admin.query(LIST_TICKETS, self.args)
        found: dict[str, dict[str, Any] | None] = {}
        limit = trio.Semaphore(READ_BACK_CONCURRENCY)

        async def read_back(ticket_id: str, user_id: str) -> None:
            async with limit:
                try:
                    ticket = await admin.query(
                        USER_TICKET, {"eventId": self.event_id, "userId": user_id}
                    )
                except FunctionError as error:
                    self.context.recorder.failed(USER_TICKET, error.code, str(error))
                    ticket = None
            found[ticket_id] = ticket

        async with trio.open_nursery() as nursery:
            for ticket_id, user_id in self.acknowledged.items():
                nursery.start_soon(read_back, ticket_id, user_id)
        listed = {t["_id"]: t for t in tickets}
        return [
            never_oversold(self.label, final, tickets, self.observed_oversold),
            acknowledged_present(
                f"{self.label}: purchases",
                self.acknowledged,
                found,
                lambda ticket_id, user, ticket: (
                    ticket["_id"] == ticket_id
                    and ticket["userId"] == user
                    and ticket["status"] == "valid"
                    and ticket["_id"] in listed
                ),
            ),
        ]


__all__ = ["AVAILABILITY", "JOIN", "PRICE", "PURCHASE", "QUEUE_POSITION", "RELEASE", "SaleEvent"]
