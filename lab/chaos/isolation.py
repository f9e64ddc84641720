"""Isolation: every function, called by every other party with the victim's ids, reaches nothing.

    report = await run_isolation(engine, IsolationConfig(orgs=3, rounds=1, seed=7))
    report.passed, report.calls, report.breaches

On a fresh engine, `build_world` gives each organization staff (every capability, and two
partial sets), two ticket buyers, and a record of every kind (lab.chaos.world). Then, for
every function of the registry (its `Probe`, lab.chaos.probes: a function without one is a
failure), every victim (an organization; for a user's functions, each buyer) and every party
that is foreign to that victim, the function is called:

- once with every id taken from the victim, and `rounds` times *mixed*: each id the victim or
  the caller's own (at least one the victim's, where the caller has its own), so a caller's own
  location with another organization's customer is tried as well as the plain theft;
- a refusal must carry a code a missing record or a missing right gets (NotFound, Forbidden,
  Unauthenticated, or what the probe declares with its reason) and add no journal row;
- no answer, error message or error data may hold a secret of the victim (an id or marker of
  theirs that the caller did not send);
- a query must answer exactly as the same call with the victim's ids replaced by ids that
  exist nowhere ("exactly as if the record did not exist");
- a mutation may be accepted only where the victim's id is a reference the function stores
  without reading it: it must write none of the victim's streams, and the same call with ids
  that exist nowhere must not be refused as missing (`accepted` counts them, by whose ids were
  named, for the report).

Queries run first, on the world as built; mutations after. The engine's clock stands still
(a MockClock that never jumps), so no scheduled job writes while calls are judged by the rows
they add.

Controls keep the test honest: each query, called by the victim's own side, must answer (so its
args are valid and a leak would have shown), and must name one of the victim's records unless
its answer is figures only; each mutation, called by the owner at the end, must not be refused
as malformed.

References across organizations get a part of their own (`REFERENCES`): each organization's
manager (and the admin key, naming the organization) stores its own records with an id of
another organization's in the args (a customer's location, an order's customer or service, an
event's location). Each must be refused with NotFound and the errorData of the same call naming
an id that exists nowhere, writing no journal row; the same call naming the caller's own record
must be accepted (`reference_controls`).

Then a sample of the refused calls and the queries goes over HTTP to a live server on 127.0.0.1
with real HS256 JWTs (the auth path), and forged tokens (wrong secret, expired, `alg: none`)
claiming to be a buyer are refused with 401 while the buyer's real token is answered.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import orjson
import trio

from domain.errors import TurnstileError
from domain.identity import ADMIN, Identity
from engine import Engine
from engine.server import Authenticator, mint_token, open_server
from engine.wire import convex_to_json
from lab.chaos.probes import ADMIN as ADMIN_SCOPE
from lab.chaos.probes import (
    ORG,
    PROBES,
    PUBLIC,
    REFUSALS,
    USER,
    Probe,
    missing_probes,
)
from lab.chaos.world import Buyer, Org, Party, World, build_world

#: Breaches listed in full in a report (the rest are counted).
LISTED = 50
#: Query probes whose answers are figures, never record ids (so the owner's answer names none).
FIGURES_ONLY = frozenset({"customers:typeStatistics", "analytics:daily"})
JWT_TTL_SECONDS = 3600


@attrs.frozen(kw_only=True)
class IsolationConfig:
    orgs: int = 3
    #: Mixed calls per (function, victim, caller), besides the one with every id the victim's.
    rounds: int = 1
    seed: int = 0
    #: Calls repeated over HTTP with real JWTs (0: no HTTP part).
    http_sample: int = 60


@attrs.define(kw_only=True)
class IsolationReport:
    config: IsolationConfig
    parties: int = 0
    #: Calls made in-process by a party foreign to the records named.
    calls: int = 0
    twins: int = 0
    controls: int = 0
    #: Calls storing a reference to another organization's record (`REFERENCES`), and the
    #: same calls naming the caller's own record.
    references: int = 0
    reference_controls: int = 0
    http_calls: int = 0
    auth_checks: int = 0
    by_function: Counter[str] = attrs.field(factory=Counter)
    outcomes: Counter[str] = attrs.field(factory=Counter)
    #: Foreign mutations accepted (a reference the function stores unread), by function and
    #: whose ids they named.
    accepted: Counter[str] = attrs.field(factory=Counter)
    #: Refusals with a code a probe declares (besides NotFound, Forbidden, Unauthenticated).
    declared: Counter[str] = attrs.field(factory=Counter)
    missing: list[str] = attrs.field(factory=list)
    breaches: list[str] = attrs.field(factory=list)

    @property
    def passed(self) -> bool:
        return not self.missing and not self.breaches

    def breach(self, text: str) -> None:
        self.breaches.append(text)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "config": attrs.asdict(self.config),
            "parties": self.parties,
            "calls": self.calls,
            "twins": self.twins,
            "controls": self.controls,
            "references": self.references,
            "referenceControls": self.reference_controls,
            "httpCalls": self.http_calls,
            "authChecks": self.auth_checks,
            "functions": len(self.by_function),
            "byFunction": dict(sorted(self.by_function.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "accepted": dict(sorted(self.accepted.items())),
            "declaredRefusals": dict(sorted(self.declared.items())),
            "missingProbes": self.missing,
            "breaches": len(self.breaches),
            "breachExamples": self.breaches[:LISTED],
        }


@attrs.frozen(kw_only=True)
class Answer:
    """What a call came back with: a value, or a refusal's code and error data."""

    value: Any = None
    code: str | None = None
    data: dict[str, Any] | None = None
    #: The streams of the journal rows the call appended, one per row.
    streams: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return self.code is not None

    def text(self) -> str:
        shown = self.data if self.refused else self.value
        return orjson.dumps(shown, default=str, option=orjson.OPT_SORT_KEYS).decode()


