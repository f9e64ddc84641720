"""fanout: many subscribers, few writers.

`--subscribers` anonymous connections (the event page of a public marketplace) each subscribe
to one event's availability and only watch. `--writers` box-office connections (admin key: one
writer acts for many buyers, and a user may join an event's waiting list only once) each loop:
join for a fresh buyer id (the event has far more seats than the run can sell, so the join is
offered), think, buy, think; until the load's deadline or `--writes` mutations in all.
"""

from __future__ import annotations

import functools
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

from engine.client import FunctionError
from tools.loadtest.checks import Check
from tools.loadtest.scenarios.base import Audience, Participant, Scenario
from tools.loadtest.scenarios.sale import SaleEvent
from tools.loadtest.users import MeasuredClient

#: Seats of the fan-out event: more than any bounded run can sell.
FANOUT_TICKETS = 10_000_000


class FanOut(Scenario):
    name = "fanout"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sale = SaleEvent(self.context, self.name, FANOUT_TICKETS)
        self.counts: Counter[str] = Counter()
        self._writes_left = self.context.config.writes or None

    async def prepare(self, stack: AsyncExitStack) -> None:
        await self.sale.create(stack)

    def participants(self) -> list[Participant]:
        config = self.context.config
        subscribers = [self._subscriber for _ in range(config.subscribers)]
        writers = [functools.partial(self._writer, w) for w in range(config.writers)]
        return [*subscribers, *writers]

    def audiences(self) -> list[Audience]:
        return [self.sale.audience()]

    async def verify(self) -> list[Check]:
        return await self.sale.verify()

    def stats(self) -> dict[str, Any]:
        config = self.context.config
        return {
            "eventId": self.sale.event_id,
            "subscribers": config.subscribers,
            "writers": config.writers,
            **{key: self.counts[key] for key in sorted(self.counts)},
        }

    async def _subscriber(self) -> None:
        context = self.context
        async with (
            context.participant("fanout subscriber") as me,
            context.connect() as client,
            self.sale.watched_by(client),
        ):
            me.done()  # a subscriber only watches: it has no steps of its own
            await context.release.wait()

    async def _writer(self, index: int) -> None:
        context = self.context
        async with context.participant("fanout writer") as me, context.connect(admin=True) as c:
            me.ready()
            await context.start.wait()
            with context.load_scope():
                await self._write(c, index)
            me.done()
            await context.release.wait()

    def _take_write(self) -> bool:
        if self._writes_left is None:
            return True
        if self._writes_left <= 0:
            return False
        self._writes_left -= 1
        return True

    async def _write(self, client: MeasuredClient, writer: int) -> None:
        context = self.context
        buyer = 0
        while not context.load_over() and self._take_write():
            user_id = f"{context.run_id}-fanout-w{writer}-{buyer}"
            buyer += 1
            try:
                joined = await self.sale.join(client, user_id)
            except FunctionError:
                self.counts["joinRefused"] += 1
                continue
            self.counts["joined"] += 1
            await context.think()
            if joined.value["status"] != "offered" or context.load_over():
                continue
            if not self._take_write():
                break
            try:
                await self.sale.purchase(
                    client, user_id, joined.value["waitingListId"], f"pi_{user_id}"
                )
            except FunctionError:
                self.counts["purchaseRefused"] += 1
            else:
                self.counts["bought"] += 1
            await context.think()


__all__ = ["FANOUT_TICKETS", "FanOut"]
