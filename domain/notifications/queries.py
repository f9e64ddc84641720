"""The notification query: a pure function of the inbox it reads (no clock).

Expired notifications are absent because the inbox's durable expiry timer removes each one at
exactly its `expiresAt`; the query itself filters nothing by time (it has no clock, and a
result that changed with the clock could not be a live query's). After the server was down
across an expiry, the overdue timer removes it as soon as the engine has recovered.
"""

from __future__ import annotations

from domain.errors import InvalidArgs
from domain.identity import Identity, require_user
from domain.model import View
from domain.notifications.aggregate import INBOX
from domain.notifications.args import UserWebhookEventsArgs
from domain.notifications.state import inbox_id
from domain.notifications.wire import Doc, notification_doc
from domain.pagination import paginate, scope_of


def get_user_webhook_events(
    view: View, args: UserWebhookEventsArgs, identity: Identity
) -> list[Doc] | Doc:
    """webhooks:getUserWebhookEvents -> the user's live notifications with `createdAt >
    since`, oldest first (ties in arrival order). Only the user themself or admin may ask
    (Unauthenticated, Forbidden); an empty `userId` is InvalidArgs. With `paginationOpts`, a
    page of them keyed by `(createdAt, arrival number)` (an expired one leaves its page)."""
    require_user(identity, args.user_id)
    if not args.user_id:
        raise InvalidArgs("userId must not be empty.", path="userId")
    state = view.aggregate(INBOX, inbox_id(args.user_id))
    notifications = () if state is None else state.notifications.values()
    newer = (n for n in notifications if n.created_at > args.since)
    ordered = sorted(newer, key=lambda n: (n.created_at, n.number))
    if args.pagination_opts is not None:
        page = paginate(
            ordered,
            key=lambda n: (n.created_at, n.number),
            opts=args.pagination_opts,
            scope=scope_of("webhooks:getUserWebhookEvents", args),
        )
        return page.doc(notification_doc)
    return [notification_doc(n) for n in ordered]