@attrs.frozen(kw_only=True)
class Plan:
    """One foreign call: who calls which function with what."""

    probe: Probe
    party: Party
    victim_org: Org
    victim_buyer: Buyer
    args: dict[str, Any]
    #: The args again with every victim value replaced by one that exists nowhere, but for
    #: the values given (the caller's own: an event that is both theirs and the victim's, or a
    #: reference an accepted call of theirs has stored).
    twin: Callable[[frozenset[str]], dict[str, Any]]
    #: The values taken from the victim.
    victim_values: frozenset[str]
    #: The victim's secrets the answer must not hold (the caller's own and what it sent
    #: excluded).
    secrets: frozenset[str]
    #: The aggregate ids of the victim's streams, which no foreign call may write.
    victim_streams: frozenset[str]
    #: Whose id each kind named ("event=victim,location=own").
    whose: str
    label: str


class Fakes:
    """Stand-ins that exist nowhere for the victim's ids, of the same shape (prefix, length,
    child suffix), the same for one value throughout."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._made: dict[str, str] = {}

    def of(self, value: str) -> str:
        if value not in self._made:
            self._made[value] = self._fake(value)
        return self._made[value]

    def _fake(self, value: str) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        prefix, sep, rest = value.partition("_")
        if sep and prefix.isalpha() and len(prefix) <= 4 and rest:
            core, csep, suffix = rest.partition("_")
            if core.isalnum() and (not csep or suffix.isalnum()):
                token = "".join(self._rng.choice(alphabet) for _ in core)
                return f"{prefix}_{token}{csep}{suffix}"
        return "ghost-" + "".join(self._rng.choice(alphabet) for _ in range(12))


class Picker:
    """The `Pick` handed to a probe's `build`: per kind, the victim's id (or its fake stand-in)
    when `take_victim(kind)` or the caller has none of its own, else the caller's own."""

    def __init__(
        self,
        victim: dict[str, str],
        own: dict[str, str],
        take_victim: Callable[[str], bool],
        seed: int,
        fakes: Fakes | None = None,
        keep: frozenset[str] = frozenset(),
    ) -> None:
        # A twin (`fakes`) makes its own fresh texts, so that a value unique per organization
        # (an email) does not collide with the first call's.
        self._victim = victim
        self._own = own
        self._take_victim = take_victim
        self._seed = seed
        self._rng = random.Random(seed)
        self._texts = 0
        self._fakes = fakes
        self._keep = keep
        self.used: set[str] = set()
        #: kind -> the victim's value, for each kind taken from the victim.
        self.from_victim: dict[str, str] = {}
        #: kind -> whose value it is ("victim" or "own").
        self.whose: dict[str, str] = {}

    def __call__(self, kind: str) -> str:
        self.used.add(kind)
        own = self._own.get(kind)
        if own is None or self._take_victim(kind):
            value = self._victim[kind]
            self.from_victim[kind] = value
            self.whose[kind] = "victim"
            if self._fakes is None or value in self._keep:
                return value
            return self._fakes.of(value)
        self.whose[kind] = "own"
        return own

    def text(self) -> str:
        self._texts += 1
        return f"{'t' if self._fakes else 'p'}{self._seed}x{self._texts}"

    def choice(self, options: tuple[str, ...]) -> str:
        return self._rng.choice(options)


