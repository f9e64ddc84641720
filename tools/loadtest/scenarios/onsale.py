"""onsale: `--users` users rush one event of `--tickets` tickets.

Each user (its own connection, its own user token) subscribes to the event's availability, then
all join the waiting list at the same moment. A user offered a seat (at once, or later through
its live `waitingList:getQueuePosition`) thinks, then buys (`--buy-fraction`), or else releases
the offer (`--release-fraction` of the rest, passing the seat to the next in line) or holds it
and lets it lapse (offers last 30 minutes: beyond any run).

A waiting user stops waiting once no further offer can come within the run: no seat is free and
every live offer is held by a user letting it lapse.
"""

from __future__ import annotations

import functools
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import trio

from engine.client import FunctionError
from tools.loadtest.checks import Check
from tools.loadtest.scenarios.base import Audience, Participant, Scenario
from tools.loadtest.scenarios.sale import QUEUE_POSITION, SaleEvent
from tools.loadtest.users import MeasuredClient


class OnSale(Scenario):
    name = "onsale"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sale = SaleEvent(self.context, self.name, self.context.config.tickets)
        self.counts: Counter[str] = Counter()
        self._holders = 0
        self._settled = False
        self._waiting: set[trio.CancelScope] = set()
        self._availability: dict[str, Any] | None = None

    async def prepare(self, stack: AsyncExitStack) -> None:
        await self.sale.create(stack, on_change=self._availability_changed)

    def participants(self) -> list[Participant]:
        return [functools.partial(self._user, i) for i in range(self.context.config.users)]

    def audiences(self) -> list[Audience]:
        return [self.sale.audience()]

    async def verify(self) -> list[Check]:
        return await self.sale.verify()

    def stats(self) -> dict[str, Any]:
        return {
            "eventId": self.sale.event_id,
            "users": self.context.config.users,
            "tickets": self.context.config.tickets,
            **{key: self.counts[key] for key in sorted(self.counts)},
        }

    async def _user(self, index: int) -> None:
        context = self.context
        user_id = f"{context.run_id}-onsale-{index}"
        async with (
            context.participant("onsale user") as me,
            context.connect(token=context.user_token(user_id)) as client,
            self.sale.watched_by(client),
        ):
            me.ready()
            await context.start.wait()
            with context.load_scope():
                await self._shop(client, user_id, index)
            me.done()
            await context.release.wait()

    async def _shop(self, client: MeasuredClient, user_id: str, index: int) -> None:
        context = self.context
        try:
            joined = await self.sale.join(client, user_id)
        except FunctionError:
            self.counts["joinRefused"] += 1
            return
        self.counts["joined"] += 1
        entry = joined.value
        waiting_list_id = entry["waitingListId"]
        if entry["status"] == "offered":
            self.counts["offeredAtOnce"] += 1
        else:
            self.counts["waited"] += 1
            if not await self._await_offer(client, user_id):
                self.counts["gaveUp"] += 1
                return
            self.counts["offeredLater"] += 1
        await context.think()
        if context.load_over():
            self.counts["stoppedByDeadline"] += 1
            return
        config = context.config
        roll = context.rng.random()
        if roll < config.buy_fraction:
            payment_id = f"pi_{context.run_id}_{index}"
            try:
                await self.sale.purchase(client, user_id, waiting_list_id, payment_id)
            except FunctionError:
                self.counts["purchaseRefused"] += 1
            else:
                self.counts["bought"] += 1
        elif roll < config.buy_fraction + (1 - config.buy_fraction) * config.release_fraction:
            try:
                await self.sale.release(client, waiting_list_id)
            except FunctionError:
                self.counts["releaseRefused"] += 1
            else:
                self.counts["released"] += 1
        else:
            self.counts["heldToLapse"] += 1
            self._holders += 1
            self._review()

    async def _await_offer(self, client: MeasuredClient, user_id: str) -> bool:
        """Wait on the user's live queue position until it is offered (True), or until no
        offer can come any more or the load is over (False)."""
        args = {"eventId": self.sale.event_id, "userId": user_id}
        scope = trio.CancelScope()
        self._waiting.add(scope)
        if self._settled:
            scope.cancel()
        try:
            with scope, trio.move_on_at(self.context.load_deadline):
                async with client.subscribe(QUEUE_POSITION, args) as positions:
                    async for entry in positions:
                        if entry is not None and entry["status"] == "offered":
                            return True
        except FunctionError as error:
            self.context.recorder.failed(QUEUE_POSITION, error.code, str(error))
        finally:
            self._waiting.discard(scope)
        return False

    def _availability_changed(self, availability: dict[str, Any]) -> None:
        self._availability = availability
        self._review()

    def _review(self) -> None:
        """Settle the sale once no seat is free and every live offer is held to lapse: from
        then on no waiting user can be offered a seat within the run."""
        latest = self._availability
        if self._settled or latest is None:
            return
        if latest["remainingTickets"] == 0 and latest["activeOffers"] <= self._holders:
            self._settled = True
            for scope in self._waiting:
                scope.cancel()


__all__ = ["OnSale"]
