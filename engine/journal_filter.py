"""Bloom filters of what the journal holds, sparing the event loop a SQLite read when the answer
is certainly "nothing": the engine keeps two.

- Streams written (and rate limiters taken): activating an actor reads its stream (snapshot row
  + rows after it), loading a limiter its last take. For one never written that read finds
  nothing, and on a busy server most activations are of such (each new user's rate limiter, each
  record just created).
- Sessions with idempotency records: a mutation carrying `(session_id, request_id)` looks up
  whether that request already committed. Only a re-sent request (after a reconnect) can find
  one, so for a session that never had a record committed the lookup is skipped.

Plan (the same for both):
- `might_hold(key)` is False only for a key that has nothing in the journal: a Bloom filter has
  no false negatives, so a False answer is exact, and a True answer (something is there, or a
  false positive, about 0.2% while the filter is under its capacity) falls back to the read.
- Until the filter is built, every answer is True: the engine reads as before.
- It is built off the event loop after recovery (`build(keys)` in a worker thread, from the
  journal's listing), while commits go on: keys committed during the build are noted on the loop
  and added when the built filter is installed (`install`), on the loop, so no bit is ever set
  from two threads.
- After install, the engine adds every newly committed key (`add`) before anything can read it.
  Past its capacity the filter answers True more often; the engine starts a rebuild, larger, in
  the background as soon as a commit takes it past (`wants_rebuild`, checked per batch), not at
  its next housekeeping sweep: a busy server adds a key per new user, and minutes of commits
  past capacity would turn most activations of never-written streams into journal reads (each a
  scan of the rows not yet in the stream index: milliseconds on the event loop).
- The smallest filter holds 699,050 keys (2 MiB), so that a server starting empty takes hundreds
  of thousands of new streams before its first rebuild.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterable

#: Bits per key the filter is sized for, and bits set per key: about 0.2% false positives at
#: capacity (a blocked filter: see `BloomFilter`).
BITS_PER_KEY = 24
HASHES = 5
#: The smallest filter (bits): 2 MiB, room for 699,050 keys.
MIN_BITS = 1 << 24
#: Masks a key may set in its word, each of `HASHES` distinct bits of 64, drawn once from a fixed
#: seed (the same in every process; the filter is never stored anyway).
_MASK_COUNT = 4_096


def _masks() -> tuple[int, ...]:
    draw = random.Random(0x7E57)
    return tuple(
        sum(1 << bit for bit in draw.sample(range(64), HASHES)) for _ in range(_MASK_COUNT)
    )


_MASKS = _masks()


class BloomFilter:
    """A blocked Bloom filter over strings, keyed by Python's own `hash` (cached on each str,
    stable within the process): a key's low hash bits pick one 64-bit word, its bits 40-51 one
    of `_MASKS`, and the key sets (or, to be held, must find) those `HASHES` bits in that word.
    One word per key instead of `HASHES` scattered bits: a few bytecodes per `add` and per
    lookup (the event loop adds a key per new stream), for slightly more false positives per
    bit than a classic filter, paid for with more bits per key."""

    __slots__ = ("capacity", "count", "mask", "words")

    def __init__(self, capacity: int) -> None:
        size = MIN_BITS
        while size < capacity * BITS_PER_KEY:
            size <<= 1
        self.mask = (size >> 6) - 1
        self.words = array("Q", bytes(size >> 3))
        self.capacity = size // BITS_PER_KEY
        self.count = 0

    def add(self, key: str) -> None:
        h = hash(key)
        self.words[h & self.mask] |= _MASKS[(h >> 40) & 4095]  # 4095: _MASK_COUNT - 1
        self.count += 1

    def __contains__(self, key: str) -> bool:
        h = hash(key)
        bits = _MASKS[(h >> 40) & 4095]
        return self.words[h & self.mask] & bits == bits


def build(keys: Iterable[str], expected: int) -> BloomFilter:
    """A filter holding `keys`, sized for `expected` keys and room to grow (run in a worker
    thread: it touches nothing shared)."""
    bloom = BloomFilter(max(expected * 2, 1))
    for key in keys:
        bloom.add(key)
    return bloom


class JournalFilter:
    """One of the engine's filters (see the module docstring). Loop thread only."""

    __slots__ = ("_bloom", "_pending")

    def __init__(self) -> None:
        self._bloom: BloomFilter | None = None
        #: Keys committed while a build runs (added at install); None when no build runs.
        self._pending: list[str] | None = None

    @property
    def ready(self) -> bool:
        return self._bloom is not None

    def might_hold(self, key: str) -> bool:
        """False only if the journal certainly holds nothing under `key`."""
        bloom = self._bloom
        return bloom is None or key in bloom

    def add(self, key: str) -> None:
        """The journal holds something under `key` now (call before anything may read it)."""
        if self._pending is not None:
            self._pending.append(key)
        if self._bloom is not None:
            self._bloom.add(key)

    def begin_build(self) -> None:
        """A build starts: note keys committed from now on (a build already begun goes on)."""
        if self._pending is None:
            self._pending = []

    def install(self, bloom: BloomFilter) -> None:
        """The build (which saw every key committed before `begin_build`) is done."""
        pending, self._pending = self._pending or [], None
        for key in pending:
            bloom.add(key)
        self._bloom = bloom

    def abandon_build(self) -> None:
        """The build failed: keep answering as before (True until a build succeeds)."""
        self._pending = None

    @property
    def wants_rebuild(self) -> bool:
        """Over capacity (false positives climbing) and no build running."""
        bloom = self._bloom
        return bloom is not None and self._pending is None and bloom.count > bloom.capacity

    @property
    def expected(self) -> int:
        return 0 if self._bloom is None else self._bloom.count
