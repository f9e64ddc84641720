"""The customer rules of docs/reference/functions.md, one behaviour per test: create, get,
update, soft states, CLV, uniqueness claims and tenancy."""

from __future__ import annotations

from functools import partial
from typing import Any

import attrs
import pytest

from domain.customers import (
    CUSTOMER,
    PERSONAL_FIELDS,
    SOFT_STATE_TRANSITIONS,
    CustomerClvCalculated,
    CustomerUpdated,
    Figures,
    OrderFacts,
    record_order,
)
from domain.customers.events import CLAIM_EVENTS, CUSTOMER_EVENTS
from domain.customers.state import OrderRecord
from domain.errors import Conflict, Forbidden, InvalidArgs, NotFound, Unauthenticated
from domain.identity import ADMIN, Identity
from domain.model import replace
from tests.domain.harness import MINUTE, T0
from tests.domain.test_customers_world import (
    ANN,
    ANON,
    ERASER,
    NO_CAPS,
    ORG,
    OTHER_ORG,
    READER,
    RIVAL,
    WRITER,
    CustomerWorld,
    create,
    get,
    open_location,
    refused,
)

BEN: dict[str, Any] = {
    "firstName": "Ben",
    "lastName": "Okafor",
    "email": "ben@example.com",
    "phone": "020 7946 0002",
}


# -- customers:create -----------------------------------------------------------------------------


def test_create_normalizes_and_records_the_profile() -> None:
    w = CustomerWorld()
    open_location(w, "lo_main")
    customer_id = create(
        w,
        firstName="  Ann ",
        phone="+44 (0)20 7946-0001",
        notes="Prefers window seats",
        tags=["vip", " vip ", "early"],
        customFields={"birthday": "1990-02-01", "visits": 3, "vegan": True},
        locationId="lo_main",
        userId="user_ann",
    )
    assert customer_id == "cu_t0001"
    assert get(w, customer_id) == {
        "_id": customer_id,
        "_creationTime": T0,
        "orgId": ORG,
        "firstName": "Ann",
        "lastName": "Lee",
        "email": "ann@example.com",
        "phone": "4402079460001",
        "notes": "Prefers window seats",
        "tags": ["vip", "early"],
        "customFields": {"birthday": "1990-02-01", "visits": 3, "vegan": True},
        "customerType": "regular",
        "lifecycle": "lead",
        "locationId": "lo_main",
        "userId": "user_ann",
        "state": "active",
        "clv": 0,
        "avgOrderValue": 0,
        "orderCount": 0,
        "photoStorageId": None,
        "photoUrl": None,
        "stateHistory": [],
        "updatedAt": T0,
    }
    timeline = w.query("activity:list", {"entityType": "customer", "entityId": customer_id}, READER)
    assert timeline == [
        {
            "_id": "ac_t0001_0",
            "entityType": "customer",
            "entityId": customer_id,
            "action": "customer.created",
            "by": "u_staff",
            "at": T0,
            "metadata": {"customerType": "regular", "lifecycle": "lead"},
        }
    ]


def test_admin_creates_in_the_named_org() -> None:
    w = CustomerWorld()
    customer_id = create(w, ADMIN, orgId=OTHER_ORG)
    doc = get(w, customer_id, ADMIN)
    assert doc["orgId"] == OTHER_ORG
    timeline = w.query("activity:list", {"entityType": "customer", "entityId": customer_id})
    assert timeline[0]["by"] == "admin"


def test_admin_must_name_the_org() -> None:
    assert refused(CustomerWorld(), InvalidArgs, "customers:create", ANN, ADMIN)["path"] == "orgId"


def test_create_refuses_another_orgs_id() -> None:
    refused(CustomerWorld(), Forbidden, "customers:create", {**ANN, "orgId": OTHER_ORG})


