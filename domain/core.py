"""The event-sourcing core every aggregate is written with: events, timers, decisions,
aggregates, projections and the view queries read through.

The shape of a command (the domain does no I/O): the engine hands a handler a `Decision` holding the
aggregate's current state, `now` and the caller; the handler checks its rules and calls
`decision.emit(EventType, ...)`, which stamps the event (stream, next version, time) and folds it
into `decision.state` at once, so later rules in the same command see it. If the handler raises,
the engine throws the whole decision away: nothing was written and no state changed.

Nothing here does I/O, reads a clock or draws randomness: time and fresh tokens come in through
the `Decision`, supplied by the engine. This is the lowest layer of `domain/`: it imports only
`domain.identity`, so every other domain module (the rate limiter, the scheduler's jobs, the
function declarations of `domain.model`) can build on it without a circle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import attrs

from domain.identity import Identity

S = TypeVar("S")
T = TypeVar("T")
E = TypeVar("E", bound="Event")

#: Every event type by its journal name, filled in as event classes are defined.
EVENT_TYPES: dict[str, type[Event]] = {}


@attrs.frozen(kw_only=True)
class Event:
    """A fact that happened to one stream. Immutable, journaled, replayed by `evolve`.

    `stream` is the aggregate's key (`"event/ev_..."`), `version` its 1-based position in that
    stream, `at` milliseconds since the Unix epoch (UTC) when the command was decided.
    Subclasses are registered under their `type_name`, the journal's `type` column: the class
    name, prefixed by the app's `namespace` for an app's events (`shop.ItemAdded`; the built-in
    events have none), so that two apps' events never share a name in the journal. An app sets
    `namespace` once, on a base class of its events.

    Schema evolution: when a type's fields change, bump its `schema` and give an upcaster for
    the step, `upcasters = {1: add_currency}`: `upcasters[n]` turns the payload of a row written
    at schema n (a dict of the fields in their wire form, camelCase, without stream, version
    and at) into one of schema n + 1. Rows written at older schemas are upcast step by step
    wherever the journal is read (recovery, stream loads, snapshots, replay, export); the
    journal itself is never rewritten for it. Upcasters must be pure and cover every step from
    the oldest schema still in any journal up to `schema`; a row older than that, or written by
    a newer build (a higher schema), is refused with an error naming the type and schemas.
    """

    schema: ClassVar[int] = 1
    #: Payload upgrades, schema n -> n + 1 (see above).
    upcasters: ClassVar[Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}
    #: The app whose event this is (`domain.app.App.name`); "" for the built-in events.
    namespace: ClassVar[str] = ""
    #: The journal's name of this type: `namespace.ClassName`, or the class name alone.
    type_name: ClassVar[str] = "Event"
    #: The fields that hold personal data: blanked in the journal once the stream is erased
    #: (an `Erasure` event on it). Subclasses name theirs.
    personal_fields: ClassVar[tuple[str, ...]] = ()

    stream: str
    version: int
    at: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_schema(cls)
        name = f"{cls.namespace}.{cls.__name__}" if cls.namespace else cls.__name__
        cls.type_name = name
        known = EVENT_TYPES.get(name)
        # attrs re-creates slotted classes: the final class replaces its draft of one name.
        if known is not None and _origin(known) != _origin(cls):
            raise TypeError(
                f"two event types named {name}: {_origin(known)} and {_origin(cls)}"
                " (an app's events set `namespace` to the app's name)"
            )
        EVENT_TYPES[name] = cls

    def timer_changes(self) -> Iterable[TimerChange]:
        """Durable timers this event arms or disarms on its own stream (none by default)."""
        return ()

    def redacted(self) -> Event:
        """This event with its `personal_fields` blanked (text to "", collections emptied,
        nested attrs values blanked field by field; numbers, flags and None kept), so that it
        still decodes and replays, carrying no personal data."""
        if not self.personal_fields:
            return self
        return replace(self, **{name: blank(getattr(self, name)) for name in self.personal_fields})


def _check_schema(cls: type[Event]) -> None:
    schema, steps = cls.schema, cls.upcasters
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise TypeError(f"{cls.__name__}.schema must be an integer >= 1, not {schema!r}")
    if steps and set(steps) != set(range(min(steps), schema)):
        raise TypeError(
            f"{cls.__name__}.upcasters must step every schema from the oldest it upgrades to"
            f" {schema}: {sorted(steps)} given"
        )


def upcast(cls: type[Event], schema: int, body: dict[str, Any]) -> dict[str, Any]:
    """`body` (a payload of `cls` written at `schema`) in `cls`'s current schema. ValueError if
    no upcasters reach it from there, or if it was written by a newer build."""
    if schema == cls.schema:
        return body
    if schema > cls.schema:
        raise ValueError(
            f"{cls.type_name} written with schema {schema} by a newer build; this build reads"
            f" schema {cls.schema}"
        )
    for step in range(schema, cls.schema):
        upgrade = cls.upcasters.get(step)
        if upgrade is None:
            raise ValueError(
                f"{cls.type_name} written with schema {schema}: no upcaster from schema {step}"
                f" (this build reads schema {cls.schema})"
            )
        body = upgrade(body)
    return body


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def blank(value: Any) -> Any:
    """`value` with its personal data blanked, as `Event.redacted` blanks a personal field."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return ""
    if attrs.has(type(value)):
        return replace(
            value, **{f.name: blank(getattr(value, f.name)) for f in attrs.fields(type(value))}
        )
    return type(value)()  # tuples, lists, dicts, immutables.Map: empty


