"""locations:* and services:* (docs/reference/functions.md), one behaviour per test."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import (
    Conflict,
    Forbidden,
    InvalidArgs,
    NotFound,
    TurnstileError,
    Unauthenticated,
)
from domain.identity import ADMIN, Identity
from domain.venue import LocationCreated, LocationUpdated, ServiceUpdated
from domain.venue.module import MUTATIONS
from domain.venue.values import WEEKDAYS
from engine.codec import decode_args
from tests.domain.harness import T0, decide
from tests.domain.test_venue_support import (
    ADDRESS,
    ANON,
    EVERY_DAY,
    FRONT_DESK,
    LONER,
    MANAGER,
    NINE_TO_FIVE,
    NO_CAPS,
    ORG,
    OTHER_ORG,
    RIVAL,
    create_location,
    create_service,
    location_args,
    new_world,
    refused,
    service_args,
    state_of,
)

SPECS = {spec.name: spec for spec in MUTATIONS}


# -- locations:create -----------------------------------------------------------------------------


def test_create_records_the_location_in_the_callers_org() -> None:
    w = new_world()
    location_id = create_location(w)
    assert location_id == "lo_t0001"
    assert w.query("locations:get", {"locationId": location_id}, MANAGER) == {
        "_id": location_id,
        "_creationTime": T0,
        "orgId": ORG,
        "name": "Soho Spa",
        "address": {
            "line1": "1 High Street",
            "line2": None,
            "city": "London",
            "region": None,
            "postalCode": "N1 1AA",
            "country": "GB",
        },
        "timezone": "Europe/London",
        "operatingHours": {day: NINE_TO_FIVE for day in WEEKDAYS},
        "settings": {"currency": "GBP", "bookingBufferMinutes": 0},
        "userId": "u_manager",
        "updatedAt": T0,
    }
    assert [type(e) for e in w.stream_events(f"location/{location_id}")] == [LocationCreated]


def test_closed_days_may_be_null_or_absent_and_close_may_be_midnight() -> None:
    w = new_world()
    hours = {"monday": None, "friday": {"open": "18:00", "close": "24:00"}}
    location_id = create_location(w, operatingHours=hours)
    doc = w.query("locations:get", {"locationId": location_id}, MANAGER)
    assert doc["operatingHours"] == {
        **{day: None for day in WEEKDAYS},
        "friday": {"open": "18:00", "close": "24:00"},
    }


def test_admin_creates_in_the_named_org_and_must_name_one() -> None:
    w = new_world()
    location_id = create_location(w, ADMIN, orgId=OTHER_ORG)
    doc = w.query("locations:get", {"locationId": location_id}, RIVAL)
    assert (doc["orgId"], doc["userId"]) == (OTHER_ORG, None)
    assert refused(w, "locations:create", location_args(), ADMIN, InvalidArgs)["path"] == "orgId"


@pytest.mark.parametrize(
    ("caller", "error"),
    [(ANON, Unauthenticated), (NO_CAPS, Forbidden), (FRONT_DESK, Forbidden), (LONER, Forbidden)],
)
def test_create_needs_locations_manage_in_an_org(
    caller: Identity, error: type[TurnstileError]
) -> None:
    refused(new_world(), "locations:create", location_args(), caller, error)


def test_create_refuses_another_orgs_id() -> None:
    refused(new_world(), "locations:create", location_args(orgId=OTHER_ORG), MANAGER, Forbidden)


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("name", " ", "name"),
        ("name", None, "name"),
        ("timezone", "Mars/Olympus_Mons", "timezone"),
        ("timezone", "localtime", "timezone"),
        ("timezone", "../../etc/passwd", "timezone"),
        ("timezone", "", "timezone"),
        ("timezone", 0, "timezone"),
        (
            "operatingHours",
            {"monday": {"open": "9:00", "close": "17:00"}},
            "operatingHours.monday.open",
        ),
        (
            "operatingHours",
            {"monday": {"open": "24:00", "close": "24:00"}},
            "operatingHours.monday.open",
        ),
        (
            "operatingHours",
            {"monday": {"open": "09:60", "close": "17:00"}},
            "operatingHours.monday.open",
        ),
        (
            "operatingHours",
            {"sunday": {"open": "09:00", "close": "24:01"}},
            "operatingHours.sunday.close",
        ),
        (
            "operatingHours",
            {"sunday": {"open": "09:00", "close": "25:00"}},
            "operatingHours.sunday.close",
        ),
        (
            "operatingHours",
            {"sunday": {"open": "09:00", "close": "08:59"}},
            "operatingHours.sunday.close",
        ),
        (
            "operatingHours",
            {"sunday": {"open": "09:00", "close": "09:00"}},
            "operatingHours.sunday.close",
        ),
        ("operatingHours", {"sunday": {"open": "09:00"}}, "operatingHours.sunday.close"),
        (
            "operatingHours",
            {"sunday": {"open": 900, "close": "17:00"}},
            "operatingHours.sunday.open",
        ),
        ("operatingHours", {"funday": NINE_TO_FIVE}, "operatingHours.funday"),
        (
            "operatingHours",
            {"monday": {**NINE_TO_FIVE, "break": "12:00"}},
            "operatingHours.monday.break",
        ),
        ("operatingHours", [], "operatingHours"),
        ("address", {"street": "High St"}, "address.street"),
        ("address", {"city": 7}, "address.city"),
        ("settings", [], "settings"),
        ("settings", None, "settings"),
        ("orgId", 5, "orgId"),
        ("colour", "red", "colour"),
    ],
)
def test_create_validates_fields_with_wire_paths(field: str, value: Any, path: str) -> None:
    w = new_world()
    data = refused(w, "locations:create", location_args(**{field: value}), MANAGER, InvalidArgs)
    assert data["path"] == path


@pytest.mark.parametrize("field", ["name", "address", "timezone", "operatingHours", "settings"])
def test_create_requires_every_catalogue_field(field: str) -> None:
    args = location_args()
    del args[field]
    assert refused(new_world(), "locations:create", args, MANAGER, InvalidArgs)["path"] == field


def test_create_on_a_stream_that_has_a_location_is_a_conflict() -> None:
    w = new_world()
    location_id = create_location(w)
    spec = SPECS["locations:create"]
    args = decode_args(location_args(), spec.args_type)
    with pytest.raises(Conflict):
        decide(
            spec,
            state_of(w, location_id),
            aggregate_id=location_id,
            args=args,
            version=1,
            identity=MANAGER,
        )


# -- locations:update -----------------------------------------------------------------------------


def test_update_replaces_only_the_given_fields() -> None:
    w = new_world()
    location_id = create_location(w)
    w.now += 1000
    hours = {"saturday": {"open": "10:00", "close": "14:00"}}
    update = {"locationId": location_id, "name": "Soho Spa & Baths", "operatingHours": hours}
    assert w.mutate("locations:update", update, MANAGER) is None
    doc = w.query("locations:get", {"locationId": location_id}, MANAGER)
    assert doc["name"] == "Soho Spa & Baths"
    assert doc["operatingHours"]["saturday"] == {"open": "10:00", "close": "14:00"}
    assert doc["operatingHours"]["monday"] is None  # hours are replaced as a whole
    assert (doc["timezone"], doc["address"]["city"], doc["updatedAt"]) == (
        "Europe/London",
        "London",
        T0 + 1000,
    )
    assert isinstance(w.journal[-1], LocationUpdated) and w.journal[-1].org_id == ORG
    listed = w.query("locations:list", {}, MANAGER)
    assert [d["name"] for d in listed] == ["Soho Spa & Baths"]


def test_update_with_no_fields_emits_nothing() -> None:
    w = new_world()
    location_id = create_location(w)
    journal = list(w.journal)
    w.mutate("locations:update", {"locationId": location_id}, MANAGER)
    assert w.journal == journal


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("timezone", "Europe/Londonderry", "timezone"),
        ("name", "", "name"),
        (
            "operatingHours",
            {"friday": {"open": "17:00", "close": "09:00"}},
            "operatingHours.friday.close",
        ),
        ("orgId", OTHER_ORG, "orgId"),
    ],
)
def test_update_validates_fields(field: str, value: Any, path: str) -> None:
    w = new_world()
    location_id = create_location(w)
    args = {"locationId": location_id, field: value}
    assert refused(w, "locations:update", args, MANAGER, InvalidArgs)["path"] == path


def test_update_needs_the_capability_and_the_locations_org() -> None:
    w = new_world()
    location_id = create_location(w)
    args = {"locationId": location_id, "name": "Mine now"}
    refused(w, "locations:update", args, FRONT_DESK, Forbidden)
    rival = refused(w, "locations:update", args, RIVAL, NotFound)
    missing = refused(
        w, "locations:update", {**args, "locationId": "lo_nothere1"}, MANAGER, NotFound
    )
    assert rival == missing == {"code": "NotFound", "message": "Location not found."}
    refused(w, "locations:update", {**args, "locationId": "not-an-id"}, MANAGER, NotFound)
    refused(w, "locations:update", {**args, "locationId": "ev_t0001"}, MANAGER, NotFound)


# -- locations:get / locations:list ---------------------------------------------------------------


def test_get_hides_other_orgs_and_needs_the_capability() -> None:
    w = new_world()
    location_id = create_location(w)
    errors = []
    for who, wanted in ((RIVAL, location_id), (MANAGER, "lo_nothere1"), (MANAGER, "nothing")):
        with pytest.raises(NotFound) as err:
            w.query("locations:get", {"locationId": wanted}, who)
        errors.append(err.value.data())
    assert errors == [{"code": "NotFound", "message": "Location not found."}] * 3
    with pytest.raises(Forbidden):
        w.query("locations:get", {"locationId": location_id}, FRONT_DESK)
    with pytest.raises(Unauthenticated):
        w.query("locations:get", {"locationId": location_id}, ANON)
    assert w.query("locations:get", {"locationId": location_id}, ADMIN)["_id"] == location_id


def test_list_shows_the_callers_org_oldest_first() -> None:
    w = new_world()
    first = create_location(w, name="B")
    w.now += 1
    second = create_location(w, name="A")
    theirs = create_location(w, RIVAL, name="Theirs")
    assert [d["_id"] for d in w.query("locations:list", {}, MANAGER)] == [first, second]
    assert [d["_id"] for d in w.query("locations:list", {}, RIVAL)] == [theirs]
    assert [d["_id"] for d in w.query("locations:list", {"orgId": ORG}, ADMIN)] == [first, second]
    with pytest.raises(InvalidArgs):
        w.query("locations:list", {}, ADMIN)
    with pytest.raises(Forbidden):
        w.query("locations:list", {"orgId": ORG}, RIVAL)
    with pytest.raises(Forbidden):
        w.query("locations:list", {}, FRONT_DESK)
    assert w.query("locations:list", {"orgId": "org_empty"}, ADMIN) == []


# -- services -------------------------------------------------------------------------------------


def test_services_are_numbered_children_of_their_location() -> None:
    w = new_world()
    location_id = create_location(w)
    massage = create_service(w, location_id)
    facial = create_service(
        w, location_id, name="Facial", resources=["room2", "therapist"], categoryId="cat_face"
    )
    core = location_id.removeprefix("lo_")
    assert (massage, facial) == (f"sv_{core}_0", f"sv_{core}_1")
    listed = w.query("services:list", {"locationId": location_id}, MANAGER)
    assert listed == [
        {
            "_id": massage,
            "_creationTime": T0,
            "locationId": location_id,
            "name": "Massage",
            "description": "Sixty minutes",
            "categoryId": None,
            "duration": 60,
            "price": 5000,
            "isActive": True,
            "resources": ["room1"],
            "updatedAt": T0,
        },
        {
            **listed[1],
            "_id": facial,
            "name": "Facial",
            "categoryId": "cat_face",
            "resources": ["room2", "therapist"],
        },
    ]


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("name", "  ", "name"),
        ("duration", 0, "duration"),
        ("duration", 1441, "duration"),
        ("duration", 30.5, "duration"),
        ("price", -1, "price"),
        ("isActive", "yes", "isActive"),
        ("resources", [""], "resources[0]"),
        ("resources", ["room1", "room1"], "resources[1]"),
        ("resources", 7, "resources"),
        ("resources", [3], "resources[0]"),
        ("categoryId", 3, "categoryId"),
    ],
)
def test_service_fields_are_validated(field: str, value: Any, path: str) -> None:
    w = new_world()
    location_id = create_location(w)
    args = service_args(location_id, **{field: value})
    assert refused(w, "services:create", args, MANAGER, InvalidArgs)["path"] == path


def test_a_service_without_resources_is_allowed() -> None:
    w = new_world()
    location_id = create_location(w)
    create_service(w, location_id, resources=[])
    assert w.query("services:list", {"locationId": location_id}, MANAGER)[0]["resources"] == []


def test_services_need_the_capability_and_the_locations_org() -> None:
    w = new_world()
    location_id = create_location(w)
    refused(w, "services:create", service_args(location_id), FRONT_DESK, Forbidden)
    refused(w, "services:create", service_args(location_id), RIVAL, NotFound)
    refused(w, "services:create", service_args("lo_nothere1"), MANAGER, NotFound)
    with pytest.raises(NotFound):
        w.query("services:list", {"locationId": location_id}, RIVAL)
    with pytest.raises(Forbidden):
        w.query("services:list", {"locationId": location_id}, FRONT_DESK)


def test_update_service_replaces_the_given_fields() -> None:
    w = new_world()
    location_id = create_location(w)
    service_id = create_service(w, location_id)
    w.now += 5
    update = {"serviceId": service_id, "price": 5500, "isActive": False, "resources": ["room9"]}
    w.mutate("services:update", update, MANAGER)
    (doc,) = w.query("services:list", {"locationId": location_id}, MANAGER)
    assert (doc["price"], doc["isActive"], doc["resources"], doc["name"], doc["updatedAt"]) == (
        5500,
        False,
        ["room9"],
        "Massage",
        T0 + 5,
    )
    assert isinstance(w.journal[-1], ServiceUpdated)
    journal = list(w.journal)
    w.mutate("services:update", {"serviceId": service_id}, MANAGER)
    assert w.journal == journal


def test_update_service_refusals() -> None:
    w = new_world()
    location_id = create_location(w)
    service_id = create_service(w, location_id)
    core = location_id.removeprefix("lo_")
    refused(w, "services:update", {"serviceId": service_id, "duration": 0}, MANAGER, InvalidArgs)
    refused(w, "services:update", {"serviceId": service_id, "price": 1}, NO_CAPS, Forbidden)
    rival = refused(w, "services:update", {"serviceId": service_id, "price": 1}, RIVAL, NotFound)
    assert rival["message"] == "Service not found."
    for missing in (f"sv_{core}_9", "sv_nothere1_0", location_id, f"or_{core}_0", "sv_bad"):
        refused(w, "services:update", {"serviceId": missing, "price": 1}, MANAGER, NotFound)


def test_every_location_function_is_declared() -> None:
    assert {"locations:create", "locations:update", "services:create", "services:update"} <= set(
        SPECS
    )
    assert EVERY_DAY["sunday"] == NINE_TO_FIVE and ADDRESS["country"] == "GB"
