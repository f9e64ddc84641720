"""The event-queue aggregate: one actor per ticketed event, stream `event/ev_...`."""

from __future__ import annotations

from domain.model import Aggregate
from domain.ticketing.commands import on_timer
from domain.ticketing.invariants import check_invariants
from domain.ticketing.state import INITIAL, EventQueueState, evolve

EVENT_QUEUE: Aggregate[EventQueueState] = Aggregate(
    kind="event",
    id_prefix="ev",
    state_type=EventQueueState,
    initial=INITIAL,
    evolve=evolve,
    on_timer=on_timer,
    check_invariants=check_invariants,
    # 2: `offer_blocks` holds bit masks (it held tuples of join numbers)
    state_version=2,
)
