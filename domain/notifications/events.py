"""The facts journaled on an inbox stream (`inbox/ib_...`): one user's notifications.

Class names are journal `type`s, unique across Turnstile and never renamed. The inbox has one
durable timer, `EXPIRY_TIMER`, always armed for the earliest expiry among its live
notifications (and disarmed when there is none): each event carries the inbox's earliest expiry
after it, `next_expiry_at`, so the timer follows from the event alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import immutables

from domain.model import Event, TimerChange

#: The key of the inbox's one expiry timer.
EXPIRY_TIMER = "expiry"


@attrs.frozen(kw_only=True)
class NotificationAdded(Event):
    """A notification for `user_id` arrived; it is the inbox's `number`th (0-based) and lives
    until `expires_at` (24 hours after `at`).

    The expiry timer moves only when this notification is now the earliest to expire (the
    inbox was empty, or its clock went backwards); otherwise it stays where it was.
    """

    notification_id: str
    number: int
    type: str
    user_id: str
    data: immutables.Map[str, Any]
    expires_at: int
    next_expiry_at: int

    def timer_changes(self) -> Iterable[TimerChange]:
        if self.next_expiry_at != self.expires_at:
            return ()
        return (TimerChange(key=EXPIRY_TIMER, due_at=self.next_expiry_at),)


@attrs.frozen(kw_only=True)
class NotificationsExpired(Event):
    """The notifications `notification_ids` (in arrival order) reached their expiry and are
    removed; the timer moves to `next_expiry_at`, or is disarmed when nothing is left."""

    notification_ids: tuple[str, ...]
    user_id: str
    next_expiry_at: int | None

    def timer_changes(self) -> Iterable[TimerChange]:
        return (TimerChange(key=EXPIRY_TIMER, due_at=self.next_expiry_at),)


#: Every event type of the inbox stream.
INBOX_EVENTS: tuple[type[Event], ...] = (NotificationAdded, NotificationsExpired)