def _ids_of(org: Org | None, buyer: Buyer | None) -> dict[str, str]:
    ids: dict[str, str] = {}
    if org is not None:
        ids.update(
            org=org.org_id,
            event=org.event_id,
            location=org.location_id,
            service=org.service_id,
            customer=org.customer_id,
            membership=org.membership_id,
            order=org.order_id,
            ticket=org.ticket_id,
        )
    if buyer is not None:
        ids.update(
            user=buyer.user_id,
            waitingList=buyer.waiting_list_id,
            paymentIntent=buyer.payment_intent_id,
        )
    return ids


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _own_secrets(party: Party) -> frozenset[str]:
    if party.buyer is not None:
        return party.buyer.secrets
    if party.home is not None and party.identity.org_id == party.home.org_id:
        return party.home.secrets
    return frozenset()


def _victim_secrets(world: World, probe: Probe, org: Org, buyer: Buyer) -> frozenset[str]:
    if probe.scope == USER:
        return buyer.secrets
    if probe.scope == PUBLIC:
        everything = frozenset().union(*(o.secrets for o in world.orgs))
        everything = everything.union(*(b.secrets for b in world.buyers()))
        return everything - frozenset().union(*(o.public for o in world.orgs))
    return org.secrets


def _foreign(probe: Probe, party: Party, org: Org, buyer: Buyer) -> bool:
    identity = party.identity
    if identity.is_admin:
        return False
    if probe.scope == ORG:
        return identity.org_id != org.org_id
    if probe.scope == USER:
        return identity.subject != buyer.user_id
    return True  # ADMIN_SCOPE and PUBLIC: every party


def _victims(probe: Probe, world: World, rng: random.Random) -> Iterator[tuple[Org, Buyer]]:
    for org in world.orgs:
        if probe.scope == USER:
            for buyer in org.buyers:
                yield org, buyer
        else:
            yield org, rng.choice(org.buyers)


def plan_calls(world: World, probes: dict[str, Probe], config: IsolationConfig) -> Iterator[Plan]:
    """Every foreign call of the run, in a fixed order for `config.seed`."""
    rng = random.Random(config.seed)
    fakes = Fakes(random.Random(config.seed + 1))
    parties = world.parties()
    for name in sorted(probes):
        probe = probes[name]
        for org, buyer in _victims(probe, world, rng):
            victim = _ids_of(org, buyer)
            secrets_of_victim = _victim_secrets(world, probe, org, buyer)
            for party in parties:
                if not _foreign(probe, party, org, buyer):
                    continue
                own = _ids_of(party.home, party.buyer)
                for variant in range(1 + config.rounds):
                    plan = _plan_one(probe, party, org, buyer, victim, own, variant, rng, fakes)
                    if plan is None:
                        continue
                    scan = secrets_of_victim - _own_secrets(party) - set(_strings(plan.args))
                    yield attrs.evolve(plan, secrets=scan)


