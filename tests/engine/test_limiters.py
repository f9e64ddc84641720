"""Rate limiters in memory (engine/limiters.py) and their takes in the journal: a limiter is
loaded once and decides from its working state, a failed batch gives its takes back, only idle
limiters are dropped past the table's capacity and a dropped one is read back from its last take,
each take is journaled as a record of its own at its command's position, and a limiter of an
older journal (its takes as `RateLimitTaken` rows) is folded from its stream."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from domain.errors import Overloaded, RateLimited
from domain.ratelimit import RATE_LIMITER, LimiterState, RateLimitTaken, Taken, limiter_id
from domain.ticketing.module import QUEUE_JOIN_LIMIT
from engine.engine import EngineConfig
from engine.group_commit import row_of
from engine.journal import Batch, open_journal, open_reader
from engine.limiters import Limiters
from engine.testing import user
from engine.testing.harness import TEST_EPOCH_MS, open_harness
from tests.test_ticketing_live import create_event, join

MINUTE = 60_000


def limiter_of(who: str) -> str:
    return RATE_LIMITER.stream_of(limiter_id(QUEUE_JOIN_LIMIT.name, who))


def taken(stream: str, count: int) -> Taken:
    return Taken(stream, LimiterState(window_start=1, count=count, updated_at=1, started=True))


def test_a_limiter_is_loaded_once_and_decides_from_its_working_state() -> None:
    loads: list[str] = []

    def load(stream: str) -> LimiterState:
        loads.append(stream)
        return LimiterState()

    limiters = Limiters(load, capacity=10)
    assert limiters.state("a") == LimiterState()
    limiters.accept(taken("a", 1))
    assert limiters.state("a").count == 1  # ahead of the disk, as an actor's working state
    limiters.accept(taken("a", 2))
    assert limiters.committed(taken("a", 1)) is True  # its first take: now in the journal
    assert limiters.committed(taken("a", 2)) is False
    assert limiters.state("a").count == 2
    assert loads == ["a"]


def test_a_failed_take_gives_the_limiter_back_its_committed_state() -> None:
    limiters = Limiters(lambda stream: LimiterState(), capacity=10)
    limiters.state("a")
    limiters.accept(taken("a", 1))
    limiters.committed(taken("a", 1))
    limiters.accept(taken("a", 2))
    limiters.accept(taken("a", 3))
    limiters.reset("a")
    assert limiters.state("a").count == 1
    limiters.accept(taken("a", 2))  # decided again on the committed state, and kept
    limiters.committed(taken("a", 2))
    assert limiters.state("a").count == 2


def test_past_capacity_only_idle_limiters_are_dropped_and_loaded_again() -> None:
    stored: dict[str, LimiterState] = {}
    loads: list[str] = []

    def load(stream: str) -> LimiterState:
        loads.append(stream)
        return stored.get(stream, LimiterState())

    limiters = Limiters(load, capacity=20)
    limiters.state("busy")
    limiters.accept(taken("busy", 1))  # in flight: never dropped
    for n in range(40):
        stream = f"s{n}"
        limiters.state(stream)
        limiters.accept(taken(stream, 1))
        limiters.committed(taken(stream, 1))
        stored[stream] = taken(stream, 1).state
    assert len(limiters) <= 20
    assert limiters.dropped >= 20
    assert limiters.state("busy").count == 1
    assert loads.count("busy") == 1
    loads.clear()
    assert limiters.state("s0") == stored["s0"]  # dropped: read back as it was committed
    assert loads == ["s0"]


def test_an_idle_limiter_holds_nothing_the_collector_walks() -> None:
    """(The collector's sweeps walk every tracked object alive and not frozen: an idle limiter
    is its state packed in bytes, which it does not track, and unpacks to the same state.)"""
    limiters = Limiters(lambda stream: LimiterState(), capacity=10)
    big = Taken("b", LimiterState(count=2**70, updated_at=3, started=True))
    for take in (taken("a", 7), big):
        limiters.state(take.stream)
        limiters.accept(take)
        assert gc.is_tracked(limiters._table[take.stream])  # in flight: an object
        limiters.committed(take)
    assert not gc.is_tracked(limiters._table["a"])
    assert limiters.state("a") == taken("a", 7).state
    assert limiters.state("b") == big.state  # (past 64 bits: kept as it is)


async def test_each_join_journals_its_take_as_a_record_of_its_own(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_harness(tmp_path / "data") as t:
        events = [await create_event(t, total=5) for _ in range(2)]
        ts: dict[str, list[int]] = {}
        for event_id, who in zip([*events, events[1]], ("ann", "bob", "ann"), strict=True):
            joined = await t.outcome(
                "events:joinWaitingList", {"eventId": event_id, "userId": who}, user(who)
            )
            ts.setdefault(who, []).append(joined.ts)
        journal = t.engine.journal
        takes = list(journal.takes())
        assert [(take.limiter, take.seq) for take in takes] == [
            (limiter_of("ann"), ts["ann"][0]),
            (limiter_of("bob"), ts["bob"][0]),
            (limiter_of("ann"), ts["ann"][1]),
        ]
        assert [take.count for take in takes] == [1, 1, 2]
        assert takes[0].at == takes[0].window_start
        latest = journal.read_take(limiter_of("ann"))
        assert latest is not None and latest.count == 2
        kinds = {row.stream.partition("/")[0] for row in journal.scan()}
        assert "ratelimit" not in kinds  # no event row of their own


async def test_a_limiter_dropped_from_memory_is_read_back_from_its_last_take(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = EngineConfig(
        check_invariants=True, snapshot_every=0, offload_io=False, max_resident_actors=8
    )
    async with open_harness(tmp_path / "data", config=config) as t:
        events = [await create_event(t, total=50) for _ in range(4)]
        for event_id in events[:3]:
            await join(t, event_id, "ann")
        for n in range(30):  # others' limiters push ann's out of memory
            await join(t, events[0], f"user{n}")
        assert t.engine.limiters.dropped > 0
        assert len(t.engine.limiters) <= 8
        with pytest.raises(RateLimited):
            await join(t, events[3], "ann")


async def test_a_failed_batch_spends_no_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_harness(tmp_path / "data") as t:
        events = [await create_event(t, total=5) for _ in range(4)]
        await join(t, events[0], "ann")
        await join(t, events[1], "ann")
        journal = t.engine.journal
        real = journal.append

        def failing(batch: Any) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(journal, "append", failing)
        with pytest.raises(Overloaded):
            await join(t, events[2], "ann")
        monkeypatch.setattr(journal, "append", real)
        # The third of three joins in the window: refused if the failed one had been counted.
        assert (await join(t, events[3], "ann"))["status"] == "offered"
        with pytest.raises(RateLimited):
            await join(t, events[2], "ann")


async def test_a_limiter_of_an_older_journal_is_folded_from_its_stream(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stream = limiter_of("ann")
    journal = open_journal(data_dir)
    try:  # three takes of ann's, as a journal from before takes were records holds them
        rows = [
            row_of(
                seq,
                RateLimitTaken(
                    stream=stream,
                    version=seq,
                    at=TEST_EPOCH_MS - 3 + seq,
                    window_start=TEST_EPOCH_MS - 2,
                    count=seq,
                    milli_tokens=0,
                ),
            )
            for seq in (1, 2, 3)
        ]
        journal.append(Batch(rows=rows, requests=()))
    finally:
        journal.close()
    async with open_harness(data_dir) as t:
        event_id = await create_event(t, total=5)
        with pytest.raises(RateLimited) as limited:
            await join(t, event_id, "ann")
        retry_after = limited.value.data()["retryAfter"]
        assert 30 * MINUTE - MINUTE < retry_after <= 30 * MINUTE
        await t.advance(seconds=retry_after / 1000)
        assert (await join(t, event_id, "ann"))["status"] == "offered"
        await t.restart()  # the new take is a record of its own, and read back as one
        found = t.engine.journal.read_take(stream)
        assert found is not None and found.count == 1
    reader = open_reader(data_dir)
    try:
        assert [take.limiter for take in reader.takes()] == [stream]
    finally:
        reader.close()

