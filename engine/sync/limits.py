"""Limits that keep one connection, or one user, from taking more than its share of the server.

- `Throttle`: a connection's allowance of messages and bytes (token buckets). Reading pauses
  while the allowance is spent, so TCP pushes back on a client that sends faster; nothing it
  sent is dropped or refused, and a client within the allowance never waits.
- `IdentityAllowance`: a signed-in user's allowance of messages, shared by all that user's
  connections (sync messages and HTTP function calls). A call past it waits, as a connection's
  reading does: many connections of one user add up to one user's share, not more.
- `SessionSlots`: how many sync sessions each signed-in user holds at once.
- `SessionLimits`: what one sync session is handed (its connection's throttle, the shared
  slots, the deadline for its Connect, the configured bounds).

The numbers live in `ServerConfig`, with their defaults documented. It is defined here, below
`engine.server`, because both the sync sessions and the HTTP front door read it: the front door
imports this module, and nothing here imports the front door. What a limit counts goes to a
`LimitCounters` (the server's `Metrics` is one), so this module needs no metrics of its own.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

if TYPE_CHECKING:
    from prometheus_client import Counter

    from domain.identity import Identity


#: The clock skew allowed on a user token's `exp`, `nbf` and `iat`, in its verification
#: (`engine.server.auth`) and in the session holding its identity.
TOKEN_LEEWAY_SECONDS = 60.0


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Limits of the front door. The timeouts bound how long a slow or silent client can hold
    a connection; none of them limits how long a function may run."""

    #: Largest HTTP request body and largest WebSocket message, in bytes (trio-websocket counts
    #: a text message in characters: up to four bytes each).
    max_body_bytes: int = 1024 * 1024
    #: Largest request head (request line + headers), in bytes (431 beyond).
    max_head_bytes: int = 16 * 1024
    #: Seconds a keep-alive connection may sit idle before the next request starts.
    idle_timeout: float = 30.0
    #: Seconds from a request's first byte until its head and body have all arrived.
    read_timeout: float = 10.0
    #: Seconds a response (or the WebSocket handshake) may take to be written.
    write_timeout: float = 10.0
    #: Seconds in-flight requests get to finish after shutdown starts; then they are cut.
    drain_seconds: float = 10.0
    # -- hostile clients and floods (docs/reliability.md) ------------------------------------
    #: Open TCP connections at most; one more is closed at once, before a byte is read.
    max_connections: int = 10_000
    #: Seconds from accepting a connection until its first request head has arrived, and for
    #: a WebSocket until the sync session's Connect has arrived; a slower client is cut off.
    handshake_timeout: float = 10.0
    #: Sync sessions one signed-in user (token subject) may hold at once; one more is ended
    #: with FatalError (close 1008). The admin key is exempt; anonymous sessions count only
    #: against `max_connections`.
    max_sessions_per_identity: int = 64
    #: A connection's sustained allowance of messages (sync messages or HTTP requests) per
    #: second, and how many it may send at once above that. Beyond it the connection's reading
    #: pauses, so TCP pushes back on the client: nothing it sent is dropped or refused.
    max_messages_per_second: float = 200.0
    message_burst: int = 1_000
    #: The same allowance in bytes (sync messages and request bodies).
    max_bytes_per_second: float = 2 * 1024 * 1024
    byte_burst: int = 4 * 1024 * 1024
    #: One signed-in user's allowance of messages per second (sync messages and HTTP function
    #: calls), shared by all that user's connections, and how many at once above that. Past
    #: it the user's next message waits; nothing is refused. The admin key and anonymous
    #: callers are held only by their connections' allowances.
    max_messages_per_identity_per_second: float = 1_000.0
    identity_message_burst: int = 5_000
    #: Live queries one sync session may hold; adding one more ends it with FatalError (1008).
    max_queries_per_session: int = 1_000
    #: Mutations of one sync session in flight at once; beyond, its reading pauses.
    max_mutations_in_flight: int = 256
    #: Seconds one frame to a sync client may take to be written. A client that reads nothing
    #: for longer (its socket buffers full) is disconnected without a closing handshake.
    send_timeout: float = 30.0
    #: Seconds a sync session that has ended still waits for its mutations in flight (their
    #: answers go nowhere). A re-sent request is given the same execution either way: the
    #: engine knows its id until it has an outcome.
    mutation_grace: float = 10.0
    #: Seconds past a user token's `exp` that its sync session still holds the identity: the
    #: clock skew the token's verification allows (`TOKEN_LEEWAY_SECONDS`, which
    #: `engine.server.auth` verifies with). Then the session tells the client with AuthError
    #: and sends no result for that identity until a new Authenticate.
    token_leeway: float = TOKEN_LEEWAY_SECONDS
    # -- file storage (docs/storage.md) ---------------------------------------------------
    #: Largest file an upload URL takes, in bytes (413 beyond, nothing kept).
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Seconds an upload may go without a byte arriving; then it is answered 408, cut off and
    #: its partial file removed.
    upload_stall_timeout: float = 30.0
    # -- actions and HTTP routes (domain.actions, domain.routes) --------------------------
    #: Actions and route handlers running at once, server-wide.
    max_actions_running: int = 64
    #: Actions and route handlers waiting for one of those slots; one more is `Overloaded`
    #: (a route: 503).
    max_actions_waiting: int = 1_024


