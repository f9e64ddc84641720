"""Where people stand: open entries, held tickets, positions in line and estimated times.

Read-only helpers over `EventQueueState`, shared by commands and queries; each is O(1) or
O(log n) except where its docstring says otherwise.
"""

from __future__ import annotations

from bisect import bisect_left

from domain.ticketing.state import (
    HELD_TICKET_STATUSES,
    OFFER_BLOCK,
    OPEN_ENTRY_STATUSES,
    OPEN_QUEUE_STATUSES,
    EventQueueState,
    QueueEntry,
    Ticket,
    WaitingListEntry,
    queue_entry_id,
)


def open_entry(state: EventQueueState, user_id: str) -> WaitingListEntry | None:
    """The user's waiting or offered entry; only their latest entry can be open."""
    ids = state.entries_by_user.get(user_id)
    if not ids:
        return None
    entry = state.entries[ids[-1]]
    return entry if entry.status in OPEN_ENTRY_STATUSES else None


def held_ticket(state: EventQueueState, user_id: str) -> Ticket | None:
    """The user's valid or used ticket (a user holds at most one), else None."""
    for tid in reversed(state.tickets_by_user.get(user_id, ())):
        ticket = state.tickets[tid]
        if ticket.status in HELD_TICKET_STATUSES:
            return ticket
    return None


def waiting_position(state: EventQueueState, entry: WaitingListEntry) -> int:
    """1 + the open entries that joined before `entry` (people ahead + 1).

    Offers go to the head of the line, so every offered entry joined before every waiting one:
    a waiting entry's position is O(1); other entries count the live offers ahead of them,
    block by block (O(blocks holding offers)).
    """
    if entry.status == "waiting":
        return state.active_offers + (entry.number - state.waiting_head) + 1
    own = entry.number // OFFER_BLOCK
    below = (1 << (entry.number % OFFER_BLOCK)) - 1  # the bits of the numbers before it
    ahead = 0
    for key, offered in state.offer_blocks.items():
        block = int(key)
        if block < own:
            ahead += offered.bit_count()
        elif block == own:
            ahead += (offered & below).bit_count()
    return ahead + 1


def open_queue_entry(state: EventQueueState, user_id: str) -> QueueEntry | None:
    qid = state.queue_entry_by_user.get(user_id)
    if qid is None:
        return None
    entry = state.queue[qid]
    return entry if entry.status in OPEN_QUEUE_STATUSES else None


def queue_position(state: EventQueueState, entry: QueueEntry) -> int:
    """Rank among the waiting entries (1 = next to be called); 0 for anyone else."""
    if entry.status != "waiting":
        return 0
    return entry.number - state.queue_head - bisect_left(state.queue_holes, entry.number) + 1


def estimated_time(state: EventQueueState, position: int) -> int:
    """When a waiter at `position` should be called (ms epoch), a pure function of the state.

    The anchor is the later of the last `callNext` and the first current waiter's join time
    (so a queue that ran empty restarts its estimate from its new first waiter); each place
    ahead adds the event's average service time.
    """
    assert state.event is not None
    anchor = state.last_called_at
    if state.queue_waiting_count:
        head = state.queue[queue_entry_id(state.event.id, state.queue_head)]
        anchor = head.joined_at if anchor is None else max(anchor, head.joined_at)
    minutes = state.event.average_service_minutes
    return (anchor or 0) + (position - 1) * minutes * 60_000
