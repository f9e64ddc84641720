"""`engine/sync/fanout.py`: the one loop that flushes every sync session that is due.

Fake sessions record their flushes in one shared log. The loop runs in a nursery; the tests
check the order it flushes in (urgent first, then due in the order marked), that a session is
flushed once however often it was marked, that a forgotten one is not, that the loop yields
to other tasks after every `slice_seconds` of flushing and only then (on a clock that each
flush advances by one), and that a failing `flush()` ends only its own session.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing

from engine.sync.fanout import Fanout

ABANDON_REASON = "The server failed to write this session's updates."


class FakeSession:
    """A session whose `flush()` notes its name in `log` (and raises, if told to)."""

    def __init__(self, name: str, log: list[str], *, fails: bool = False) -> None:
        self.name = name
        self.log = log
        self.fails = fails
        self.abandoned: list[str] = []

    def flush(self) -> None:
        self.log.append(self.name)
        if self.fails:
            raise RuntimeError(f"{self.name} cannot write")

    def abandon(self, reason: str) -> None:
        self.abandoned.append(reason)

    def __repr__(self) -> str:
        return f"FakeSession({self.name!r})"


@asynccontextmanager
async def running(fanout: Fanout) -> AsyncIterator[None]:
    """`fanout.run()` in a task for the duration of the block."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fanout.run)
        yield
        nursery.cancel_scope.cancel()


def sessions(log: list[str], *names: str) -> list[FakeSession]:
    return [FakeSession(name, log) for name in names]


async def test_urgent_sessions_are_flushed_before_due_ones() -> None:
    log: list[str] = []
    a, b, c, d, e = sessions(log, "a", "b", "c", "d", "e")
    fanout = Fanout()
    for session in (a, b, c):
        fanout.mark(session)
    fanout.mark(d, urgent=True)
    fanout.mark(b, urgent=True)  # already due: it moves ahead, and is flushed once
    fanout.mark(e, urgent=True)
    async with running(fanout):
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["d", "b", "e", "a", "c"]
        assert fanout.flushes == 5 and fanout.waiting == 0


async def test_due_sessions_are_flushed_in_the_order_they_became_due() -> None:
    log: list[str] = []
    a, b, c = sessions(log, "a", "b", "c")
    fanout = Fanout()
    for session in (c, a, c, b, a):
        fanout.mark(session)
    async with running(fanout):
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["c", "a", "b"]


async def test_a_session_marked_many_times_is_flushed_once() -> None:
    log: list[str] = []
    (a,) = sessions(log, "a")
    fanout = Fanout()
    for i in range(100):
        fanout.mark(a, urgent=i % 3 == 0)
    async with running(fanout):
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["a"]
        assert fanout.flushes == 1 and fanout.waiting == 0
        # Marked again after its flush, it is due again.
        fanout.mark(a)
        fanout.mark(a)
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["a", "a"]
        assert fanout.flushes == 2


async def test_a_forgotten_session_is_not_flushed() -> None:
    log: list[str] = []
    a, b, c = sessions(log, "a", "b", "c")
    fanout = Fanout()
    fanout.mark(a)
    fanout.mark(b)
    fanout.mark(b, urgent=True)
    fanout.mark(c, urgent=True)
    fanout.forget(b)
    fanout.forget(c)
    fanout.forget(FakeSession("never marked", log))  # forgetting what is not due is harmless
    assert fanout.waiting == 1
    async with running(fanout):
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["a"]
        assert fanout.flushes == 1


async def test_the_loop_waits_for_marks_and_flushes_what_arrives_later() -> None:
    log: list[str] = []
    a, b = sessions(log, "a", "b")
    fanout = Fanout()
    async with running(fanout):
        await trio.testing.wait_all_tasks_blocked()
        assert log == [] and fanout.flushes == 0
        fanout.mark(a)
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["a"]
        fanout.mark(b, urgent=True)
        fanout.mark(a)
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["a", "b", "a"]


