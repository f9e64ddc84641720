"""What a domain module declares (mutations, queries, the `Module` the engine registers) and
`decide`, the one step that turns a command into a decision.

`decide` is the whole pure part of handling a command: the engine's actors run it on every
command and timer, and the domain test harness runs the same function, so a domain test sees
exactly what the engine decides. It does no I/O: the current state of the command's own
aggregate comes in as arguments, that of any other aggregate through `reach`, and `now` and
fresh tokens from the caller.

Plan of one step:
1. a `Decision` on the command's own aggregate, at the given state and version;
2. a rate-limited command takes one unit from its limiter first (`domain.ratelimit.take`, on
   the limiter's state from `limiters`: the state after it, no event and no `Decision`;
   `RateLimited` if none is left). Limiters are the engine's: a handler cannot co-decide on
   one;
3. the handler runs; `Decision.co_decide` reaches another aggregate through `reach`, once per
   aggregate (asking twice gives the same decision; a malformed id is `NotFound`; the command's
   own aggregate is refused);
4. with `check_invariants`, every part's state is checked (the aggregate's `check_invariants`).
Whatever a step raises propagates and the caller keeps nothing; otherwise `Decided` holds the
handler's value and every part, to be committed together.

The building blocks (`Event`, `Decision`, `Aggregate`, ...) are defined in `domain.core`, below
the rate limiter and the jobs, and re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs

from domain.core import (
    EVENT_TYPES,
    Aggregate,
    Decision,
    Erasure,
    Event,
    Projection,
    TimerChange,
    View,
    replace,
)
from domain.errors import NotFound
from domain.identity import Identity
from domain.ids import is_root_id
from domain.ratelimit import RATE_LIMITER, LimiterState, RateLimit, Taken, limiter_id, take
from domain.scheduling import CronJob

__all__ = [
    "EVENT_TYPES",
    "Aggregate",
    "Decided",
    "Decision",
    "Erasure",
    "Event",
    "Module",
    "MutationSpec",
    "Part",
    "Projection",
    "QuerySpec",
    "Reach",
    "TimerChange",
    "View",
    "by_name",
    "decide",
    "replace",
]

S = TypeVar("S")
A = TypeVar("A")


@attrs.frozen(kw_only=True)
class MutationSpec(Generic[A, S]):
    """A client-callable mutation: decoded args go to one aggregate's handler.

    `route(args)` names the aggregate id; `None` as the route means the mutation creates a new
    aggregate, whose fresh id the engine makes. `handle(decision, args)` returns the reply.
    `rate_limit` (a `domain.ratelimit.RateLimit`) is taken, durably, before the handler runs.
    """

    name: str
    args_type: type[A]
    aggregate: Aggregate[S]
    route: Callable[[A], str] | None
    handle: Callable[[Decision[S], A], Any]
    rate_limit: RateLimit | None = None
    #: The reply's type, for generated clients (`turnstile codegen`); None: `handle`'s return
    #: annotation.
    returns: Any = None


@attrs.frozen(kw_only=True)
class QuerySpec(Generic[A]):
    """A client-callable query: a pure function of what it reads through the `View`."""

    name: str
    args_type: type[A]
    evaluate: Callable[[View, A, Identity], Any]
    #: The result's type, for generated clients (`turnstile codegen`); None: `evaluate`'s
    #: return annotation.
    returns: Any = None


@attrs.frozen(kw_only=True)
class Module:
    """One domain area's declarations, as the engine registers them (an app, `domain.app.App`,
    is a named one)."""

    aggregates: tuple[Aggregate[Any], ...] = ()
    #: Read models folded from every committed event.
    projections: tuple[Projection[Any], ...] = ()
    mutations: tuple[MutationSpec[Any, Any], ...] = ()
    queries: tuple[QuerySpec[Any], ...] = ()
    #: Scheduled work (`domain.scheduling.CronJob`), run by the engine's scheduler.
    jobs: tuple[CronJob, ...] = ()
    #: Tables (`domain.tables.Table`): each brings its aggregate kind and its read model.
    tables: tuple[Any, ...] = ()
    #: Actions (`domain.actions.ActionSpec`): functions run outside the actors.
    actions: tuple[Any, ...] = ()
    #: HTTP routes (`domain.routes.HttpRoute`), served on the server's port.
    routes: tuple[Any, ...] = ()


def by_name(specs: Iterable[MutationSpec[Any, Any] | QuerySpec[Any]]) -> Mapping[str, Any]:
    return {spec.name: spec for spec in specs}


# -- the decide step ------------------------------------------------------------------------------

#: `reach(aggregate, stream)`: the current `(state, version)` of another aggregate's stream
#: (its `initial` and 0 if the stream has no events). May raise to refuse the command.
Reach = Callable[[Aggregate[Any], str], tuple[Any, int]]


class Part(Protocol):
    """What a command commits on one other aggregate: a co-decision (a `Decision`)."""

    @property
    def stream(self) -> str: ...
    @property
    def version(self) -> int:
        """The stream's version after `events`."""
        ...

    @property
    def events(self) -> Sequence[Event]: ...
    @property
    def state(self) -> Any:
        """The stream's state after `events`."""
        ...


