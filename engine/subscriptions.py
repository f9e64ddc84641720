"""Live queries: re-evaluated on committed state whenever something they read changes.

A query reads through a `RecordingView`, which notes every aggregate stream and projection key
it touched; the subscription is indexed under those keys. After each committed batch the engine
passes the keys the batch touched and its sequence number N; every subscription indexed under
one of them is re-evaluated (once per distinct function, args and caller), and if its encoded
result differs from the last one delivered, the subscription's single pending slot is replaced
by `(N, value)`. A slow consumer therefore sees fewer, newer values and never an unbounded queue,
and every value it sees was computed on exactly the journal prefix up to its `ts`.
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

    __slots__ = ("_wire", "encoded", "error", "reads", "value")

    def __init__(self, value: Any, error: TurnstileError | None, reads: set[ReadKey]) -> None:
        self.value = value
        self.error = error
        self.reads = reads
        self.encoded = (orjson.dumps(value) if error is None else orjson.dumps(error.data())) + (
            b"E" if error is not None else b""
        )
        self._wire: orjson.Fragment | None = None

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
    """One live query. `pending` holds the newest undelivered `(ts, result)` only."""

    __slots__ = (
        "_wake",
        "args",
        "closed",
        "group",
        "identity",
        "last",
        "on_change",
        "pending",
        "reads",
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
        self.group = group
        self.reads: set[ReadKey] = set()
        self.last: bytes | None = None
        self.pending: tuple[int, Result] | None = None
        self.closed = False
        self.on_change = on_change
        self._wake = trio.Event()

    def offer(self, ts: int, result: Result) -> None:
        if result.encoded == self.last:
            return
        self.last = result.encoded
        self.pending = (ts, result)
        self._wake.set()
        if self.on_change is not None:
            self.on_change()

    def take(self) -> tuple[int, Result] | None:
        """The pending update, if any, removing it (for consumers that poll on `on_change`)."""
        pending, self.pending = self.pending, None
        return pending

    async def next(self) -> tuple[int, Result]:
        while self.pending is None:
            await self._wake.wait()
            self._wake = trio.Event()
        pending, self.pending = self.pending, None
        return pending


class Subscriptions:
    def __init__(self, make_view: Callable[[], RecordingView]) -> None:
        self._make_view = make_view
        self._index: dict[ReadKey, set[Subscription]] = {}
        self.count = 0

    def add(self, sub: Subscription, ts: int) -> None:
        result = evaluate(sub.spec, sub.args, sub.identity, self._make_view())
        self._reindex(sub, result.reads)
        self.count += 1
        sub.offer(ts, result)

    def remove(self, sub: Subscription) -> None:
        if sub.closed:
            return
        sub.closed = True
        self.count -= 1
        self._reindex(sub, set())

    def _reindex(self, sub: Subscription, reads: set[ReadKey]) -> None:
        for key in sub.reads - reads:
            bucket = self._index.get(key)
            if bucket is not None:
                bucket.discard(sub)
                if not bucket:
                    del self._index[key]
        for key in reads - sub.reads:
            self._index.setdefault(key, set()).add(sub)
        sub.reads = reads

    def on_commit(self, touched: set[ReadKey], ts: int) -> None:
        affected: set[Subscription] = set()
        for key in touched:
            bucket = self._index.get(key)
            if bucket:
                affected.update(bucket)
        if not affected:
            return
        results: dict[Hashable, Result] = {}
        for sub in affected:
            result = results.get(sub.group)
            if result is None:
                result = evaluate(sub.spec, sub.args, sub.identity, self._make_view())
                results[sub.group] = result
            if result.reads != sub.reads:
                self._reindex(sub, result.reads)
            sub.offer(ts, result)