@pytest.mark.parametrize("batch", [1, 2, 3])
async def test_the_loop_yields_after_each_slice_and_only_then(batch: int) -> None:
    """Each flush takes one tick of the loop's clock, and a slice is `batch` ticks. A task that
    counts its own turns stamps each flush with the count: flushes in one slice share a stamp
    (no yield inside a slice), and stamps grow across slices (another task ran in between)."""
    total = 4 * batch
    turns = 0
    stamps: list[int] = []
    done = trio.Event()

    class Stamping(FakeSession):
        def flush(self) -> None:
            stamps.append(turns)
            if len(stamps) == total:
                done.set()

    async def other_task() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await trio.lowlevel.checkpoint()

    fanout = Fanout(slice_seconds=batch, clock=lambda: len(stamps))
    for i in range(total):
        fanout.mark(Stamping(str(i), []))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        nursery.start_soon(fanout.run)
        await done.wait()
        nursery.cancel_scope.cancel()
    batches = [stamps[i : i + batch] for i in range(0, total, batch)]
    assert all(len(set(one)) == 1 for one in batches), stamps
    # Between the end of batch k and the start of batch k + 2, the other task had a turn.
    firsts = [one[0] for one in batches]
    assert all(later > earlier for earlier, later in zip(firsts, firsts[2:], strict=False))
    assert fanout.flushes == total


async def test_within_one_slice_no_other_task_runs_mid_fanout() -> None:
    turns = 0
    stamps: list[int] = []

    class Stamping(FakeSession):
        def flush(self) -> None:
            stamps.append(turns)

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await trio.lowlevel.checkpoint()

    fanout = Fanout(slice_seconds=1000, clock=lambda: len(stamps))
    for i in range(200):
        fanout.mark(Stamping(str(i), []))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        nursery.start_soon(fanout.run)
        while fanout.flushes < 200:
            await trio.lowlevel.checkpoint()
        nursery.cancel_scope.cancel()
    assert len(stamps) == 200 and len(set(stamps)) == 1


async def test_a_failing_flush_abandons_that_session_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    a, c = sessions(log, "a", "c")
    bad = FakeSession("bad", log, fails=True)
    fanout = Fanout()
    for session in (a, bad, c):
        fanout.mark(session)
    with caplog.at_level(logging.ERROR, logger="turnstile.sync"):
        async with running(fanout):
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["a", "bad", "c"]
            assert bad.abandoned == [ABANDON_REASON]
            assert a.abandoned == [] and c.abandoned == []
            assert fanout.flushes == 3
            # The loop goes on.
            fanout.mark(c)
            fanout.mark(a, urgent=True)
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["a", "bad", "c", "a", "c"]
    (record,) = [r for r in caplog.records if r.name == "turnstile.sync"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert str(record.exc_info[1]) == "bad cannot write"


def test_flush_urgent_writes_the_urgent_sessions_at_once_and_leaves_the_due_ones() -> None:
    log: list[str] = []
    a, b, c = sessions(log, "a", "b", "c")
    fanout = Fanout()
    fanout.mark(a)
    fanout.mark(b, urgent=True)
    fanout.mark(c, urgent=True)
    fanout.mark(a, urgent=True)  # due and urgent: flushed once, as urgent
    fanout.flush_urgent()  # no task runs it: called as the engine's hook after answers is
    assert log == ["b", "c", "a"]
    assert fanout.flushes == 3 and fanout.waiting == 0
    fanout.mark(b)
    fanout.flush_urgent()
    assert log == ["b", "c", "a"] and fanout.waiting == 1  # a due session waits for the loop


async def test_flush_urgent_stops_after_one_slice_and_the_loop_takes_the_rest() -> None:
    log: list[str] = []
    # Each flush advances the clock by one: a slice of 3 is three flushes.
    fanout = Fanout(slice_seconds=3, clock=lambda: len(log))
    for session in sessions(log, *"abcdefg"):
        fanout.mark(session, urgent=True)
    fanout.flush_urgent()
    assert log == list("abc") and fanout.waiting == 4
    async with running(fanout):
        await trio.testing.wait_all_tasks_blocked()
    assert log == list("abcdefg") and fanout.waiting == 0


def test_a_failing_flush_in_flush_urgent_ends_only_its_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    bad = FakeSession("bad", log, fails=True)
    good = FakeSession("good", log)
    fanout = Fanout()
    fanout.mark(bad, urgent=True)
    fanout.mark(good, urgent=True)
    with caplog.at_level(logging.ERROR, logger="turnstile.sync"):
        fanout.flush_urgent()
    assert log == ["bad", "good"]
    assert bad.abandoned == [ABANDON_REASON] and good.abandoned == []
    assert "writing to a sync session failed" in caplog.text
