"""Live queries: re-evaluated on committed state whenever something they read changes.

A query reads through a `RecordingView`, which notes every aggregate stream and projection key
it touched. Subscriptions to the same function, args and caller form one *group*: the group is
evaluated once and indexed under the keys it read. After each committed batch the engine
passes the keys the batch touched and its sequence number N; every group indexed under one of
them is re-evaluated, and if its encoded result differs from the last one, it becomes the
group's result at `N`: every member's pending update is then `(N, value)` (a member holds no copy:
it reads the group's newest result when it takes one). A slow consumer therefore sees fewer,
newer values and never an unbounded queue, and every value it sees was computed on exactly the
journal prefix up to its `ts`.

A commit costs one evaluation per affected group plus one call per member *waiting* for a change
(one that took the group's previous result); a member whose update is still pending is not
touched again however many commits change the group, so with a thousand members that read slower
than the commits come, a commit costs the few that caught up, not a thousand (docs/benchmarks.md,
"Fan-out").

A subscription that joins a group takes the group's current result without an evaluation: the
group is re-evaluated at every commit that touches what it read, so its result is the current
one. A thousand clients opening the same page cost one evaluation, not a thousand.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import orjson
import trio

from domain.errors import Internal, TurnstileError
from domain.identity import Identity
from domain.model import Aggregate, Projection, QuerySpec, View
from engine import refusals

ReadKey = tuple[str, ...]


class RecordingView(View):
    """A `View` over committed state that records what it read."""

    def __init__(
        self,
        read_aggregate: Callable[[Aggregate[Any], str], Any],
        projection_states: dict[str, Any],
    ) -> None:
        self._read_aggregate = read_aggregate
        self._projection_states = projection_states
        self.reads: set[ReadKey] = set()

    def aggregate(self, aggregate: Aggregate[Any], aggregate_id: str) -> Any:
        self.reads.add(("a", aggregate.stream_of(aggregate_id)))
        return self._read_aggregate(aggregate, aggregate_id)

    def projection(self, projection: Projection[Any], key: str) -> Any:
        self.reads.add(("p", projection.name, key))
        return self._projection_states[projection.name]


class Result:
    """One evaluation: a value (with its encoding) or an error."""

    __slots__ = ("_wire", "encoded", "encodings", "error", "reads", "value")

    def __init__(self, value: Any, error: TurnstileError | None, reads: set[ReadKey]) -> None:
        self.value = value
        self.error = error
        self.reads = reads
        self.encoded = (orjson.dumps(value) if error is None else orjson.dumps(error.data())) + (
            b"E" if error is not None else b""
        )
        self._wire: orjson.Fragment | None = None
        #: Messages built from this result, keyed as their builder likes (the sync session keeps
        #: whole Transitions here, so sessions at the same versions share one encoding).
        self.encodings: dict[Hashable, bytes] = {}

    def wire(self, encode: Callable[[Any], Any]) -> orjson.Fragment:
        """The value in its wire encoding, encoded once however many sessions send it."""
        if self._wire is None:
            self._wire = orjson.Fragment(orjson.dumps(encode(self.value)))
        return self._wire


def evaluate(spec: QuerySpec[Any], args: Any, identity: Identity, view: RecordingView) -> Result:
    try:
        return Result(spec.evaluate(view, args, identity), None, view.reads)
    except TurnstileError as error:
        return Result(None, refusals.stored(error), view.reads)
    except Exception:
        import logging

        logging.getLogger("turnstile.query").exception("query %s failed", spec.name)
        return Result(None, Internal("The query failed on the server."), view.reads)


class Subscription:
    """One live query. Its pending update is its group's newest result if it has not taken that
    one yet, at the later of the ts that result was made at and the ts the subscription began
    (nothing is kept per delivery: a tuple or a slot per update would outlive young-generation
    collections and make the cyclic GC scan every object of the process more often)."""

    __slots__ = (
        "_source",
        "_waiter",
        "args",
        "closed",
        "group",
        "identity",
        "on_change",
        "seen",
        "spec",
        "start_ts",
    )

    def __init__(
        self,
        spec: QuerySpec[Any],
        args: Any,
        identity: Identity,
        group: Hashable,
        on_change: Callable[[], None] | None = None,
    ):
        self.spec = spec
        self.args = args
        self.identity = identity
        #: Subscriptions with equal `group` keys share evaluations (same function, args, caller).
        self.group = group
        #: The last result taken.
        self.seen: Result | None = None
        #: The committed state the subscription began at.
        self.start_ts = 0
        self.closed = False
        #: Called when an update becomes pending (not again until it is taken).
        self.on_change = on_change
        self._waiter: trio.Event | None = None
        self._source: _Group | None = None

    def _changed(self) -> None:
        """The group has a result this subscription has not taken (it was waiting for one)."""
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None
        if self.on_change is not None:
            self.on_change()

    @property
    def pending(self) -> tuple[int, Result] | None:
        """The newest undelivered `(ts, result)`, if any."""
        source = self._source
        if source is None or source.result is self.seen:
            return None
        return max(source.ts, self.start_ts), source.result

    def take(self) -> tuple[int, Result] | None:
        """The pending update, if any, removing it (for consumers that poll on `on_change`)."""
        source = self._source
        if source is None:
            return None
        result = source.result
        if result is self.seen:
            return None
        self.seen = result
        source.waiting[self] = None  # told at the next change
        ts = source.ts
        return (ts if ts > self.start_ts else self.start_ts), result

    async def next(self) -> tuple[int, Result]:
        pending = self.take()
        while pending is None:
            self._waiter = trio.Event()
            await self._waiter.wait()
            pending = self.take()
        return pending


class _Group:
    """Subscriptions that share evaluations, the keys their query read, its last result and the
    commit that made it, and the members that took that result (told at the next change)."""

    __slots__ = ("key", "members", "reads", "result", "ts", "waiting")

    def __init__(self, key: Hashable, result: Result, ts: int) -> None:
        self.key = key
        self.members: set[Subscription] = set()
        self.reads: set[ReadKey] = set()
        self.result = result
        self.ts = ts
        self.waiting: dict[Subscription, None] = {}


class Subscriptions:
    def __init__(self, make_view: Callable[[], RecordingView]) -> None:
        self._make_view = make_view
        self._groups: dict[Hashable, _Group] = {}
        self._index: dict[ReadKey, set[_Group]] = {}
        self.count = 0

    def add(self, sub: Subscription, ts: int) -> None:
        """Start `sub` at the committed state `ts`: its first value is pending at once."""
        group = self._groups.get(sub.group)
        if group is None:
            result = evaluate(sub.spec, sub.args, sub.identity, self._make_view())
            group = self._groups[sub.group] = _Group(sub.group, result, ts)
            self._reindex(group, result.reads)
        group.members.add(sub)
        self.count += 1
        sub.start_ts = ts
        sub._source = group
        sub._changed()

    def remove(self, sub: Subscription) -> None:
        if sub.closed:
            return
        sub.closed = True
        self.count -= 1
        group = sub._source
        sub._source = None
        if group is None:
            return
        group.members.discard(sub)
        group.waiting.pop(sub, None)
        if not group.members:
            del self._groups[sub.group]
            self._reindex(group, set())

    @property
    def groups(self) -> int:
        """Distinct (function, args, caller) evaluated on each relevant commit."""
        return len(self._groups)

    def _reindex(self, group: _Group, reads: set[ReadKey]) -> None:
        for key in group.reads - reads:
            bucket = self._index.get(key)
            if bucket is not None:
                bucket.discard(group)
                if not bucket:
                    del self._index[key]
        for key in reads - group.reads:
            self._index.setdefault(key, set()).add(group)
        group.reads = reads

    def on_commit(self, touched: set[ReadKey], ts: int) -> None:
        affected: set[_Group] = set()
        for key in touched:
            bucket = self._index.get(key)
            if bucket:
                affected.update(bucket)
        for group in affected:
            some = next(iter(group.members))
            result = evaluate(some.spec, some.args, some.identity, self._make_view())
            if result.reads != group.reads:
                self._reindex(group, result.reads)
            if result.encoded == group.result.encoded:
                continue  # unchanged: keep the old result (and what was encoded from it)
            group.result = result
            group.ts = ts
            waiting = group.waiting
            if waiting:
                group.waiting = {}
                for sub in waiting:  # (`Subscription._changed`, written out: one call less each)
                    if sub._waiter is not None:
                        sub._waiter.set()
                        sub._waiter = None
                    if sub.on_change is not None:
                        sub.on_change()
