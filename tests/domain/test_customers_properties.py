"""Random sequences of customer commands and reactions, checked against brute force.

- Claims: whatever creates, updates, deletes, restores, suspensions and archivings happen in
  two organizations (with emails and phones written in different cases and formats, and
  refusals along the way), the claims held are exactly the emails, phones and user ids of the
  organizations' customers (soft states keep theirs), one customer per value; a refused command
  changes nothing.
- Lists: every organization's customers:list, paged, equals a scan of its active customers.
- CLV: after any sequence of order facts, the figures equal a recomputation from the facts
  last told for each order.
- Replay: folding the journal reproduces every state and the directory, and both survive the
  snapshot codec.
"""

from __future__ import annotations

from fractions import Fraction
from functools import partial
from math import floor
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.customers import (
    CLAIM,
    CUSTOMER,
    CUSTOMER_DIRECTORY,
    CustomerDirectory,
    CustomerState,
    OrderFacts,
    record_order,
)
from domain.customers.claims import claims_of
from domain.errors import TurnstileError
from domain.identity import Identity
from engine.codec import decode_value, encode_value
from tests.domain.harness import MINUTE, T0
from tests.domain.test_customers_world import ORG, OTHER_ORG, RIVAL, WRITER, CustomerWorld

CALLERS: dict[str, Identity] = {ORG: WRITER, OTHER_ORG: RIVAL}
#: Each address in two spellings that are the same customer's.
EMAILS = [
    ("ann@example.com", "Ann@Example.COM"),
    ("bo@example.com", "BO@example.com"),
    ("cy@example.org", "cy@EXAMPLE.org"),
    ("di@example.net", "Di@example.net"),
]
#: Each number in two formats with the same digits.
PHONES = [
    ("020 7946 0001", "(020) 7946-0001"),
    ("020 7946 0002", "0207.946.0002"),
    ("+44 7700 900003", "44 7700 900 003"),
]
USERS = ["user_1", "user_2", "user_3"]
SOFT = {
    "delete": "customers:delete",
    "restore": "customers:restore",
    "suspend": "customers:suspend",
    "archive": "customers:archive",
}

value = st.one_of(st.none(), st.integers(0, 9))
Op = tuple[str, int, int, Any, Any, Any]
ops = st.lists(
    st.tuples(
        st.sampled_from(["create", "create", "update", "update", *SOFT]),
        st.integers(0, 1),  # organization
        st.integers(0, 7),  # which customer (of those created)
        value,  # email choice
        value,  # phone choice
        value,  # user id choice
    ),
    max_size=40,
)


def pick(pool: list[Any], choice: int | None, spelling: int) -> Any:
    """None: leave out; a choice past the pool: "" (remove); else a spelling of a value."""
    if choice is None:
        return None
    if choice >= len(pool):
        return ""
    entry = pool[choice]
    return entry[spelling % len(entry)] if isinstance(entry, tuple) else entry


def run(w: CustomerWorld, created: dict[str, list[str]], op: Op) -> None:
    kind, org_index, which, email, phone, user = op
    org = (ORG, OTHER_ORG)[org_index]
    caller = CALLERS[org]
    mine = created[org]
    fields = {
        "email": pick(EMAILS, email, which),
        "phone": pick(PHONES, phone, which + 1),
        "userId": pick(USERS, user, 0),
    }
    fields = {key: v for key, v in fields.items() if v is not None}
    if kind == "create":
        args = {"firstName": f"C{which}", "customerType": "new" if which % 2 else "regular"}
        args.update({key: v for key, v in fields.items() if v})
        mine.append(w.mutate("customers:create", args, caller))
        return
    if not mine:
        return
    customer_id = mine[which % len(mine)]
    if kind == "update":
        w.mutate("customers:update", {"customerId": customer_id, **fields}, caller)
    else:
        w.mutate(SOFT[kind], {"customerId": customer_id}, caller)


def customers(w: CustomerWorld) -> dict[str, CustomerState]:
    return {
        stream.partition("/")[2]: state
        for stream, state in w.states.items()
        if stream.startswith("customer/") and state.exists
    }


def check_claims(w: CustomerWorld) -> None:
    expected: dict[str, str] = {}
    for customer_id, state in customers(w).items():
        assert state.org_id is not None and state.profile is not None
        for field, claim in claims_of(state.org_id, state.profile):
            other = expected.setdefault(claim, customer_id)
            assert other == customer_id, f"{other} and {customer_id} share a {field}"
    held = {
        stream.partition("/")[2]: state.owner
        for stream, state in w.states.items()
        if stream.startswith("claim/") and state.owner is not None
    }
    assert held == expected


