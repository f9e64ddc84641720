"""A persistent sorted set of index keys: the sorted sequence each table index keeps in its read
model (docs/tables.md, "Indexes are one read model per table").

Public face:

- `SortedKeys`: a set of keys (tuples of index values) in index order. `add` and `remove`
  return a new set and leave the old one as it was, so a query still holding an earlier value
  reads exactly what it read before; `in`, `len`, iteration (ascending) and `scan` read it.
  Equal sets compare equal and hash alike, however their chunks fell.
- `Bound(value, inclusive)`: one end of a range on the key element right after a prefix.
- `index_value(value)`: the comparable form of one value in index order (what `SortedKeys`
  stores; `encode_key` does it to a whole key), for ordering anything else the way an index
  orders it.

Index order is Convex's value order with its integer and float kinds as one kind of number:

    None < numbers < booleans < strings < bytes < arrays

- Numbers (int and float) compare numerically, so `2 < 2.5 < 3` and a large int is exact
  (`2**53 + 1 > 2.0**53`). Numerically equal numbers are still distinct keys, ordered
  int < -0.0 < any other float: `0 < -0.0 < 0.0` and `5 < 5.0`. NaN is one key, after every
  number (after `inf`); every NaN is that key, whatever its bits.
- `False < True`. Strings in code point order (which is UTF-8 byte order, as Convex compares
  them), bytes in byte order.
- Arrays (tuples and lists alike) compare element by element in this order, a shorter prefix
  first: `() < (None,) < (0,) < (0, 0)`.
- A Python subclass orders as its base (`bool` before `int`: `True` is a boolean, not 1).
  Dicts and any other type raise `TypeError`.

Keys read back (iteration, `scan`) are the keys added, rebuilt from their stored form: arrays
come back as tuples and a NaN as a fresh `math.nan`. Keys of different lengths may share a set;
a key that is a prefix of another orders first.

Plan:

- Keys are stored encoded (`index_value` on each element: `(rank, payload[, number kind])`), so
  Python never compares None with a string, and NaN and -0.0 compare as above.
- The set is a tuple of chunks, each a sorted tuple of at most `chunk_size` keys (`CHUNK`
  unless given), beside a tuple of each chunk's first key. A lookup bisects the first keys,
  then the chunk. An update copies one chunk (two when it merges) and the two small tuples and
  shares every other chunk with the old set: O(log n + chunk_size + n / chunk_size).
- A chunk past `chunk_size` keys splits in halves. A chunk left empty is dropped; one left
  below a quarter of `chunk_size` merges with a neighbour (splitting again if that is too big),
  so with more than one chunk every chunk holds at least `chunk_size // 4` keys.
- `scan` turns the prefix and bounds into two probe keys, bisects to both, and then walks the
  chunks between them lazily: the first n keys of a range cost O(log size + n).
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import ClassVar, TypeAlias, cast

import attrs

__all__ = ["CHUNK", "Bound", "Key", "SortedKeys", "Value", "encode_key", "index_value"]

#: One index value: what a document field holding an indexable value may hold.
Value: TypeAlias = "bool | int | float | str | bytes | tuple[Value, ...] | list[Value] | None"
#: A key: index values, compared element by element in index order.
Key: TypeAlias = tuple[Value, ...]
#: The stored, comparable form of one value (see `index_value`).
IndexValue: TypeAlias = tuple[object, ...]
EncodedKey: TypeAlias = tuple[IndexValue, ...]

#: The most keys a chunk holds by default.
CHUNK = 256

# Ranks in index order. 0 is left for Convex's `undefined` (a missing field), which orders first.
_NULL, _NUMBER, _BOOLEAN, _STRING, _BYTES, _ARRAY = 1, 2, 3, 4, 5, 6
# Above every value's rank: `prefix + (_TOP,)` is past every key that starts with `prefix`.
_TOP: IndexValue = (7,)
# A number's third element orders numerically equal numbers.
_INT, _NEGATIVE_ZERO, _FLOAT, _NAN = 0, 1, 2, 3
_NULL_VALUE: IndexValue = (_NULL,)
_NAN_VALUE: IndexValue = (_NUMBER, math.inf, _NAN)


def index_value(value: Value) -> IndexValue:
    """The comparable form of `value` in index order (module docstring); raises `TypeError`
    for a value of no index type. Two values are the same key element exactly when their
    forms are equal."""
    if value is None:
        return _NULL_VALUE
    if isinstance(value, bool):
        return (_BOOLEAN, value)
    if isinstance(value, int):
        return (_NUMBER, value, _INT)
    if isinstance(value, float):
        if math.isnan(value):
            return _NAN_VALUE
        if value == 0.0 and math.copysign(1.0, value) < 0:
            return (_NUMBER, value, _NEGATIVE_ZERO)
        return (_NUMBER, value, _FLOAT)
    if isinstance(value, str):
        return (_STRING, value)
    if isinstance(value, bytes):
        return (_BYTES, value)
    if isinstance(value, tuple | list):
        return (_ARRAY, tuple(index_value(item) for item in value))
    raise TypeError(f"{type(value).__name__} is not an index value: {value!r}")


def encode_key(key: Key) -> EncodedKey:
    """Every element of `key` through `index_value`: comparing these compares keys in index
    order."""
    return tuple(index_value(value) for value in key)


def _decode_value(stored: IndexValue) -> Value:
    rank = stored[0]
    if rank == _NULL:
        return None
    if rank == _NUMBER and stored[2] == _NAN:
        return math.nan
    if rank == _ARRAY:
        return tuple(_decode_value(item) for item in cast(EncodedKey, stored[1]))
    return cast(Value, stored[1])


def _decode_key(stored: EncodedKey) -> Key:
    return tuple(_decode_value(value) for value in stored)


@attrs.frozen
class Bound:
    """One end of a `scan` range on the element after the prefix: `value` itself is in the
    range when `inclusive`."""

    value: Value
    inclusive: bool


Chunk: TypeAlias = tuple[EncodedKey, ...]


class SortedKeys:
    """A persistent sorted set of keys (tuples of index values) in index order.

    `add` and `remove` return a new `SortedKeys` sharing every chunk with the old one but the
    one they rewrite (and the neighbour it merges with); the old one is never changed, so any
    earlier value stays readable as it was.
    `SortedKeys(keys)` builds one from any keys at once (duplicates kept once); `chunk_size`
    is the most keys a chunk holds (at least 1).
    """

    __slots__ = ("_chunk_size", "_chunks", "_firsts", "_hash", "_length")

    EMPTY: ClassVar[SortedKeys]

    _chunk_size: int
    _chunks: tuple[Chunk, ...]
    _firsts: tuple[EncodedKey, ...]
    _length: int
    _hash: int | None

    def __init__(self, keys: Iterable[Key] = (), *, chunk_size: int = CHUNK) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        ordered = sorted({encode_key(key) for key in keys})
        count = -(-len(ordered) // chunk_size)
        # Even chunks: with more than one, each holds at least half of chunk_size.
        bounds = [len(ordered) * i // count for i in range(count + 1)] if count else [0]
        chunks = tuple(tuple(ordered[a:b]) for a, b in itertools.pairwise(bounds))
        self._set(chunk_size, chunks, tuple(chunk[0] for chunk in chunks), len(ordered))

    def _set(
        self,
        chunk_size: int,
        chunks: tuple[Chunk, ...],
        firsts: tuple[EncodedKey, ...],
        length: int,
    ) -> None:
        object.__setattr__(self, "_chunk_size", chunk_size)
        object.__setattr__(self, "_chunks", chunks)
        object.__setattr__(self, "_firsts", firsts)
        object.__setattr__(self, "_length", length)
        object.__setattr__(self, "_hash", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"SortedKeys is immutable; {name} cannot be set")

    # An immutable value is its own copy; pickling keeps its chunks as they are.
    def __copy__(self) -> SortedKeys:
        return self

    def __deepcopy__(self, memo: object) -> SortedKeys:
        return self

    def __reduce__(self) -> tuple[object, tuple[int, tuple[Chunk, ...]]]:
        return (_restored, (self._chunk_size, self._chunks))

    def _replaced(self, at: int, count: int, chunks: tuple[Chunk, ...], length: int) -> SortedKeys:
        """A new set whose chunks `at .. at + count` are `chunks`; every other chunk shared."""
        new = object.__new__(SortedKeys)
        new._set(
            self._chunk_size,
            self._chunks[:at] + chunks + self._chunks[at + count :],
            self._firsts[:at] + tuple(chunk[0] for chunk in chunks) + self._firsts[at + count :],
            length,
        )
        return new

    def _fitted(self, chunk: Chunk) -> tuple[Chunk, ...]:
        """`chunk` (at most 2 * chunk_size keys) as chunks of at most chunk_size keys."""
        if len(chunk) <= self._chunk_size:
            return (chunk,)
        middle = len(chunk) // 2
        return (chunk[:middle], chunk[middle:])

    def _chunk_of(self, stored: EncodedKey) -> int:
        """The chunk `stored` belongs in: the last whose first key is not above it (the first
        chunk when it is below them all)."""
        return max(bisect_right(self._firsts, stored) - 1, 0)

    def add(self, key: Key) -> SortedKeys:
        """This set with `key`; `self` when it is already present. Raises `TypeError` for a
        key holding a value of no index type."""
        stored = encode_key(key)
        if not self._chunks:
            return self._replaced(0, 0, ((stored,),), 1)
        at = self._chunk_of(stored)
        chunk = self._chunks[at]
        i = bisect_left(chunk, stored)
        if i < len(chunk) and chunk[i] == stored:
            return self
        grown = (*chunk[:i], stored, *chunk[i:])
        return self._replaced(at, 1, self._fitted(grown), self._length + 1)

    def remove(self, key: Key) -> SortedKeys:
        """This set without `key`; `self` when it is absent. Raises `TypeError` for a key
        holding a value of no index type."""
        stored = encode_key(key)
        if not self._chunks:
            return self
        at = self._chunk_of(stored)
        chunk = self._chunks[at]
        i = bisect_left(chunk, stored)
        if i == len(chunk) or chunk[i] != stored:
            return self
        shrunk = chunk[:i] + chunk[i + 1 :]
        length = self._length - 1
        if not shrunk:
            return self._replaced(at, 1, (), length)
        if len(shrunk) < self._chunk_size // 4 and len(self._chunks) > 1:
            if at + 1 < len(self._chunks):
                return self._replaced(at, 2, self._fitted(shrunk + self._chunks[at + 1]), length)
            return self._replaced(at - 1, 2, self._fitted(self._chunks[at - 1] + shrunk), length)
        return self._replaced(at, 1, (shrunk,), length)

    def __contains__(self, key: object) -> bool:
        """Whether `key` (a tuple) is in the set; raises `TypeError` for a tuple holding a
        value of no index type."""
        if not isinstance(key, tuple) or not self._chunks:
            return False
        stored = encode_key(key)
        chunk = self._chunks[self._chunk_of(stored)]
        i = bisect_left(chunk, stored)
        return i < len(chunk) and chunk[i] == stored

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[Key]:
        for chunk in self._chunks:
            for stored in chunk:
                yield _decode_key(stored)

    def scan(
        self,
        *,
        prefix: Key = (),
        lower: Bound | None = None,
        upper: Bound | None = None,
        reverse: bool = False,
    ) -> Iterator[Key]:
        """The keys that start with `prefix` (element by element, in index order: `(1,)` is no
        prefix of `(1.0, ...)`) whose next element lies within `lower` and `upper`, ascending
        (descending when `reverse`). A key that ends at the prefix has no next element: it
        counts as below every value, so it is in the range exactly when `lower` is None.

        The arguments are checked now (`TypeError` for a value of no index type); the keys are
        read lazily, from this set as it is now whatever is added to or removed from it later.
        """
        head = encode_key(prefix)
        if lower is None:
            start = head
        elif lower.inclusive:
            start = (*head, index_value(lower.value))
        else:
            start = (*head, index_value(lower.value), _TOP)
        if upper is None:
            stop = (*head, _TOP)
        elif upper.inclusive:
            stop = (*head, index_value(upper.value), _TOP)
        else:
            stop = (*head, index_value(upper.value))
        return self._between(self._position(start), self._position(stop), reverse)

    def _position(self, probe: EncodedKey) -> tuple[int, int]:
        """Where the first key not below `probe` is (or would be): (chunk, offset in it)."""
        if not self._chunks:
            return (0, 0)
        at = bisect_right(self._firsts, probe) - 1
        if at < 0:
            return (0, 0)
        return (at, bisect_left(self._chunks[at], probe))

    def _between(
        self, begin: tuple[int, int], end: tuple[int, int], reverse: bool
    ) -> Iterator[Key]:
        # (chunk, offset) pairs order as the positions they name, so begin >= end is empty.
        if begin >= end:
            return
        chunks = self._chunks
        (first, start), (last, stop) = begin, end
        order = range(last, first - 1, -1) if reverse else range(first, last + 1)
        for at in order:
            chunk = chunks[at]
            low = start if at == first else 0
            high = stop if at == last else len(chunk)
            offsets = range(high - 1, low - 1, -1) if reverse else range(low, high)
            for i in offsets:
                yield _decode_key(chunk[i])

    def _stored(self) -> Iterator[EncodedKey]:
        return itertools.chain.from_iterable(self._chunks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SortedKeys):
            return NotImplemented
        if self is other:
            return True
        return self._length == other._length and all(
            a == b for a, b in zip(self._stored(), other._stored(), strict=True)
        )

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", hash(tuple(self._stored())))
        assert self._hash is not None
        return self._hash

    def __repr__(self) -> str:
        shown = list(itertools.islice(self, 4))
        more = ", ..." if self._length > len(shown) else ""
        return f"SortedKeys([{', '.join(map(repr, shown))}{more}], {self._length} keys)"


def _restored(chunk_size: int, chunks: tuple[Chunk, ...]) -> SortedKeys:
    keys = object.__new__(SortedKeys)
    keys._set(chunk_size, chunks, tuple(chunk[0] for chunk in chunks), sum(map(len, chunks)))
    return keys


SortedKeys.EMPTY = SortedKeys()
