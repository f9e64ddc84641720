"""The notification mutation (docs/reference/functions.md, "Notifications"), `notify` for other
modules, and the inbox's expiry timer.

Every notification expires exactly `NOTIFICATION_TTL_MS` after the command that added it and
is then removed by the inbox's durable expiry timer, which is always armed for the earliest
live expiry: when it fires, everything due goes in one `NotificationsExpired` and the timer
moves to the next expiry. A command that adds a notification first removes whatever is already
due as well, so an inbox never gains a notification while holding an expired one (a timer can
run late: the server was down, or busy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.errors import Forbidden
from domain.identity import require_authenticated
from domain.model import Decision
from domain.notifications.args import EmitWebhookEventArgs
from domain.notifications.events import EXPIRY_TIMER, NotificationAdded, NotificationsExpired
from domain.notifications.payload import check_data, check_type, check_user_id
from domain.notifications.state import (
    NOTIFICATION_TTL_MS,
    InboxState,
    inbox_id,
    notification_id,
)

Inbox = Decision[InboxState]


def route_inbox(args: EmitWebhookEventArgs) -> str:
    return inbox_id(args.user_id)


def notify(inbox: Inbox, *, type: str, user_id: str, data: Mapping[str, Any]) -> str:
    """Add a notification for `user_id` to `inbox` (that user's inbox) and return its id.

    For other modules' handlers: `notify(d.co_decide(INBOX, inbox_id(user_id)), ...)` adds
    the notification in the same transaction as the calling command, or not at all if that
    command is refused. It checks no identity (the calling command has authorized itself),
    only the fields: `InvalidArgs` with path `type`, `userId` or `data...` (see `payload`).
    Raises ValueError if `inbox` is not `user_id`'s inbox (a programming error).
    """
    check_type(type)
    check_user_id(user_id)
    stored = check_data(data)
    if inbox.aggregate_id != inbox_id(user_id):
        raise ValueError(f"{inbox.aggregate_id} is not the inbox of the given user")
    expire_due(inbox)
    state = inbox.state
    number = state.count
    expires_at = inbox.now + NOTIFICATION_TTL_MS
    earliest = state.next_expiry_at
    nid = notification_id(inbox.aggregate_id, number)
    inbox.emit(
        NotificationAdded,
        notification_id=nid,
        number=number,
        type=type,
        user_id=user_id,
        data=stored,
        expires_at=expires_at,
        next_expiry_at=expires_at if earliest is None else min(earliest, expires_at),
    )
    return nid


def emit_webhook_event(d: Inbox, args: EmitWebhookEventArgs) -> str:
    """webhooks:emitWebhookEvent -> the notification's id. Only the backend (admin key) may
    emit: Unauthenticated for anonymous callers, Forbidden for users, before any field rule."""
    require_authenticated(d.identity)
    if not d.identity.is_admin:
        raise Forbidden("Only the backend (admin key) may emit webhook events.")
    return notify(d, type=args.type, user_id=args.user_id, data=args.data)


def expire_due(inbox: Inbox) -> None:
    """Remove every notification whose `expires_at` has come (<= now), in one event that
    moves the expiry timer to the next expiry; emits nothing if none is due."""
    state = inbox.state
    due_by = state.next_expiry_at
    if due_by is None or due_by > inbox.now:
        return
    assert state.user_id is not None
    expired = sorted(
        (n for n in state.notifications.values() if n.expires_at <= inbox.now),
        key=lambda n: n.number,
    )
    later = [n.expires_at for n in state.notifications.values() if n.expires_at > inbox.now]
    inbox.emit(
        NotificationsExpired,
        notification_ids=tuple(n.id for n in expired),
        user_id=state.user_id,
        next_expiry_at=min(later, default=None),
    )


def on_timer(d: Inbox, key: str) -> None:
    """The inbox's expiry timer fell due: remove what has expired. A stale or early firing
    (nothing due at `d.now`) emits nothing."""
    if key == EXPIRY_TIMER:
        expire_due(d)
