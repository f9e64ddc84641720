"""The gift-card app with a load scenario of its own: what an app team adds so that
`turnstile loadtest` can drive its functions (docs/loadtest.md, "Apps' own scenarios").

    turnstile serve --app tests.apps.giftcards ...
    turnstile loadtest --app tests.apps.giftcards_load --scenario giftcards ...

`giftcards`: the harness's admin connection issues `CARDS` cards of `BALANCE` (minor units) each
in `--org`. `--users` clerks (tokens of `--org` with `orders:manage`), each on its own
connection, race to redeem small random amounts (1 to `MAX_AMOUNT`, never more than the clerk
last heard was left) from cards drawn at random, until every card is empty, the load's deadline
passes or `--writes` attempts in all were made (0: no count); a redemption the balance cannot
cover is refused (`Conflict`). `--subscribers` watchers (the same token) each subscribe to
every card's `giftcards:get`.

Checks: no balance any subscriber saw, any redemption returned or the harness read at the end
was negative; every card's final balance is what was issued minus the sum of the redemptions
acknowledged on it (none lost, none applied twice); every card's subscribers converged.

This module re-exports the app and defines no event type (the app's events live in
`tests.apps.giftcards`, in its namespace).
"""

from __future__ import annotations

import functools
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

from engine.client import FunctionError
from tests.apps.giftcards import MANAGE, app
from tools.loadtest.checks import Check
from tools.loadtest.scenarios import (
    Audience,
    MeasuredClient,
    Participant,
    Scenario,
    ScenarioUnavailable,
    Watch,
    missing_function,
)

ISSUE = "giftcards:issue"
REDEEM = "giftcards:redeem"
GET = "giftcards:get"
#: The cards the clerks redeem from, the balance each is issued with, and the largest amount
#: one redemption asks for: small, so that the cards run dry within a run and the last units
#: of each are raced for.
CARDS = 3
BALANCE = 100
MAX_AMOUNT = 5


