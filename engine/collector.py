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
- under a load that never rests, once the new objects are as many as the frozen ones
  (`FORCED_GROWTH`) and at least `FORCED_MIN_OBJECTS`: a sweep anyway, so that cyclic garbage
  (an app's, a library's) cannot grow without bound. Its pause grows with the heap, and each
  comes after twice the growth of the last: on a heap of bounded size it does not come.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Literal

import trio

log = logging.getLogger("turnstile.collector")

TICK_SECONDS = 0.5
IDLE_SECONDS = 2.0
SWEEP_MIN_OBJECTS = 10_000
SWEEP_GROWTH = 0.25
FULL_SWEEP_SECONDS = 3_600.0
FORCED_MIN_OBJECTS = 1_000_000
FORCED_GROWTH = 1.0

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
            if new >= max(FORCED_MIN_OBJECTS, FORCED_GROWTH * frozen):
                return "load"
            return None
        if self._worked_since_full and now - self._full_at >= FULL_SWEEP_SECONDS:
            return "full"
        if new >= max(SWEEP_MIN_OBJECTS, SWEEP_GROWTH * frozen):
            return "rest"
        return None

    def sweep(self, kind: Sweep, now: float) -> None:
        """Collect what is new (everything, for a full sweep) and freeze what survives."""
        started = time.perf_counter()
        if kind == "full":
            gc.unfreeze()
            self._full_at, self._worked_since_full = now, False
        found = gc.collect()
        gc.freeze()
        log.info(
            "%s sweep: %d objects of cyclic garbage, %d kept, %.0f ms",
            kind,
            found,
            gc.get_freeze_count(),
            (time.perf_counter() - started) * 1e3,
        )

    async def run(self, work: Callable[[], int]) -> None:
        """Tick until cancelled: read, and sweep when one is due."""
        while True:
            await trio.sleep(TICK_SECONDS)
            now = trio.current_time()
            kind = self.due(now, work(), gc.get_count()[0], gc.get_freeze_count())
            if kind is not None:
                self.sweep(kind, now)
