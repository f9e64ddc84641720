"""Rate limiters in memory: each limiter's working and committed state, no actor of its own.

A limiter's state (`domain.ratelimit.LimiterState`) is replaced whole by each take, so it needs
none of what an actor brings (a stream of events, a fold, a version, a snapshot): the engine
keeps a table of the limiters in use, and journals each take as a record of its own with the
batch of the command that took it (`engine.journal.Take`: the state after the take), which the
journal looks up by limiter off the commit path.

Plan:
- `state(stream)` is what the decide step takes from (`domain.model.decide`'s `limiters`): the
  limiter's working state, ahead of the disk as an actor's is. A limiter not in the table is
  loaded with `load` (the engine's: nothing to read for a limiter never taken, else its last
  take, else the limiter stream of an older journal, folded).
- `accept(taken)`: the command that took it is accepted (the group commit encoded it): its state
  is the working one, one more take in flight. Nothing else changes the table, so a refused
  command spends nothing.
- `committed(taken)` once its batch is durable; `reset(stream)` if it failed: the working state
  goes back to the committed one, as an actor's does.
- Bounded: past `capacity` limiters, idle ones (no take in flight: their last take is durable)
  are dropped, oldest first, down to 95% of it, in one pass; a dropped one is loaded again on
  its next use.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from domain.ratelimit import LimiterState, Taken


class Limiter:
    """One limiter in memory."""

    __slots__ = ("committed", "in_flight", "working")

    def __init__(self, state: LimiterState) -> None:
        self.working = self.committed = state
        #: Takes accepted and not yet committed (or failed).
        self.in_flight = 0


class Limiters:
    def __init__(self, load: Callable[[str], LimiterState], capacity: int) -> None:
        self._load = load
        self._capacity = max(1, capacity)
        self._table: dict[str, Limiter] = {}
        #: Limiters dropped to stay within `capacity` (for the engine's stats).
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._table)

    def state(self, stream: str) -> LimiterState:
        """The working state of the limiter `stream`, loaded on first use (may raise what
        `load` raises: nothing is kept then)."""
        limiter = self._table.get(stream)
        if limiter is None:
            limiter = self._table[stream] = Limiter(self._load(stream))
            if len(self._table) > self._capacity:
                self._drop_idle(keep=stream)
        return limiter.working

    def accept(self, taken: Taken) -> None:
        """The command of `taken` is accepted: its state is the limiter's working state."""
        limiter = self._table[taken.stream]
        limiter.working = taken.state
        limiter.in_flight += 1

    def committed(self, taken: Taken) -> bool:
        """The batch holding `taken` is durable. True if it was the limiter's first take (the
        limiter is in the journal from now on)."""
        limiter = self._table[taken.stream]
        first = not limiter.committed.started
        limiter.committed = taken.state
        limiter.in_flight -= 1
        return first

    def reset(self, stream: str) -> None:
        """A batch holding a take of `stream` failed: decide again from the committed state."""
        limiter = self._table[stream]
        limiter.working = limiter.committed
        limiter.in_flight = 0

    def _drop_idle(self, *, keep: str) -> None:
        table = self._table
        excess = len(table) - int(self._capacity * 0.95)
        candidates = list(itertools.islice(iter(table), excess + 256))
        for stream in candidates:
            if excess <= 0:
                break
            if stream != keep and not table[stream].in_flight:
                del table[stream]
                self.dropped += 1
                excess -= 1
