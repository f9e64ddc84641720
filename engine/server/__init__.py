"""Turnstile's front door: one port speaking Convex's HTTP function API and sync WebSocket.

`serve(engine, host=..., port=..., authenticator=...)` runs it; `Authenticator` turns admin
keys and user JWTs into identities; `ServerContext` is what each sync session is handed.
"""

from engine.server.auth import Authenticator, AuthFailed, mint_token
from engine.server.context import ServerConfig, ServerContext
from engine.server.http import serve
from engine.server.metrics import Metrics
from engine.server.values import convex_to_json, json_to_convex

__all__ = [
    "AuthFailed",
    "Authenticator",
    "Metrics",
    "ServerConfig",
    "ServerContext",
    "convex_to_json",
    "json_to_convex",
    "mint_token",
    "serve",
]
