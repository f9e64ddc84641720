"""One loop that writes every sync session's due frames.

Plan (ARCHITECTURE.md "Fan-out"; MEASURED.md: one loop sending to all beats a task per client):
- A commit marks every session whose subscriptions changed as *due* (`mark`); a finished
  mutation marks its session *urgent*. Marking is a dict insert: a session is due at most once,
  however many commits happen before it is written.
- `run()` takes urgent sessions first, then due ones in the order they became due, and calls
  each one's `flush()`: the session builds its frames from its current state (one consistent
  cut, no await inside) and hands them to its `Outbox` without waiting. A session whose socket is
  full is skipped by its own `flush()`; its keeper task drains it and marks it due again, so a
  slow reader holds nobody up and gets fewer, newer Transitions.
- Every `batch` flushes the loop yields, so commits, readers and the answers to other clients'
  mutations run between batches: a fan-out to thousands of sessions is spread over many short
  turns of the event loop instead of thousands of tasks woken at once.

A `flush()` that raises is logged and that session is told to end (`abandon()`); the loop and the
other sessions go on.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio
import trio.lowlevel

log = logging.getLogger("turnstile.sync")

#: Sessions flushed between two yields of the fan-out loop.
BATCH = 32


class Flushable(Protocol):
    def flush(self) -> None:
        """Write everything due now, without waiting."""

    def abandon(self, reason: str) -> None:
        """End the session: its flush failed."""


class Fanout:
    """See the module docstring. Run `run()` in a task for as long as sessions use it."""

    def __init__(self, *, batch: int = BATCH) -> None:
        self.batch = batch
        self._due: dict[Flushable, None] = {}
        self._urgent: dict[Flushable, None] = {}
        self._wake = trio.Event()
        #: Flushes done, for metrics and tests.
        self.flushes = 0

    def mark(self, session: Flushable, *, urgent: bool = False) -> None:
        """`session` has something to send: flush it soon (urgent: before the due ones)."""
        if urgent:
            self._urgent[session] = None
        else:
            self._due[session] = None
        self._wake.set()

    def forget(self, session: Flushable) -> None:
        """`session` is over: do not flush it again."""
        self._urgent.pop(session, None)
        self._due.pop(session, None)

    @property
    def waiting(self) -> int:
        return len(self._due) + len(self._urgent)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            done = 0
            while self._urgent or self._due:
                queue = self._urgent if self._urgent else self._due
                session = next(iter(queue))
                del queue[session]
                self._due.pop(session, None)
                try:
                    session.flush()
                except Exception:
                    log.exception("writing to a sync session failed")
                    session.abandon("The server failed to write this session's updates.")
                self.flushes += 1
                done += 1
                if done % self.batch == 0:
                    await trio.lowlevel.checkpoint()


__all__ = ["BATCH", "Fanout", "Flushable"]