@pytest.mark.parametrize(
    ("caller", "error"),
    [(ANON, Unauthenticated), (NO_CAPS, Forbidden), (READER, Forbidden)],
)
def test_create_needs_customers_write(caller: Identity, error: type[Exception]) -> None:
    refused(CustomerWorld(), error, "customers:create", ANN, caller)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        (
            {
                "firstName": None,
                "lastName": None,
                "email": None,
                "phone": None,
                "customerType": "anonymous",
            },
            "firstName",
        ),
        (
            {"firstName": " ", "lastName": "", "email": None, "phone": None, "customerType": "new"},
            "firstName",
        ),
        ({"email": "not-an-email"}, "email"),
        ({"email": "ann@localhost"}, "email"),
        ({"email": "ann@@example.com"}, "email"),
        ({"email": "ann lee@example.com"}, "email"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "call me maybe"}, "phone"),
        ({"phone": "+44 20 7946 0001 ext 5"}, "phone"),
        ({"phone": "1" * 21}, "phone"),
        ({"phone": None}, "phone"),
        ({"email": None}, "email"),
        ({"email": "  "}, "email"),
        ({"customerType": "vip"}, "customerType"),
        ({"lifecycle": "gone"}, "lifecycle"),
        ({"tags": ["ok", " "]}, "tags[1]"),
        ({"firstName": "A" * 201}, "firstName"),
        ({"notes": "n" * 10_001}, "notes"),
        ({"firstName": 5}, "firstName"),
        ({"customFields": {"a": [1]}}, "customFields[a]"),
        ({"customFields": {" ": 1}}, "customFields"),
        ({"nickname": "Annie"}, "nickname"),
    ],
)
def test_create_validates_with_wire_paths(fields: dict[str, Any], path: str) -> None:
    args = {key: value for key, value in {**ANN, **fields}.items() if value is not None}
    data = refused(CustomerWorld(), InvalidArgs, "customers:create", args)
    assert data["path"] == path


@pytest.mark.parametrize(
    ("customer_type", "fields"),
    [
        ("unregistered", {"email": "ann@example.com"}),
        ("new", {"phone": "0207 946 0001"}),
        ("anonymous", {"firstName": "Ann"}),
    ],
)
def test_other_types_need_only_one_contact_field(
    customer_type: str, fields: dict[str, Any]
) -> None:
    w = CustomerWorld()
    customer_id = w.mutate("customers:create", {"customerType": customer_type, **fields}, WRITER)
    assert get(w, customer_id)["customerType"] == customer_type


# -- uniqueness -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("second", "field"),
    [
        ({"email": "Ann@Example.COM", "phone": "0777 000 0009"}, "email"),
        ({"email": " ANN@example.com ", "phone": "0777 000 0009"}, "email"),
        ({"email": "other@example.com", "phone": "+44-20-7946-0001"}, "phone"),
        ({"email": "other@example.com", "phone": "(44) 20.7946.0001"}, "phone"),
    ],
)
def test_email_and_phone_are_unique_in_the_org_after_normalizing(
    second: dict[str, Any], field: str
) -> None:
    w = CustomerWorld()
    first = create(w)
    data = refused(w, Conflict, "customers:create", {**BEN, **second})
    assert data["field"] == field
    assert data["existingCustomerId"] == first
    assert data["message"] == (
        "A customer with this email already exists."
        if field == "email"
        else "A customer with this phone number already exists."
    )


def test_trunk_prefix_phones_compare_by_their_digits() -> None:
    w = CustomerWorld()
    first = create(w, phone="+44 (0)20 7946 0958")
    data = refused(w, Conflict, "customers:create", {**BEN, "phone": "44 020 7946 0958"})
    assert (data["field"], data["existingCustomerId"]) == ("phone", first)


def test_user_id_is_unique_in_the_org() -> None:
    w = CustomerWorld()
    first = create(w, userId="user_1")
    data = refused(w, Conflict, "customers:create", {**BEN, "userId": "user_1"})
    assert (data["field"], data["existingCustomerId"]) == ("userId", first)


def test_uniqueness_is_per_organization() -> None:
    w = CustomerWorld()
    mine = create(w)
    theirs = create(w, RIVAL)
    assert mine != theirs
    assert w.owner(ORG, "email", "ann@example.com") == mine
    assert w.owner(OTHER_ORG, "email", "ann@example.com") == theirs


def test_soft_states_keep_their_claims() -> None:
    w = CustomerWorld()
    first = create(w)
    for command in ("customers:suspend", "customers:archive", "customers:delete"):
        w.mutate(command, {"customerId": first}, WRITER)
        data = refused(w, Conflict, "customers:create", {**ANN, "phone": "0777 000 0009"})
        assert data["existingCustomerId"] == first


def test_claim_streams_carry_no_personal_data() -> None:
    w = CustomerWorld()
    create(w, userId="user_ann")
    for event in w.claim_events():
        stream_id = event.stream.partition("/")[2]
        assert stream_id.startswith("cl_") and len(stream_id) == 35
        for secret in ("ann", "example", "4420", "user_ann"):
            assert secret not in stream_id
        assert attrs.asdict(event)["customer_id"] == "cu_t0001"


# -- customers:get --------------------------------------------------------------------------------


