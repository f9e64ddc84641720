"""The inbox aggregate's invariants, checked in full (O(n)) after every command in tests and
wherever the engine chooses to (`Aggregate.check_invariants`).

`check_invariants(state)` raises AssertionError naming the first broken rule; it never changes
anything. The rules:

1. an inbox that never received a notification is exactly the initial state;
2. every notification is the inbox user's, keyed by its own id, which is the inbox's child id
   for its number, and that number is below `count`;
3. every notification lives exactly `NOTIFICATION_TTL_MS`;
4. `next_expiry_at` is the earliest live expiry (None when the inbox is empty), which is what
   the expiry timer is armed for.
"""

from __future__ import annotations

from domain.notifications.state import (
    INITIAL,
    NOTIFICATION_TTL_MS,
    InboxState,
    inbox_id,
    notification_id,
)


def check_invariants(state: InboxState) -> None:
    """Raise AssertionError (with a precise message) if `state` breaks an invariant."""
    if state.user_id is None:
        if state != INITIAL:
            raise AssertionError("an inbox without a user holds notifications or a counter")
        return
    inbox = inbox_id(state.user_id)
    numbers: set[int] = set()
    for key, n in state.notifications.items():
        if key != n.id or n.id != notification_id(inbox, n.number):
            raise AssertionError(f"notification {key} is not keyed by its inbox child id")
        if not 0 <= n.number < state.count:
            raise AssertionError(f"notification {n.id} has number {n.number} >= {state.count}")
        if n.number in numbers:
            raise AssertionError(f"two notifications have number {n.number}")
        numbers.add(n.number)
        if n.user_id != state.user_id:
            raise AssertionError(f"notification {n.id} belongs to another user")
        if n.expires_at != n.created_at + NOTIFICATION_TTL_MS:
            raise AssertionError(f"notification {n.id} does not live exactly 24 hours")
    earliest = min((n.expires_at for n in state.notifications.values()), default=None)
    if state.next_expiry_at != earliest:
        raise AssertionError(
            f"next_expiry_at is {state.next_expiry_at}, the earliest expiry is {earliest}"
        )
