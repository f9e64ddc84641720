"""One loop that writes every sync session's due frames.

Plan (docs/engine.md, "Fan-out to sync clients"; docs/benchmarks.md, "Fan-out": one loop
sending to all beats a task per client):
- A commit marks every session whose subscriptions changed as *due* (`mark`); a finished
  mutation marks its session *urgent*. Marking is a dict insert: a session is due at most once,
  however many commits happen before it is written.
- `run()` takes urgent sessions first, then due ones in the order they became due, and calls
  each one's `flush()`: the session builds its frames from its current state (one consistent
  cut, no await inside) and hands them to its `Outbox` without waiting. A session whose socket is
  full is skipped by its own `flush()`; its keeper task drains it and marks it due again, so a
  slow reader holds nobody up and gets fewer, newer Transitions.
- After `slice_seconds` of flushing the loop yields, so commits, readers and the answers to
  other clients' mutations run between slices: a fan-out to thousands of sessions is spread
  over many short turns of the event loop instead of thousands of tasks woken at once. A task
  that needs a few turns (a mutation goes reader -> actor -> journal -> reply) waits about one
  slice per turn, however many sessions are due.

- Right after a batch's callers are answered, the engine calls `flush_urgent()`
  (`Engine.after_answers`): the sessions those answers marked urgent are flushed there and then,
  synchronously and within one slice, instead of in the loop's next turn, behind every task
  the scheduler runs first (each reader deciding its client's next mutation: about half of a
  WebSocket mutation's time in the server went there). The cut is the same: the engine calls it
  once the batch is applied, every live query evaluated at it and every caller answered, with
  no checkpoint between; what one slice leaves is the loop's, as before.

A `flush()` that raises is logged and that session is told to end (`abandon()`); the loop and the
other sessions go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import trio
import trio.lowlevel

log = logging.getLogger("turnstile.sync")

#: Seconds the fan-out loop flushes before it lets other tasks run.
SLICE_SECONDS = 0.0005


class Flushable(Protocol):
    def flush(self) -> None:
        """Write everything due now, without waiting."""

    def abandon(self, reason: str) -> None:
        """End the session: its flush failed."""


class Fanout:
    """See the module docstring. Run `run()` in a task for as long as sessions use it."""

    def __init__(
        self,
        *,
        slice_seconds: float = SLICE_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.slice_seconds = slice_seconds
        self._clock = clock
        self._due: dict[Flushable, None] = {}
        self._urgent: dict[Flushable, None] = {}
        self._wake = trio.Event()
        #: The loop waits on `_wake` (a mark must set it); False while it flushes, so marking
        #: then is two dict operations and no call.
        self._idle = True
        #: Flushes done, for metrics and tests.
        self.flushes = 0

    def mark(self, session: Flushable, *, urgent: bool = False) -> None:
        """`session` has something to send: flush it soon (urgent: before the due ones)."""
        if urgent:
            self._urgent[session] = None
        else:
            self._due[session] = None
        if self._idle:
            self._idle = False
            self._wake.set()

    def forget(self, session: Flushable) -> None:
        """`session` is over: do not flush it again."""
        self._urgent.pop(session, None)
        self._due.pop(session, None)

    @property
    def waiting(self) -> int:
        """Sessions marked and not yet flushed."""
        return len(self._due.keys() | self._urgent.keys())

    def flush_urgent(self) -> None:
        """Flush the urgent sessions now, without waiting, for at most one slice; the loop
        takes what is left (it is woken by the marks that made them urgent)."""
        urgent = self._urgent
        if not urgent:
            return
        clock, due = self._clock, self._due
        stop_at = clock() + self.slice_seconds
        while urgent:
            session = next(iter(urgent))
            del urgent[session]
            due.pop(session, None)
            self._flush(session)
            self.flushes += 1
            if clock() >= stop_at:
                break

    @staticmethod
    def _flush(session: Flushable) -> None:
        try:
            session.flush()
        except Exception:
            log.exception("writing to a sync session failed")
            session.abandon("The server failed to write this session's updates.")

    async def run(self) -> None:
        urgent, clock = self._urgent, self._clock
        while True:
            if not (urgent or self._due):
                self._idle = True
                await self._wake.wait()
                self._wake = trio.Event()
            self._idle = False
            yield_at = clock() + self.slice_seconds
            # A pass takes the due sessions as they stand, in order, as a list: taking each one
            # is then no scan past those taken before it. A session in the list is flushed only
            # if it is still due (not forgotten, not flushed as urgent meanwhile); those marked
            # during the pass wait for the next one.
            due = self._due
            in_pass: list[Flushable] = []
            at = 0
            flushed = 0
            try:
                while True:
                    if urgent:
                        session = next(iter(urgent))
                        del urgent[session]
                        due.pop(session, None)
                    elif at < len(in_pass):
                        session = in_pass[at]
                        at += 1
                        if session not in due:
                            continue
                        del due[session]
                    elif due:
                        in_pass, at = list(due), 0
                        continue
                    else:
                        in_pass = []  # (holds no ended session while the loop waits)
                        break
                    self._flush(session)
                    flushed += 1
                    if clock() >= yield_at:
                        self.flushes += flushed
                        flushed = 0
                        await trio.lowlevel.checkpoint()
                        yield_at = clock() + self.slice_seconds
            finally:
                self.flushes += flushed


__all__ = ["SLICE_SECONDS", "Fanout", "Flushable"]
