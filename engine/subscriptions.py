"""Live queries: re-evaluated on committed state whenever something they read changes.

A query reads through a `RecordingView`, which notes every aggregate stream and projection key
it touched. Subscriptions to the same function, args and caller form one *group*: the group is
evaluated once and indexed under the keys it read. After each committed batch the engine
passes the keys the batch touched and its sequence number N; every group indexed under one of
them is re-evaluated, and if its encoded result differs from the last one, each member's single
pending slot is replaced by `(N, value)`. A slow consumer therefore sees fewer, newer values and
never an unbounded queue, and every value it sees was computed on exactly the journal prefix up
to its `ts`.

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
        return Result(None, error, view.reads)
    except Exception:
        import logging

        logging.getLogger("turnstile.query").exception("query %s failed", spec.name)
        return Result(None, Internal("The query failed on the server."), view.reads)


class Subscription:
    """One live query. It holds the newest undelivered `(ts, result)` only (kept as two fields:
    a tuple per delivery would outlive young-generation collections and make the cyclic GC
    scan every object of the process more often)."""

    __slots__ = (
        "_waiter",
        "args",
        "closed",
        "group",
        "identity",
        "last",
        "on_change",
        "pending_result",
        "pending_ts",
        "spec",
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
        self.last: bytes | None = None
        self.pending_ts = 0
        self.pending_result: Result | None = None
        self.closed = False
        self.on_change = on_change
        self._waiter: trio.Event | None = None

    def offer(self, ts: int, result: Result) -> None:
        if result.encoded == self.last:
            return
        self.last = result.encoded
        self.pending_ts = ts
        self.pending_result = result
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None
        if self.on_change is not None:
            self.on_change()

    @property
    def pending(self) -> tuple[int, Result] | None:
        """The newest undelivered `(ts, result)`, if any."""
        if self.pending_result is None:
            return None
        return self.pending_ts, self.pending_result

    def take(self) -> tuple[int, Result] | None:
        """The pending update, if any, removing it (for consumers that poll on `on_change`)."""
        pending = self.pending
        self.pending_result = None
        return pending

    async def next(self) -> tuple[int, Result]:
        while self.pending_result is None:
            self._waiter = trio.Event()
            await self._waiter.wait()
        pending = (self.pending_ts, self.pending_result)
        self.pending_result = None
        return pending


class _Group:
    """Subscriptions that share evaluations, the keys their query read, and its last result."""

    __slots__ = ("key", "members", "reads", "result")

    def __init__(self, key: Hashable, result: Result) -> None:
        self.key = key
        self.members: set[Subscription] = set()
        self.reads: set[ReadKey] = set()
        self.result = result


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
            group = self._groups[sub.group] = _Group(sub.group, result)
            self._reindex(group, result.reads)
        group.members.add(sub)
        self.count += 1
        sub.offer(ts, group.result)

    def remove(self, sub: Subscription) -> None:
        if sub.closed:
            return
        sub.closed = True
        self.count -= 1
        group = self._groups.get(sub.group)
        if group is None:
            return
        group.members.discard(sub)
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
            for sub in group.members:
                sub.offer(ts, result)
