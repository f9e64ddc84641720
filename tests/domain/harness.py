"""A pure, in-memory stand-in for the engine, for testing domain modules without I/O.

Every command here is decided by `domain.model.decide`, the same step the engine's actors run,
so these tests cannot drift from the engine's decisions; only storage is in memory.

- `decide(...)` runs one MutationSpec handler against a state: the decide step on that state
  alone (no other aggregate reachable); if the handler raises, the error propagates.
- `DictView` is a dict-backed `View` that records what a query read.
- `World` is a whole backend in memory: streams with their journals, projections, durable
  timers (from `Event.timer_changes`) and a manual clock. Args go through the engine's wire
  codec (camelCase, strict types), replies and events through its JSON codec, and every
  decision is checked against the invariants of every aggregate it touched. Rate limits are
  not taken (the domain's rules are tested apart from them).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from domain import model
from domain.identity import ADMIN, Identity
from domain.ids import root_id
from domain.model import Aggregate, Decision, Event, Module, MutationSpec, Projection, QuerySpec
from engine.codec import decode_args, decode_event, dumps, encode_event, loads

#: 2026-01-01T00:00:00Z in ms: a round "now" for tests.
T0 = 1_767_225_600_000
MINUTE = 60_000


def token_counter(prefix: str = "t") -> Callable[[], str]:
    """Deterministic fresh tokens `t0001`, `t0002`, ... (lowercase, as ids need)."""
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):04d}"


def decide(
    spec: MutationSpec[Any, Any],
    state: Any,
    *,
    aggregate_id: str,
    args: Any,
    version: int = 0,
    now: int = T0,
    identity: Identity = ADMIN,
    tokens: Callable[[], str] | None = None,
) -> model.Decided[Any]:
    """Run `spec`'s handler through the engine's decide step; raises what the handler raises."""
    return model.decide(
        spec.aggregate,
        spec.aggregate.stream_of(aggregate_id),
        state,
        version,
        spec.handle,
        args,
        identity=identity,
        now=now,
        tokens=tokens or token_counter(),
    )


class DictView:
    """A `View` over plain dicts: stream -> state, projection name -> state."""

    def __init__(self, states: dict[str, Any], projections: dict[str, Any]) -> None:
        self.states = states
        self.projections = projections
        self.reads: list[tuple[str, str]] = []

    def aggregate(self, aggregate: Aggregate[Any], aggregate_id: str) -> Any:
        stream = aggregate.stream_of(aggregate_id)
        self.reads.append(("aggregate", stream))
        return self.states.get(stream)

    def projection(self, projection: Projection[Any], key: str) -> Any:
        self.reads.append((projection.name, key))
        return self.projections.get(projection.name, projection.initial)


class World:
    """Streams, projections, timers and a clock for one or more domain modules."""

    def __init__(self, *modules: Module, now: int = T0) -> None:
        self.now = now
        self.tokens = token_counter()
        self.mutations: dict[str, MutationSpec[Any, Any]] = {}
        self.queries: dict[str, QuerySpec[Any]] = {}
        self.aggregates: dict[str, Aggregate[Any]] = {}
        self.projection_specs: list[Projection[Any]] = []
        for module in modules:
            self.mutations.update((m.name, m) for m in module.mutations)
            self.queries.update((q.name, q) for q in module.queries)
            self.aggregates.update((a.kind, a) for a in module.aggregates)
            self.projection_specs.extend(module.projections)
        self.states: dict[str, Any] = {}
        self.versions: dict[str, int] = {}
        self.journal: list[Event] = []
        self.projections: dict[str, Any] = {p.name: p.initial for p in self.projection_specs}
        #: (stream, key) -> due_at
        self.timers: dict[tuple[str, str], int] = {}

    # -- commands ---------------------------------------------------------------------------------

    def mutate(self, name: str, wire_args: dict[str, Any], identity: Identity = ADMIN) -> Any:
        """Decode, route, decide and commit one mutation; returns the reply as the wire sees it.

        A handler (or route) that raises commits nothing, on any aggregate it co-decided on.
        """
        spec = self.mutations[name]
        args = decode_args(wire_args, spec.args_type)
        if spec.route is None:
            aggregate_id = root_id(spec.aggregate.id_prefix, self.tokens())
        else:
            aggregate_id = spec.route(args)
        stream = spec.aggregate.stream_of(aggregate_id)
        reply = self._decide(spec.aggregate, stream, identity, spec.handle, args).value
        return loads(dumps(reply))

    def run(
        self,
        aggregate: Aggregate[Any],
        aggregate_id: str,
        identity: Identity,
        handle: Callable[[Decision[Any]], Any],
    ) -> Any:
        """Decide `handle` on one aggregate as the engine does, with `Decision.co_decide`
        reaching others: every part is committed (co-decided ones first), or none if it
        raises."""
        stream = aggregate.stream_of(aggregate_id)
        return self._decide(aggregate, stream, identity, lambda d, _: handle(d), None).value

    def _decide(
        self,
        aggregate: Aggregate[Any],
        stream: str,
        identity: Identity,
        handle: Callable[[Decision[Any], Any], Any],
        args: Any,
    ) -> model.Decided[Any]:
        """The decide step on the world's current states, committed if it returns."""
        decided = model.decide(
            aggregate,
            stream,
            self.states.get(stream, aggregate.initial),
            self.versions.get(stream, 0),
            handle,
            args,
            identity=identity,
            now=self.now,
            tokens=self.tokens,
            reach=self._reach,
            check_invariants=True,
        )  # raises: nothing below runs, nothing is kept
        for part in decided.others:
            self._commit(part.stream, part.events, part.state)
        self._commit(stream, decided.decision.events, decided.decision.state)
        return decided

    def _reach(self, aggregate: Aggregate[Any], stream: str) -> tuple[Any, int]:
        return self.states.get(stream, aggregate.initial), self.versions.get(stream, 0)

    def query(self, name: str, wire_args: dict[str, Any], identity: Identity = ADMIN) -> Any:
        spec = self.queries[name]
        args = decode_args(wire_args, spec.args_type)
        view = DictView(self.states, self.projections)
        return loads(dumps(spec.evaluate(view, args, identity)))

    def fire(self, stream: str, key: str) -> tuple[Event, ...]:
        """Run the aggregate's `on_timer(key)` now, as the engine does when a timer falls due."""
        aggregate = self.aggregates[stream.partition("/")[0]]
        assert aggregate.on_timer is not None
        return tuple(
            self._decide(aggregate, stream, ADMIN, aggregate.on_timer, key).decision.events
        )

    def advance(self, ms: int) -> list[Event]:
        """Move the clock forward by `ms`, firing every timer that falls due, in due order."""
        target = self.now + ms
        fired: list[Event] = []
        while True:
            due = [(at, s, k) for (s, k), at in self.timers.items() if at <= target]
            if not due:
                break
            at, stream, key = min(due)
            self.now = max(self.now, at)
            del self.timers[(stream, key)]
            fired.extend(self.fire(stream, key))
        self.now = target
        return fired

    # -- inspection -------------------------------------------------------------------------------

    def stream_events(self, stream: str) -> list[Event]:
        return [e for e in self.journal if e.stream == stream]

    def replay(self, stream: str) -> Any:
        """The stream's state folded from its journal alone, from the aggregate's `initial`."""
        aggregate = self.aggregates[stream.partition("/")[0]]
        state = aggregate.initial
        for event in self.stream_events(stream):
            state = aggregate.evolve(state, event)
        return state

    def replay_projections(self) -> dict[str, Any]:
        out = {}
        for spec in self.projection_specs:
            state = spec.initial
            for event in self.journal:
                if not spec.event_types or isinstance(event, spec.event_types):
                    state = spec.apply(state, event)
            out[spec.name] = state
        return out

    # -- internals --------------------------------------------------------------------------------

    def _commit(self, stream: str, events: Iterable[Event], state: Any) -> None:
        events = tuple(events)
        if not events:
            return
        version = self.versions.get(stream, 0)
        for event in events:
            version += 1
            assert (event.stream, event.version, event.at) == (stream, version, self.now)
            # Every event survives the journal's codec unchanged.
            assert (
                decode_event(type(event).type_name, stream, version, event.at, encode_event(event))
                == event
            )
            for change in event.timer_changes():
                if change.due_at is None:
                    self.timers.pop((stream, change.key), None)
                else:
                    self.timers[(stream, change.key)] = change.due_at
            for spec in self.projection_specs:
                if not spec.event_types or isinstance(event, spec.event_types):
                    self.projections[spec.name] = spec.apply(self.projections[spec.name], event)
        self.journal.extend(events)
        self.versions[stream] = version
        self.states[stream] = state
