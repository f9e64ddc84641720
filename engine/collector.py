"""The garbage collector of a tuned server (`engine.tune_gc`): off while the engine works,
sweeping what is new when it rests.

Why. Nothing a command, a query or a session leaves behind is a reference cycle (refusals are
kept without tracebacks, engine/refusals.py; `python -m lab.gc_pauses` counts 0 objects of
cyclic garbage per accepted join, refused join and refused query, and tests hold that for
sessions too), so reference counting frees all of it and a collection under load finds
nothing. It still walks every object the load keeps, at 2-3 us each on a heap this size
(every new object points into old ones), with the event loop stopped: with CPython's own
schedule (`gc.set_threshold`) that was a young collection of 150-250 ms every 100,000 objects
kept and a middle-generation one of 0.7-1.3 s every ten of those. The object that costs is
the one walked, so the policy is to walk each kept object about once, and not while anyone
waits.

Plan (`Collector.due`, a pure function of the readings, decides; `Collector.run` acts):
- automatic collection is off (`gc.disable()`), and what recovery built is frozen
  (`gc.freeze()`, as before): no collection walks it;
- each `TICK_SECONDS` the collector reads the engine's work count (`Engine.work`: mutations
  begun, queries and subscriptions evaluated, batches committed) and the objects tracked
  since the last sweep (`gc.get_count()[0]`: allocations less deallocations);
- once the work count has not moved for `IDLE_SECONDS` and the new objects are at least
  `SWEEP_MIN_OBJECTS` or `SWEEP_GROWTH` of the frozen ones: a sweep, `gc.collect()` then
  `gc.freeze()`: it walks only what is new since the last sweep and puts the survivors with
  the frozen ones, so the next walks none of them;
- at rest again after `FULL_SWEEP_SECONDS` with work since the last full sweep: a full one,
  `gc.unfreeze()` first, for a cycle among frozen objects (one that was alive when frozen);
- under a load that never rests, once `LOAD_SWEEP_OBJECTS` (10,000) objects are new: a sweep
  anyway. It walks what is alive and unfrozen, not the frozen heap, so its pause does not grow
  with the heap: `python -m lab.gc_pauses` (600,000 joins, never resting) gave 74 sweeps,
  median 91 ms, longest 129 ms at 20,000 objects and a tick of 0.5 s (since the generation-1
  sweeps below, and at 10,000 and 0.25 s: 140 sweeps, median 30 ms, longest 59 ms; the sweeps
  are at most one per tick, so the tick bounds them as much as the threshold), where a sweep
  once the new objects were as many as the frozen
  ones (the rule before) gave one of 1,076 ms and left 1.1 million objects, 1.4 s of walking,
  for the next; each such pause is twice the last. The price: a small sweep also walks objects
  that would have died before a later one (objects that live seconds, frozen and then freed),
  so such a load walks more in all (74 x 91 ms against 1.1 s + 1.4 s over those joins; the
  joins' rate was not told apart, 7,898 against 7,992 joins/s). "New" is the net count (allocations
  less deallocations): a heap of bounded size, what is freed as much as what is made, reaches
  it rarely. The same sweeps bound cyclic garbage (an app's, a library's) under such a load.

A load sweep is a collection of generation 1, not 2. Between sweeps everything older is frozen
and the collector is off, so generation 1 holds all that is new and both find the same garbage;
but a collection of the oldest generation also untracks every dict it walks whose keys and
values are all untracked (`untrack_dicts`), and a dict so untracked is tracked again, as new,
by the next insert of a tracked value: a large table keyed by tuples (the armed timers, keyed
`(stream, key)`, whose tuples the collector untracks) was walked whole by every load sweep,
37,000 entries of it in case 1 of `python -m lab.bench`, where a generation-1 sweep leaves it
frozen. It also keeps the interpreter's free lists, which only a collection of the oldest
generation clears. Sweeps at rest and full sweeps stay collections of generation 2.

The frozen count is not read on every tick: `gc.get_freeze_count()` walks the whole frozen
list, object by object across the heap (188 ms for the 1.2 million frozen at the end of
`python -m lab.gc_pauses`, a pause every tick until this was kept). It is counted when the
collector starts and after a full sweep; after any other sweep it is the count before plus
what survived (the rest threshold needs only its order of magnitude).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Literal

import trio

log = logging.getLogger("turnstile.collector")

TICK_SECONDS = 0.25
IDLE_SECONDS = 2.0
SWEEP_MIN_OBJECTS = 10_000
SWEEP_GROWTH = 0.25
FULL_SWEEP_SECONDS = 3_600.0
LOAD_SWEEP_OBJECTS = 10_000

Sweep = Literal["rest", "full", "load"]


class Collector:
    """When to sweep, from the readings each tick gives (`due`), and the sweeps (`sweep`)."""

    def __init__(self, now: float) -> None:
        self._work = -1
        self._worked_at = now
        self._full_at = now
        self._worked_since_full = False

    def due(self, now: float, work: int, new: int, frozen: int) -> Sweep | None:
        """The sweep due at `now` (engine time, seconds), given the engine's work count, the
        objects tracked since the last sweep and the frozen ones; None if none is."""
        if work != self._work:
            self._work, self._worked_at = work, now
            self._worked_since_full = True
        if now - self._worked_at < IDLE_SECONDS:
            return "load" if new >= LOAD_SWEEP_OBJECTS else None
        if self._worked_since_full and now - self._full_at >= FULL_SWEEP_SECONDS:
            return "full"
        if new >= max(SWEEP_MIN_OBJECTS, SWEEP_GROWTH * frozen):
            return "rest"
        return None

    def sweep(self, kind: Sweep, now: float, frozen: int) -> int:
        """Collect what is new (everything, for a full sweep) and freeze what survives;
        returns how many objects are frozen now: counted after a full sweep (at rest), else
        `frozen` (as counted before) plus what survived, which overcounts by the frozen
        objects freed since it was counted (a walk of the frozen list is what it spares)."""
        started = time.perf_counter()
        if kind == "full":
            gc.unfreeze()
            self._full_at, self._worked_since_full = now, False
        new = gc.get_count()[0]
        found = gc.collect(1 if kind == "load" else 2)  # (see the module docstring)
        gc.freeze()
        frozen = gc.get_freeze_count() if kind == "full" else frozen + max(0, new - found)
        log.info(
            "%s sweep: %d objects of cyclic garbage, %d kept, %.0f ms",
            kind,
            found,
            frozen,
            (time.perf_counter() - started) * 1e3,
        )
        return frozen

    async def run(self, work: Callable[[], int]) -> None:
        """Tick until cancelled: read, and sweep when one is due."""
        frozen = gc.get_freeze_count()
        while True:
            await trio.sleep(TICK_SECONDS)
            now = trio.current_time()
            kind = self.due(now, work(), gc.get_count()[0], frozen)
            if kind is not None:
                frozen = self.sweep(kind, now, frozen)