def _plan_one(
    probe: Probe,
    party: Party,
    org: Org,
    buyer: Buyer,
    victim: dict[str, str],
    own: dict[str, str],
    variant: int,
    rng: random.Random,
    fakes: Fakes,
) -> Plan | None:
    seed = rng.randrange(2**40)
    if variant == 0:
        chosen: frozenset[str] | None = None
    else:
        # Learn the kinds the probe uses, then take at least one owned kind from the victim
        # and each other kind from either side.
        trial = Picker(victim, own, lambda _kind: True, seed)
        probe.build(trial)
        owned = sorted(
            k for k in trial.used & probe.owned() if own.get(k) is not None and own[k] != victim[k]
        )
        if not owned:
            return None  # the caller has nothing of its own here: variant 0 covers it
        forced = rng.choice(owned)
        chosen = frozenset({forced} | {k for k in sorted(trial.used) if rng.random() < 0.5})
    take_victim: Callable[[str], bool] = (
        (lambda _kind: True) if chosen is None else chosen.__contains__
    )
    picker = Picker(victim, own, take_victim, seed)
    args = probe.build(picker)
    # (An admin-only function is every other party's to be refused, whoever's ids it names.)
    if probe.scope not in (PUBLIC, ADMIN_SCOPE) and not picker.from_victim.keys() & probe.owned():
        return None
    if probe.manager_cap is not None and picker.whose.get("event") is not None:
        event_org = org if picker.whose["event"] == "victim" else party.home
        identity = party.identity
        if (
            event_org is not None
            and identity.org_id == event_org.org_id
            and identity.has_cap(probe.manager_cap)
        ):
            return None  # the event's own manager may ask: not foreign

    def twin(keep: frozenset[str]) -> dict[str, Any]:
        return probe.build(
            Picker(victim, own, take_victim, seed, fakes, keep | frozenset(own.values()))
        )

    whose = ",".join(f"{k}={v}" for k, v in sorted(picker.whose.items()))
    victim_streams = buyer.secrets if probe.scope == USER else org.private | buyer.secrets
    return Plan(
        probe=probe,
        party=party,
        victim_org=org,
        victim_buyer=buyer,
        args=args,
        twin=twin,
        victim_values=frozenset(picker.from_victim.values()),
        secrets=frozenset(),
        victim_streams=victim_streams,
        whose=whose,
        label=f"{probe.name} by {party.label} on {org.org_id}/{buyer.user_id} [{whose}]",
    )


# -- calling --------------------------------------------------------------------------------------


def appended(engine: Engine, before: int) -> tuple[str, ...]:
    """The streams of the journal rows after seq `before`, one per row."""
    if engine.journal.last_seq() == before:
        return ()
    return tuple(row.stream for row in engine.journal.scan(after_seq=before))


async def call(engine: Engine, name: str, args: dict[str, Any], identity: Identity) -> Answer:
    """Call `name` in-process as `identity`; the answer and the journal rows it appended."""
    before = engine.journal.last_seq()
    try:
        if name in engine.registry.mutations:
            value = (await engine.mutation(name, args, identity)).value
        else:
            value = (await engine.query(name, args, identity)).value
        answer = Answer(value=value)
    except TurnstileError as error:
        answer = Answer(code=error.code, data=error.data())
    return attrs.evolve(answer, streams=appended(engine, before))


def judge(plan: Plan, answer: Answer, *, mutation: bool, via: str = "") -> list[str]:
    """Every way `answer` breaks isolation (empty: none).

    A refusal must carry an allowed code and write nothing. A query's answer must hold no
    victim secret. A mutation may be accepted only where the victim's id is a reference the
    function stores without reading it (then it must write none of the victim's streams, and
    its twin decides whether it behaved as for an id that exists nowhere)."""
    where = f"{plan.label}{via}"
    found = []
    if answer.refused:
        allowed = REFUSALS | plan.probe.also_refused_with.keys()
        if answer.code not in allowed:
            found.append(f"{where}: refused with {answer.code}, not one of {sorted(allowed)}")
        if answer.streams:
            found.append(f"{where}: refused, yet the journal gained {len(answer.streams)} rows")
    elif not mutation and answer.streams:
        found.append(f"{where}: a query appended {len(answer.streams)} journal rows")
    touched = sorted({s for s in answer.streams if s.partition("/")[2] in plan.victim_streams})
    if touched:
        found.append(f"{where}: wrote the victim's streams {touched[:5]}")
    text = answer.text()
    leaked = sorted(s for s in plan.secrets if s in text)
    if leaked:
        found.append(f"{where}: the answer holds the victim's {leaked[:5]}: {text[:300]}")
    return found


def twin_differs(plan: Plan, answer: Answer, twin: Answer) -> str | None:
    """Why a query's answer to the victim's ids tells them apart from ids that exist nowhere:
    another code, or another value."""
    if answer.refused or twin.refused:
        if answer.code == twin.code:
            return None
        return f"{plan.label}: {answer.code or 'answered'} for the victim's ids, " + (
            f"{twin.code or 'answered'} for ids that exist nowhere"
        )
    if orjson.dumps(answer.value, default=str) == orjson.dumps(twin.value, default=str):
        return None
    return (
        f"{plan.label}: answered {answer.text()[:150]} for the victim's ids but "
        f"{twin.text()[:150]} for ids that exist nowhere"
    )