def test_get_answers_null_for_missing_malformed_and_foreign_customers() -> None:
    w = CustomerWorld()
    mine = create(w)
    theirs = create(w, RIVAL)
    for customer_id in ("cu_nope", "not an id", "ev_t0001", theirs):
        assert w.query("customers:get", {"customerId": customer_id}, READER) is None
    assert w.query("customers:get", {"customerId": mine}, RIVAL) is None
    assert get(w, theirs, ADMIN)["orgId"] == OTHER_ORG


@pytest.mark.parametrize(("caller", "error"), [(ANON, Unauthenticated), (NO_CAPS, Forbidden)])
def test_get_needs_customers_read(caller: Identity, error: type[Exception]) -> None:
    w = CustomerWorld()
    customer_id = create(w)
    with pytest.raises(error):
        w.query("customers:get", {"customerId": customer_id}, caller)


# -- customers:update -----------------------------------------------------------------------------


def test_update_changes_only_the_fields_given() -> None:
    w = CustomerWorld()
    customer_id = create(w, notes="old", tags=["a"])
    w.now += MINUTE
    w.mutate(
        "customers:update",
        {"customerId": customer_id, "lastName": "Lee-Smith", "lifecycle": "active", "tags": []},
        WRITER,
    )
    doc = get(w, customer_id)
    assert (doc["firstName"], doc["lastName"], doc["lifecycle"], doc["tags"], doc["notes"]) == (
        "Ann",
        "Lee-Smith",
        "active",
        [],
        "old",
    )
    assert doc["updatedAt"] == T0 + MINUTE
    newest = w.query(
        "activity:list", {"entityType": "customer", "entityId": customer_id, "limit": 1}, READER
    )
    assert [(e["action"], e["metadata"], e["at"]) for e in newest] == [
        ("customer.updated", {"fields": "lastName,tags,lifecycle"}, T0 + MINUTE)
    ]


def test_update_with_empty_text_removes_an_optional_field() -> None:
    w = CustomerWorld()
    open_location(w, "lo_1")
    customer_id = create(w, notes="remember me", locationId="lo_1")
    w.mutate("customers:update", {"customerId": customer_id, "notes": "", "locationId": ""}, WRITER)
    doc = get(w, customer_id)
    assert (doc["notes"], doc["locationId"]) == (None, None)
    event = w.journal[-1]
    assert isinstance(event, CustomerUpdated) and event.cleared == ("notes", "location_id")


def test_update_keeps_the_profile_complete() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    data = refused(w, InvalidArgs, "customers:update", {"customerId": customer_id, "email": ""})
    assert data["path"] == "email"
    anon = w.mutate("customers:create", {"firstName": "Zed", "customerType": "anonymous"}, WRITER)
    data = refused(w, InvalidArgs, "customers:update", {"customerId": anon, "firstName": ""})
    assert data["path"] == "firstName"
    data = refused(
        w,
        InvalidArgs,
        "customers:update",
        {"customerId": anon, "customerType": "regular", "email": "zed@example.com"},
    )
    assert data["path"] == "phone"


def test_an_update_that_changes_nothing_emits_nothing() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    before = len(w.journal)
    w.mutate(
        "customers:update",
        {"customerId": customer_id, "firstName": " Ann ", "phone": "44 20 7946 0001"},
        WRITER,
    )
    w.mutate("customers:update", {"customerId": customer_id}, WRITER)
    assert len(w.journal) == before


def test_changing_the_email_moves_its_claim() -> None:
    w = CustomerWorld()
    ann = create(w)
    w.mutate("customers:update", {"customerId": ann, "email": "ann.lee@example.com"}, WRITER)
    assert w.owner(ORG, "email", "ann@example.com") is None
    assert w.owner(ORG, "email", "ann.lee@example.com") == ann
    ben = create(w, **{**BEN, "email": "ann@example.com"})  # the old address is free again
    data = refused(
        w, Conflict, "customers:update", {"customerId": ben, "email": "ANN.LEE@example.com"}
    )
    assert (data["field"], data["existingCustomerId"]) == ("email", ann)
    data = refused(
        w, Conflict, "customers:update", {"customerId": ben, "phone": "+44 20 7946 0001"}
    )
    assert (data["field"], data["existingCustomerId"]) == ("phone", ann)


def test_a_case_only_email_change_keeps_its_claim() -> None:
    w = CustomerWorld()
    ann = create(w)
    claims = len(w.claim_events())
    w.mutate("customers:update", {"customerId": ann, "email": "Ann@Example.com"}, WRITER)
    assert get(w, ann)["email"] == "Ann@Example.com"
    assert len(w.claim_events()) == claims
    assert w.owner(ORG, "email", "ann@example.com") == ann


