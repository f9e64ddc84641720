"""The `eventsourcing` library's side of the `onsale` workload, on its SQLite persistence module.

The same aggregate logic as Turnstile's event queue, written the library's way: an `EventQueue`
aggregate whose decorated event methods (`WaitingListJoined`, `OfferMade`, `TicketPurchased`)
mutate it both when triggered and when replayed, and a `JoinLimiter` aggregate per user (3 joins
per 30-minute fixed window, as Turnstile's rate limit) saved in the same `Application.save` call,
so the join and its rate-limit take commit in one SQLite transaction. Commands check every rule
before triggering any event, so a refused command changes nothing.

Persistence: `PERSISTENCE_MODULE=eventsourcing.sqlite` on a file in a temporary directory. The
library puts the file in WAL mode and leaves `synchronous` at SQLite's default (FULL, read back and
reported), and commits each `save` in its own transaction, so a command returns only after its
events are fsynced.

Concurrency: one client, sequential. The library has no group commit (each `save` is one
transaction and one fsync) and SQLite admits one writer at a time, so threads could overlap only
their Python work with another thread's fsync, never two commits; and sharing one hot aggregate
between threads needs the repository's deep copy from its cache (O(state) per command: up to
10,000 waiting-list entries) plus retries of version conflicts. So the fastest configuration is
the one used: the repository caches aggregates
(`AGGREGATE_CACHE_MAXSIZE`) without deep-copying them (`DEEPCOPY_FROM_AGGREGATE_CACHE=n`), which
is safe with one thread because commands never trigger an event they then refuse.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from lab.peer_bench.workload import (
    JOIN_LIMIT,
    JOIN_WINDOW_MS,
    OFFER_MS,
    OFFERED,
    PRICE,
    PURCHASED,
    WAITING,
    FinalState,
    Replies,
    Sizes,
    Users,
    now_ms,
    payment_intent,
    summarize,
)

LIMITER_NAMESPACE = uuid.UUID("6f0d2f4e-5b8a-4a37-9a0c-2d4c1e7b9f10")


class Unavailable(Exception):
    """The eventsourcing library is not installed here."""


class Refused(Exception):
    """A command the rules refuse (the name of Turnstile's error code in `code`)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def require_available() -> None:
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        raise Unavailable("eventsourcing not installed (pip install -e '.[peers]')") from None


def build() -> tuple[type[Any], type[Any], type[Any]]:
    """The aggregates and the application (defined here, so importing this module does not need
    the library)."""
    from eventsourcing.application import AggregateNotFoundError, Application
    from eventsourcing.domain import Aggregate, event

    class EventQueue(Aggregate):
        """One ticketed event and its waiting list (the waiting entries are the join numbers
        `waiting_head .. entry_count - 1`, as in Turnstile's state)."""

        @event("Created")
        def __init__(self, name: str, total_tickets: int, price: int) -> None:
            self.name = name
            self.total_tickets = total_tickets
            self.price = price
            self.is_cancelled = False
            self.entries: dict[str, dict[str, Any]] = {}
            self.open_entry_by_user: dict[str, str] = {}
            self.ticket_by_user: dict[str, str] = {}
            self.tickets: dict[str, dict[str, Any]] = {}
            self.ticket_by_payment: dict[str, str] = {}
            self.entry_count = 0
            self.waiting_head = 0
            self.purchased_count = 0
            self.active_offers = 0

        @property
        def remaining_tickets(self) -> int:
            return max(0, self.total_tickets - self.purchased_count - self.active_offers)

        def require_can_join(self, user_id: str) -> None:
            if self.is_cancelled:
                raise Refused("Conflict")
            if user_id in self.open_entry_by_user or user_id in self.ticket_by_user:
                raise Refused("Conflict")

        def join(self, user_id: str, now: int) -> tuple[str, str]:
            """-> (status, waiting-list id); call `require_can_join` first."""
            self.require_can_join(user_id)
            wid = f"wl_{self.entry_count}"
            self.joined(waiting_list_id=wid, user_id=user_id, number=self.entry_count, at=now)
            self.offer_next(now)
            return str(self.entries[wid]["status"]), wid

        def offer_next(self, now: int) -> None:
            while self.remaining_tickets > 0 and self.waiting_head < self.entry_count:
                self.offered(
                    waiting_list_id=f"wl_{self.waiting_head}", offer_expires_at=now + OFFER_MS
                )

        def purchase(
            self, user_id: str, waiting_list_id: str, payment_intent_id: str, amount: int, now: int
        ) -> str:
            earlier = self.ticket_by_payment.get(payment_intent_id)
            if earlier is not None:
                if self.tickets[earlier]["user_id"] != user_id:
                    raise Refused("Conflict")
                return earlier
            if self.is_cancelled:
                raise Refused("Conflict")
            entry = self.entries.get(waiting_list_id)
            if entry is None:
                raise Refused("NotFound")
            if entry["user_id"] != user_id:
                raise Refused("Forbidden")
            if entry["status"] != OFFERED or now >= entry["offer_expires_at"]:
                raise Refused("Conflict")
            ticket_id = f"tk_{len(self.tickets)}"
            self.purchased(
                ticket_id=ticket_id,
                waiting_list_id=waiting_list_id,
                user_id=user_id,
                payment_intent_id=payment_intent_id,
                amount=amount,
                at=now,
            )
            return ticket_id

        @event("WaitingListJoined")
        def joined(self, waiting_list_id: str, user_id: str, number: int, at: int) -> None:
            self.entries[waiting_list_id] = {
                "user_id": user_id,
                "number": number,
                "status": WAITING,
                "joined_at": at,
                "offer_expires_at": None,
            }
            self.open_entry_by_user[user_id] = waiting_list_id
            self.entry_count += 1

        @event("OfferMade")
        def offered(self, waiting_list_id: str, offer_expires_at: int) -> None:
            entry = self.entries[waiting_list_id]
            entry["status"] = OFFERED
            entry["offer_expires_at"] = offer_expires_at
            self.waiting_head += 1
            self.active_offers += 1

        @event("TicketPurchased")
        def purchased(
            self,
            ticket_id: str,
            waiting_list_id: str,
            user_id: str,
            payment_intent_id: str,
            amount: int,
            at: int,
        ) -> None:
            self.entries[waiting_list_id]["status"] = PURCHASED
            del self.open_entry_by_user[user_id]
            self.tickets[ticket_id] = {
                "user_id": user_id,
                "waiting_list_id": waiting_list_id,
                "status": "valid",
                "payment_intent_id": payment_intent_id,
                "amount": amount,
                "purchased_at": at,
            }
            self.ticket_by_user[user_id] = ticket_id
            self.ticket_by_payment[payment_intent_id] = ticket_id
            self.purchased_count += 1
            self.active_offers -= 1

    class JoinLimiter(Aggregate):
        """One user's join count in the current fixed window."""

        @staticmethod
        def create_id(user_id: str) -> uuid.UUID:
            return uuid.uuid5(LIMITER_NAMESPACE, user_id)

        @event("Started")
        def __init__(self, user_id: str) -> None:
            self.user_id = user_id
            self.window_start = 0
            self.count = 0

        def take(self, now: int) -> None:
            """Count one join, or raise (before triggering anything) past the limit."""
            if self.window_start + JOIN_WINDOW_MS <= now:
                start, count = now, 1
            else:
                start, count = self.window_start, self.count + 1
            if count > JOIN_LIMIT:
                raise Refused("RateLimited")
            self.taken(window_start=start, count=count)

        @event("Taken")
        def taken(self, window_start: int, count: int) -> None:
            self.window_start = window_start
            self.count = count

    class Onsale(Application[uuid.UUID]):
        def create_event(self, name: str, total_tickets: int, price: int) -> uuid.UUID:
            queue = EventQueue(name=name, total_tickets=total_tickets, price=price)
            self.save(queue)
            return uuid.UUID(str(queue.id))

        def join(self, event_id: uuid.UUID, user_id: str) -> tuple[str, str]:
            now = now_ms()
            queue: EventQueue = self.repository.get(event_id)
            queue.require_can_join(user_id)
            limiter: JoinLimiter
            try:
                limiter = self.repository.get(JoinLimiter.create_id(user_id))
            except AggregateNotFoundError:
                limiter = JoinLimiter(user_id=user_id)
            limiter.take(now)
            answer: tuple[str, str] = queue.join(user_id, now)
            self.save(queue, limiter)  # one transaction: the join and its rate-limit take
            return answer

        def purchase(
            self, event_id: uuid.UUID, user_id: str, waiting_list_id: str, payment_intent_id: str
        ) -> str:
            queue: EventQueue = self.repository.get(event_id)
            ticket: str = queue.purchase(
                user_id, waiting_list_id, payment_intent_id, PRICE, now_ms()
            )
            self.save(queue)
            return ticket

    return EventQueue, JoinLimiter, Onsale


def _env(db: Path, cached: bool) -> dict[str, str]:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)}
    if cached:
        env.update(AGGREGATE_CACHE_MAXSIZE="100000", DEEPCOPY_FROM_AGGREGATE_CACHE="n")
    return env


