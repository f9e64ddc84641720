"""Subscription groups (`engine/subscriptions.py`): live queries with equal function, args and
caller share one evaluation per commit.

Subscriptions are made as the engine and the sync session make them (`subscribe` below) on the
minimal counters domain, and every query evaluation is counted by wrapping
`engine.subscriptions.evaluate`. Checked: one evaluation per group per commit that touches
what it read; a joining member takes the group's current result without an evaluation; every
member is offered each changed value at the commit's ts, and nothing when the encoded result is
unchanged; the last member leaving removes the group, so commits no longer evaluate it; a
different caller or different args make a different group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
import trio.testing

import engine.subscriptions
from domain.identity import Identity
from domain.model import QuerySpec
from engine import codec
from engine.engine import Engine
from engine.subscriptions import RecordingView, Result, Subscription
from engine.testing.harness import EngineHarness, user

Evaluation = tuple[str, Any, Identity]


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Evaluation]]:
    """Every query evaluation from now on, as (query name, parsed args, caller)."""
    seen: list[Evaluation] = []
    real = engine.subscriptions.evaluate

    def counting(
        spec: QuerySpec[Any], args: Any, identity: Identity, view: RecordingView
    ) -> Result:
        seen.append((spec.name, args, identity))
        return real(spec, args, identity, view)

    monkeypatch.setattr(engine.subscriptions, "evaluate", counting)
    yield seen


class Member:
    """A subscription made as the sync session makes one, noting each time it is offered
    something new."""

    def __init__(self, eng: Engine, name: str, args: dict[str, Any], identity: Identity):
        spec = eng.registry.query(name)
        parsed = codec.decode_args(args, spec.args_type)
        group = (spec.name, codec.dumps(args), identity)
        self.changes = 0
        self.sub = Subscription(spec, parsed, identity, group, on_change=self._changed)
        self._engine = eng
        eng.subscriptions.add(self.sub, eng.committed_seq)

    def _changed(self) -> None:
        self.changes += 1

    def take(self) -> tuple[int, Any] | None:
        """The pending `(ts, value)`, if any (removing it)."""
        pending = self.sub.take()
        if pending is None:
            return None
        ts, result = pending
        assert result.error is None, result.error
        return ts, result.value

    def leave(self) -> None:
        self._engine.subscriptions.remove(self.sub)


def get(cid: str) -> dict[str, str]:
    return {"counterId": cid}


async def test_a_group_is_evaluated_once_per_commit_for_all_its_members(
    h: EngineHarness, evaluations: list[Evaluation], autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    members = [Member(h.engine, "counters:get", get(cid), h.admin) for _ in range(5)]
    assert len(evaluations) == 1
    assert (h.engine.subscriptions.groups, h.engine.subscriptions.count) == (1, 5)
    for member in members:
        assert member.take() == (1, {"total": 0, "rang": 0})

    for amount in (4, 1, 2):
        before = len(evaluations)
        out = await h.outcome("counters:add", {"counterId": cid, "amount": amount})
        assert len(evaluations) == before + 1
        value = {"total": out.value, "rang": 0}
        for member in members:
            assert member.take() == (out.ts, value)
    assert all(member.changes == 4 for member in members)


async def test_the_members_share_one_result(
    h: EngineHarness, evaluations: list[Evaluation], autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    a = Member(h.engine, "counters:get", get(cid), h.admin)
    b = Member(h.engine, "counters:get", get(cid), h.admin)
    await h.mutation("counters:add", {"counterId": cid, "amount": 3})
    first, second = a.sub.take(), b.sub.take()
    assert first is not None and second is not None
    assert first[1] is second[1]  # encoded once for every member


async def test_a_joining_member_takes_the_current_result_without_evaluating(
    h: EngineHarness, evaluations: list[Evaluation], autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    other = await h.mutation("counters:create", {"label": "b"})
    first = Member(h.engine, "counters:get", get(cid), h.admin)
    await h.mutation("counters:add", {"counterId": cid, "amount": 7})
    await h.mutation("counters:add", {"counterId": other, "amount": 1})  # the group's ts moves on
    evaluated = len(evaluations)

    late = Member(h.engine, "counters:get", get(cid), h.admin)
    assert len(evaluations) == evaluated
    assert h.engine.subscriptions.groups == 1
    assert late.take() == (h.engine.committed_seq, {"total": 7, "rang": 0})
    assert late.changes == 1
    # The joiner's value is what a fresh evaluation gives.
    assert await h.query("counters:get", get(cid)) == {"total": 7, "rang": 0}
    assert first.take() == (3, {"total": 7, "rang": 0})


async def test_an_unchanged_result_offers_nothing(
    h: EngineHarness, evaluations: list[Evaluation]
) -> None:
    # On the real clock: the alarms set below must not ring (and change the result) meanwhile.
    cid = await h.mutation("counters:create", {"label": "a"})
    members = [Member(h.engine, "counters:get", get(cid), h.admin) for _ in range(3)]
    first = members[0].sub.pending
    assert first is not None
    for member in members:
        assert member.take() is not None
    evaluated = len(evaluations)
    # Both commits touch the counter the query read, and change nothing it returns.
    await h.mutation("counters:setAlarm", {"counterId": cid, "inMinutes": 600})
    await h.mutation("counters:setAlarm", {"counterId": cid, "inMinutes": 900})
    assert len(evaluations) == evaluated + 2
    for member in members:
        assert member.take() is None
        assert member.changes == 1
    # The group keeps its old result (and whatever was encoded from it) for the next joiner.
    late = Member(h.engine, "counters:get", get(cid), h.admin)
    joined = late.sub.take()
    assert joined is not None and joined[1] is first[1]
    out = await h.outcome("counters:add", {"counterId": cid, "amount": 2})
    for member in [*members, late]:
        assert member.take() == (out.ts, {"total": 2, "rang": 0})


async def test_a_commit_elsewhere_evaluates_nothing(
    h: EngineHarness, evaluations: list[Evaluation], autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    other = await h.mutation("counters:create", {"label": "b"})
    member = Member(h.engine, "counters:get", get(cid), h.admin)
    assert member.take() is not None
    evaluated = len(evaluations)
    await h.mutation("counters:add", {"counterId": other, "amount": 5})
    assert len(evaluations) == evaluated
    assert member.take() is None


async def test_the_last_member_leaving_removes_the_group(
    h: EngineHarness, evaluations: list[Evaluation], autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    a = Member(h.engine, "counters:get", get(cid), h.admin)
    b = Member(h.engine, "counters:get", get(cid), h.admin)
    a.leave()
    a.leave()  # leaving twice counts once
    assert (h.engine.subscriptions.groups, h.engine.subscriptions.count) == (1, 1)
    evaluated = len(evaluations)
    for member in (a, b):
        member.take()
    out = await h.outcome("counters:add", {"counterId": cid, "amount": 1})
    assert len(evaluations) == evaluated + 1
    assert b.take() == (out.ts, {"total": 1, "rang": 0})
    assert a.take() is None  # a member that left is offered nothing

    b.leave()
    assert (h.engine.subscriptions.groups, h.engine.subscriptions.count) == (0, 0)
    evaluated = len(evaluations)
    await h.mutation("counters:add", {"counterId": cid, "amount": 1})
    assert len(evaluations) == evaluated  # no longer indexed under what it read
    assert b.take() is None

    # The same query again starts a new group with an evaluation of its own.
    again = Member(h.engine, "counters:get", get(cid), h.admin)
    assert len(evaluations) == evaluated + 1
    assert again.take() == (h.engine.committed_seq, {"total": 2, "rang": 0})


async def test_different_callers_or_args_are_different_groups(
    h: EngineHarness, evaluations: list[Evaluation], autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    other = await h.mutation("counters:create", {"label": "b"})
    alice, bob = user("alice"), user("bob")
    admins = [Member(h.engine, "counters:get", get(cid), h.admin) for _ in range(2)]
    alices = [Member(h.engine, "counters:get", get(cid), alice) for _ in range(2)]
    bobs = [Member(h.engine, "counters:get", get(cid), bob)]
    elsewhere = [Member(h.engine, "counters:get", get(other), h.admin)]
    assert h.engine.subscriptions.groups == 4
    assert len(evaluations) == 4
    for member in admins + alices + bobs + elsewhere:
        member.take()

    evaluated = len(evaluations)
    out = await h.outcome("counters:add", {"counterId": cid, "amount": 3})
    # One evaluation per caller of the touched counter, none for the other counter.
    assert sorted(identity.subject or "admin" for _, _, identity in evaluations[evaluated:]) == [
        "admin",
        "alice",
        "bob",
    ]
    for member in admins + alices + bobs:
        assert member.take() == (out.ts, {"total": 3, "rang": 0})
    assert elsewhere[0].take() is None


async def test_engine_subscribe_joins_groups_too(
    h: EngineHarness, evaluations: list[Evaluation], autojump_clock: trio.testing.MockClock
) -> None:
    cid = await h.mutation("counters:create", {"label": "a"})
    async with AsyncExitStack() as stack:
        feeds = [
            await stack.enter_async_context(h.engine.subscribe("counters:get", get(cid), h.admin))
            for _ in range(3)
        ]
        assert (h.engine.subscriptions.groups, len(evaluations)) == (1, 1)
        for feed in feeds:
            assert await feed.__anext__() == (1, {"total": 0, "rang": 0})
        out = await h.outcome("counters:add", {"counterId": cid, "amount": 6})
        assert len(evaluations) == 2
        for feed in feeds:
            assert await feed.__anext__() == (out.ts, {"total": 6, "rang": 0})
    assert (h.engine.subscriptions.groups, h.engine.subscriptions.count) == (0, 0)
