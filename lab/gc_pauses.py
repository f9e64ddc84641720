"""Garbage-collection pauses of a loaded engine: `python -m lab.gc_pauses [--joins N]`.

The engine in-process over 1,000 events with `engine.tune_gc()` applied as `turnstile serve`
applies it, 64 tasks each joining with users never seen before (`--joins` in all, in a child
process of its own): every collection during the load per generation (count, longest pause, the
median of all and how many took over 50 ms, from a `gc.callbacks` hook: with `tune_gc`'s
collector, engine/collector.py, only its sweeps under a load that never rests, one per 10,000
new objects, collections of generation 1), the objects the collector tracks and the frozen ones
at the end (and how long `gc.get_freeze_count()` took to count those: it walks them), then the
pause of one collection (`gc.collect()`: what the next sweep would walk, everything since the
last one), and the cyclic garbage an accepted and a refused join and a refused query leave
(collections with the collector disabled, over 1,000 of each). Before the load, the objects a
join leaves tracked (what a sweep walks, since nothing frees them before it): after a warm-up
of `KEPT_WARM_UP` joins per task, everything frozen, the tracked objects left by `KEPT_JOINS`
joins per task (1,280 joins), per join and by type; the touched events' current states are
among them (a few Maps, nodes and an `EventQueueState` per event, replaced at its next join),
so the figure is for comparing trees, not a constant per join. Pauses are wall time on a shared
machine; the object counts are what makes them long or short. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from lab.bench import JOIN, create_events, engine_modules

TASKS = 64
#: Joins per task before the objects a join leaves are counted, and joins per task counted.
KEPT_WARM_UP = 50
KEPT_JOINS = 20


class Pauses:
    """Collections per generation and the longest pause of each (a `gc.callbacks` hook)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.counts = [0, 0, 0]
        self.longest = [0.0, 0.0, 0.0]
        #: Every pause, in ms, of any generation, in order.
        self.all: list[float] = []

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        generation = info["generation"]
        self.counts[generation] += 1
        pause = (time.perf_counter() - self.started) * 1e3
        self.longest[generation] = max(self.longest[generation], pause)
        self.all.append(pause)


async def load(joins: int) -> dict[str, Any]:
    from domain.errors import TurnstileError
    from domain.identity import Identity
    from engine import EngineConfig, open_engine

    with tempfile.TemporaryDirectory(prefix="gc_pauses_") as tmp:
        config = EngineConfig(snapshot_every=0)
        async with open_engine(Path(tmp), config=config, modules=engine_modules()) as engine:
            events = await create_events(engine, 1_000, 100, TASKS)

            async def join(user: str, event: str) -> bool:
                try:
                    await engine.mutation(
                        JOIN, {"eventId": event, "userId": user}, Identity(subject=user)
                    )
                except TurnstileError:
                    return False
                return True

            async def client(index: int, n: int, tag: str) -> None:
                rng = random.Random(index)
                for k in range(n):
                    await join(f"{tag}{index}-{k}", events[rng.randrange(len(events))])

            async def joining(n: int, tag: str) -> None:
                async with trio.open_nursery() as nursery:
                    for index in range(TASKS):
                        nursery.start_soon(client, index, n, tag)
                await engine.wait_idle()

            await joining(KEPT_WARM_UP, "w")
            gc.collect()
            gc.freeze()
            await joining(KEPT_JOINS, "k")
            left = gc.get_objects()  # (tracked and not frozen)
            kept = len(left) / (KEPT_JOINS * TASKS)
            kinds = Counter(type(o).__qualname__ for o in left).most_common(8)
            del left
            pauses = Pauses()
            gc.callbacks.append(pauses)
            started = time.perf_counter()
            await joining(joins // TASKS, "u")
            seconds = time.perf_counter() - started
            gc.callbacks.remove(pauses)
            result: dict[str, Any] = {
                "kept_per_join": kept,
                "kept_kinds": [(name, n / (KEPT_JOINS * TASKS)) for name, n in kinds],
                "joins_per_s": joins // TASKS * TASKS / seconds,
                "collections": pauses.counts,
                "longest_ms": pauses.longest,
                "median_ms": statistics.median(pauses.all) if pauses.all else 0.0,
                "over_50_ms": sum(p > 50 for p in pauses.all),
                "tracked": len(gc.get_objects()),
            }
            counted = time.perf_counter()  # (it walks the frozen list: the collector keeps it)
            result["frozen"] = gc.get_freeze_count()
            result["freeze_count_ms"] = (time.perf_counter() - counted) * 1e3
            started = time.perf_counter()  # with the engine's heap as the load left it
            gc.collect()
            result["full_collection_ms"] = (time.perf_counter() - started) * 1e3
            for outcome in ("accepted", "refused"):  # the same users twice: the second time
                gc.disable()  # each is on the waiting list already (Conflict)
                done = [await join(f"c{k}", events[0]) for k in range(1_000)]
                result[f"cyclic_per_{outcome}"] = gc.collect() / 1_000
                gc.enable()
                assert all(done) if outcome == "accepted" else not any(done)
            gc.disable()  # and a query refused (Forbidden: someone else's tickets), 1,000 times
            for k in range(1_000):
                other = Identity(subject=f"x{k}")
                try:
                    await engine.query("events:getUserTickets", {"userId": "c0"}, other)
                except TurnstileError:
                    continue
                raise AssertionError("someone else's tickets were given")
            result["cyclic_per_refused_query"] = gc.collect() / 1_000
            gc.enable()
            return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=600_000, help="joins (default 600,000)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from engine import tune_gc

        tune_gc()
        print(json.dumps(trio.run(load, args.joins)))
        return
    done = subprocess.run(
        [sys.executable, "-m", "lab.gc_pauses", "--child", "--joins", str(args.joins)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1_800,
    )
    r = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"{args.joins:,} joins, 64 tasks: {r['joins_per_s']:,.0f} joins/s; collections per"
        f" generation {'/'.join(map(str, r['collections']))}, longest pause"
        f" {' / '.join(f'{p:,.0f}' for p in r['longest_ms'])} ms, median of all"
        f" {r['median_ms']:,.0f} ms, {r['over_50_ms']} over 50 ms; then tracked"
        f" {r['tracked']:,} objects, frozen {r['frozen']:,} (counting them took"
        f" {r['freeze_count_ms']:.1f} ms), and a full collection"
        f" {r['full_collection_ms']:,.0f} ms; cyclic garbage per join: accepted"
        f" {r['cyclic_per_accepted']:g}, refused {r['cyclic_per_refused']:g} objects; per refused"
        f" query {r['cyclic_per_refused_query']:g}"
    )
    kinds = ", ".join(f"{n:.2f} {name}" for name, n in r["kept_kinds"])
    print(f"tracked objects a join leaves for a sweep: {r['kept_per_join']:.2f} ({kinds})")


if __name__ == "__main__":
    main()