def test_removing_a_user_id_releases_it() -> None:
    w = CustomerWorld()
    ann = create(w, customerType="new", userId="user_1")
    w.mutate("customers:update", {"customerId": ann, "userId": ""}, WRITER)
    assert w.owner(ORG, "userId", "user_1") is None
    ben = create(w, **BEN, userId="user_1")
    assert w.owner(ORG, "userId", "user_1") == ben


@pytest.mark.parametrize("locked", ["customers:delete", "customers:archive"])
def test_deleted_and_archived_customers_refuse_updates_until_restored(locked: str) -> None:
    w = CustomerWorld()
    customer_id = create(w)
    w.mutate(locked, {"customerId": customer_id}, WRITER)
    data = refused(
        w, Conflict, "customers:update", {"customerId": customer_id, "firstName": "Anna"}
    )
    assert data["customerId"] == customer_id
    w.mutate("customers:restore", {"customerId": customer_id}, WRITER)
    w.mutate("customers:update", {"customerId": customer_id, "firstName": "Anna"}, WRITER)
    assert get(w, customer_id)["firstName"] == "Anna"


def test_suspended_customers_may_be_updated() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    w.mutate("customers:suspend", {"customerId": customer_id}, WRITER)
    w.mutate("customers:update", {"customerId": customer_id, "lifecycle": "at-risk"}, WRITER)
    assert get(w, customer_id)["lifecycle"] == "at-risk"


@pytest.mark.parametrize("customer_id", ["cu_missing", "garbage", "ms_t0001_0"])
def test_update_of_a_missing_customer_is_not_found(customer_id: str) -> None:
    w = CustomerWorld()
    create(w)
    refused(w, NotFound, "customers:update", {"customerId": customer_id, "firstName": "X"})


def test_another_orgs_customer_is_not_found_for_every_command() -> None:
    w = CustomerWorld()
    theirs = create(w, RIVAL)
    for name, extra in [
        ("customers:update", {"firstName": "X"}),
        ("customers:delete", {}),
        ("customers:suspend", {}),
        ("customers:archive", {}),
        ("customers:calculateCLV", {}),
        ("memberships:enroll", {"programId": "gold", "tier": "1"}),
    ]:
        data = refused(w, NotFound, name, {"customerId": theirs, **extra})
        assert data["message"] == "Customer not found."


@pytest.mark.parametrize("caller", [READER, NO_CAPS])
def test_changes_need_customers_write(caller: Identity) -> None:
    w = CustomerWorld()
    customer_id = create(w)
    for name, extra in [
        ("customers:update", {"firstName": "X"}),
        ("customers:delete", {}),
        ("customers:restore", {}),
        ("customers:calculateCLV", {}),
    ]:
        refused(w, Forbidden, name, {"customerId": customer_id, **extra}, caller)


def test_update_validates_with_wire_paths() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    for field, value, path in [
        ("email", "nope", "email"),
        ("phone", "123", "phone"),
        ("lifecycle", "", "lifecycle"),
        ("customerType", "gold", "customerType"),
        ("tags", [""], "tags[0]"),
        ("orgId", OTHER_ORG, "orgId"),
    ]:
        data = refused(
            w, InvalidArgs, "customers:update", {"customerId": customer_id, field: value}
        )
        assert data["path"] == path


# -- soft states ----------------------------------------------------------------------------------

COMMANDS = {
    "deleted": "customers:delete",
    "active": "customers:restore",
    "suspended": "customers:suspend",
    "archived": "customers:archive",
    "erased": "customers:erase",
}
#: A way to bring a new (active) customer into each soft state.
PATHS = {
    "active": [],
    "deleted": ["deleted"],
    "suspended": ["suspended"],
    "archived": ["archived"],
    "erased": ["erased"],
}


def test_soft_state_changes_are_recorded_in_state_history() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    w.now += MINUTE
    w.mutate("customers:delete", {"customerId": customer_id, "reason": "Duplicate record"}, WRITER)
    w.now += MINUTE
    w.mutate("customers:restore", {"customerId": customer_id}, ADMIN)
    doc = get(w, customer_id)
    assert doc["state"] == "active"
    assert doc["stateHistory"] == [
        {
            "from": "active",
            "to": "deleted",
            "at": T0 + MINUTE,
            "by": "u_staff",
            "reason": "Duplicate record",
        },
        {"from": "deleted", "to": "active", "at": T0 + 2 * MINUTE, "by": "admin", "reason": None},
    ]
    actions = w.query("activity:list", {"entityType": "customer", "entityId": customer_id}, READER)
    assert [(e["action"], e["metadata"]) for e in actions] == [
        ("customer.restored", {"from": "deleted", "to": "active"}),
        ("customer.deleted", {"from": "active", "to": "deleted"}),
        ("customer.created", {"customerType": "regular", "lifecycle": "lead"}),
    ]


