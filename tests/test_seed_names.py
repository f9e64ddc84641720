"""The seeds' own function names (docs/reference/seed-names.md) against the code.

The page's tables are read here, so the page and `domain/catalog/aliases.py` cannot drift
apart: every alias in the tables is in the table of the code and no other; each row's name
reaches the function the row names, or none for `not served`; an alias answers exactly what its
function answers, in-process and over HTTP; and a `not as-is` row fails the way its notes say.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing

from domain.catalog import BOOKING
from domain.catalog.aliases import SEED_ALIASES
from domain.errors import InvalidArgs, NotFound, TurnstileError
from domain.identity import Identity
from engine import EngineConfig
from engine.registry import Registry
from engine.server import Authenticator, mint_token, open_server
from engine.testing import EngineHarness, open_harness, user
from tests.server.client import call
from tests.server.conftest import ADMIN_KEY, CONFIG, JWT_SECRET
from tests.test_reference import REFERENCE, key, rows, sections

PAGE = REFERENCE / "seed-names.md"
HEADER = ["seed function", "kind", "Turnstile function", "how", "notes"]
HOW = {"same name", "alias", "not as-is", "not served"}
SERVED_KINDS = {"query", "mutation"}
UNSERVED_KINDS = {"internal mutation", "cron target"}
REGISTRY = Registry((BOOKING,))
ORGANIZER = Identity(subject="u_org", org_id="org_a", caps=frozenset({"events:manage"}))
CRM = Identity(
    subject="u_crm", org_id="org_a", caps=frozenset({"customers:read", "customers:write"})
)


@attrs.frozen(kw_only=True)
class Row:
    section: str
    seed: str
    kind: str
    target: str | None
    how: str


def documented() -> list[Row]:
    """Every row of the page's tables, checked for shape as it is read."""
    found: list[Row] = []
    lines = PAGE.read_text().splitlines()
    headers = [line for line in lines if line.startswith("| seed function")]
    assert headers, "docs/reference/seed-names.md has no table"
    assert all(h.strip("| ").split(" | ") == HEADER for h in headers), headers
    for section, body in sections(PAGE).items():
        for cells in rows(body):
            assert len(cells) == len(HEADER), f"{section}: {cells}"
            seed, kind, target, how = key(cells[0]), cells[1], key(cells[2]), cells[3]
            assert seed is not None, f"{section}: {cells[0]!r} is not a backticked name"
            assert how in HOW, f"{seed}: how {how!r} is none of {sorted(HOW)}"
            if how == "not served":
                assert (target, cells[2]) == (None, "—"), f"{seed}: a not-served row names {target}"
                assert kind in SERVED_KINDS | UNSERVED_KINDS, f"{seed}: kind {kind!r}"
            else:
                assert target is not None, f"{seed}: {cells[2]!r} is not a backticked name"
                assert kind in SERVED_KINDS, f"{seed}: a served name of kind {kind!r}"
            found.append(Row(section=section, seed=seed, kind=kind, target=target, how=how))
    return found


ROWS = documented()


def resolve(name: str, kind: str) -> object:
    return REGISTRY.query(name) if kind == "query" else REGISTRY.mutation(name)


def test_the_page_lists_each_name_once_and_every_alias_of_the_code() -> None:
    names = [row.seed for row in ROWS]
    assert len(names) == len(set(names)), "a name is listed twice"
    documented_aliases = {(row.seed, row.target) for row in ROWS if row.how == "alias"}
    assert documented_aliases == set(SEED_ALIASES)
    assert len(SEED_ALIASES) == len(set(SEED_ALIASES))
    assert BOOKING.aliases == SEED_ALIASES
    assert REGISTRY.aliases == dict(SEED_ALIASES)


