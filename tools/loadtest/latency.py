"""Commit-to-update: how long after a write committed its subscribers saw it.

For each marker (an acknowledged write that certainly changes a live query's value, see
`Marker`) and each *other* connection watching that query (`Watch` with the same topic), `seen`
is when the watcher read its first QueryUpdated whose Transition's ts >= the write's ts. A
Transition at ts N carries results computed on exactly the journal prefix up to N, so that is
the first update that shows the write; a marker is only made for writes that change the value,
so it exists unless the watcher fell behind for good (counted as `unmatched`).

The commit itself happens inside the server, between the writer's send and its reading of the
MutationResponse, so the harness measures two bounds of it, both on its one process's clock:

- commit-to-update = seen - when the writer read the MutationResponse (the acknowledgement).
  The server may deliver the update to other sockets before the writer's response is read;
  such a delay is recorded as 0 and counted as `beforeAck`. A lower bound.
- write-to-update = seen - when the writer sent the mutation. An upper bound.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from tools.loadtest.histogram import LatencyHistogram
from tools.loadtest.recorder import Marker, Watch

#: At most this many (marker, watcher) pairs are measured; beyond it every k-th watcher of a
#: topic is used, the same watchers for every marker.
MAX_PAIRS = 250_000


@attrs.define
class CommitToUpdate:
    histogram: LatencyHistogram = attrs.field(factory=LatencyHistogram)
    from_send: LatencyHistogram = attrs.field(factory=LatencyHistogram)
    markers: int = 0
    pairs: int = 0
    unmatched: int = 0
    before_ack: int = 0
    watchers_sampled: int = 0
    watchers: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            **self.histogram.summary(),
            "markers": self.markers,
            "pairs": self.pairs,
            "unmatched": self.unmatched,
            "beforeAck": self.before_ack,
            "watchers": self.watchers,
            "watchersSampled": self.watchers_sampled,
        }


def commit_to_update(markers: Sequence[Marker], watches: Iterable[Watch]) -> CommitToUpdate:
    by_topic: dict[str, list[Watch]] = {}
    for watch in watches:
        by_topic.setdefault(watch.topic, []).append(watch)
    marker_counts: dict[str, int] = {}
    for marker in markers:
        marker_counts[marker.topic] = marker_counts.get(marker.topic, 0) + 1
    result = CommitToUpdate(markers=len(markers))
    sampled: dict[str, list[Watch]] = {}
    for topic, watchers in by_topic.items():
        result.watchers += len(watchers)
        count = marker_counts.get(topic, 0)
        step = max(1, -(-count * len(watchers) // MAX_PAIRS)) if count else 1
        sampled[topic] = watchers[::step]
        result.watchers_sampled += len(sampled[topic])
    for marker in markers:
        for watch in sampled.get(marker.topic, ()):
            if watch.connection == marker.connection:
                continue  # the writer's own read-your-writes update is not fan-out
            result.pairs += 1
            index = bisect_left(watch.positions, marker.ts)
            if index == len(watch.positions):
                result.unmatched += 1
                continue
            seen = watch.arrivals[index]
            result.from_send.record(seen - marker.sent_at)
            delay = seen - marker.acked_at
            if delay < 0:
                result.before_ack += 1
                delay = 0.0
            result.histogram.record(delay)
    return result


__all__ = ["MAX_PAIRS", "CommitToUpdate", "commit_to_update"]
