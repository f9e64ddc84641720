"""The inbox aggregate: one actor per user, stream `inbox/ib_<digest of the user id>`."""

from __future__ import annotations

from domain.model import Aggregate
from domain.notifications.commands import on_timer
from domain.notifications.invariants import check_invariants
from domain.notifications.state import INBOX_PREFIX, INITIAL, InboxState, evolve

INBOX: Aggregate[InboxState] = Aggregate(
    kind="inbox",
    id_prefix=INBOX_PREFIX,
    state_type=InboxState,
    initial=INITIAL,
    evolve=evolve,
    on_timer=on_timer,
    check_invariants=check_invariants,
)
