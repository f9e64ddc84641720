"""What a load-test run saw: round trips, errors by code, updates received, and the raw
material of commit-to-update (the acknowledged writes and each subscriber's Transitions).

Times are `time.perf_counter()` seconds, read by the harness's own (single) process, so a time
stamped by one simulated user and one stamped by another are on the same clock.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from tools.loadtest.histogram import LatencyHistogram


def now() -> float:
    return time.perf_counter()


@attrs.define(eq=False)
class Watch:
    """What one connection saw of one live query: for each QueryUpdated, the moment it was read
    off the socket and the journal position (`ts`) its Transition was computed at, plus the
    latest value. `inspect` is called with every value (to check invariants on the way)."""

    topic: str
    connection: int
    inspect: Callable[[Any], None] | None = None
    arrivals: list[float] = attrs.field(factory=list)
    positions: list[int] = attrs.field(factory=list)
    latest: Any = None
    seen: int = 0

    def observe(self, arrived: float, ts: int, value: Any) -> None:
        self.arrivals.append(arrived)
        self.positions.append(ts)
        self.latest = value
        self.seen += 1
        if self.inspect is not None:
            self.inspect(value)


@attrs.frozen(kw_only=True)
class Sent:
    """One mutation a client of the run sent and how it ended: `acknowledged` (its reply
    arrived: `value` and commit position `ts`), `refused` (`code`), or `unfinished` (cut short
    before either). A mutation re-sent after a reconnect is still one `Sent`: the client re-sends
    it under the same `(session_id, request_id)`."""

    function: str
    args: dict[str, Any]
    session_id: str
    request_id: int
    outcome: str
    value: Any = None
    ts: int | None = None
    code: str | None = None


@attrs.frozen(kw_only=True)
class Marker:
    """An acknowledged write that changes `topic`'s value for certain: `sent_at` is when the
    writer's connection `connection` sent it, `acked_at` when it read its MutationResponse
    (committed at journal position `ts`)."""

    topic: str
    connection: int
    sent_at: float
    acked_at: float
    ts: int


class Recorder:
    """Shared by every simulated user of a run (one trio thread: no locks needed)."""

    def __init__(self, *, keep_sent: bool = False) -> None:
        self.created_at = now()
        #: Every mutation sent, set-up included, when the run keeps them (`keep_sent`): what a
        #: chaos run holds the server's journal to.
        self.sent: list[Sent] | None = [] if keep_sent else None
        self.round_trip = LatencyHistogram()
        self.by_function: dict[str, LatencyHistogram] = {}
        self.succeeded: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.errors_by_function: dict[str, Counter[str]] = {}
        self.error_examples: dict[str, str] = {}
        self.unfinished: Counter[str] = Counter()
        self.updates = 0
        self.markers: list[Marker] = []
        self.watches: list[Watch] = []
        self.connections = 0
        self.open_connections = 0
        self.reconnects = 0
        self.load_started: float | None = None
        self.load_ended: float | None = None
        self._updates_at_start = 0
        self._updates_at_end = 0
        #: Successful mutations per whole second since the load started.
        self.timeline: Counter[int] = Counter()

    # -- written by the clients ------------------------------------------------------------

    def new_connection(self) -> int:
        self.connections += 1
        return self.connections

    def mutation_succeeded(self, function: str, sent: float, resolved: float) -> None:
        """Counted from the start of the load on (the set-up's own writes are not load)."""
        if self.load_started is None:
            return
        elapsed = resolved - sent
        self.round_trip.record(elapsed)
        histogram = self.by_function.get(function)
        if histogram is None:
            histogram = self.by_function[function] = LatencyHistogram()
        histogram.record(elapsed)
        self.succeeded[function] += 1
        if self.load_ended is None:
            self.timeline[int(resolved - self.load_started)] += 1

    def failed(self, function: str, code: str, message: str) -> None:
        """A refusal (`errorData.code`) or a harness-side failure (`ConnectTimeout`...)."""
        self.errors[code] += 1
        self.errors_by_function.setdefault(function, Counter())[code] += 1
        self.error_examples.setdefault(code, f"{function}: {message}")

    def log_sent(self, sent: Sent) -> None:
        if self.sent is not None:
            self.sent.append(sent)

    def mutation_unfinished(self, function: str) -> None:
        """Sent, but the run ended before it resolved (neither success nor error)."""
        self.unfinished[function] += 1

    def updated(self, count: int) -> None:
        self.updates += count

    def watch(
        self,
        topic: str,
        connection: int,
        inspect: Callable[[Any], None] | None = None,
        *,
        measured: bool = True,
    ) -> Watch:
        """A new `Watch`; a measured one (a simulated subscriber's, not the harness's own
        reference) takes part in commit-to-update."""
        watch = Watch(topic=topic, connection=connection, inspect=inspect)
        if measured:
            self.watches.append(watch)
        return watch

    def mark(self, topic: str, connection: int, sent_at: float, acked_at: float, ts: int) -> None:
        self.markers.append(
            Marker(topic=topic, connection=connection, sent_at=sent_at, acked_at=acked_at, ts=ts)
        )

    # -- phases ----------------------------------------------------------------------------

    def start_load(self) -> None:
        self.load_started = now()
        self._updates_at_start = self.updates

    def end_load(self) -> None:
        self.load_ended = now()
        self._updates_at_end = self.updates

    @property
    def load_seconds(self) -> float:
        if self.load_started is None:
            return 0.0
        end = self.load_ended if self.load_ended is not None else now()
        return end - self.load_started

    @property
    def load_updates(self) -> int:
        """QueryUpdated messages received while the load ran."""
        if self.load_started is None:
            return 0
        end = self._updates_at_end if self.load_ended is not None else self.updates
        return end - self._updates_at_start

    @property
    def load_mutations(self) -> int:
        """Mutations that succeeded while the load ran."""
        return sum(self.timeline.values())


__all__ = ["Marker", "Recorder", "Sent", "Watch", "now"]
