"""Turnstile's front door: one port speaking Convex's HTTP function API and sync WebSocket.

`open_server(data_dir or engine, authenticator=...)` runs one for the duration of a block (see
`engine.server.running` for its guarantees); `serve(engine, ...)` is the same server as a task
that runs until cancelled or stopped. `Authenticator` turns admin keys and user JWTs into
identities; `ServerConfig` holds the limits. The value encoding both ends speak is
`engine.wire`'s.
"""

from engine.server.auth import Authenticator, AuthFailed, mint_token
from engine.server.http import serve
from engine.server.metrics import Metrics
from engine.server.running import RunningServer, open_server
from engine.sync.limits import ServerConfig

__all__ = [
    "AuthFailed",
    "Authenticator",
    "Metrics",
    "RunningServer",
    "ServerConfig",
    "mint_token",
    "open_server",
    "serve",
]
