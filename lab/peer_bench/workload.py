"""The two workloads, identical for every contender, and the checks of their outcome.

- `onsale`: one event with `tickets` seats goes on sale; `users` users each join its waiting
  list once. Every command of the run is on that one hot event.
- `spread`: `events` events with `tickets` seats each; each of the `users` users joins the
  waiting list of one of them, picked at random (the same pick for every contender:
  `event_of`). The commands are spread over many events, so a contender that serializes the
  commands of one event can still run many events' commands at once.

`clients` concurrent clients run closed loops: a client takes the next user, joins, and if the
join answered "offered" purchases at once, then takes the next user. Nothing expires or is
released during a run (offers last 30 minutes), so the first `tickets` joiners of each event are
offered a seat and buy it, and everyone after them waits.

A contender counts a command only once it is acknowledged, and acknowledges only what is
committed and fsynced. `check` then compares what the clients were told (`Replies`) with the
contender's final state (`FinalState`): it is the same function for every contender, so a
contender that oversells, offers a seat twice or loses an acknowledged command fails the run
rather than posting a figure. It checks each event on its own, with the same rules, against the
replies of the users who joined that event.
"""

from __future__ import annotations

import functools
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from lab.figures import percentile

#: The join rate limit every contender enforces (Turnstile's `events:joinWaitingList` policy):
#: at most 3 joins per user in a fixed 30-minute window, taken in the same transaction as the join.
JOIN_LIMIT = 3
JOIN_WINDOW_MS = 30 * 60 * 1000
#: How long an offer stays live (domain.ticketing.state.OFFER_DURATION_MS).
OFFER_MS = 30 * 60 * 1000
PRICE = 4_500

#: The statuses of a waiting-list entry, the same words in every contender.
WAITING, OFFERED, PURCHASED = "waiting", "offered", "purchased"


WORKLOADS = ("onsale", "spread")


@attrs.frozen(kw_only=True)
class Sizes:
    #: Seats of each event.
    tickets: int
    users: int
    clients: int
    #: Median over this many rounds per contender (rounds interleave the contenders).
    rounds: int
    #: A contender's round stops taking new users after this many seconds (then it is reported
    #: as incomplete, and its figures cover what was done).
    deadline_s: float
    #: How many events are on sale (1 for `onsale`).
    events: int = 1
    workload: str = "onsale"

    @property
    def offers(self) -> int:
        """How many users a complete run offers a seat (and so how many purchases it makes)."""
        per_event = Counter(event_of(self, i) for i in range(self.users))
        return sum(min(self.tickets, n) for n in per_event.values())


FULL = Sizes(tickets=1_000, users=10_000, clients=64, rounds=2, deadline_s=120.0)
QUICK = Sizes(tickets=100, users=1_000, clients=16, rounds=1, deadline_s=60.0)
FULL_SPREAD = Sizes(
    tickets=10, users=10_000, clients=64, rounds=2, deadline_s=120.0, events=1_000,
    workload="spread",
)  # fmt: skip
QUICK_SPREAD = Sizes(
    tickets=10, users=1_000, clients=16, rounds=1, deadline_s=60.0, events=100, workload="spread"
)


@functools.cache
def _picks(events: int, users: int) -> tuple[int, ...]:
    pick = random.Random(f"spread {events} {users}")  # the same picks in every process
    return tuple(pick.randrange(events) for _ in range(users))


def event_of(sizes: Sizes, index: int) -> int:
    """The event (0 .. events - 1) that user number `index` joins."""
    if sizes.events == 1:
        return 0
    return _picks(sizes.events, sizes.users)[index]


def user_index(user: str) -> int:
    return int(user.removeprefix("user"))


def user_name(index: int) -> str:
    return f"user{index:06d}"


def payment_intent(user: str) -> str:
    return f"pi_{user}"


def now_ms() -> int:
    return int(time.time() * 1000)


class Users:
    """The users still to run, handed out in order to whichever client asks next (thread-safe
    under the GIL: `next` on a range iterator is atomic), until the deadline."""

    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self._next: Iterator[int] = iter(range(sizes.users))
        self.deadline = time.perf_counter() + sizes.deadline_s
        self.hit_deadline = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if time.perf_counter() > self.deadline:
            self.hit_deadline = True
            raise StopIteration
        return user_name(next(self._next))

    def event_of(self, user: str) -> int:
        """The event (0 .. events - 1) that `user` joins."""
        return event_of(self.sizes, user_index(user))


@attrs.define
class Replies:
    """What the clients were told: each user's join answer, the purchases acknowledged, the
    latency of every acknowledged command (seconds), and refusals by error name."""

    joined: dict[str, str] = attrs.field(factory=dict)
    purchased: dict[str, str] = attrs.field(factory=dict)  # user -> ticket id
    latencies: list[float] = attrs.field(factory=list)
    errors: Counter[str] = attrs.field(factory=Counter)
    retries: int = 0

    @property
    def commands(self) -> int:
        return len(self.joined) + len(self.purchased)


@attrs.frozen(kw_only=True)
class FinalState:
    """A contender's committed state at the end, read back from its own store.

    `entries` maps each user to the statuses of their waiting-list entries in join order;
    `tickets` lists (user, waiting-list entry) of every ticket; `purchased_count` is the
    contender's own counter of sold seats (the one its capacity rule reads)."""

    total_tickets: int
    purchased_count: int
    entries: dict[str, list[str]]
    tickets: list[tuple[str, str]]