def run(scratch: Path, sizes: Sizes) -> dict[str, Any]:
    """One round on a fresh SQLite file in `scratch` (Unavailable if the library is missing)."""
    require_available()
    from importlib.metadata import version

    _, _, Onsale = build()
    db = scratch / "eventsourcing" / "onsale.db"
    db.parent.mkdir(parents=True)
    app = Onsale(env=_env(db, cached=True))
    with app.recorder.datastore.transaction(commit=False) as cur:
        cur.execute("PRAGMA journal_mode")
        journal_mode = cur.fetchone()[0]
        cur.execute("PRAGMA synchronous")
        synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cur.fetchone()[0]]
    event_id = app.create_event("Onsale", sizes.tickets, PRICE)
    replies = Replies()
    users = Users(sizes)
    perf = time.perf_counter
    started = perf()
    for user in users:
        try:
            t0 = perf()
            status, wid = app.join(event_id, user)
            replies.latencies.append(perf() - t0)
            replies.joined[user] = status
            if status == OFFERED:
                t0 = perf()
                replies.purchased[user] = app.purchase(event_id, user, wid, payment_intent(user))
                replies.latencies.append(perf() - t0)
        except Refused as exc:
            replies.errors[exc.code] += 1
    seconds = perf() - started
    app.close()
    # The final state is replayed from the file by a fresh application without a cache.
    reader = Onsale(env=_env(db, cached=False))
    queue = reader.repository.get(event_id)
    reader.close()
    entries: dict[str, list[str]] = {}
    for entry in sorted(queue.entries.values(), key=lambda e: e["number"]):
        entries.setdefault(entry["user_id"], []).append(entry["status"])
    final = FinalState(
        total_tickets=queue.total_tickets,
        purchased_count=queue.purchased_count,
        entries=entries,
        tickets=[
            (t["user_id"], t["waiting_list_id"])
            for t in queue.tickets.values()
            if t["status"] in ("valid", "used")
        ],
    )
    return summarize(
        f"eventsourcing {version('eventsourcing')} SQLite, 1 client",
        sizes,
        replies,
        final,
        seconds,
        not users.hit_deadline,
        durability=f"journal_mode={journal_mode}, synchronous={synchronous} (library defaults)",
        concurrency="1 client, sequential; aggregate cache without deep copy",
    )