def accepted_differs(plan: Plan, twin: Answer) -> str | None:
    """Why a mutation accepted with the victim's ids must have read the victim's records: the
    same call with ids that exist nowhere is refused as a missing record or right would be. (A
    twin refused otherwise, say Conflict because the first call used up the caller's own offer,
    tells nothing either way; one accepted writes only the caller's own records.)"""
    if twin.code in REFUSALS:
        return (
            f"{plan.label}: accepted for the victim's ids, {twin.code} for ids that exist "
            "nowhere: it read the victim's records"
        )
    return None


async def run_isolation(
    engine: Engine,
    config: IsolationConfig,
    *,
    probes: dict[str, Probe] | None = None,
) -> IsolationReport:
    """Run the isolation test on `engine` (fresh: its journal holds only the jobs' schedules).
    The engine's clock must stand still during the run (a `trio.testing.MockClock` that does
    not jump), so that no scheduled job writes while calls are judged by the rows they add."""
    probes = PROBES if probes is None else probes
    report = IsolationReport(config=config)
    functions = [*engine.registry.mutations, *engine.registry.queries]
    report.missing = missing_probes(functions)
    probes = {name: probe for name, probe in probes.items() if name in functions}
    world = await build_world(engine, config.orgs)
    report.parties = len(world.parties())
    await _owner_controls(engine, world, probes, report, queries=True)

    # Queries first, on the world as built; then mutations (an accepted one changes the
    # caller's own records, which later answers would show).
    planned = list(plan_calls(world, probes, config))
    planned.sort(key=lambda plan: plan.probe.name in engine.registry.mutations)
    refused: list[Plan] = []
    #: Per caller, the victim values its accepted mutations stored as references of its own.
    adopted: dict[str, frozenset[str]] = {}
    for plan in planned:
        mutation = plan.probe.name in engine.registry.mutations
        answer = await call(engine, plan.probe.name, plan.args, plan.party.identity)
        report.calls += 1
        report.by_function[plan.probe.name] += 1
        outcome = answer.code or ("accepted" if mutation else "answered")
        report.outcomes[outcome] += 1
        mine = adopted.get(plan.party.label, frozenset())
        if mutation and not answer.refused:
            report.accepted[f"{plan.probe.name} [{plan.whose}]"] += 1
            adopted[plan.party.label] = mine | plan.victim_values
        for problem in judge(plan, answer, mutation=mutation):
            report.breach(problem)
        if answer.code is not None and answer.code not in REFUSALS:
            report.declared[f"{plan.probe.name} {answer.code}"] += 1
        if plan.probe.scope != PUBLIC and (not mutation or not answer.refused):
            twin = await call(engine, plan.probe.name, plan.twin(mine), plan.party.identity)
            report.twins += 1
            differs = (
                twin_differs(plan, answer, twin) if not mutation else accepted_differs(plan, twin)
            )
            if differs is not None:
                report.breach(differs)
        if answer.refused or not mutation:
            refused.append(plan)

    await _cross_references(engine, world, report, Fakes(random.Random(config.seed + 3)))
    if config.http_sample > 0:
        rng = random.Random(config.seed + 2)
        sample = rng.sample(refused, min(config.http_sample, len(refused)))
        await _over_http(engine, world, sample, report)
    await _owner_controls(engine, world, probes, report, queries=False)
    return report


# -- references across organizations -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Reference:
    """A mutation that stores, in a record of the caller's organization, an id of another
    record: `build(home, target, ref)` gives its args, `ref` standing for the referenced id,
    which is of kind `kind` and taken from `target`."""

    name: str
    kind: str
    build: Callable[[Org, str, str], dict[str, Any]]


def _purchase(customer_id: str, location_id: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "customerId": customer_id,
        "locationId": location_id,
        "type": "purchase",
        "items": [{"quantity": 1, **item}],
    }


def _event(org_id: str, location_id: str) -> dict[str, Any]:
    return {
        "name": "Reference probe",
        "description": "",
        "location": "Somewhere",
        "eventDate": 1_800_000_000_000,
        "price": 1000,
        "totalTickets": 5,
        "orgId": org_id,
        "locationId": location_id,
    }


