"""The collector of a tuned server (engine/collector.py): no collection while the engine works,
a sweep of what is new once it rests, a full one now and then at rest, and under a load that
never rests a sweep of each `LOAD_SWEEP_OBJECTS` new objects, whatever the heap's size. The
policy is checked on numbers; an engine under a virtual clock shows the whole of it happening,
with collections counted by `gc.callbacks`."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import engine.collector as collector_module
from engine import EngineConfig, open_engine, tune_gc
from engine.collector import (
    FULL_SWEEP_SECONDS,
    IDLE_SECONDS,
    LOAD_SWEEP_OBJECTS,
    SWEEP_MIN_OBJECTS,
    TICK_SECONDS,
    Collector,
)
from tests.engine.counters import COUNTERS


def test_nothing_is_swept_while_the_engine_works() -> None:
    c = Collector(now=0.0)
    for tick in range(1, 200):  # the work count moves on every tick
        assert c.due(tick * 0.5, work=tick, new=LOAD_SWEEP_OBJECTS - 1, frozen=10) is None


def test_what_is_new_is_swept_once_the_engine_rests(monkeypatch: pytest.MonkeyPatch) -> None:
    # (a rest minimum below the load threshold: what is new is too little to sweep under load)
    monkeypatch.setattr(collector_module, "SWEEP_MIN_OBJECTS", LOAD_SWEEP_OBJECTS // 2)
    new = LOAD_SWEEP_OBJECTS - 1
    c = Collector(now=0.0)
    assert c.due(0.5, work=7, new=new, frozen=20_000) is None  # working
    assert c.due(0.5 + IDLE_SECONDS / 2, work=7, new=new, frozen=20_000) is None
    assert c.due(0.5 + IDLE_SECONDS, work=7, new=new, frozen=20_000) == "rest"


def test_at_rest_little_that_is_new_waits() -> None:
    c = Collector(now=0.0)
    c.due(0.0, work=1, new=0, frozen=1_000_000)
    # Below a quarter of what is frozen, or below the minimum: not worth a walk.
    assert c.due(10.0, work=1, new=249_999, frozen=1_000_000) is None
    assert c.due(10.0, work=1, new=SWEEP_MIN_OBJECTS - 1, frozen=0) is None
    assert c.due(10.0, work=1, new=250_000, frozen=1_000_000) == "rest"


def test_a_full_sweep_comes_at_rest_after_an_hour_with_work() -> None:
    c = Collector(now=0.0)
    c.due(FULL_SWEEP_SECONDS - 1, work=3, new=0, frozen=10)
    assert c.due(FULL_SWEEP_SECONDS + IDLE_SECONDS, work=3, new=0, frozen=10) == "full"
    try:
        c.sweep("full", FULL_SWEEP_SECONDS + IDLE_SECONDS, frozen=10)
    finally:
        gc.unfreeze()  # (the sweep froze the test process's heap)
    # No work since: nothing more, however long the rest.
    assert c.due(10 * FULL_SWEEP_SECONDS, work=3, new=0, frozen=10) is None


def test_a_load_that_never_rests_is_swept_in_pieces_whatever_the_heap() -> None:
    c = Collector(now=0.0)
    # What is new is what a sweep walks: the frozen heap's size does not move the threshold,
    # so no pause grows with it.
    for work, frozen in enumerate((10, 1_000_000, 50_000_000), start=1):
        assert c.due(work * 0.5, work=work, new=LOAD_SWEEP_OBJECTS, frozen=frozen) == "load"
        assert c.due(work * 0.5, work=work, new=LOAD_SWEEP_OBJECTS - 1, frozen=frozen) is None


@pytest.fixture
def freeze_counts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each call of `gc.get_freeze_count()` (a walk of the frozen list), noted."""
    walks: list[int] = []
    real = gc.get_freeze_count

    def counted() -> int:
        walks.append(1)
        return real()

    monkeypatch.setattr(gc, "get_freeze_count", counted)
    return walks


