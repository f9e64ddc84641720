"""The per-resource booking index: which booking holds each resource when.

`BookingIndex` maps a resource name to its bookings bucketed by the UTC day (`start // DAY_MS`)
on which they start, each bucket a tuple sorted by start. A resource's bookings never overlap,
so sorted by start they are sorted by end too, and the only booking that can overlap a new
interval `[start, end)` is the one with the latest start before `end`: one binary search in
one bucket (or, rarely, a few buckets back over empty days), never a scan of every order.
A booking lies within one local day's opening hours, so it is shorter than `MAX_BOOKING_MS`
and a search need not look back further than that.

Buckets are small immutable tuples inside `immutables.Map`s, so adding or freeing a booking
copies one bucket and shares the rest of the index with the previous state.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator

import attrs
import immutables

from domain.venue.hours import DAY_MS

#: Longer than any local day (23 to 26 real hours), hence than any booking.
MAX_BOOKING_MS = 2 * DAY_MS


@attrs.frozen(kw_only=True)
class Slot:
    """One booking's hold on a resource: `[start, end)` in ms since the epoch."""

    start: int
    end: int
    order_id: str


#: resource name -> str(UTC day of start) -> the slots starting that day, sorted by start.
BookingIndex = immutables.Map[str, immutables.Map[str, tuple[Slot, ...]]]


def _start(slot: Slot) -> int:
    return slot.start


def day_key(start: int) -> str:
    return str(start // DAY_MS)


def clash(index: BookingIndex, resource: str, start: int, end: int) -> Slot | None:
    """The booking holding `resource` somewhere in `[start, end)`, or None if it is free."""
    buckets = index.get(resource)
    if buckets is None:
        return None
    day = (end - 1) // DAY_MS
    earliest = (start - MAX_BOOKING_MS) // DAY_MS
    while day >= earliest:
        bucket = buckets.get(str(day))
        if bucket:
            before_end = bisect_left(bucket, end, key=_start)
            if before_end:
                latest = bucket[before_end - 1]
                return latest if latest.end > start else None
        day -= 1
    return None


def adding(index: BookingIndex, resources: Iterable[str], slot: Slot) -> BookingIndex:
    """`index` with `slot` holding each of `resources` (which the caller found free)."""
    key = day_key(slot.start)
    for resource in resources:
        buckets = index.get(resource, immutables.Map())
        bucket = list(buckets.get(key, ()))
        insort(bucket, slot, key=_start)
        index = index.set(resource, buckets.set(key, tuple(bucket)))
    return index


def removing(
    index: BookingIndex, resources: Iterable[str], order_id: str, start: int
) -> BookingIndex:
    """`index` without the booking `order_id` (starting at `start`) on `resources`."""
    key = day_key(start)
    for resource in resources:
        buckets = index[resource]
        rest = tuple(slot for slot in buckets[key] if slot.order_id != order_id)
        buckets = buckets.set(key, rest) if rest else buckets.delete(key)
        index = index.set(resource, buckets) if buckets else index.delete(resource)
    return index


def held(index: BookingIndex) -> Iterator[tuple[str, str, Slot]]:
    """Every `(resource, bucket key, slot)` in the index (for invariant checks)."""
    for resource, buckets in index.items():
        for key, bucket in buckets.items():
            for slot in bucket:
                yield resource, key, slot