class LimitCounters(Protocol):
    """Where the limits count what they did (the server's `Metrics`)."""

    @property
    def throttled(self) -> Counter:
        """A connection's reading paused: it spent its message or byte allowance."""

    @property
    def identity_throttled(self) -> Counter:
        """A signed-in user's message waited: the user spent the shared allowance."""

    @property
    def limited(self) -> Counter:
        """A connection or session ended by a limit (labelled by the limit's name)."""


class _Bucket:
    """Tokens refilled at `rate` per second up to `burst`. A debit may overdraw the level;
    the debt is the wait before the next debit is paid for."""

    __slots__ = ("at", "burst", "level", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.at = trio.current_time()

    def level_at(self, now: float) -> float:
        """The level at `now`, refilled since the last debit."""
        return min(self.burst, self.level + (now - self.at) * self.rate)

    def debit(self, amount: float) -> float:
        """Take `amount` (at most `burst`); return the seconds until the level is back at 0."""
        now = trio.current_time()
        self.level = self.level_at(now)
        self.at = now
        self.level -= min(amount, self.burst)
        return 0.0 if self.level >= 0 else -self.level / self.rate


class Throttle:
    """One connection's allowance: `messages_per_second` sustained with `message_burst` at
    once, and the same for bytes. `admit(size)` returns at once while both last; otherwise it
    sleeps until they have refilled (a message larger than the byte burst costs the burst)."""

    def __init__(
        self,
        messages_per_second: float,
        message_burst: int,
        bytes_per_second: float,
        byte_burst: int,
        metrics: LimitCounters | None = None,
    ) -> None:
        self._messages = _Bucket(messages_per_second, message_burst)
        self._bytes = _Bucket(bytes_per_second, byte_burst)
        self._metrics = metrics

    @classmethod
    def of(cls, config: ServerConfig, metrics: LimitCounters | None = None) -> Throttle:
        return cls(
            config.max_messages_per_second,
            config.message_burst,
            config.max_bytes_per_second,
            config.byte_burst,
            metrics,
        )

    async def admit(self, size: int) -> None:
        wait = max(self._messages.debit(1), self._bytes.debit(size))
        if wait > 0:
            if self._metrics is not None:
                self._metrics.throttled.inc()
            await trio.sleep(wait)


class IdentityAllowance:
    """Messages per second per signed-in user (token subject), with a burst, across all that
    user's connections. The admin key and anonymous callers are not counted here (each
    connection still has its own `Throttle`, and `max_connections` bounds the connections).
    At most `max_tracked` users' buckets are kept; past that, buckets that have refilled (whose
    users are within their allowance) are dropped, which loses nothing."""

    def __init__(
        self,
        messages_per_second: float,
        burst: int,
        metrics: LimitCounters | None = None,
        *,
        max_tracked: int = 100_000,
    ) -> None:
        self.messages_per_second = messages_per_second
        self.burst = burst
        self.max_tracked = max_tracked
        self._metrics = metrics
        self._buckets: dict[str, _Bucket] = {}

    @classmethod
    def of(cls, config: ServerConfig, metrics: LimitCounters | None = None) -> IdentityAllowance:
        return cls(
            config.max_messages_per_identity_per_second, config.identity_message_burst, metrics
        )

    @property
    def tracked(self) -> int:
        return len(self._buckets)

    async def admit(self, identity: Identity) -> None:
        """Return at once while `identity`'s allowance lasts; otherwise sleep until it has
        refilled enough for this message."""
        if identity.is_admin or identity.subject is None:
            return
        bucket = self._buckets.get(identity.subject)
        if bucket is None:
            if len(self._buckets) >= self.max_tracked:
                self._forget_refilled()
            bucket = self._buckets[identity.subject] = _Bucket(self.messages_per_second, self.burst)
        wait = bucket.debit(1)
        if wait > 0:
            if self._metrics is not None:
                self._metrics.identity_throttled.inc()
            await trio.sleep(wait)

    def _forget_refilled(self) -> None:
        now = trio.current_time()
        for subject, bucket in list(self._buckets.items()):
            if bucket.level_at(now) >= bucket.burst:
                del self._buckets[subject]


class SessionSlots:
    """Open sync sessions per key (a signed-in user's subject), at most `per_key` each."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._held: dict[Hashable, int] = {}

    def claim(self, key: Hashable) -> bool:
        held = self._held.get(key, 0)
        if held >= self.per_key:
            return False
        self._held[key] = held + 1
        return True

    def release(self, key: Hashable) -> None:
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)

    def held(self, key: Hashable) -> int:
        return self._held.get(key, 0)


@attrs.frozen(kw_only=True)
class SessionLimits:
    """What bounds one sync session (see `ServerConfig` for each number)."""

    config: ServerConfig
    throttle: Throttle
    slots: SessionSlots
    #: `trio.current_time()` by which the client's Connect must have arrived.
    connect_by: float = math.inf
    metrics: LimitCounters | None = None
    #: The server's per-user allowance (None outside a server: no per-user limit).
    identities: IdentityAllowance | None = None

    @classmethod
    def defaults(cls) -> SessionLimits:
        """The shipped limits, for a session run outside a server (its own throttle and slots)."""
        config = ServerConfig()
        return cls(
            config=config,
            throttle=Throttle.of(config),
            slots=SessionSlots(config.max_sessions_per_identity),
        )

    def reached(self, limit: str) -> None:
        """Count a connection or session ended by `limit`."""
        if self.metrics is not None:
            self.metrics.limited.labels(limit).inc()


__all__ = [
    "IdentityAllowance",
    "LimitCounters",
    "ServerConfig",
    "SessionLimits",
    "SessionSlots",
    "Throttle",
]