def searchable(state: CustomerState) -> tuple[str, ...]:
    profile = state.profile
    assert profile is not None
    parts = (profile.first_name, profile.last_name, profile.email)
    return tuple(part.casefold() for part in parts if part)


def check_lists(w: CustomerWorld) -> None:
    """Every organization's list, paged 3 at a time, with and without a search, equals a scan
    of its active customers in creation order."""
    everyone = customers(w)
    for org, caller in CALLERS.items():
        active = sorted(
            (s for s in everyone.values() if s.org_id == org and s.soft_state == "active"),
            key=lambda s: (s.created_at, s.id),
        )
        for needle in (None, "c1", "ANN", "example.org", "@"):
            expected = [
                s.id
                for s in active
                if needle is None or any(needle.casefold() in text for text in searchable(s))
            ]
            seen: list[str] = []
            cursor = None
            while True:
                args: dict[str, Any] = {"limit": 3, "cursor": cursor}
                if needle is not None:
                    args["search"] = needle
                page = w.query("customers:list", args, caller)
                seen.extend(doc["_id"] for doc in page["page"])
                cursor = page["continueCursor"]
                if page["isDone"]:
                    break
            assert seen == expected


def check_replay(w: CustomerWorld) -> None:
    for stream, state in w.states.items():
        assert w.replay(stream) == state
        kind = CUSTOMER if stream.startswith("customer/") else CLAIM
        assert decode_value(encode_value(state, kind.state_type), kind.state_type) == state
    directory = w.projections[CUSTOMER_DIRECTORY.name]
    assert w.replay_projections()[CUSTOMER_DIRECTORY.name] == directory
    assert decode_value(encode_value(directory, CustomerDirectory), CustomerDirectory) == directory


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_claims_always_match_the_customers_values(sequence: list[Op]) -> None:
    w = CustomerWorld()
    created: dict[str, list[str]] = {ORG: [], OTHER_ORG: []}
    for op in sequence:
        w.now += MINUTE
        journal, states = len(w.journal), dict(w.states)
        try:
            run(w, created, op)
        except TurnstileError:
            assert len(w.journal) == journal and w.states == states
        check_claims(w)
    check_lists(w)
    check_replay(w)


STATUSES = ["pending", "confirmed", "completed", "completed", "cancelled"]
order_ops = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 5), st.sampled_from(STATUSES), st.integers(0, 100_000)),
        st.just("calculate"),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(order_ops)
def test_clv_always_equals_a_recomputation_from_the_orders(
    sequence: list[tuple[int, str, int] | str],
) -> None:
    w = CustomerWorld()
    customer_id = w.mutate(
        "customers:create", {"firstName": "Ann", "customerType": "anonymous"}, WRITER
    )
    told: dict[str, OrderFacts] = {}
    for step in sequence:
        w.now += MINUTE
        if step == "calculate":
            reply = w.mutate("customers:calculateCLV", {"customerId": customer_id}, WRITER)
        else:
            assert isinstance(step, tuple)
            n, status, total = step
            facts = OrderFacts(
                order_id=f"or_{n}",
                location_id="lo_1",
                org_id=ORG,
                type="purchase",
                status=status,
                total=total,
                paid_amount=total if status == "completed" else 0,
                scheduled_at=None,
                created_at=T0,
                completed_at=w.now if status == "completed" else None,
            )
            w.react(customer_id, partial(record_order, facts=facts))
            told[facts.order_id] = facts
        completed = [f.total for f in told.values() if f.status == "completed"]
        clv = sum(completed)
        average = floor(Fraction(clv, len(completed)) + Fraction(1, 2)) if completed else 0
        doc = w.query("customers:get", {"customerId": customer_id}, WRITER)
        assert (doc["clv"], doc["avgOrderValue"], doc["orderCount"]) == (
            clv,
            average,
            len(completed),
        )
        if step == "calculate":
            assert reply == {"clv": clv, "avgOrderValue": average, "orderCount": len(completed)}
        state = w.customer(customer_id)
        assert {o.id: (o.status, o.total) for o in state.orders.values()} == {
            f.order_id: (f.status, f.total) for f in told.values()
        }
    check_replay(w)
