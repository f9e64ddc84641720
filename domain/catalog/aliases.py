"""The seeds' own function names that differ from the built-in app's: `(alias, function)` pairs
that `domain.catalog.BOOKING` serves besides each function's own name.

An alias is here only where the seed's function takes the same args as the function it names
and answers the same result (or a superset of it); a seed function whose args or result differ
is not served under its name, and docs/reference/seed-names.md says which and why.
`tests/test_seed_names.py` holds this table and that page to each other.
"""

from __future__ import annotations

SEED_ALIASES: tuple[tuple[str, str], ...] = (
    # 002, Ticket Hub: its waiting list lives in `convex/waiting_list.ts`.
    # `{eventId, userId}` -> the user's entry not expired, with `position` (1 = next), or null.
    ("waiting_list:getQueuePosition", "waitingList:getQueuePosition"),
    # `{eventId, waitingListId}`: the holder gives a live offer back, the next in line is
    # offered. The seed's excerpt does not show it; it is the same file's other public function.
    ("waiting_list:releaseTicket", "waitingList:releaseTicket"),
)
