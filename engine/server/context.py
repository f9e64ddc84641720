"""What every request handler and sync session of one server shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from engine.server.auth import Authenticator
from engine.server.metrics import Metrics

if TYPE_CHECKING:
    from engine.engine import Engine


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Limits of the front door. The timeouts bound how long a slow or silent client can hold
    a connection; none of them limits how long a function may run."""

    #: Largest HTTP request body and largest WebSocket message, in bytes.
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
    #: WebSocket messages buffered per connection before the reader waits.
    ws_queue_size: int = 64


@attrs.define(kw_only=True)
class ServerContext:
    """The engine and the server's shared parts, handed to each sync session."""

    engine: Engine
    authenticator: Authenticator
    metrics: Metrics = attrs.field(factory=Metrics)
    config: ServerConfig = attrs.field(factory=ServerConfig)


__all__ = ["ServerConfig", "ServerContext"]