class GiftCardRush(Scenario):
    name = "giftcards"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.card_ids: list[str] = []
        #: Per card: units of acknowledged redemptions; units of redemptions cut short (they
        #: may or may not have been applied); the least balance the clerks heard of.
        self.acknowledged: Counter[str] = Counter()
        self.in_doubt: Counter[str] = Counter()
        self.known_left: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        #: Negative balances seen anywhere during the run, each said in a few words.
        self.negative: list[str] = []
        self.values_seen = 0
        self._watchers: dict[str, list[Watch]] = {}
        self._attempts_left = self.context.config.writes or None

    async def prepare(self, stack: AsyncExitStack) -> None:
        context = self.context
        for index in range(CARDS):
            try:
                issued = await context.admin.call(
                    ISSUE,
                    {
                        "amount": BALANCE,
                        "recipient": f"Load test {context.run_id} card {index}",
                        "orgId": context.config.org_id,
                    },
                )
            except FunctionError as error:
                if missing_function(error):
                    raise ScenarioUnavailable(
                        f"the server does not serve the giftcards app ({ISSUE})"
                    ) from None
                raise
            card_id = str(issued.value)
            self.card_ids.append(card_id)
            self.known_left[card_id] = BALANCE
            self._watchers[card_id] = []
        try:
            await context.admin.query(GET, {"giftCardId": self.card_ids[0]})
        except FunctionError as error:
            if missing_function(error):
                raise ScenarioUnavailable(
                    f"the server does not serve the giftcards app ({GET})"
                ) from None
            raise

    def participants(self) -> list[Participant]:
        config = self.context.config
        clerks = [functools.partial(self._clerk, i) for i in range(config.users)]
        watchers = [functools.partial(self._subscriber, i) for i in range(config.subscribers)]
        return [*clerks, *watchers]

    def audiences(self) -> list[Audience]:
        return [
            Audience(
                label=f"giftcards card {index}",
                topic=self._topic(card_id),
                name=GET,
                args={"giftCardId": card_id},
                members=tuple(self._watchers[card_id]),
            )
            for index, card_id in enumerate(self.card_ids)
        ]

    async def verify(self) -> list[Check]:
        finals: dict[str, Any] = {}
        for card_id in self.card_ids:
            card = await self.context.admin.query(GET, {"giftCardId": card_id})
            finals[card_id] = card
            if card is not None:
                self._look(card, f"final read of {card_id}")
        return [self._never_negative(), self._balances_add_up(finals)]

    def stats(self) -> dict[str, Any]:
        config = self.context.config
        return {
            "cardIds": list(self.card_ids),
            "cards": CARDS,
            "issuedEach": BALANCE,
            "clerks": config.users,
            "subscribers": config.subscribers,
            "unitsRedeemed": sum(self.acknowledged.values()),
            **{key: self.counts[key] for key in sorted(self.counts)},
        }

    # -- the checks ------------------------------------------------------------------------

    def _never_negative(self) -> Check:
        name = "giftcards: no balance ever negative"
        if self.negative:
            shown = "; ".join(self.negative[:5])
            return Check(name=name, passed=False, detail=f"{len(self.negative)}: {shown}")
        return Check(
            name=name,
            passed=True,
            detail=(
                f"{self.values_seen} balances seen (subscribers' updates, redemptions' replies,"
                " final reads), none negative"
            ),
        )

    def _balances_add_up(self, finals: dict[str, Any]) -> Check:
        name = "giftcards: every balance is issued minus the acknowledged redemptions"
        problems: list[str] = []
        exact = 0
        for card_id in self.card_ids:
            card = finals[card_id]
            if card is None:
                problems.append(f"{card_id} not found")
                continue
            balance = card["balance"]
            expected = BALANCE - self.acknowledged[card_id]
            doubt = self.in_doubt[card_id]
            # A redemption cut short at the deadline may have been applied: it can lower the
            # balance by its amount, never raise it.
            if not expected - doubt <= balance <= expected:
                problems.append(
                    f"{card_id} holds {balance}, issued {BALANCE} - acknowledged"
                    f" {self.acknowledged[card_id]} = {expected}"
                    + (f" (up to {doubt} more in doubt)" if doubt else "")
                )
            elif balance == expected:
                exact += 1
        if problems:
            return Check(name=name, passed=False, detail="; ".join(problems))
        doubtful = len(self.card_ids) - exact
        return Check(
            name=name,
            passed=True,
            detail=(
                f"{len(self.card_ids)} cards, {sum(self.acknowledged.values())} units redeemed"
                f" in {self.counts['redeemed']} acknowledged redemptions"
                + (f"; {doubtful} within what was cut short" if doubtful else "")
            ),
        )

    def _look(self, card: Any, where: str) -> None:
        self.values_seen += 1
        if card["balance"] < 0:
            self.negative.append(f"{where}: balance {card['balance']}")

    # -- the participants --------------------------------------------------------------------

    @staticmethod
    def _topic(card_id: str) -> str:
        return f"{GET} {card_id}"

    def _token(self, role: str, index: int) -> str:
        context = self.context
        return context.user_token(
            f"{context.run_id}-{role}-{index}", context.config.org_id, (MANAGE,)
        )

    async def _subscriber(self, index: int) -> None:
        context = self.context
        async with (
            context.participant("giftcards subscriber") as me,
            context.connect(token=self._token("watcher", index)) as client,
            AsyncExitStack() as stack,
        ):
            for card_id in self.card_ids:
                inspect = functools.partial(self._inspect, connection=client.connection)
                watch = await stack.enter_async_context(
                    client.watching(self._topic(card_id), GET, {"giftCardId": card_id}, inspect)
                )
                self._watchers[card_id].append(watch)
            me.done()  # a subscriber only watches: it has no steps of its own
            await context.release.wait()

    def _inspect(self, card: Any, *, connection: int) -> None:
        if card is None:
            self.negative.append(f"connection {connection}: a card read as not found")
            return
        self._look(card, f"connection {connection}")

    async def _clerk(self, index: int) -> None:
        context = self.context
        async with (
            context.participant("giftcards clerk") as me,
            context.connect(token=self._token("clerk", index)) as client,
        ):
            me.ready()
            await context.start.wait()
            with context.load_scope():
                await self._redeem(client)
            me.done()
            await context.release.wait()

    def _take_attempt(self) -> bool:
        if self._attempts_left is None:
            return True
        if self._attempts_left <= 0:
            return False
        self._attempts_left -= 1
        return True

    async def _redeem(self, client: MeasuredClient) -> None:
        context = self.context
        while not context.load_over():
            left = [card_id for card_id in self.card_ids if self.known_left[card_id] > 0]
            if not left or not self._take_attempt():
                return
            await context.think()
            if context.load_over():
                return
            card_id = context.rng.choice(left)
            amount = context.rng.randint(1, max(1, min(MAX_AMOUNT, self.known_left[card_id])))
            self.in_doubt[card_id] += amount
            try:
                reply = await client.call(REDEEM, {"giftCardId": card_id, "amount": amount})
            except FunctionError as error:
                self.in_doubt[card_id] -= amount  # refused: a rejected command leaves no trace
                if error.code == "Conflict":
                    self.counts["notEnoughLeft"] += 1
                    balance = error.data.get("balance")
                    if isinstance(balance, int):
                        self._heard(card_id, balance)
                else:
                    self.counts["redeemRefused"] += 1
                continue
            self.in_doubt[card_id] -= amount
            self.acknowledged[card_id] += amount
            self.counts["redeemed"] += 1
            balance = int(reply.value)
            self._look({"balance": balance}, f"redemption reply on {card_id}")
            self._heard(card_id, balance)
            # The balance only falls, so every value of the card computed at or past this
            # commit differs from every one before it: a commit-to-update marker.
            if reply.acked_at is not None and reply.ts is not None:
                context.recorder.mark(
                    self._topic(card_id), client.connection, reply.sent_at, reply.acked_at, reply.ts
                )

    def _heard(self, card_id: str, balance: int) -> None:
        self.known_left[card_id] = min(self.known_left[card_id], max(0, balance))


loadtest_scenarios = (GiftCardRush,)

__all__ = ["GiftCardRush", "app", "loadtest_scenarios"]
