"""Read models folded from the whole journal: the domain's projections and the durable timers.

The live engine applies every committed event here (in commit order); recovery and the
snapshot builder fold the journal through the same code, so all three agree by construction.
Timers are the armed `(stream, key) -> due_at` set that events declare through
`Event.timer_changes()`; being derived from the journal, they survive any restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from domain.model import EVENT_TYPES, Event, Projection
from engine import codec
from engine.journal import verify

TimerKey = tuple[str, str]


def _may_change_timers(event_type: type[Event]) -> bool:
    return event_type.timer_changes is not Event.timer_changes


def timer_event_types() -> set[str]:
    """Names of the event types that may arm or disarm timers."""
    return {name for name, cls in EVENT_TYPES.items() if _may_change_timers(cls)}


class ReadModels:
    """Projection states by name plus the armed timers. Mutated in place by `apply`."""

    def __init__(self, projections: Iterable[Projection[Any]]) -> None:
        self.projections = {p.name: p for p in projections}
        self.states: dict[str, Any] = {name: p.initial for name, p in self.projections.items()}
        self.timers: dict[TimerKey, int] = {}
        #: Per event type: the projections it changes, and whether it may change timers
        #: (its `timer_changes` is its own), found once per type.
        self._routes: dict[type[Event], tuple[list[Projection[Any]], bool]] = {}

    def _route(self, event_type: type[Event]) -> tuple[list[Projection[Any]], bool]:
        route = self._routes.get(event_type)
        if route is None:
            found = [
                p
                for p in self.projections.values()
                if not p.event_types or issubclass(event_type, p.event_types)
            ]
            route = self._routes[event_type] = (found, _may_change_timers(event_type))
        return route

    def interesting_types(self) -> list[str] | None:
        """The event types that change anything here (None: all of them)."""
        names = timer_event_types()
        for projection in self.projections.values():
            if not projection.event_types:
                return None
            names.update(t.type_name for t in projection.event_types)
        return sorted(names)

    def refold_types(self, names: Iterable[str]) -> list[str] | None:
        """The event types projections `names` react to (None: all of them)."""
        types: set[str] = set()
        for name in names:
            projection = self.projections[name]
            if not projection.event_types:
                return None
            types.update(t.type_name for t in projection.event_types)
        return sorted(types)

    def apply_to(self, event: Event, names: set[str]) -> None:
        """Apply `event` to the projections `names` only (a partial refold)."""
        for projection in self._route(type(event))[0]:
            if projection.name in names:
                self.states[projection.name] = projection.apply(self.states[projection.name], event)

    def apply(
        self,
        event: Event,
        touched: set[tuple[str, ...]] | None = None,
        armed: Callable[[str, str, int], None] | None = None,
    ) -> None:
        """Fold `event` in; note the projection keys it changed in `touched`, and call
        `armed(stream, key, due_at)` for each timer it arms (the live engine's timer service:
        each event's changes are computed once)."""
        route = self._routes.get(type(event)) or self._route(type(event))
        for projection in route[0]:
            name = projection.name
            self.states[name] = projection.apply(self.states[name], event)
            if touched is not None:
                for key in projection.keys(event):
                    touched.add(("p", name, key))
        if not route[1]:
            return
        for change in event.timer_changes():
            timer = (event.stream, change.key)
            if change.due_at is None:
                self.timers.pop(timer, None)
            else:
                self.timers[timer] = change.due_at
                if armed is not None:
                    armed(event.stream, change.key, change.due_at)

    # -- snapshot form --------------------------------------------------------------

    def encode(self) -> dict[str, bytes]:
        out = {
            p.snapshot_key: codec.encode_value(*p.stored(self.states[name]))
            for name, p in self.projections.items()
        }
        out["_timers"] = codec.dumps(
            [[stream, key, due] for (stream, key), due in sorted(self.timers.items())]
        )
        return out

    def load(self, encoded: dict[str, bytes]) -> set[str]:
        """Load the snapshot form; returns the names of the projections it did not hold (new
        ones, or another version): their caller must fold them from the whole journal."""
        missing: set[str] = set()
        for name, projection in self.projections.items():
            payload = encoded.get(projection.snapshot_key)
            if payload is None:
                missing.add(name)
            else:
                self.states[name] = projection.restored(
                    codec.decode_value(payload, projection.stored_type)
                )
        self.timers = {
            (stream, key): int(due)
            for stream, key, due in codec.loads(encoded.get("_timers", b"[]"))
        }
        return missing


def refold(models: ReadModels, missing: set[str], rows: Iterable[Any]) -> int:
    """Fold journal `rows` (the prefix a snapshot covers) into the projections `missing` only;
    the number of rows folded."""
    folded = 0
    for row in rows:
        verify(row)
        event = codec.decode_row(row)
        models.apply_to(event, missing)
        folded += 1
    return folded