@attrs.frozen(kw_only=True)
class Erasure(Event):
    """Base of the events that erase their stream's personal data (a right-to-erasure
    request): once one is committed, the engine rewrites every earlier event of the stream
    with `redacted()` payloads, and replaces every snapshot with one built afresh."""


@attrs.frozen(kw_only=True)
class TimerChange:
    """Arm (`due_at` set) or disarm (`due_at` None) the timer `key` of the event's stream.

    When an armed timer falls due the engine runs the aggregate's `on_timer(decision, key)` as
    a command; timers survive restarts because they are derived from the journal.
    """

    key: str
    due_at: int | None


class Decision(Generic[S]):
    """One command's decision in progress: current state, emitted events, `now`, the caller."""

    __slots__ = (
        "_co_decide",
        "_co_decided",
        "_committed",
        "_evolve",
        "_tokens",
        "events",
        "identity",
        "now",
        "state",
        "stream",
        "version",
    )

    def __init__(
        self,
        *,
        stream: str,
        state: S,
        version: int,
        now: int,
        identity: Identity,
        evolve: Callable[[S, Event], S],
        tokens: Callable[[], str],
        co_decide: Callable[[Aggregate[Any], str], Decision[Any]] | None = None,
        co_decided: Callable[[], tuple[Decision[Any], ...]] | None = None,
        committed: Callable[[], View] | None = None,
    ) -> None:
        self.stream = stream
        self.state = state
        self.version = version
        self.now = now
        self.identity = identity
        self.events: list[Event] = []
        self._evolve = evolve
        self._tokens = tokens
        self._co_decide = co_decide
        self._co_decided = co_decided
        self._committed = committed

    @property
    def aggregate_id(self) -> str:
        return self.stream.partition("/")[2]

    def new_token(self) -> str:
        """A fresh random token from the engine, for building ids (see domain.ids)."""
        return self._tokens()

    def co_decide(self, aggregate: Aggregate[T], aggregate_id: str) -> Decision[T]:
        """A decision on another aggregate, taken within this command.

        Its `state` is that aggregate's current (working) state, its initial state if the
        stream has no events; `now` and `identity` are this command's. Events emitted on it are
        committed in the same transaction as this command's own, or not at all: if the handler
        raises, nothing of either is kept. Asking twice for one aggregate gives the same
        decision. A malformed id raises `NotFound`."""
        if self._co_decide is None:
            raise RuntimeError("this decision cannot reach other aggregates")
        return self._co_decide(aggregate, aggregate_id)

    def co_decided(self) -> tuple[Decision[Any], ...]:
        """The decisions this command has taken on other aggregates so far (`co_decide`), in
        the order it first reached them; empty for a decision that cannot reach others."""
        return () if self._co_decided is None else self._co_decided()

    def committed_view(self) -> View:
        """What a query would read now: committed aggregate states and read models (a table's
        indexes, projections), without what is decided but not yet durable, this command's own
        writes included. For lookups a handler needs beyond the records it decides on. Not
        serial: what it shows may change before this command commits, so a rule across
        records needs an aggregate or a unique index, not this view alone."""
        if self._committed is None:
            raise RuntimeError("this decision has no view of the committed read models")
        return self._committed()

    def emit(self, event_type: type[E], **fields: Any) -> E:
        """Record `event_type(**fields)` as the stream's next event and fold it into `state`."""
        self.version += 1
        event = event_type(stream=self.stream, version=self.version, at=self.now, **fields)
        self.state = self._evolve(self.state, event)
        self.events.append(event)
        return event