def check(
    sizes: Sizes,
    replies: Replies,
    final: FinalState | Sequence[FinalState],
    *,
    complete: bool,
) -> list[str]:
    """The problems with one run, or [] if it is correct: for each event, nothing oversold,
    every acknowledged command reflected in the final state, every user's final status what they
    were told, no seat offered twice. `final` is the one event's state (`onsale`) or every
    event's, by event number (0 .. events - 1). `complete` is False when the run stopped at its
    deadline: users never run are then not held against it."""
    finals = [final] if isinstance(final, FinalState) else list(final)
    if len(finals) != sizes.events:
        return [f"final state of {len(finals)} events, not {sizes.events}"]
    if sizes.events == 1:
        return _check_event(sizes, replies, finals[0], complete=complete)
    users: list[list[str]] = [[] for _ in range(sizes.events)]
    for index in range(sizes.users):
        users[event_of(sizes, index)].append(user_name(index))
    problems: list[str] = []
    failed = 0
    for number, (mine, state) in enumerate(zip(users, finals, strict=True)):
        members = set(mine)
        part = Replies(
            joined={u: s for u, s in replies.joined.items() if u in members},
            purchased={u: t for u, t in replies.purchased.items() if u in members},
        )
        one = Sizes(
            tickets=sizes.tickets,
            users=len(mine),
            clients=sizes.clients,
            rounds=sizes.rounds,
            deadline_s=sizes.deadline_s,
        )
        found = _check_event(one, part, state, complete=complete)
        failed += bool(found)
        problems += [f"event {number}: {p}" for p in found[:3]]
    if failed > 3:
        problems = [f"{failed} of {sizes.events} events fail their checks", *problems[:9]]
    stray = set(replies.joined) - {u for mine in users for u in mine}
    if stray:
        problems.append(f"{len(stray)} joins of users not in the workload")
    if replies.errors:
        problems.append(f"refused commands: {dict(replies.errors)}")
    return problems


def _check_event(sizes: Sizes, replies: Replies, final: FinalState, *, complete: bool) -> list[str]:
    """`check` of one event, with `sizes.users` the users who join it."""
    problems: list[str] = []
    sold = len(final.tickets)
    if final.total_tickets != sizes.tickets:
        problems.append(f"totalTickets is {final.total_tickets}, not {sizes.tickets}")
    if sold > final.total_tickets:
        problems.append(f"oversold: {sold} tickets for {final.total_tickets} seats")
    if final.purchased_count != sold:
        problems.append(f"purchased counter {final.purchased_count} != {sold} tickets")
    owners = Counter(user for user, _ in final.tickets)
    doubled = [u for u, n in owners.items() if n > 1]
    if doubled:
        problems.append(f"{len(doubled)} users hold more than one ticket (e.g. {doubled[0]})")
    per_entry = Counter(entry for _, entry in final.tickets)
    if any(n > 1 for n in per_entry.values()):
        problems.append("one waiting-list entry was sold more than one ticket")
    told_offered = [u for u, status in replies.joined.items() if status == OFFERED]
    if len(told_offered) > sizes.tickets:
        problems.append(f"{len(told_offered)} offers made for {sizes.tickets} seats")
    if complete:
        expected_offers = min(sizes.tickets, sizes.users)
        if len(replies.joined) != sizes.users:
            problems.append(f"{len(replies.joined)} of {sizes.users} joins acknowledged")
        if len(told_offered) != expected_offers:
            problems.append(f"{len(told_offered)} users offered a seat, not {expected_offers}")
    if replies.errors:
        problems.append(f"refused commands: {dict(replies.errors)}")
    unknown = set(final.entries) - set(replies.joined)
    if complete and unknown:
        problems.append(f"{len(unknown)} entries of users whose join was never acknowledged")
    bad: Counter[str] = Counter()
    for user, told in replies.joined.items():
        statuses = final.entries.get(user, [])
        if len(statuses) != 1:
            bad[f"{len(statuses)} entries instead of 1"] += 1
            continue
        want = PURCHASED if told == OFFERED and user in replies.purchased else told
        if statuses[0] != want:
            bad[f"told {told!r}, final status {statuses[0]!r}"] += 1
        if (owners[user] == 1) != (want == PURCHASED):
            bad[f"final status {statuses[0]!r} with {owners[user]} tickets"] += 1
    for user in replies.purchased:
        if replies.joined.get(user) != OFFERED:
            bad["purchased without being told of an offer"] += 1
    if complete and len(replies.purchased) != len(told_offered):
        problems.append(f"{len(replies.purchased)} purchases for {len(told_offered)} offers")
    problems += [f"{n} users: {what}" for what, n in sorted(bad.items())]
    return problems


def summarize(
    contender: str,
    sizes: Sizes,
    replies: Replies,
    final: FinalState | Sequence[FinalState],
    seconds: float,
    complete: bool,
    **details: Any,
) -> dict[str, Any]:
    """One round's figures (JSON-ready) with the outcome of `check`."""
    lat = sorted(replies.latencies)
    return {
        "contender": contender,
        "workload": sizes.workload,
        "commands": replies.commands,
        "joins": len(replies.joined),
        "purchases": len(replies.purchased),
        "seconds": seconds,
        "cmds_per_s": replies.commands / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(lat, 50) * 1e3,
        "p99_ms": percentile(lat, 99) * 1e3,
        "max_ms": (lat[-1] if lat else float("nan")) * 1e3,
        "retries": replies.retries,
        "complete": complete,
        "problems": check(sizes, replies, final, complete=complete),
        **details,
    }