def test_a_sweep_counts_what_it_froze_without_walking_the_frozen_list(
    freeze_counts: list[int],
) -> None:
    gc.collect()
    gc.disable()  # as a tuned server runs: the new objects are counted until the sweep
    kept: list[list[int]] = [[] for _ in range(3_000)]
    try:
        frozen = Collector(now=0.0).sweep("rest", 10.0, frozen=100)
        assert frozen >= 100 + len(kept)  # what it froze, added to the count it was given
        assert freeze_counts == []
    finally:
        gc.unfreeze()
        gc.enable()


async def test_the_collector_reads_the_frozen_count_once_not_every_tick(
    autojump_clock: trio.testing.MockClock, freeze_counts: list[int]
) -> None:
    work = iter(range(1_000_000))  # working on every tick: no sweep comes
    with trio.move_on_after(100 * TICK_SECONDS):
        await Collector(now=trio.current_time()).run(lambda: next(work))
    assert len(freeze_counts) == 1


class _Cycle:
    me: Any = None


def test_a_load_sweep_leaves_a_table_of_untracked_keys_frozen_and_finds_cycles() -> None:
    # The armed timers' shape: a large dict keyed by tuples of strings. A collection of the
    # oldest generation untracks those tuples and then the dict, so the next insert tracks the
    # dict again as new and every later sweep walked all of it; a load sweep must leave it
    # frozen, and still find the garbage among what is new.
    gc.collect()
    gc.disable()
    table = {(f"event/{n}", "offer"): n for n in range(5_000)}
    try:
        Collector(now=0.0).sweep("load", 1.0, frozen=0)
        assert gc.is_tracked(table)
        table[("event/new", "offer")] = 1  # a tracked key, as each offer adds
        garbage = _Cycle()
        garbage.me = garbage
        gone = weakref.ref(garbage)
        del garbage
        young = gc.get_objects(0)
        assert not any(obj is table for obj in young)  # still frozen: not walked again
        del young
        Collector(now=0.0).sweep("load", 2.0, frozen=0)
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.fixture
def tuned() -> Iterator[list[tuple[int, int]]]:
    """`tune_gc()` for one test, every collection noted as (generation, objects collected);
    tests/conftest.py's `untuned_gc` gives the process's collector back afterwards."""
    seen: list[tuple[int, int]] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            seen.append((info["generation"], info["collected"]))

    gc.collect()
    gc.callbacks.append(note)
    tune_gc()
    try:
        yield seen
    finally:
        gc.callbacks.remove(note)


async def test_an_engine_collects_nothing_while_it_works_and_sweeps_at_rest(
    tmp_path: Path,
    tuned: list[tuple[int, int]],
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (this test's heap is pytest's: what it adds is far below a quarter of what is frozen)
    monkeypatch.setattr(collector_module, "SWEEP_MIN_OBJECTS", 2_000)
    monkeypatch.setattr(collector_module, "SWEEP_GROWTH", 0.0)
    config = EngineConfig(snapshot_every=0, offload_io=False)
    async with open_engine(tmp_path / "data", modules=(COUNTERS,), config=config) as engine:
        frozen_at_start = gc.get_freeze_count()
        created = await engine.mutation("counters:create", {"label": "a"})
        # Work on every tick for a while: a command each 0.1 s of virtual time.
        for _ in range(100):
            await engine.mutation("counters:add", {"counterId": created.value, "amount": 1})
            await trio.sleep(0.1)
        assert tuned == []  # nothing collected while working
        kept: list[list[int]] = [
            [] for _ in range(3_000)
        ]  # new objects enough for a sweep (2,000)...
        garbage: list[Any] = [[]]
        garbage[0].append(garbage)  # ...and a cycle for it to find
        del garbage
        await trio.sleep(IDLE_SECONDS + 1.0)
        [(generation, collected)] = tuned  # one sweep, at rest: all of it, and the cycle
        assert generation == 2 and collected >= 2
        assert gc.get_freeze_count() >= frozen_at_start + len(kept)  # survivors frozen
        assert gc.get_count()[0] < 2_000
        await trio.sleep(60.0)
        assert len(tuned) == 1  # nothing new: no other
