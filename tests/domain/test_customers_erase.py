"""customers:erase (docs/reference/functions.md): the rules of the command, on the pure domain.

That the bytes leave the journal and snapshot files is tested on a live engine in
tests/test_customers_erasure_live.py."""

from __future__ import annotations

from functools import partial

from domain.customers import CustomerState
from domain.customers.invariants import check_invariants
from domain.customers.reactions import OrderFacts, record_order
from domain.errors import Conflict, Forbidden, NotFound
from domain.model import Event
from tests.domain.test_customers_world import (
    ANN,
    ERASER,
    ORG,
    READER,
    RIVAL,
    WRITER,
    CustomerWorld,
    create,
    get,
    refused,
)

PERSONAL = ("Ann", "Lee", "ann@example.com", "442079460001", "likes the window seat", "vip")


def completed(order_id: str, total: int) -> OrderFacts:
    return OrderFacts(
        order_id=order_id,
        location_id="lo_1",
        org_id=ORG,
        type="booking",
        status="completed",
        total=total,
        paid_amount=total,
        scheduled_at=None,
        created_at=0,
        completed_at=0,
    )


def rich_customer(w: CustomerWorld) -> str:
    customer_id = create(w, notes="likes the window seat", tags=["vip"], userId="user-ann")
    w.mutate(
        "memberships:enroll",
        {"customerId": customer_id, "programId": "gold", "tier": "silver", "walletPassId": "wp-9"},
        WRITER,
    )
    w.mutate("customers:suspend", {"customerId": customer_id, "reason": "Ann asked"}, WRITER)
    w.react(customer_id, partial(record_order, facts=completed("or_1", 2500)))
    return customer_id


def test_erase_forgets_the_person_and_keeps_the_figures() -> None:
    w = CustomerWorld()
    customer_id = rich_customer(w)
    w.mutate("customers:erase", {"customerId": customer_id}, ERASER)
    state = w.customer(customer_id)
    check_invariants(state)
    doc = get(w, customer_id)
    assert doc["state"] == "erased"
    text = repr(w.query("customers:exportData", {"customerId": customer_id}, READER))
    for value in (*PERSONAL, "Ann asked", "wp-9", "user-ann"):
        assert value not in text, value
    assert (doc["clv"], doc["orderCount"]) == (2500, 1)  # anonymous figures stay right
    memberships = w.query("memberships:list", {"customerId": customer_id}, READER)
    assert [m["programId"] for m in memberships] == ["gold"]
    assert [h["to"] for h in doc["stateHistory"]] == ["suspended", "erased"]


def test_erase_releases_the_claims_so_the_values_can_be_used_again() -> None:
    w = CustomerWorld()
    customer_id = rich_customer(w)
    w.mutate("customers:erase", {"customerId": customer_id}, ERASER)
    assert w.owner(ORG, "email", "ann@example.com") is None
    assert w.owner(ORG, "userId", "user-ann") is None
    again = create(w, userId="user-ann")  # the same person signs up anew
    assert again != customer_id


def test_erased_customers_leave_lists_and_statistics() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    other = create(w, email="bo@example.com", phone="020 7946 0999", firstName="Bo")
    w.mutate("customers:erase", {"customerId": customer_id}, ERASER)
    page = w.query("customers:list", {"search": "ann"}, READER)
    assert page["page"] == []
    listed = w.query("customers:list", {}, READER)["page"]
    assert [c["_id"] for c in listed] == [other]
    stats = w.query("customers:typeStatistics", {}, READER)
    assert stats["total"] == 1 and sum(stats["byCustomerType"].values()) == 1


def test_an_erased_customer_cannot_change_or_come_back() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    w.mutate("customers:erase", {"customerId": customer_id}, ERASER)
    refused(w, Conflict, "customers:update", {"customerId": customer_id, "firstName": "X"})
    refused(w, Conflict, "customers:restore", {"customerId": customer_id}, ERASER)
    before = len(w.journal)
    w.mutate("customers:erase", {"customerId": customer_id}, ERASER)  # idempotent
    assert len(w.journal) == before


def test_erase_needs_its_capability_and_the_organization() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    refused(w, Forbidden, "customers:erase", {"customerId": customer_id}, WRITER)
    refused(w, NotFound, "customers:erase", {"customerId": customer_id}, RIVAL)
    refused(w, NotFound, "customers:erase", {"customerId": "cu_nosuchcustomer"}, ERASER)
    assert get(w, customer_id)["email"] == ANN["email"]


def test_replay_of_blanked_rows_gives_the_erased_state() -> None:
    """After the engine blanks the personal fields of the earlier rows, folding the journal
    from nothing gives exactly the erased state, and every state on the way keeps the
    invariants."""
    w = CustomerWorld()
    customer_id = rich_customer(w)
    w.mutate("customers:update", {"customerId": customer_id, "email": "a2@example.com"}, WRITER)
    w.mutate("customers:erase", {"customerId": customer_id}, ERASER)
    live = w.customer(customer_id)
    stream = f"customer/{customer_id}"
    rows: list[Event] = [e.redacted() for e in w.journal if e.stream == stream]
    for event in rows:
        text = repr(event)
        for value in PERSONAL:
            assert value not in text, (value, event)
    from domain.customers.state import INITIAL, evolve

    state: CustomerState = INITIAL
    for event in rows:
        state = evolve(state, event)
        check_invariants(state)
    assert state == live