@pytest.mark.parametrize("start", sorted(SOFT_STATE_TRANSITIONS))
@pytest.mark.parametrize("target", sorted(COMMANDS))
def test_soft_state_commands_follow_the_transition_table(start: str, target: str) -> None:
    w = CustomerWorld()
    customer_id = create(w)
    for step in PATHS[start]:
        w.mutate(COMMANDS[step], {"customerId": customer_id}, ERASER)
    assert get(w, customer_id)["state"] == start
    if target in SOFT_STATE_TRANSITIONS[start]:
        w.mutate(COMMANDS[target], {"customerId": customer_id}, ERASER)
        history = get(w, customer_id)["stateHistory"]
        assert (history[-1]["from"], history[-1]["to"]) == (start, target)
    elif start == target == "erased":
        w.mutate(COMMANDS[target], {"customerId": customer_id}, ERASER)  # idempotent
        assert get(w, customer_id)["state"] == "erased"
    else:
        data = refused(w, Conflict, COMMANDS[target], {"customerId": customer_id}, ERASER)
        assert data["state"] == start


def test_reason_is_validated() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    data = refused(
        w, InvalidArgs, "customers:delete", {"customerId": customer_id, "reason": "x" * 501}
    )
    assert data["path"] == "reason"


# -- customers:calculateCLV -----------------------------------------------------------------------


def facts(order_id: str, status: str, total: int, org: str = ORG) -> OrderFacts:
    return OrderFacts(
        order_id=order_id,
        location_id="lo_1",
        org_id=org,
        type="booking",
        status=status,
        total=total,
        paid_amount=total if status == "completed" else 0,
        scheduled_at=None,
        created_at=T0,
        completed_at=T0 if status == "completed" else None,
    )


def test_calculate_clv_without_orders_is_zero_and_emits_nothing() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    before = len(w.journal)
    assert w.mutate("customers:calculateCLV", {"customerId": customer_id}, WRITER) == {
        "clv": 0,
        "avgOrderValue": 0,
        "orderCount": 0,
    }
    assert len(w.journal) == before


def test_calculate_clv_counts_completed_orders_only() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    for order in (
        facts("or_1", "completed", 1000),
        facts("or_2", "completed", 2001),
        facts("or_3", "pending", 9999),
        facts("or_4", "cancelled", 500),
    ):
        w.react(customer_id, partial(record_order, facts=order))
    before = len(w.journal)
    figures = w.mutate("customers:calculateCLV", {"customerId": customer_id}, WRITER)
    assert figures == {"clv": 3001, "avgOrderValue": 1501, "orderCount": 2}
    assert len(w.journal) == before  # the reactions kept the figures current
    assert {k: get(w, customer_id)[k] for k in figures} == figures


def test_calculate_clv_repairs_stale_figures() -> None:
    w = CustomerWorld()
    customer_id = create(w)
    stream = CUSTOMER.stream_of(customer_id)
    order = OrderRecord(
        id="or_1",
        location_id="lo_1",
        type="purchase",
        status="completed",
        total=700,
        paid_amount=700,
        scheduled_at=None,
        created_at=T0,
        completed_at=T0,
    )
    # A record whose figures lag behind its orders (as one written before figures were kept).
    w.states[stream] = replace(w.states[stream], orders=w.states[stream].orders.set("or_1", order))
    assert w.mutate("customers:calculateCLV", {"customerId": customer_id}, WRITER) == {
        "clv": 700,
        "avgOrderValue": 700,
        "orderCount": 1,
    }
    event = w.journal[-1]
    assert isinstance(event, CustomerClvCalculated) and event.clv == 700
    assert w.customer(customer_id).figures == Figures(clv=700, avg_order_value=700, order_count=1)


# -- the module's shape ---------------------------------------------------------------------------


def test_personal_fields_name_real_fields() -> None:
    named = {cls for cls, _ in PERSONAL_FIELDS}
    for cls, fields in PERSONAL_FIELDS:
        assert set(fields) <= {f.name for f in attrs.fields(cls)}
        assert cls.personal_fields == fields
    for cls in (*CUSTOMER_EVENTS, *CLAIM_EVENTS):
        assert (cls in named) == bool(cls.personal_fields)
    assert "email" in dict(PERSONAL_FIELDS)[CustomerUpdated]