#: Every reference to another aggregate that a mutation stores, as a manager makes it.
REFERENCES: tuple[Reference, ...] = (
    Reference(
        name="customers:create",
        kind="location",
        build=lambda home, tag, ref: {
            "firstName": f"Ref {tag}",
            "customerType": "new",
            "orgId": home.org_id,
            "locationId": ref,
        },
    ),
    Reference(
        name="customers:update",
        kind="location",
        build=lambda home, tag, ref: {"customerId": home.customer_id, "locationId": ref},
    ),
    Reference(
        name="orders:create",
        kind="customer",
        build=lambda home, tag, ref: _purchase(
            ref, home.location_id, {"name": f"Ref {tag}", "price": 100}
        ),
    ),
    Reference(
        name="orders:create",
        kind="service",
        build=lambda home, tag, ref: _purchase(
            home.customer_id, home.location_id, {"serviceId": ref}
        ),
    ),
    Reference(
        name="events:create",
        kind="location",
        build=lambda home, tag, ref: _event(home.org_id, ref),
    ),
    Reference(
        name="events:update",
        kind="location",
        build=lambda home, tag, ref: {"eventId": home.event_id, "locationId": ref},
    ),
)


async def _cross_references(
    engine: Engine, world: World, report: IsolationReport, fakes: Fakes
) -> None:
    """Each organization's manager, and the admin key naming that organization, stores every
    `REFERENCES` entry pointing at each other organization's record: NotFound with the errorData
    of an id that exists nowhere, and no journal row. Then each entry pointing at the caller's
    own record, which must be accepted."""
    for home in world.orgs:
        for caller, who in ((home.staff()["boss"], "boss"), (ADMIN, "admin")):
            for target in world.orgs:
                if target is home:
                    continue
                theirs = _ids_of(target, None)
                for reference in REFERENCES:
                    ref = theirs[reference.kind]
                    label = (
                        f"{reference.name} by {home.org_id}/{who} naming {target.org_id}'s "
                        f"{reference.kind} {ref}"
                    )
                    tag = f"{home.index}x{report.references}"
                    answer = await call(
                        engine, reference.name, reference.build(home, tag, ref), caller
                    )
                    report.references += 1
                    missing = await call(
                        engine,
                        reference.name,
                        reference.build(home, tag, fakes.of(ref)),
                        caller,
                    )
                    if answer.code != "NotFound":
                        report.breach(f"{label}: {answer.code or 'accepted'}, not NotFound")
                    elif answer.data != missing.data:
                        report.breach(
                            f"{label}: refused with {answer.data}, but {missing.data} for an id"
                            " that exists nowhere"
                        )
                    if answer.streams or missing.streams:
                        rows = len(answer.streams) + len(missing.streams)
                        report.breach(f"{label}: refused, yet the journal gained {rows} rows")
    for home in world.orgs:
        own = _ids_of(home, None)
        for reference in REFERENCES:
            tag = f"{home.index}c{report.reference_controls}"
            args = reference.build(home, tag, own[reference.kind])
            answer = await call(engine, reference.name, args, home.staff()["boss"])
            report.reference_controls += 1
            if answer.refused:
                report.breach(
                    f"control: {reference.name} by {home.org_id}/boss naming its own "
                    f"{reference.kind} was refused ({answer.code}: {answer.data})"
                )


