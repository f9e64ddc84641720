"""A pure, in-memory stand-in for the engine, for testing domain modules without I/O.

- `decide(...)` runs one MutationSpec handler against a state exactly as the engine does: a
  fresh `Decision` (stream, state, version, now, identity, evolve, tokens); if the handler
  raises, the events are thrown away and the error propagates.
- `DictView` is a dict-backed `View` that records what a query read.
- `World` is a whole backend in memory: streams with their journals, projections, durable
  timers (from `Event.timer_changes`) and a manual clock. Args go through the engine's wire
  codec (camelCase, strict types), replies and events through its JSON codec, and every commit
  is checked against the aggregate's invariants.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from domain.errors import NotFound
from domain.identity import ADMIN, Identity
from domain.ids import is_root_id, root_id
from domain.model import Aggregate, Decision, Event, Module, MutationSpec, Projection, QuerySpec
from engine.codec import decode_args, decode_event, dumps, encode_event, loads

#: 2026-01-01T00:00:00Z in ms: a round "now" for tests.
T0 = 1_767_225_600_000
MINUTE = 60_000


def token_counter(prefix: str = "t") -> Callable[[], str]:
    """Deterministic fresh tokens `t0001`, `t0002`, ... (lowercase, as ids need)."""
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):04d}"


@attrs.frozen(kw_only=True)
class Decided:
    """What a successful handler produced."""

    reply: Any
    events: tuple[Event, ...]
    state: Any
    version: int


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
) -> Decided:
    """Run `spec`'s handler the way the engine will; raises what the handler raises."""
    decision = Decision(
        stream=spec.aggregate.stream_of(aggregate_id),
        state=state,
        version=version,
        now=now,
        identity=identity,
        evolve=spec.aggregate.evolve,
        tokens=tokens or token_counter(),
    )
    reply = spec.handle(decision, args)
    return Decided(
        reply=reply, events=tuple(decision.events), state=decision.state, version=decision.version
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
        reply = self.run(spec.aggregate, aggregate_id, identity, lambda d: spec.handle(d, args))
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
        others: dict[str, tuple[Aggregate[Any], Decision[Any]]] = {}

        def co_decide(other: Aggregate[Any], other_id: str) -> Decision[Any]:
            if not is_root_id(other_id, other.id_prefix):
                raise NotFound(f"No {other.kind} with id {other_id!r}.")
            other_stream = other.stream_of(other_id)
            if other_stream == stream:
                raise ValueError("a command cannot co-decide on its own aggregate")
            if other_stream not in others:
                others[other_stream] = (other, self._decision(other, other_stream, identity))
            return others[other_stream][1]

        decision = self._decision(aggregate, stream, identity, co_decide)
        reply = handle(decision)  # raises: nothing below runs, nothing is kept
        for other, part in others.values():
            self._commit(other, part.stream, part.events, part.state)
        self._commit(aggregate, stream, decision.events, decision.state)
        return reply

    def _decision(
        self,
        aggregate: Aggregate[Any],
        stream: str,
        identity: Identity,
        co_decide: Callable[[Aggregate[Any], str], Decision[Any]] | None = None,
    ) -> Decision[Any]:
        return Decision(
            stream=stream,
            state=self.states.get(stream, aggregate.initial),
            version=self.versions.get(stream, 0),
            now=self.now,
            identity=identity,
            evolve=aggregate.evolve,
            tokens=self.tokens,
            co_decide=co_decide,
        )

    def query(self, name: str, wire_args: dict[str, Any], identity: Identity = ADMIN) -> Any:
        spec = self.queries[name]
        args = decode_args(wire_args, spec.args_type)
        view = DictView(self.states, self.projections)
        return loads(dumps(spec.evaluate(view, args, identity)))

    def fire(self, stream: str, key: str) -> tuple[Event, ...]:
        """Run the aggregate's `on_timer(key)` now, as the engine does when a timer falls due."""
        aggregate = self.aggregates[stream.partition("/")[0]]
        assert aggregate.on_timer is not None
        decision = Decision(
            stream=stream,
            state=self.states.get(stream, aggregate.initial),
            version=self.versions.get(stream, 0),
            now=self.now,
            identity=ADMIN,
            evolve=aggregate.evolve,
            tokens=self.tokens,
        )
        aggregate.on_timer(decision, key)
        self._commit(aggregate, stream, tuple(decision.events), decision.state)
        return tuple(decision.events)

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

    def _commit(
        self, aggregate: Aggregate[Any], stream: str, events: Iterable[Event], state: Any
    ) -> None:
        events = tuple(events)
        if not events:
            return
        version = self.versions.get(stream, 0)
        for event in events:
            version += 1
            assert (event.stream, event.version, event.at) == (stream, version, self.now)
            # Every event survives the journal's codec unchanged.
            assert (
                decode_event(type(event).__name__, stream, version, event.at, encode_event(event))
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
        if aggregate.check_invariants is not None:
            aggregate.check_invariants(state)
