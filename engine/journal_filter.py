"""Bloom filters of what the journal holds, sparing the event loop a SQLite read when the answer
is certainly "nothing": the engine keeps two.

- Streams written: activating an actor reads its stream (snapshot row + rows after it). For a
  stream with no rows that read finds nothing, and on a busy server most activations are of such
  streams (each new user's rate limiter, each record just created).
- Sessions with idempotency records: a mutation carrying `(session_id, request_id)` looks up
  whether that request already committed. Only a re-sent request (after a reconnect) can find
  one, so for a session that never had a record committed the lookup is skipped.

Plan (the same for both):
- `might_hold(key)` is False only for a key that has nothing in the journal: a Bloom filter has
  no false negatives, so a False answer is exact, and a True answer (something is there, or a
  false positive, about 0.3% while the filter is under its capacity) falls back to the read.
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
- The smallest filter holds 512Ki keys (1 MiB), so that a server starting empty takes hundreds
  of thousands of new streams before its first rebuild.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Bits per key the filter is sized for, and hash positions per key: about 0.3% false
#: positives at capacity.
BITS_PER_KEY = 16
HASHES = 4
#: The smallest filter (bits): 1 MiB, room for 512Ki keys.
MIN_BITS = 1 << 23


class BloomFilter:
    """A fixed-size Bloom filter over strings, keyed by Python's own `hash` (cached on each str,
    stable within the process; the filter is never stored)."""

    __slots__ = ("bits", "capacity", "count", "mask")

    def __init__(self, capacity: int) -> None:
        size = MIN_BITS
        while size < capacity * BITS_PER_KEY:
            size <<= 1
        self.mask = size - 1
        self.bits = bytearray(size >> 3)
        self.capacity = size // BITS_PER_KEY
        self.count = 0

    # `HASHES` (4) positions, unrolled: a loop costs as much again in bytecodes.

    def add(self, key: str) -> None:
        h = hash(key)
        step = (h >> 32) | 1
        bits, mask = self.bits, self.mask
        p = h & mask
        bits[p >> 3] |= 1 << (p & 7)
        p = (h + step) & mask
        bits[p >> 3] |= 1 << (p & 7)
        p = (h + 2 * step) & mask
        bits[p >> 3] |= 1 << (p & 7)
        p = (h + 3 * step) & mask
        bits[p >> 3] |= 1 << (p & 7)
        self.count += 1

    def __contains__(self, key: str) -> bool:
        h = hash(key)
        step = (h >> 32) | 1
        bits, mask = self.bits, self.mask
        p = h & mask
        if not bits[p >> 3] & (1 << (p & 7)):
            return False
        p = (h + step) & mask
        if not bits[p >> 3] & (1 << (p & 7)):
            return False
        p = (h + 2 * step) & mask
        if not bits[p >> 3] & (1 << (p & 7)):
            return False
        p = (h + 3 * step) & mask
        return bool(bits[p >> 3] & (1 << (p & 7)))


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
