"""Memberships, the activity timeline, exportData and the reactions other modules call."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from domain.customers import (
    CLAIM,
    CustomerOrderRecorded,
    OrderFacts,
    record_order,
    record_ticket_purchase,
    user_claim_id,
)
from domain.errors import Conflict, Forbidden, InvalidArgs, NotFound
from domain.identity import ADMIN, Identity
from tests.domain.harness import MINUTE, T0
from tests.domain.test_customers_world import (
    NO_CAPS,
    ORG,
    OTHER_ORG,
    READER,
    RIVAL,
    WRITER,
    CustomerWorld,
    create,
    get,
    refused,
)

DAY = 24 * 60 * MINUTE


def enroll(w: CustomerWorld, customer_id: str, program: str = "gold", **extra: Any) -> str:
    args = {"customerId": customer_id, "programId": program, "tier": "silver", **extra}
    membership_id = w.mutate("memberships:enroll", args, WRITER)
    assert isinstance(membership_id, str)
    return membership_id


def add(w: CustomerWorld, membership_id: str, points: int) -> dict[str, Any]:
    doc = w.mutate(
        "memberships:addPoints", {"membershipId": membership_id, "points": points}, WRITER
    )
    assert isinstance(doc, dict)
    return doc


def timeline(
    w: CustomerWorld, kind: str, entity_id: str, caller: Identity = READER, **extra: Any
) -> list[dict[str, Any]]:
    found = w.query("activity:list", {"entityType": kind, "entityId": entity_id, **extra}, caller)
    assert isinstance(found, list)
    return found


# -- memberships ----------------------------------------------------------------------------------


def test_enroll_starts_a_membership_with_no_points() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    w.now += MINUTE
    membership_id = enroll(w, customer_id, expiryDate=T0 + 365 * DAY, walletPassId="pass_1")
    assert membership_id == "ms_t0001_0"
    assert w.query("memberships:list", {"customerId": customer_id}, READER) == [
        {
            "_id": membership_id,
            "_creationTime": T0 + MINUTE,
            "customerId": customer_id,
            "programId": "gold",
            "tier": "silver",
            "points": 0,
            "startDate": T0 + MINUTE,
            "expiryDate": T0 + 365 * DAY,
            "walletPassId": "pass_1",
        }
    ]
    assert enroll(w, customer_id, "silver-club") == "ms_t0001_1"


def test_points_move_the_balance_which_never_goes_below_zero() -> None:
    w = CustomerWorld()
    membership_id = enroll(w, create(w))
    assert add(w, membership_id, 100)["points"] == 100
    assert add(w, membership_id, -30)["points"] == 70
    data = refused(
        w, Conflict, "memberships:addPoints", {"membershipId": membership_id, "points": -71}
    )
    assert (data["balance"], data["membershipId"]) == (70, membership_id)
    assert add(w, membership_id, -70)["points"] == 0


def test_zero_points_are_invalid() -> None:
    w = CustomerWorld()
    membership_id = enroll(w, create(w))
    data = refused(
        w, InvalidArgs, "memberships:addPoints", {"membershipId": membership_id, "points": 0}
    )
    assert data["path"] == "points"


def test_one_live_membership_per_programme() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    first = enroll(w, customer_id, expiryDate=T0 + DAY)
    data = refused(
        w,
        Conflict,
        "memberships:enroll",
        {"customerId": customer_id, "programId": "gold", "tier": "bronze"},
    )
    assert data["membershipId"] == first
    w.now += DAY
    data = refused(w, Conflict, "memberships:addPoints", {"membershipId": first, "points": 5})
    assert data["expiryDate"] == T0 + DAY
    assert enroll(w, customer_id) == "ms_t0001_1"  # the expired one no longer counts


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"programId": " "}, "programId"),
        ({"tier": ""}, "tier"),
        ({"expiryDate": T0}, "expiryDate"),
        ({"expiryDate": "soon"}, "expiryDate"),
        ({"points": 5}, "points"),
    ],
)
def test_enroll_validates_with_wire_paths(fields: dict[str, Any], path: str) -> None:
    w = CustomerWorld()
    customer_id = create(w)
    args = {"customerId": customer_id, "programId": "gold", "tier": "silver", **fields}
    assert refused(w, InvalidArgs, "memberships:enroll", args)["path"] == path


@pytest.mark.parametrize("membership_id", ["ms_t0001_5", "ms_nope_0", "cu_t0001", "ms_t0001"])
def test_points_for_an_unknown_membership_are_not_found(membership_id: str) -> None:
    w = CustomerWorld()
    enroll(w, create(w))
    data = refused(
        w, NotFound, "memberships:addPoints", {"membershipId": membership_id, "points": 1}
    )
    assert data["message"] == "Membership not found."


def test_memberships_follow_tenancy_and_capabilities() -> None:
    w = CustomerWorld()
    theirs = create(w, RIVAL)
    membership_id = w.mutate(
        "memberships:enroll", {"customerId": theirs, "programId": "gold", "tier": "1"}, RIVAL
    )
    refused(w, NotFound, "memberships:addPoints", {"membershipId": membership_id, "points": 1})
    with pytest.raises(NotFound):
        w.query("memberships:list", {"customerId": theirs}, READER)
    with pytest.raises(NotFound):
        timeline(w, "membership", membership_id)
    mine = create(w)
    refused(
        w,
        Forbidden,
        "memberships:enroll",
        {"customerId": mine, "programId": "gold", "tier": "1"},
        READER,
    )
    with pytest.raises(Forbidden):
        w.query("memberships:list", {"customerId": mine}, NO_CAPS)


def test_a_deleted_customer_takes_no_memberships_or_points() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    membership_id = enroll(w, customer_id)
    w.mutate("customers:delete", {"customerId": customer_id}, WRITER)
    refused(w, Conflict, "memberships:addPoints", {"membershipId": membership_id, "points": 1})
    refused(
        w,
        Conflict,
        "memberships:enroll",
        {"customerId": customer_id, "programId": "other", "tier": "1"},
    )


# -- activity:list --------------------------------------------------------------------------------


def test_the_timeline_lists_every_change_newest_first() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    for step in range(3):
        w.now += MINUTE
        w.mutate("customers:update", {"customerId": customer_id, "notes": f"note {step}"}, WRITER)
    w.now += MINUTE
    membership_id = enroll(w, customer_id)
    entries = timeline(w, "customer", customer_id)
    assert [e["action"] for e in entries] == [
        "membership.enrolled",
        "customer.updated",
        "customer.updated",
        "customer.updated",
        "customer.created",
    ]
    assert [e["at"] for e in entries] == [T0 + n * MINUTE for n in (4, 3, 2, 1, 0)]
    assert entries[0]["metadata"] == {
        "membershipId": membership_id,
        "programId": "gold",
        "tier": "silver",
    }
    assert [e["_id"] for e in timeline(w, "customer", customer_id, limit=2)] == [
        "ac_t0001_4",
        "ac_t0001_3",
    ]


def test_a_membership_timeline_holds_only_entries_about_it() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    gold = enroll(w, customer_id, "gold")
    silver = enroll(w, customer_id, "silver")
    add(w, gold, 10)
    add(w, silver, 20)
    add(w, gold, -5)
    entries = timeline(w, "membership", gold)
    assert [(e["action"], e["metadata"].get("points")) for e in entries] == [
        ("membership.pointsAdded", -5),
        ("membership.pointsAdded", 10),
        ("membership.enrolled", None),
    ]
    assert {(e["entityType"], e["entityId"]) for e in entries} == {("membership", gold)}
    assert entries[0]["metadata"]["balance"] == 5
    assert len(timeline(w, "membership", gold, limit=1)) == 1


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ({"entityType": "order", "entityId": "or_1"}, "entityType"),
        ({"entityType": "customer", "entityId": "cu_t0001", "limit": 0}, "limit"),
        ({"entityType": "customer", "entityId": "cu_t0001", "limit": 1001}, "limit"),
        ({"entityType": "customer"}, "entityId"),
    ],
)
def test_activity_list_validates(args: dict[str, Any], path: str) -> None:
    w = CustomerWorld()
    create(w)
    with pytest.raises(InvalidArgs) as failure:
        w.query("activity:list", args, READER)
    assert failure.value.data()["path"] == path


def test_activity_of_missing_or_foreign_entities_is_not_found() -> None:
    w = CustomerWorld()
    mine = create(w)
    theirs = create(w, RIVAL)
    for kind, entity_id in [
        ("customer", theirs),
        ("customer", "cu_nope"),
        ("customer", "bad id"),
        ("membership", "ms_t0001_0"),
        ("membership", mine),
    ]:
        with pytest.raises(NotFound):
            timeline(w, kind, entity_id)
    assert timeline(w, "customer", theirs, ADMIN)


# -- customers:exportData -------------------------------------------------------------------------


def order(
    order_id: str, status: str, total: int, *, org: str = ORG, paid: int = 0, at: int = T0
) -> OrderFacts:
    return OrderFacts(
        order_id=order_id,
        location_id="lo_1",
        org_id=org,
        type="booking",
        status=status,
        total=total,
        paid_amount=paid,
        scheduled_at=at + DAY,
        created_at=at,
        completed_at=at + DAY if status == "completed" else None,
    )


def test_export_holds_everything_about_the_customer() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    membership_id = enroll(w, customer_id)
    add(w, membership_id, 40)
    w.react(customer_id, lambda d: record_order(d, order("or_1", "completed", 2500, paid=2500)))
    w.react(
        customer_id,
        lambda d: record_ticket_purchase(
            d, org_id=ORG, event_id="ev_1", ticket_id="tk_1_0", amount=1500
        ),
    )
    w.mutate("customers:suspend", {"customerId": customer_id, "reason": "Card dispute"}, WRITER)
    exported = w.query("customers:exportData", {"customerId": customer_id}, READER)
    assert exported["customer"] == get(w, customer_id)
    assert exported["customer"]["clv"] == 2500
    assert exported["stateHistory"] == exported["customer"]["stateHistory"]
    assert exported["stateHistory"][0]["reason"] == "Card dispute"
    assert exported["orders"] == [
        {
            "orderId": "or_1",
            "locationId": "lo_1",
            "type": "booking",
            "status": "completed",
            "total": 2500,
            "paidAmount": 2500,
            "scheduledAt": T0 + DAY,
            "createdAt": T0,
            "completedAt": T0 + DAY,
        }
    ]
    assert exported["ticketPurchases"] == [
        {"ticketId": "tk_1_0", "eventId": "ev_1", "amount": 1500, "at": T0}
    ]
    assert [m["points"] for m in exported["memberships"]] == [40]
    assert [e["action"] for e in exported["activity"]] == [
        "customer.created",
        "membership.enrolled",
        "membership.pointsAdded",
        "order.created",
        "ticket.purchased",
        "customer.suspended",
    ]


def test_export_follows_tenancy_and_capabilities() -> None:
    w = CustomerWorld()
    theirs = create(w, RIVAL)
    for customer_id in (theirs, "cu_nope"):
        with pytest.raises(NotFound):
            w.query("customers:exportData", {"customerId": customer_id}, READER)
    with pytest.raises(Forbidden):
        w.query("customers:exportData", {"customerId": theirs}, NO_CAPS)


# -- reactions ------------------------------------------------------------------------------------


def test_record_order_keeps_orders_figures_and_timeline_current() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    staff = Identity(subject="u_front_desk", org_id=ORG, caps=frozenset({"orders:manage"}))
    w.react(customer_id, lambda d: record_order(d, order("or_1", "pending", 3000)), staff)
    w.react(customer_id, lambda d: record_order(d, order("or_1", "pending", 3000, paid=1000)))
    w.react(customer_id, lambda d: record_order(d, order("or_1", "completed", 3000, paid=3000)))
    w.react(customer_id, lambda d: record_order(d, order("or_2", "completed", 1001, paid=1001)))
    doc = get(w, customer_id)
    assert (doc["clv"], doc["avgOrderValue"], doc["orderCount"]) == (4001, 2001, 2)
    w.react(customer_id, lambda d: record_order(d, order("or_1", "cancelled", 3000)))
    doc = get(w, customer_id)
    assert (doc["clv"], doc["avgOrderValue"], doc["orderCount"]) == (1001, 1001, 1)
    entries = timeline(w, "customer", customer_id)
    assert [(e["action"], e["by"]) for e in entries[:5]] == [
        ("order.cancelled", "system"),
        ("order.created", "system"),
        ("order.completed", "system"),
        ("order.updated", "system"),
        ("order.created", "u_front_desk"),
    ]
    assert entries[2]["metadata"] == {
        "orderId": "or_1",
        "locationId": "lo_1",
        "type": "booking",
        "status": "completed",
        "total": 3000,
        "paidAmount": 3000,
    }


def test_recording_the_same_facts_again_emits_nothing() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    facts = order("or_1", "completed", 500)
    w.react(customer_id, lambda d: record_order(d, facts))
    w.react(
        customer_id,
        lambda d: record_ticket_purchase(
            d, org_id=ORG, event_id="ev_1", ticket_id="tk_1", amount=5
        ),
    )
    before = len(w.journal)
    w.react(customer_id, lambda d: record_order(d, facts))
    w.react(
        customer_id,
        lambda d: record_ticket_purchase(
            d, org_id=ORG, event_id="ev_1", ticket_id="tk_1", amount=5
        ),
    )
    assert len(w.journal) == before
    assert sum(isinstance(e, CustomerOrderRecorded) for e in w.journal) == 1


def test_reactions_refuse_missing_and_foreign_customers_changing_nothing() -> None:
    w = CustomerWorld()
    mine = create(w)
    theirs = create(w, RIVAL)
    journal = list(w.journal)
    for customer_id, org in [(theirs, ORG), (mine, OTHER_ORG), ("cu_nope", ORG)]:
        with pytest.raises(NotFound):
            w.react(
                customer_id,
                partial(record_order, facts=order("or_1", "completed", 100, org=org)),
            )
        with pytest.raises(NotFound):
            w.react(
                customer_id,
                partial(
                    record_ticket_purchase, org_id=org, event_id="ev_1", ticket_id="tk_1", amount=1
                ),
            )
    assert w.journal == journal


def test_orders_are_recorded_whatever_the_soft_state() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    w.mutate("customers:archive", {"customerId": customer_id}, WRITER)
    w.react(customer_id, lambda d: record_order(d, order("or_1", "completed", 100)))
    assert get(w, customer_id)["clv"] == 100


def test_a_users_customer_is_found_through_its_claim() -> None:
    w = CustomerWorld()
    customer_id = create(w, userId="user_ann")
    claim = w.states[CLAIM.stream_of(user_claim_id(ORG, "user_ann"))]
    assert claim.owner == customer_id
    assert CLAIM.stream_of(user_claim_id(OTHER_ORG, "user_ann")) not in w.states
