"""A command's `Reply` (engine/actor.py): any number of waiters, each woken once when it is
resolved, each free to stop waiting (cancelled) without disturbing the others or the command."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from domain.errors import Conflict
from engine.actor import Reply


async def _wait_into(reply: Reply, seen: list[object], name: str) -> None:
    try:
        seen.append((name, await reply.wait()))
    except Conflict as refusal:
        seen.append((name, refusal.message))


async def test_every_waiter_is_woken_once_with_the_value() -> None:
    reply = Reply()
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        for name in "abc":
            nursery.start_soon(_wait_into, reply, seen, name)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == []
        reply.resolve({"ok": 1}, 7)
    assert sorted(seen, key=str) == [(name, ({"ok": 1}, 7)) for name in "abc"]


async def test_a_waiter_that_stops_waiting_leaves_the_others_waiting() -> None:
    reply = Reply()
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        first = trio.CancelScope()

        async def first_waiter() -> None:
            with first:
                await reply.wait()
            seen.append("first gave up")

        nursery.start_soon(first_waiter)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(_wait_into, reply, seen, "second")
        nursery.start_soon(_wait_into, reply, seen, "third")
        await trio.testing.wait_all_tasks_blocked()
        first.cancel()  # the first waiter (kept apart from the rest) stops waiting
        await trio.testing.wait_all_tasks_blocked()
        assert seen == ["first gave up"]
        nursery.start_soon(_wait_into, reply, seen, "fourth")  # takes the first one's place
        await trio.testing.wait_all_tasks_blocked()
        reply.fail(Conflict("Sold out."))
    assert seen[0] == "first gave up"
    assert sorted(seen[1:], key=str) == [(n, "Sold out.") for n in ("fourth", "second", "third")]


async def test_a_later_waiter_that_stops_waiting_leaves_the_first_waiting() -> None:
    reply = Reply()
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_wait_into, reply, seen, "first")
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(0) as later:
            await reply.wait()
        assert later.cancelled_caught
        reply.resolve(None, 3)
    assert seen == [("first", (None, 3))]


async def test_a_resolved_reply_answers_at_once_and_refusals_are_fresh_copies() -> None:
    reply = Reply()
    reply.fail(Conflict("Sold out."))
    with pytest.raises(Conflict) as one:
        await reply.wait()
    with pytest.raises(Conflict) as two:
        reply.result()
    assert one.value is not two.value and one.value.message == two.value.message
