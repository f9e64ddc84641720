"""What every request handler and sync session of one server shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from engine.actions import ActionLimits, ActionRunner
from engine.server.auth import Authenticator
from engine.server.metrics import Metrics
from engine.sync.fanout import Fanout
from engine.sync.limits import IdentityAllowance, ServerConfig, SessionLimits, SessionSlots

if TYPE_CHECKING:
    from engine.engine import Engine

#: A route of Turnstile's own: an `engine.server.api.HttpRequest` (whole) to its
#: `HttpResponse` (typed loosely here: `api` imports this module).
BuiltinRoute = Callable[["ServerContext", Any], Awaitable[Any]]


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
    #: Storage ids whose upload is being received (a second POST to the URL is refused).
    uploading: set[str] = attrs.field(factory=set)
    #: Runs actions and the apps' HTTP routes (engine.actions), with their outbound HTTP.
    actions: ActionRunner = attrs.field(
        default=attrs.Factory(
            lambda self: ActionRunner(
                self.engine,
                limits=ActionLimits(
                    max_running=self.config.max_actions_running,
                    max_waiting=self.config.max_actions_waiting,
                ),
            ),
            takes_self=True,
        )
    )
    #: Stripe's webhook signing secret (`--stripe-webhook-secret`); None: the route is 404.
    stripe_webhook_secret: str | None = None
    #: Turnstile's own routes (engine/server/webhooks.py), by exact path or "/prefix/".
    builtin_routes: dict[str, BuiltinRoute] = attrs.field(factory=dict)
    #: Set only on the copy handed to one sync session: that session's limits.
    limits: SessionLimits | None = None


__all__ = ["ServerContext"]
