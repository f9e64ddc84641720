"""The event-queue aggregate's invariants, checked in full (O(n)) after every event in tests and
wherever the engine chooses to (`Aggregate.check_invariants`).

`check_invariants(state)` raises AssertionError naming the first broken rule; it never changes
anything. The rules, from docs/reference/functions.md and the counters the hot path relies on:

1. valid + used tickets + live offers <= totalTickets;
2. a user holds at most one open (waiting or offered) entry, and never one beside a valid or
   used ticket; a user holds at most one valid or used ticket;
3. while anyone waits, no seat is free (every freed seat was offered to the head of the line);
4. the counters, the FIFO bounds and the indexes agree with the maps;
5. a cancelled event has no valid ticket, no open entry and no one in its live queue.
"""

from __future__ import annotations

from collections import Counter

from domain.ticketing.state import (
    HELD_TICKET_STATUSES,
    OPEN_ENTRY_STATUSES,
    OPEN_QUEUE_STATUSES,
    EventQueueState,
    offer_bit,
    queue_entry_id,
    ticket_id,
    waiting_list_id,
)


def check_invariants(state: EventQueueState) -> None:
    """Raise AssertionError (with a precise message) if `state` breaks an invariant."""
    if state.event is None:
        if state != EventQueueState():
            raise AssertionError(
                "a stream without an event holds waiting-list, ticket or queue data"
            )
        return
    _check_tickets(state)
    _check_waiting_list(state)
    _check_capacity(state)
    _check_queue(state)
    if state.event.is_cancelled:
        _check_cancelled(state)


def _check_capacity(state: EventQueueState) -> None:
    assert state.event is not None
    total = state.event.total_tickets
    held = state.purchased_count + state.active_offers
    if held > total:
        raise AssertionError(
            f"oversold: {state.purchased_count} valid/used tickets + {state.active_offers} live "
            f"offers > totalTickets {total}"
        )
    if state.waiting_count and held < total:
        raise AssertionError(
            f"{state.waiting_count} entries wait while {total - held} seats are free"
        )


def _check_tickets(state: EventQueueState) -> None:
    assert state.event is not None
    held = [t for t in state.tickets.values() if t.status in HELD_TICKET_STATUSES]
    if state.purchased_count != len(held):
        raise AssertionError(
            f"purchased_count {state.purchased_count} != {len(held)} valid/used tickets"
        )
    if state.ticket_count != len(state.tickets):
        raise AssertionError(f"ticket_count {state.ticket_count} != {len(state.tickets)} tickets")
    for n in range(state.ticket_count):
        if ticket_id(state.event.id, n) not in state.tickets:
            raise AssertionError(f"ticket number {n} is missing")
    holders = Counter(t.user_id for t in held)
    for user_id, count in holders.items():
        if count > 1:
            raise AssertionError(f"user {user_id} holds {count} valid/used tickets")
    indexed = sum(len(ids) for ids in state.tickets_by_user.values())
    if indexed != len(state.tickets):
        raise AssertionError(f"tickets_by_user lists {indexed} tickets, not {len(state.tickets)}")
    for user_id, ids in state.tickets_by_user.items():
        for tid in ids:
            if state.tickets[tid].user_id != user_id:
                raise AssertionError(f"ticket {tid} is indexed under user {user_id}")
    if len(state.ticket_by_payment_intent) != len(state.tickets):
        raise AssertionError("ticket_by_payment_intent does not index every ticket exactly once")
    for intent, tid in state.ticket_by_payment_intent.items():
        if state.tickets[tid].payment_intent_id != intent:
            raise AssertionError(f"payment intent {intent} indexes ticket {tid} of another intent")