async def _owner_controls(
    engine: Engine,
    world: World,
    probes: dict[str, Probe],
    report: IsolationReport,
    *,
    queries: bool,
) -> None:
    """Each probe called by the victim's own side with every id the victim's: a query must
    answer (and name a victim record, unless its answer is figures only); a mutation must not be
    refused as malformed. Mutations run after everything else: they change the world."""
    org = world.orgs[0]
    buyer = org.buyers[0]
    victim = _ids_of(org, buyer)
    for name in sorted(probes):
        probe = probes[name]
        if (name in engine.registry.queries) != queries:
            continue
        owner = {
            ORG: org.staff()["boss"],
            USER: buyer.identity,
            ADMIN_SCOPE: ADMIN,
            # Public data is anyone's, a signed-in buyer's too (some public reads, as
            # `releases:list`, are for signed-in callers; anonymous calls are the reference's).
            PUBLIC: buyer.identity,
        }[probe.scope]
        args = probe.build(Picker(victim, {}, lambda _kind: True, seed=report.controls))
        answer = await call(engine, name, args, owner)
        report.controls += 1
        if queries:
            owned = buyer.secrets if probe.scope == USER else org.secrets
            named = {s for s in owned if s in answer.text()} - set(_strings(args))
            if answer.refused:
                report.breach(f"control: {name} by its owner was refused ({answer.code})")
            elif (
                not named and name not in FIGURES_ONLY and probe.scope not in (PUBLIC, ADMIN_SCOPE)
            ):
                # (An admin-only read leaks only if someone else is answered: the parties'
                # calls check that; what it lists may be no organization's records at all.)
                report.breach(
                    f"control: {name} by its owner named none of their records, so a leak "
                    f"through it would go unseen: {answer.text()[:200]}"
                )
        elif answer.code == "InvalidArgs":
            report.breach(f"control: {name} by its owner was refused as malformed: {answer.data}")


# -- over HTTP ------------------------------------------------------------------------------------


def _http(port: int, path: str, body: dict[str, Any], token: str | None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", "Connection": "close"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        connection.request("POST", path, json.dumps(body), headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _token_for(secret: str, party: Party) -> str | None:
    identity = party.identity
    if identity.subject is None:
        return None
    return mint_token(secret, identity.subject, identity.org_id, identity.caps, JWT_TTL_SECONDS)


def _unsigned_token(subject: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': subject, 'exp': 4102444800})}."


async def _over_http(
    engine: Engine, world: World, sample: list[Plan], report: IsolationReport
) -> None:
    """`sample` again through a live server with real JWTs; then forged tokens."""
    jwt_secret = secrets.token_urlsafe(48)
    authenticator = Authenticator(secrets.token_urlsafe(24), jwt_secret)
    async with open_server(engine, authenticator=authenticator) as server:
        port = server.port

        async def post(kind: str, name: str, args: dict[str, Any], token: str | None) -> Answer:
            body = {"path": name, "args": [convex_to_json(args)], "format": "convex_encoded_json"}
            before = engine.journal.last_seq()
            status, reply = await trio.to_thread.run_sync(_http, port, f"/api/{kind}", body, token)
            streams = appended(engine, before)
            if status == 200 and reply.get("status") == "success":
                return Answer(value=reply["value"], streams=streams)
            data = reply.get("errorData") or {}
            code = data.get("code", f"HTTP {status}")
            if status not in (401, 560):
                code = f"HTTP {status}"
            return Answer(code=code, data=data, streams=streams)

        for plan in sample:
            name = plan.probe.name
            mutation = name in engine.registry.mutations
            kind = "mutation" if mutation else "query"
            answer = await post(kind, name, plan.args, _token_for(jwt_secret, plan.party))
            report.http_calls += 1
            for problem in judge(plan, answer, mutation=mutation, via=" (HTTP)"):
                report.breach(problem)

        for buyer in world.buyers():
            args = {"userId": buyer.user_id}
            forged = {
                "a token signed with another secret": mint_token(
                    secrets.token_urlsafe(48), buyer.user_id
                ),
                "an expired token": mint_token(jwt_secret, buyer.user_id, ttl_seconds=-120),
                "an unsigned token (alg none)": _unsigned_token(buyer.user_id),
            }
            for what, token in forged.items():
                answer = await post("query", "events:getUserTickets", args, token)
                report.auth_checks += 1
                if answer.code != "Unauthenticated" or buyer.user_id in answer.text():
                    report.breach(
                        f"events:getUserTickets of {buyer.user_id} with {what}: "
                        f"{answer.code or 'answered'} {answer.text()[:200]}"
                    )
            real = mint_token(jwt_secret, buyer.user_id)
            answer = await post("query", "events:getUserTickets", args, real)
            report.auth_checks += 1
            if answer.refused:
                report.breach(
                    f"control: {buyer.user_id}'s own token was refused over HTTP ({answer.code})"
                )


__all__ = [
    "REFERENCES",
    "Answer",
    "IsolationConfig",
    "IsolationReport",
    "Plan",
    "Reference",
    "call",
    "judge",
    "plan_calls",
    "run_isolation",
]
