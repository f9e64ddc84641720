"""Notifications: one inbox actor per user, each notification removed by a durable
timer exactly 24 hours after it arrived.

`NOTIFICATIONS` declares the aggregate and the client-callable functions; other modules drop a
notification into a user's inbox within their own command with
`notify(d.co_decide(INBOX, inbox_id(user_id)), type=..., user_id=..., data=...)`.
"""

from domain.notifications.aggregate import INBOX
from domain.notifications.commands import notify
from domain.notifications.events import (
    EXPIRY_TIMER,
    INBOX_EVENTS,
    NotificationAdded,
    NotificationsExpired,
)
from domain.notifications.invariants import check_invariants
from domain.notifications.module import MUTATIONS, NOTIFICATIONS, QUERIES
from domain.notifications.payload import (
    MAX_DATA_BYTES,
    MAX_DATA_DEPTH,
    MAX_TYPE_LENGTH,
    MAX_USER_ID_LENGTH,
)
from domain.notifications.state import (
    NOTIFICATION_TTL_MS,
    InboxState,
    Notification,
    evolve,
    inbox_id,
    notification_id,
)

__all__ = [
    "EXPIRY_TIMER",
    "INBOX",
    "INBOX_EVENTS",
    "MAX_DATA_BYTES",
    "MAX_DATA_DEPTH",
    "MAX_TYPE_LENGTH",
    "MAX_USER_ID_LENGTH",
    "MUTATIONS",
    "NOTIFICATIONS",
    "NOTIFICATION_TTL_MS",
    "QUERIES",
    "InboxState",
    "Notification",
    "NotificationAdded",
    "NotificationsExpired",
    "check_invariants",
    "evolve",
    "inbox_id",
    "notification_id",
    "notify",
]