@pytest.mark.parametrize("row", ROWS, ids=[row.seed for row in ROWS])
def test_each_name_reaches_what_the_page_says(row: Row) -> None:
    if row.how == "not served":
        for look_up in (REGISTRY.query, REGISTRY.mutation):
            with pytest.raises(NotFound):
                look_up(row.seed)
        return
    assert row.target is not None
    module, _, function = row.seed.partition(":")
    spec = resolve(row.target, row.kind)  # raises NotFound if it is not of that kind
    assert resolve(row.seed, row.kind) is spec
    assert resolve(f"{module}.js:{function}", row.kind) is spec  # as a Convex client spells it
    if row.how == "alias":
        assert row.seed != row.target
        assert REGISTRY.aliases[row.seed] == row.target
        assert REGISTRY.owner(row.seed) == BOOKING.name
    else:
        assert row.seed == row.target, f"{row.how} names the seed's own name"
        assert row.seed not in REGISTRY.aliases


# -- an alias answers what its function answers --------------------------------------------


class Renamer:
    """Names the functions a script calls: by their own names, or by the seeds' aliases."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.by_target = {target: alias for alias, target in aliases.items()}
        self.used: set[str] = set()

    def __call__(self, name: str) -> str:
        called = self.by_target.get(name, name)
        self.used.add(called)
        return called


def placeholders(value: Any, ids: dict[str, str]) -> Any:
    """`value` with each engine-made id replaced by the order it was first seen in."""
    if isinstance(value, dict):
        return {k: placeholders(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [placeholders(v, ids) for v in value]
    if isinstance(value, str) and value in ids:
        return ids[value]
    return value


async def outcome(call_it: Callable[[], Any]) -> Any:
    """What a call answers: its value, or its error's code and details."""
    try:
        return {"value": await call_it()}
    except TurnstileError as error:
        return {"error": error.code, "details": error.details}


async def waiting_list_story(t: EngineHarness, name: Renamer) -> list[Any]:
    """Joins, positions, a release and its refusals, as the seed's frontend calls them."""
    event_id = await t.mutation(
        "events:create",
        {
            "name": "Concert",
            "description": "Live",
            "location": "Hall",
            "eventDate": t.now_ms() + 7 * 24 * 3_600_000,
            "price": 2500,
            "totalTickets": 1,
        },
        ORGANIZER,
    )
    ids = {event_id: "event"}
    seen: list[Any] = []

    async def position(who: str, identity: Identity) -> Any:
        args = {"eventId": event_id, "userId": who}
        return await outcome(lambda: t.query(name("waitingList:getQueuePosition"), args, identity))

    async def release(entry: str, identity: Identity) -> Any:
        args = {"eventId": event_id, "waitingListId": entry}
        return await outcome(lambda: t.mutation(name("waitingList:releaseTicket"), args, identity))

    entries = {}
    for who in ("ann", "bob"):
        joined = await t.mutation(
            "events:joinWaitingList", {"eventId": event_id, "userId": who}, user(who)
        )
        entries[who] = joined["waitingListId"]
        ids[joined["waitingListId"]] = f"entry of {who}"
    async with t.engine.subscribe(
        name("waitingList:getQueuePosition"), {"eventId": event_id, "userId": "bob"}, user("bob")
    ) as live:
        seen.append((await live.__anext__())[1])
        seen += [await position("ann", user("ann")), await position("bob", user("bob"))]
        seen.append(await position("bob", ORGANIZER))
        seen.append(await position("bob", user("cat")))  # another user: refused
        seen.append(await position("dan", user("dan")))  # never joined: null
        seen.append(await release(entries["ann"], user("bob")))  # not the holder: refused
        seen.append(await release(entries["bob"], user("bob")))  # waiting, no offer: refused
        seen.append(await release(entries["ann"], user("ann")))
        seen.append((await live.__anext__())[1])  # bob is offered the seat
        seen += [await position("ann", user("ann")), await position("bob", user("bob"))]
    return placeholders(seen, ids)  # type: ignore[no-any-return]


