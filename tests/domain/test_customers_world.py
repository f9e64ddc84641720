"""A pure in-memory backend for the customer tests, and the callers and shortcuts they share.

`CustomerWorld` is the domain harness's `World` over the customer module. Its commands are decided
by `domain.model.decide`, the engine's own decide step, co-decisions (`Decision.co_decide`)
included: the other aggregates' parts are committed with the command's own events if the
handler returns, and dropped with them if it raises. `react` runs a reaction of
`domain.customers.reactions` inside a command of another module, the way an order or ticket
handler will; `open_location` makes a location id one of an organization's, as
`locations:create` does, for worlds without the venue module. The tests at the bottom hold the
world itself to those rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from domain.customers import CLAIM, CUSTOMER, CUSTOMERS, CustomerState
from domain.customers.claims import claim_id, register_location
from domain.errors import Conflict
from domain.identity import ADMIN, Identity
from domain.model import Decision, Event
from tests.domain.harness import World

ORG = "org_a"
OTHER_ORG = "org_b"
WRITER = Identity(
    subject="u_staff", org_id=ORG, caps=frozenset({"customers:read", "customers:write"})
)
READER = Identity(subject="u_reader", org_id=ORG, caps=frozenset({"customers:read"}))
#: A data-protection officer: may also erase.
ERASER = Identity(
    subject="u_dpo",
    org_id=ORG,
    caps=frozenset({"customers:read", "customers:write", "customers:erase"}),
)
RIVAL = Identity(subject="u_rival", org_id=OTHER_ORG, caps=frozenset({"*"}))
NO_CAPS = Identity(subject="u_clerk", org_id=ORG)
ANON = Identity()

ANN: dict[str, Any] = {
    "firstName": "Ann",
    "lastName": "Lee",
    "email": "ann@example.com",
    "phone": "+44 20 7946 0001",
}


class CustomerWorld(World):
    def __init__(self) -> None:
        super().__init__(CUSTOMERS)

    def react(
        self,
        customer_id: str,
        reaction: Callable[[Decision[CustomerState]], None],
        identity: Identity = ADMIN,
    ) -> None:
        """Run `reaction` on the customer inside a command of another aggregate (a claim
        stream stands in for the order or ticket record that would carry it)."""

        def handle(d: Decision[Any]) -> None:
            reaction(d.co_decide(CUSTOMER, customer_id))

        self.run(CLAIM, "cl_reactionsource", identity, handle)

    # -- inspection -------------------------------------------------------------------------------

    def customer(self, customer_id: str) -> CustomerState:
        state = self.states[CUSTOMER.stream_of(customer_id)]
        assert isinstance(state, CustomerState)
        return state

    def owner(self, org_id: str, field: str, value: str) -> str | None:
        """Who holds the claim on a normalized value (None: nobody)."""
        state = self.states.get(CLAIM.stream_of(claim_id(org_id, field, value)))
        return None if state is None else state.owner

    def claim_events(self) -> list[Event]:
        return [e for e in self.journal if e.stream.startswith("claim/")]


def open_location(world: World, location_id: str, org_id: str = ORG) -> None:
    """Take `org_id`'s claim on `location_id`, as `locations:create` does, so customers and
    events may name it (a claim stream stands in for the location itself)."""
    world.run(CLAIM, location_id, ADMIN, lambda d: register_location(d, org_id))


def create(world: CustomerWorld, caller: Identity = WRITER, **fields: Any) -> str:
    customer_id = world.mutate("customers:create", {**ANN, **fields}, caller)
    assert isinstance(customer_id, str)
    return customer_id


def get(world: CustomerWorld, customer_id: str, caller: Identity = READER) -> dict[str, Any]:
    doc = world.query("customers:get", {"customerId": customer_id}, caller)
    assert isinstance(doc, dict)
    return doc


def refused(
    world: CustomerWorld,
    error: type[Exception],
    name: str,
    args: dict[str, Any],
    caller: Identity = WRITER,
) -> dict[str, Any]:
    """Run a mutation that must fail with `error`, changing nothing; its errorData."""
    journal, states = list(world.journal), dict(world.states)
    projections = dict(world.projections)
    with pytest.raises(error) as failure:
        world.mutate(name, args, caller)
    assert world.journal == journal
    assert world.states == states
    assert world.projections == projections
    data = failure.value.data()  # type: ignore[attr-defined]
    assert isinstance(data, dict)
    return data


# -- the world itself -----------------------------------------------------------------------------


def test_a_co_decision_commits_with_its_command() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    assert w.owner(ORG, "email", "ann@example.com") == customer_id
    assert [type(e).__name__ for e in w.claim_events()] == ["CustomerClaimTaken"] * 2
    assert w.replay(CUSTOMER.stream_of(customer_id)) == w.customer(customer_id)


def test_a_refused_command_keeps_none_of_its_co_decisions() -> None:
    w = CustomerWorld()
    create(w)
    journal, states = list(w.journal), dict(w.states)
    # The new email's claim is taken (emitted) before the phone's claim refuses.
    with pytest.raises(Conflict):
        create(w, email="other@example.com")
    assert w.journal == journal
    assert w.states == states
