"""The inbox aggregate's state: one user's live notifications.

One inbox per user, stream `inbox/ib_<digest>`, where the digest is a BLAKE2b hash of the user
id: stream ids carry no personal data, and any module can find a user's inbox from the user id
alone (`inbox_id`). Notification ids are child ids of the inbox (`nt_<digest>_<n>`, `n` the
inbox's counter), so replay reproduces them exactly.

A notification has no lifecycle beyond "live" until it expires, when it leaves the state: the
inbox holds only live notifications. `next_expiry_at` is the earliest of their `expires_at`
(None when empty); it is also when the inbox's expiry timer is armed for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import attrs
import immutables

from domain.ids import child_id
from domain.model import Event, replace
from domain.notifications.events import NotificationAdded, NotificationsExpired

#: A notification lives exactly this long (24 hours; docs/reference/limits.md).
NOTIFICATION_TTL_MS = 24 * 60 * 60 * 1000

INBOX_PREFIX = "ib"
NOTIFICATION_PREFIX = "nt"


def inbox_id(user_id: str) -> str:
    """The id of `user_id`'s inbox (ids are `[a-z0-9]`, and hold no personal data: hashed)."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=12).hexdigest()
    return f"{INBOX_PREFIX}_{digest}"


def notification_id(inbox: str, number: int) -> str:
    return child_id(NOTIFICATION_PREFIX, inbox, number)


def _empty() -> immutables.Map[Any, Any]:
    return immutables.Map()


@attrs.frozen(kw_only=True)
class Notification:
    """One live notification. `data` is JSON (checked by `payload.check_data`): an object whose
    nested values are plain dicts, lists and scalars, never changed after it is stored."""

    id: str
    number: int
    type: str
    user_id: str
    data: immutables.Map[str, Any]
    created_at: int
    expires_at: int


@attrs.frozen(kw_only=True)
class InboxState:
    """Everything one inbox owns. `user_id` is None until the first notification arrives;
    `count` is how many notifications ever arrived (the next one's number)."""

    user_id: str | None = None
    notifications: immutables.Map[str, Notification] = attrs.field(factory=_empty)
    count: int = 0
    next_expiry_at: int | None = None


INITIAL = InboxState()


def evolve(state: InboxState, event: Event) -> InboxState:
    """The state after `event`: pure, O(log n) per notification added or removed. Raises
    TypeError for an event type this aggregate does not own."""
    fold = _FOLDS.get(type(event))
    if fold is None:
        raise TypeError(f"{type(event).__name__} is not an inbox event")
    return fold(state, event)


def _added(state: InboxState, e: NotificationAdded) -> InboxState:
    notification = Notification(
        id=e.notification_id,
        number=e.number,
        type=e.type,
        user_id=e.user_id,
        data=e.data,
        created_at=e.at,
        expires_at=e.expires_at,
    )
    return replace(
        state,
        user_id=e.user_id,
        notifications=state.notifications.set(notification.id, notification),
        count=e.number + 1,
        next_expiry_at=e.next_expiry_at,
    )


def _expired(state: InboxState, e: NotificationsExpired) -> InboxState:
    with state.notifications.mutate() as live:
        for nid in e.notification_ids:
            del live[nid]
        remaining = live.finish()
    return replace(state, notifications=remaining, next_expiry_at=e.next_expiry_at)


_FOLDS: dict[type[Event], Callable[[InboxState, Any], InboxState]] = {
    NotificationAdded: _added,
    NotificationsExpired: _expired,
}