async def test_an_alias_answers_what_its_function_answers(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    stories = []
    aliases = Renamer(dict(SEED_ALIASES))
    for label, renamer in (("own", Renamer({})), ("alias", aliases)):
        async with open_harness(tmp_path / label) as t:
            stories.append(await waiting_list_story(t, renamer))
    own, through_aliases = stories
    assert through_aliases == own
    assert aliases.used >= {alias for alias, _ in SEED_ALIASES}, "an alias the story never calls"
    # The story meets refusals and answers alike, so both are compared.
    assert [answer.get("error") for answer in own[4:9]] == [
        "Forbidden",
        None,
        "Forbidden",
        "Conflict",
        None,
    ]
    assert (own[0]["status"], own[9]["status"]) == ("waiting", "offered")  # bob, live
    assert own[-1]["value"]["position"] == 1


async def test_the_not_as_is_rows_fail_as_their_notes_say(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    not_as_is = {row.seed for row in ROWS if row.how == "not as-is"}
    assert not_as_is == {"customers:update", "customers:list"}
    t = turnstile
    customer_id = await t.mutation(
        "customers:create",
        {"firstName": "Ann", "email": "ann@example.com", "phone": "07700 900123"},
        CRM,
    )
    # The seed's update nests the changes under `updates`, which Turnstile does not take...
    with pytest.raises(InvalidArgs) as refused:
        await t.mutation(
            "customers:update", {"customerId": customer_id, "updates": {"notes": "VIP"}}, CRM
        )
    assert refused.value.details["path"] == "updates"
    assert (await t.query("customers:get", {"customerId": customer_id}, CRM))["notes"] is None
    # ...and its list answers the array of customers, where Turnstile answers a page.
    await t.mutation("customers:update", {"customerId": customer_id, "lifecycle": "active"}, CRM)
    listed = await t.query("customers:list", {"lifecycle": "active", "limit": 50}, CRM)
    assert set(listed) == {"page", "continueCursor", "isDone"}
    assert [c["_id"] for c in listed["page"]] == [customer_id]


# -- over HTTP ------------------------------------------------------------------------------


def bearer(sub: str) -> str:
    return f"Bearer {mint_token(JWT_SECRET, sub, None, ())}"


async def http_value(port: int, kind: str, path: str, args: dict[str, Any], auth: str) -> Any:
    reply = await call(port, kind, path, args, auth)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["status"] == "success", body
    return body["value"]


async def test_aliases_are_served_over_http(tmp_path: Path) -> None:
    assert dict(SEED_ALIASES) == {
        "waiting_list:getQueuePosition": "waitingList:getQueuePosition",
        "waiting_list:releaseTicket": "waitingList:releaseTicket",
    }, "a new alias: call it over HTTP here too"
    admin = f"Convex {ADMIN_KEY}"
    async with open_server(
        tmp_path / "data",
        engine_config=EngineConfig(offload_io=True, run_jobs=False),
        authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
        config=CONFIG,
    ) as server:
        port = server.port
        event = {
            "name": "Gig",
            "description": "",
            "location": "Hall",
            "eventDate": 1_900_000_000_000,
            "price": 2500,
            "totalTickets": 1,
            "orgId": "org_a",
        }
        event_id = await http_value(port, "mutation", "events:create", event, admin)
        entry = {}
        for who in ("ann", "bob"):
            joined = await http_value(
                port,
                "mutation",
                "events:joinWaitingList",
                {"eventId": event_id, "userId": who},
                bearer(who),
            )
            entry[who] = joined["waitingListId"]
        bob = {"eventId": event_id, "userId": "bob"}
        by_own_name = await http_value(
            port, "query", "waitingList:getQueuePosition", bob, bearer("bob")
        )
        assert by_own_name["position"] == 2
        for path in ("waiting_list:getQueuePosition", "waiting_list.js:getQueuePosition"):
            assert await http_value(port, "query", path, bob, bearer("bob")) == by_own_name
        refused = await call(port, "query", "waiting_list:getQueuePosition", bob, bearer("cat"))
        assert refused.status == 560
        assert refused.json()["errorData"]["code"] == "Forbidden"
        release = {"eventId": event_id, "waitingListId": entry["ann"]}
        released = await http_value(
            port, "mutation", "waiting_list:releaseTicket", release, bearer("ann")
        )
        assert released is None
        offered = await http_value(
            port, "query", "waiting_list:getQueuePosition", bob, bearer("bob")
        )
        assert (offered["status"], offered["position"]) == ("offered", 1)
        again = await call(port, "mutation", "waitingList:releaseTicket", release, bearer("ann"))
        assert orjson.loads(again.body)["status"] == "error"  # the offer is no longer ann's
        server.stop()
        with trio.fail_after(30):
            await server.wait_stopped()
