"""The notifications module's declarations: each client-callable function under its Convex
name (docs/reference/functions.md, "Notifications")."""

from __future__ import annotations

from typing import Any

from domain.model import Module, MutationSpec, QuerySpec
from domain.notifications import commands, queries
from domain.notifications.aggregate import INBOX
from domain.notifications.args import EmitWebhookEventArgs, UserWebhookEventsArgs
from domain.notifications.stripe import STRIPE_EVENT

MUTATIONS: tuple[MutationSpec[Any, Any], ...] = (
    MutationSpec(
        name="webhooks:emitWebhookEvent",
        args_type=EmitWebhookEventArgs,
        aggregate=INBOX,
        route=commands.route_inbox,
        handle=commands.emit_webhook_event,
    ),
)

QUERIES: tuple[QuerySpec[Any], ...] = (
    QuerySpec(
        name="webhooks:getUserWebhookEvents",
        args_type=UserWebhookEventsArgs,
        evaluate=queries.get_user_webhook_events,
    ),
)

NOTIFICATIONS = Module(
    aggregates=(INBOX, STRIPE_EVENT), projections=(), mutations=MUTATIONS, queries=QUERIES
)