@attrs.frozen(kw_only=True)
class Aggregate(Generic[S]):
    """A kind of actor-owned state: how it starts, how events change it, how timers act on it.

    `initial` is the state of a stream with no events; `evolve(state, event)` must be pure and
    total over the aggregate's own event types; `on_timer(decision, key)` handles a due timer
    (it must tolerate timers that are no longer relevant by emitting nothing).
    """

    kind: str
    id_prefix: str
    state_type: type[S]
    initial: S
    evolve: Callable[[S, Event], S]
    on_timer: Callable[[Decision[S], str], None] | None = None
    check_invariants: Callable[[S], None] | None = None
    #: Bump when `state_type` or `evolve` changes: snapshots hold states of the version they
    #: were built with, and a stream whose snapshot state is of another version is folded
    #: again from its events (at activation, and into the next snapshot).
    state_version: int = 1

    def stream_of(self, aggregate_id: str) -> str:
        return f"{self.kind}/{aggregate_id}"


@attrs.frozen(kw_only=True)
class Projection(Generic[S]):
    """A read model folded from every committed event, for queries that span aggregates.

    `apply(state, event)` returns the next state; `keys(event)` names the keys of the projection
    that the event may change, so that only subscriptions reading those keys are re-evaluated.
    """

    name: str
    state_type: type[S]
    initial: S
    apply: Callable[[S, Event], S]
    keys: Callable[[Event], Iterable[str]]
    #: The event types `apply` reacts to; empty means every type. Recovery decodes only these.
    event_types: tuple[type[Event], ...] = ()
    #: Bump when `apply` or the state's shape changes: a snapshot holding another version of
    #: the projection is not used for it, and it is folded again from the whole journal.
    version: int = 1
    #: For a state the codec cannot store as it is (one holding derived indexes): the type it
    #: is stored as in snapshots, and the two conversions. None: `state_type` itself.
    snapshot_type: Any = None
    to_snapshot: Callable[[S], Any] | None = None
    from_snapshot: Callable[[Any], S] | None = None

    def stored(self, state: S) -> tuple[Any, Any]:
        """`(value, type)` of `state` as a snapshot stores it."""
        if self.to_snapshot is None:
            return state, self.state_type
        return self.to_snapshot(state), self.snapshot_type

    def restored(self, value: Any) -> S:
        """The state of a value read as `stored(...)`'s type."""
        return value if self.from_snapshot is None else self.from_snapshot(value)

    @property
    def stored_type(self) -> Any:
        return self.state_type if self.snapshot_type is None else self.snapshot_type

    @property
    def snapshot_key(self) -> str:
        return self.name if self.version == 1 else f"{self.name}@{self.version}"


class View(Protocol):
    """What a query may read: committed aggregate states and projection entries at one cut.

    Every read is recorded, so a subscription is re-evaluated exactly when something it read
    changes.
    """

    def aggregate(self, aggregate: Aggregate[S], aggregate_id: str) -> S | None:
        """The committed state, or None if the stream has no events."""
        ...

    def projection(self, projection: Projection[S], key: str) -> S:
        """The whole projection state, registering a dependency on `key` only."""
        ...


#: class -> its field names (as a tuple, in order, and as a set), or None for a class whose
#: instances keep their fields in a `__dict__` (no `__slots__` anywhere in its MRO); looked up
#: once per class, since asking `hasattr(cls, "__slots__")` of a dict-backed class raises and
#: swallows an AttributeError, thousands of instructions on every copy.
_FIELD_NAMES: dict[type, tuple[tuple[str, ...], frozenset[str]] | None] = {}


def _field_names(cls: type) -> tuple[tuple[str, ...], frozenset[str]] | None:
    if not hasattr(cls, "__slots__"):
        return None
    names = tuple(field.name for field in attrs.fields(cls))
    return (names, frozenset(names))


def replace(instance: S, **changes: Any) -> S:
    """A copy of a frozen attrs instance with `changes` applied: `attrs.evolve` without its
    per-call introspection (several times faster; states are copied on every event). Field
    validators and converters are not run, so state classes must not rely on them."""
    cls = type(instance)
    try:
        known = _FIELD_NAMES[cls]
    except KeyError:
        known = _FIELD_NAMES[cls] = _field_names(cls)
    if known is None:
        # Dict-backed classes (the big, hot states): copy the namespace in one go and install
        # it as the new instance's (a frozen class refuses plain attribute assignment).
        namespace = instance.__dict__.copy()
        size = len(namespace)
        namespace.update(changes)
        if len(namespace) != size:  # a key the instance does not have
            unknown = sorted(changes.keys() - instance.__dict__.keys())
            raise TypeError(f"{cls.__name__} has no field(s) {unknown}")
        new = object.__new__(cls)
        object.__setattr__(new, "__dict__", namespace)
        return new
    if not known[1].issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(set(changes) - known[1])}")
    new = object.__new__(cls)
    for name in known[0]:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(instance, name))
    return new
