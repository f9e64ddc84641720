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
- An idle limiter is held as its state packed in `bytes` (`_packed`), which the garbage
  collector does not track, and a limiter never taken as the shared `LimiterState()`: only
  one with a take in flight is an object (`Limiter`, working and committed state). A
  collector's sweep walks each tracked object alive and not frozen (engine/collector.py), and a
  limiter per new user was two of the nine such objects a join left (`Limiter`/`Actor` and its
  `LimiterState`).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

from domain.ratelimit import LimiterState, Taken, taken_state

#: An idle limiter's state, packed: window_start, count, milli_tokens, updated_at.
_PACKING = struct.Struct("<4q")


class Limiter:
    """A limiter with takes in flight."""

    __slots__ = ("committed", "in_flight", "working")

    def __init__(self, committed: LimiterState, working: LimiterState) -> None:
        self.committed = committed
        self.working = working
        #: Takes accepted and not yet committed (or failed).
        self.in_flight = 1


#: What the table holds for a limiter: one with takes in flight, an idle one packed, or an idle
#: one's state as it is (never taken: the shared initial state; or one too large to pack).
_Held = Limiter | bytes | LimiterState


def _packed(state: LimiterState) -> bytes | LimiterState:
    """An idle limiter's state as the table holds it."""
    if not state.started:
        return state
    try:
        return _PACKING.pack(state.window_start, state.count, state.milli_tokens, state.updated_at)
    except struct.error:  # (a number past 64 bits: kept as it is)
        return state


def _state(held: bytes | LimiterState) -> LimiterState:
    if isinstance(held, LimiterState):
        return held
    window_start, count, milli_tokens, updated_at = _PACKING.unpack(held)
    return taken_state(
        at=updated_at, window_start=window_start, count=count, milli_tokens=milli_tokens
    )


class Limiters:
    def __init__(self, load: Callable[[str], LimiterState], capacity: int) -> None:
        self._load = load
        self._capacity = max(1, capacity)
        self._table: dict[str, _Held] = {}
        #: Limiters dropped to stay within `capacity` (for the engine's stats).
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._table)

    def state(self, stream: str) -> LimiterState:
        """The working state of the limiter `stream`, loaded on first use (may raise what
        `load` raises: nothing is kept then)."""
        held = self._table.get(stream)
        if held is None:
            state = self._load(stream)
            self._table[stream] = _packed(state)
            if len(self._table) > self._capacity:
                self._drop_idle(keep=stream)
            return state
        if isinstance(held, Limiter):
            return held.working
        return _state(held)

    def accept(self, taken: Taken) -> None:
        """The command of `taken` is accepted: its state is the limiter's working state."""
        table = self._table
        held = table[taken.stream]
        if isinstance(held, Limiter):
            held.working = taken.state
            held.in_flight += 1
        else:
            table[taken.stream] = Limiter(_state(held), taken.state)

    def committed(self, taken: Taken) -> bool:
        """The batch holding `taken` is durable. True if it was the limiter's first take (the
        limiter is in the journal from now on)."""
        limiter = self._table[taken.stream]
        assert isinstance(limiter, Limiter)
        first = not limiter.committed.started
        limiter.committed = taken.state
        limiter.in_flight -= 1
        if not limiter.in_flight:  # (every take accepted is durable: working is this state)
            self._table[taken.stream] = _packed(taken.state)
        return first

    def reset(self, stream: str) -> None:
        """A batch holding a take of `stream` failed: decide again from the committed state."""
        held = self._table[stream]
        if isinstance(held, Limiter):  # (else reset already by another take of the batch)
            self._table[stream] = _packed(held.committed)

    def _drop_idle(self, *, keep: str) -> None:
        table = self._table
        excess = len(table) - int(self._capacity * 0.95)
        candidates = list(itertools.islice(iter(table), excess + 256))
        for stream in candidates:
            if excess <= 0:
                break
            if stream != keep and type(table[stream]) is not Limiter:
                del table[stream]
                self.dropped += 1
                excess -= 1
