"""Holding a chaos run's journal to what its clients were told.

Every mutation the load sent is a `Sent` (tools.loadtest.recorder): acknowledged (its reply
arrived, with a value and a commit position `ts`), refused, or unfinished. Each function the
load calls has an `Effect`: the one event its execution writes, and a key that names the same
logical write in the request and in the journal row (a join is `(event, user)`, a purchase is
its `paymentIntentId`, a booking is `(location, customer, slot, services)`...).

- **Lost**: an acknowledged mutation with no row of its effect carrying the acknowledged id, or
  whose idempotency record `(session, request)` is missing or names another position.
- **Duplicated**: a key whose effect rows outnumber the requests that may have written them
  (acknowledged + unfinished): a request executed twice (a second ticket for one payment, a join
  counted twice), or executed although its client was told it was refused.
- **Read back**: the server's own answer, after the run, for each acknowledged mutation
  (`READ_BACKS`): the record is there, as acknowledged.

A function without an `Effect` or a read-back rule is a problem of its own, so a scenario that
starts calling something new cannot pass unchecked.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson
import trio

from engine.client import Client, FunctionError
from engine.journal import open_reader
from tools.loadtest.recorder import Sent

Payload = Mapping[str, Any]
#: Read-backs in flight at once.
READ_BACK_CONCURRENCY = 16
#: At most this many problems of one kind are listed (the rest are counted).
LISTED = 20


@attrs.frozen(kw_only=True)
class Effect:
    """What one execution of a function writes: one `event_type` row whose `row_key(aggregate
    id, payload)` equals `request_key(args)`, and whose `row_id` is the id the reply carries
    (`acked_id(value)`)."""

    event_type: str
    request_key: Callable[[Payload], Hashable]
    row_key: Callable[[str, Payload], Hashable]
    acked_id: Callable[[Any], str]
    row_id: Callable[[str, Payload], str]


def _stream_id(aggregate_id: str, _payload: Payload) -> str:
    return aggregate_id


def _order_key(args: Payload) -> Hashable:
    services = tuple(item.get("serviceId") for item in args["items"])
    return (args["locationId"], args["customerId"], args.get("scheduledAt"), services)


def _order_row_key(aggregate_id: str, payload: Payload) -> Hashable:
    services = tuple(line.get("serviceId") for line in payload["lines"])
    return (aggregate_id, payload["customerId"], payload.get("scheduledAt"), services)


EFFECTS: dict[str, Effect] = {
    "events:create": Effect(
        event_type="EventCreated",
        request_key=lambda a: a["name"],
        row_key=lambda _i, p: p["name"],
        acked_id=str,
        row_id=_stream_id,
    ),
    "locations:create": Effect(
        event_type="LocationCreated",
        request_key=lambda a: a["name"],
        row_key=lambda _i, p: p["name"],
        acked_id=str,
        row_id=_stream_id,
    ),
    "services:create": Effect(
        event_type="ServiceCreated",
        request_key=lambda a: (a["locationId"], a["name"]),
        row_key=lambda i, p: (i, p["name"]),
        acked_id=str,
        row_id=lambda _i, p: p["serviceId"],
    ),
    "events:joinWaitingList": Effect(
        event_type="WaitingListJoined",
        request_key=lambda a: (a["eventId"], a["userId"]),
        row_key=lambda i, p: (i, p["userId"]),
        acked_id=lambda v: v["waitingListId"],
        row_id=lambda _i, p: p["waitingListId"],
    ),
    "events:purchaseTicket": Effect(
        event_type="TicketPurchased",
        request_key=lambda a: (a["eventId"], a["paymentInfo"]["paymentIntentId"]),
        row_key=lambda i, p: (i, p["paymentIntentId"]),
        acked_id=str,
        row_id=lambda _i, p: p["ticketId"],
    ),
    "waitingList:releaseTicket": Effect(
        event_type="OfferReleased",
        request_key=lambda a: a["waitingListId"],
        row_key=lambda _i, p: p["waitingListId"],
        acked_id=lambda _v: "",
        row_id=lambda _i, _p: "",
    ),
    "customers:create": Effect(
        event_type="CustomerCreated",
        request_key=lambda a: str(a["email"]).lower(),
        row_key=lambda _i, p: str(p["email"]).lower(),
        acked_id=str,
        row_id=_stream_id,
    ),
    "orders:create": Effect(
        event_type="OrderPlaced",
        request_key=_order_key,
        row_key=_order_row_key,
        acked_id=str,
        row_id=lambda _i, p: p["orderId"],
    ),
}


@attrs.define
class Tally:
    """What the journal and the server say about the mutations sent."""

    acknowledged: int = 0
    refused: int = 0
    unfinished: int = 0
    #: Which mutations were unfinished (function, session, request), in the order sent.
    unfinished_sent: list[str] = attrs.field(factory=list)
    lost: list[str] = attrs.field(factory=list)
    duplicated: list[str] = attrs.field(factory=list)
    read_back: int = 0
    not_read_back: list[str] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)
    by_function: Counter[str] = attrs.field(factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acknowledged,
            "refused": self.refused,
            "unfinished": self.unfinished,
            "acknowledgedByFunction": dict(sorted(self.by_function.items())),
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "readBack": self.read_back,
            "notReadBack": len(self.not_read_back),
            "examples": {
                "lost": self.lost[:LISTED],
                "duplicated": self.duplicated[:LISTED],
                "notReadBack": self.not_read_back[:LISTED],
                "problems": self.problems[:LISTED],
                "unfinished": self.unfinished_sent[:LISTED],
            },
        }


def _where(sent: Sent) -> str:
    return f"{sent.function} {sent.session_id[:8]}#{sent.request_id}"


def count_outcomes(tally: Tally, sent: Sequence[Sent]) -> None:
    for item in sent:
        if item.outcome == "acknowledged":
            tally.acknowledged += 1
            tally.by_function[item.function] += 1
        elif item.outcome == "refused":
            tally.refused += 1
        else:
            tally.unfinished += 1
            tally.unfinished_sent.append(_where(item))


def _journal_rows(data_dir: Path, types: Iterable[str]) -> dict[str, list[tuple[str, Payload]]]:
    """Every row of `types`: event type -> [(aggregate id, payload)] in journal order."""
    found: dict[str, list[tuple[str, Payload]]] = defaultdict(list)
    journal = open_reader(data_dir)
    try:
        for row in journal.scan(types=sorted(set(types))):
            found[row.type].append((row.stream.partition("/")[2], orjson.loads(row.payload)))
    finally:
        journal.close()
    return found


def _request_records(data_dir: Path) -> dict[tuple[str, int], int]:
    """The idempotency records: (session, request) -> the seq the mutation committed at."""
    journal = open_reader(data_dir)
    try:
        return {(r.session_id, r.request_id): r.seq for r in journal.requests()}
    finally:
        journal.close()


def account(data_dir: Path, sent: Sequence[Sent], tally: Tally) -> None:
    """Hold the journal in `data_dir` (read-only; the server stopped) to `sent`: lost,
    duplicated, and idempotency records, into `tally`."""
    unknown = sorted({s.function for s in sent} - set(EFFECTS))
    for function in unknown:
        tally.problems.append(f"{function}: no effect rule, so its mutations were not checked")
    effects = {name: EFFECTS[name] for name in {s.function for s in sent} if name in EFFECTS}
    rows = _journal_rows(data_dir, (e.event_type for e in effects.values()))
    records = _request_records(data_dir)

    for name, effect in sorted(effects.items()):
        written: dict[Hashable, list[str]] = defaultdict(list)
        for aggregate_id, payload in rows.get(effect.event_type, ()):
            written[effect.row_key(aggregate_id, payload)].append(
                effect.row_id(aggregate_id, payload)
            )
        may_write: Counter[Hashable] = Counter()
        for item in (s for s in sent if s.function == name):
            key = effect.request_key(item.args)
            if item.outcome != "refused":
                may_write[key] += 1
            if item.outcome != "acknowledged":
                continue
            if effect.acked_id(item.value) not in written.get(key, ()):
                tally.lost.append(f"{_where(item)}: no {effect.event_type} for {key!r}")
            elif item.ts is None or records.get((item.session_id, item.request_id)) != item.ts:
                tally.lost.append(
                    f"{_where(item)}: its idempotency record is "
                    f"{records.get((item.session_id, item.request_id))}, not at ts {item.ts}"
                )
        # Rows of this type belong to this run's requests only (the data dir started empty):
        # a key written more often than requests may have written it was executed twice.
        for key, ids in written.items():
            extra = len(ids) - may_write[key]
            if extra > 0:
                tally.duplicated.append(
                    f"{name}: {effect.event_type} x{len(ids)} for {key!r}, "
                    f"{may_write[key]} requests may have written it"
                )


# -- read-back ------------------------------------------------------------------------------------

ReadBack = Callable[[Client, Sent, "Context"], Awaitable[str | None]]


class Context:
    """What read-backs share: the offers acknowledged as released, and the answers of list
    queries that many read-backs look into (one `orders:listByCustomer` per customer, however
    many of the customer's orders are checked)."""

    def __init__(self, client: Client, released: frozenset[str]) -> None:
        self.client = client
        self.released = released
        self._answers: dict[tuple[str, bytes], Any] = {}
        self._asking: dict[tuple[str, bytes], trio.Event] = {}

    async def shared(self, name: str, args: dict[str, Any]) -> Any:
        """`name(args)` read once for every read-back that asks (a refusal is not kept)."""
        key = (name, orjson.dumps(args, option=orjson.OPT_SORT_KEYS))
        while key not in self._answers:
            asking = self._asking.get(key)
            if asking is not None:
                await asking.wait()
                continue
            self._asking[key] = asking = trio.Event()
            try:
                self._answers[key] = await self.client.query(name, args)
            finally:
                del self._asking[key]
                asking.set()
        return self._answers[key]


def _missing(what: str, found: Any) -> str:
    return f"{what}: the server answers {found!r}"


async def _event_created(client: Client, sent: Sent, _c: Context) -> str | None:
    found = await client.query("events:get", {"eventId": sent.value})
    ok = found is not None and found["name"] == sent.args["name"]
    return None if ok else _missing(f"event {sent.value}", found)


async def _location_created(client: Client, sent: Sent, _c: Context) -> str | None:
    found = await client.query("locations:get", {"locationId": sent.value})
    ok = found is not None and found["name"] == sent.args["name"]
    return None if ok else _missing(f"location {sent.value}", found)


async def _service_created(client: Client, sent: Sent, context: Context) -> str | None:
    listed = await context.shared("services:list", {"locationId": sent.args["locationId"]})
    ok = any(s["_id"] == sent.value for s in listed)
    return None if ok else f"service {sent.value} is not in services:list of its location"


async def _joined(client: Client, sent: Sent, context: Context) -> str | None:
    args = {"eventId": sent.args["eventId"], "userId": sent.args["userId"]}
    entry = await client.query("waitingList:getQueuePosition", args)
    joined = sent.value["waitingListId"]
    if joined in context.released:  # given back since: expired, so no longer the user's entry
        return None if entry is None or entry["_id"] != joined else _missing(joined, entry)
    ok = entry is not None and entry["_id"] == joined
    return None if ok else _missing(f"waiting-list entry {joined}", entry)


async def _purchased(client: Client, sent: Sent, _c: Context) -> str | None:
    args = {"eventId": sent.args["eventId"], "userId": sent.args["userId"]}
    ticket = await client.query("tickets:getUserTicketForEvent", args)
    ok = ticket is not None and ticket["_id"] == sent.value and ticket["status"] == "valid"
    return None if ok else _missing(f"ticket {sent.value}", ticket)


async def _released(client: Client, sent: Sent, context: Context) -> str | None:
    # The released entry is expired, which getQueuePosition never answers with.
    listed = await context.shared("tickets:listForEvent", {"eventId": sent.args["eventId"]})
    if any(t["waitingListId"] == sent.args["waitingListId"] for t in listed):
        return f"released offer {sent.args['waitingListId']} was bought after all"
    return None


async def _customer_created(client: Client, sent: Sent, _c: Context) -> str | None:
    found = await client.query("customers:get", {"customerId": sent.value})
    ok = found is not None and str(found.get("email")).lower() == sent.args["email"].lower()
    return None if ok else _missing(f"customer {sent.value}", found)


async def _order_created(client: Client, sent: Sent, context: Context) -> str | None:
    customer = {"customerId": sent.args["customerId"]}
    listed = await context.shared("orders:listByCustomer", customer)
    ok = any(order["_id"] == sent.value for order in listed)
    return None if ok else f"order {sent.value} is not in orders:listByCustomer of its customer"


READ_BACKS: dict[str, ReadBack] = {
    "events:create": _event_created,
    "locations:create": _location_created,
    "services:create": _service_created,
    "events:joinWaitingList": _joined,
    "events:purchaseTicket": _purchased,
    "waitingList:releaseTicket": _released,
    "customers:create": _customer_created,
    "orders:create": _order_created,
}


async def read_back(client: Client, sent: Sequence[Sent], tally: Tally) -> None:
    """Ask the server (as admin, through `client`) for every acknowledged mutation's record."""
    acknowledged = [s for s in sent if s.outcome == "acknowledged"]
    context = Context(
        client,
        frozenset(
            s.args["waitingListId"]
            for s in acknowledged
            if s.function == "waitingList:releaseTicket"
        ),
    )
    for function in sorted({s.function for s in acknowledged} - set(READ_BACKS)):
        tally.problems.append(f"{function}: no read-back rule, so its records were not read back")
    limit = trio.Semaphore(READ_BACK_CONCURRENCY)

    async def one(item: Sent, rule: ReadBack) -> None:
        async with limit:
            try:
                problem = await rule(client, item, context)
            except FunctionError as error:
                problem = f"the read-back was refused ({error.code}): {error}"
        if problem is None:
            tally.read_back += 1
        else:
            tally.not_read_back.append(f"{_where(item)}: {problem}")

    async with trio.open_nursery() as nursery:
        for item in acknowledged:
            rule = READ_BACKS.get(item.function)
            if rule is not None:
                nursery.start_soon(one, item, rule)


__all__ = ["EFFECTS", "READ_BACKS", "Effect", "Tally", "account", "count_outcomes", "read_back"]
