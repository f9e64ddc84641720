"""What every request handler and sync session of one server shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from engine.server.auth import Authenticator
from engine.server.limits import IdentityAllowance, SessionLimits, SessionSlots
from engine.server.metrics import Metrics
from engine.sync.fanout import Fanout

if TYPE_CHECKING:
    from engine.engine import Engine


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
    #: WebSocket messages buffered per connection before the reader waits. Each may be up to
    #: `max_body_bytes`, so this (plus the one being read) bounds what a client that sends
    #: faster than its allowance makes the server hold: about 5 MiB at the defaults.
    ws_queue_size: int = 4

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


@attrs.define(kw_only=True)
class ServerContext:
    """The engine and the server's shared parts, handed to each sync session."""

    engine: Engine
    authenticator: Authenticator
    metrics: Metrics = attrs.field(factory=Metrics)
    config: ServerConfig = attrs.field(factory=ServerConfig)
    #: Sync sessions held per signed-in user, shared by every connection of this server.
    sessions: SessionSlots = attrs.field(
        default=attrs.Factory(
            lambda self: SessionSlots(self.config.max_sessions_per_identity), takes_self=True
        )
    )
    #: The one loop that writes every sync session's frames (`serve` runs it).
    fanout: Fanout = attrs.field(factory=Fanout)
    #: Each signed-in user's allowance, shared by all of that user's connections.
    identities: IdentityAllowance = attrs.field(
        default=attrs.Factory(
            lambda self: IdentityAllowance.of(self.config, self.metrics), takes_self=True
        )
    )
    #: Set only on the copy handed to one sync session: that session's limits.
    limits: SessionLimits | None = None


__all__ = ["ServerConfig", "ServerContext"]