class Decided(Generic[S]):
    """A command decided and not yet committed.

    `value` is the handler's reply, `decision` the part on the command's own aggregate,
    `others` the parts on other aggregates (co-decisions, in the order first reached) and
    `taken` the rate limiter's take (None without a rate limit). The take and the parts with
    events are committed together, `others` before `decision`, or none is."""

    __slots__ = ("decision", "others", "taken", "value")

    def __init__(
        self,
        value: Any,
        decision: Decision[S],
        others: tuple[Part, ...],
        taken: Taken | None = None,
    ) -> None:
        self.value = value
        self.decision = decision
        self.others = others
        self.taken = taken


class _Parts:
    """The other aggregates one command co-decides on, one
    `Decision` per stream in the order first reached: one object per command, whose bound
    methods are the decision's `co_decide` and `co_decided` (no closures built per command)."""

    __slots__ = ("committed", "found", "identity", "now", "reach", "stream", "tokens")

    def __init__(
        self,
        stream: str,
        reach: Reach,
        now: int,
        identity: Identity,
        tokens: Callable[[], str],
        committed: Callable[[], View] | None,
    ) -> None:
        self.stream = stream
        self.reach = reach
        self.now = now
        self.identity = identity
        self.tokens = tokens
        self.committed = committed
        #: stream -> (aggregate, decision); None until the first part is reached.
        self.found: dict[str, tuple[Aggregate[Any], Decision[Any]]] | None = None

    def part(self, other: Aggregate[Any], other_stream: str) -> Decision[Any]:
        found = self.found
        if found is None:
            found = self.found = {}
        other_state, other_version = self.reach(other, other_stream)
        decision: Decision[Any] = Decision(
            stream=other_stream,
            state=other_state,
            version=other_version,
            now=self.now,
            identity=self.identity,
            evolve=other.evolve,
            tokens=self.tokens,
            committed=self.committed,
        )
        found[other_stream] = (other, decision)
        return decision

    def co_decide(self, other: Aggregate[Any], other_id: str) -> Decision[Any]:
        if not is_root_id(other_id, other.id_prefix):
            raise NotFound(f"No {other.kind} with id {other_id!r}.")
        if other is RATE_LIMITER:
            raise ValueError("rate limiters are the engine's: a command cannot co-decide on one")
        other_stream = other.stream_of(other_id)
        if other_stream == self.stream:
            raise ValueError("a command cannot co-decide on its own aggregate")
        found = self.found
        if found is not None:
            known = found.get(other_stream)
            if known is not None:
                return known[1]
        return self.part(other, other_stream)

    def co_decided(self) -> tuple[Decision[Any], ...]:
        found = self.found
        return () if found is None else tuple([known[1] for known in found.values()])


def decide(
    aggregate: Aggregate[S],
    stream: str,
    state: S,
    version: int,
    handle: Callable[[Decision[S], A], Any],
    args: A,
    *,
    identity: Identity,
    now: int,
    tokens: Callable[[], str],
    reach: Reach | None = None,
    rate_limit: RateLimit | None = None,
    limiters: Callable[[str], LimiterState] | None = None,
    check_invariants: bool = False,
    committed: Callable[[], View] | None = None,
) -> Decided[S]:
    """Decide `handle(decision, args)` on `stream` (at `state`, `version`), as the engine does.

    Without `reach` the handler cannot co-decide (`Decision.co_decide` raises RuntimeError);
    without `limiters` (a limiter stream's current state: `LimiterState()` if never taken) a
    `rate_limit` is refused with ValueError. Raises whatever the handler, the rate limit,
    `reach`, `limiters` or an invariant check raises; nothing is changed anywhere then, since
    every state here is a new value. Pure: the same arguments give the same decision.
    `committed` is what `Decision.committed_view` answers (the engine's committed read
    models)."""
    parts = None if reach is None else _Parts(stream, reach, now, identity, tokens, committed)
    decision = Decision(
        stream=stream,
        state=state,
        version=version,
        now=now,
        identity=identity,
        evolve=aggregate.evolve,
        tokens=tokens,
        co_decide=None if parts is None else parts.co_decide,
        co_decided=None if parts is None else parts.co_decided,
        committed=committed,
    )
    taken = None
    if rate_limit is not None:
        if limiters is None:
            raise ValueError("a rate-limited command needs `limiters` to take from its limiter")
        key = rate_limit.key(args, identity)  # may refuse the caller
        limiter = RATE_LIMITER.stream_of(limiter_id(rate_limit.name, key))
        taken = Taken(limiter, take(rate_limit, limiters(limiter), now))
    value = handle(decision, args)
    found = None if parts is None else parts.found
    if check_invariants:
        check = aggregate.check_invariants
        if check is not None:
            check(decision.state)
        for other, other_part in () if found is None else found.values():
            check = other.check_invariants
            if check is not None:
                check(other_part.state)
    if not found:
        return Decided(value, decision, (), taken)
    return Decided(value, decision, tuple([known[1] for known in found.values()]), taken)