def _check_waiting_list(state: EventQueueState) -> None:
    assert state.event is not None
    if state.entry_count != len(state.entries):
        raise AssertionError(f"entry_count {state.entry_count} != {len(state.entries)} entries")
    if not 0 <= state.waiting_head <= state.entry_count:
        raise AssertionError(f"waiting_head {state.waiting_head} outside 0..{state.entry_count}")
    offered: dict[str, int] = {}
    for n in range(state.entry_count):
        entry = state.entries.get(waiting_list_id(state.event.id, n))
        if entry is None or entry.number != n:
            raise AssertionError(f"waiting-list entry number {n} is missing")
        should_wait = n >= state.waiting_head
        if (entry.status == "waiting") != should_wait:
            raise AssertionError(
                f"entry {entry.id} (number {n}) is {entry.status}, but the waiting entries are "
                f"numbers {state.waiting_head}..{state.entry_count - 1}"
            )
        if entry.status == "offered":
            offered[entry.id] = n
            if entry.offer_expires_at is None:
                raise AssertionError(f"offered entry {entry.id} has no offer_expires_at")
    if dict(state.live_offers.items()) != offered:
        raise AssertionError(
            f"live_offers {sorted(state.live_offers)} != offered entries {sorted(offered)}"
        )
    blocks: dict[str, int] = {}
    for number in offered.values():
        key, bit = offer_bit(number)
        blocks[key] = blocks.get(key, 0) | bit
    if dict(state.offer_blocks.items()) != blocks:
        raise AssertionError(f"offer_blocks do not group the offered numbers {sorted(blocks)}")
    open_users: Counter[str] = Counter()
    for user_id, ids in state.entries_by_user.items():
        for wid in ids:
            if state.entries[wid].user_id != user_id:
                raise AssertionError(f"entry {wid} is indexed under user {user_id}")
        numbers = [state.entries[wid].number for wid in ids]
        if numbers != sorted(numbers):
            raise AssertionError(f"entries of user {user_id} are not in join order")
        open_users[user_id] = sum(
            1 for wid in ids if state.entries[wid].status in OPEN_ENTRY_STATUSES
        )
    if sum(len(ids) for ids in state.entries_by_user.values()) != len(state.entries):
        raise AssertionError("entries_by_user does not index every entry exactly once")
    for user_id, count in open_users.items():
        if count > 1:
            raise AssertionError(f"user {user_id} holds {count} open waiting-list entries")
        last = state.entries[state.entries_by_user[user_id][-1]]
        if count == 1 and last.status not in OPEN_ENTRY_STATUSES:
            raise AssertionError(f"user {user_id}'s open entry is not their latest")
        held = [
            tid
            for tid in state.tickets_by_user.get(user_id, ())
            if state.tickets[tid].status in HELD_TICKET_STATUSES
        ]
        if count and held:
            raise AssertionError(f"user {user_id} holds ticket {held[0]} and an open entry")


def _check_queue(state: EventQueueState) -> None:
    assert state.event is not None
    if state.queue_count != len(state.queue):
        raise AssertionError(f"queue_count {state.queue_count} != {len(state.queue)} entries")
    holes = set(state.queue_holes)
    if list(state.queue_holes) != sorted(holes) or any(
        not state.queue_head < h < state.queue_count for h in holes
    ):
        raise AssertionError(f"queue_holes {state.queue_holes} are not sorted inside the line")
    open_users: Counter[str] = Counter()
    for n in range(state.queue_count):
        entry = state.queue.get(queue_entry_id(state.event.id, n))
        if entry is None or entry.number != n:
            raise AssertionError(f"queue entry number {n} is missing")
        should_wait = n >= state.queue_head and n not in holes
        if (entry.status == "waiting") != should_wait:
            raise AssertionError(
                f"queue entry {entry.id} (number {n}) is {entry.status} against head "
                f"{state.queue_head} and holes {state.queue_holes}"
            )
        if entry.status in OPEN_QUEUE_STATUSES:
            open_users[entry.user_id] += 1
            if state.queue_entry_by_user.get(entry.user_id) != entry.id:
                raise AssertionError(f"open queue entry {entry.id} is not its user's latest")
    for user_id, count in open_users.items():
        if count > 1:
            raise AssertionError(f"user {user_id} has {count} open live-queue entries")


def _check_cancelled(state: EventQueueState) -> None:
    if any(t.status == "valid" for t in state.tickets.values()):
        raise AssertionError("a cancelled event still has valid tickets")
    if state.waiting_count or state.active_offers:
        raise AssertionError("a cancelled event still has open waiting-list entries")
    if any(e.status in OPEN_QUEUE_STATUSES for e in state.queue.values()):
        raise AssertionError("a cancelled event still has people in its live queue")
