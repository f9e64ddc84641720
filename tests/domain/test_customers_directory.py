"""customers:list and customers:typeStatistics over the directory projection: creation order,
active customers of the caller's organization only, filters, search, cursor paging, and the
projection's keys (one organization per event)."""

from __future__ import annotations

from typing import Any

import pytest

from domain.customers import CUSTOMER_DIRECTORY, CustomerDirectory
from domain.customers.args import ListCustomersArgs, OrgArgs
from domain.customers.projections import BLOCK
from domain.customers.queries import list_customers, type_statistics
from domain.errors import Forbidden, InvalidArgs
from domain.identity import ADMIN, Identity
from engine.codec import decode_value, encode_value
from tests.domain.harness import DictView
from tests.domain.test_customers_world import (
    NO_CAPS,
    ORG,
    OTHER_ORG,
    READER,
    RIVAL,
    WRITER,
    CustomerWorld,
    open_location,
)


def person(n: int, first: str, last: str, **extra: Any) -> dict[str, Any]:
    return {
        "firstName": first,
        "lastName": last,
        "email": f"{first.lower()}.{n}@example.com",
        "phone": f"0207 946 {n:04d}",
        **extra,
    }


def listing(w: CustomerWorld, caller: Identity = READER, **args: Any) -> dict[str, Any]:
    found = w.query("customers:list", args, caller)
    assert isinstance(found, dict)
    return found


def names(page: dict[str, Any]) -> list[str]:
    return [doc["firstName"] for doc in page["page"]]


def populated() -> tuple[CustomerWorld, dict[str, str]]:
    w = CustomerWorld()
    for location_id in ("lo_1", "lo_2"):
        open_location(w, location_id)
    ids = {}
    for n, (first, last, extra) in enumerate(
        [
            ("Ann", "Lee", {"lifecycle": "active", "locationId": "lo_1"}),
            ("Ben", "Annan", {"lifecycle": "lead", "locationId": "lo_2"}),
            ("Cat", "Stone", {"lifecycle": "active", "locationId": "lo_1"}),
            ("Dan", "Moss", {"lifecycle": "churned"}),
            ("Eve", "Brook", {"lifecycle": "active", "locationId": "lo_2", "customerType": "new"}),
        ]
    ):
        ids[first] = w.mutate("customers:create", person(n, first, last, **extra), WRITER)
    w.mutate("customers:create", person(9, "Ann", "Rival"), RIVAL)
    return w, ids


def test_list_shows_the_orgs_active_customers_in_creation_order() -> None:
    w, ids = populated()
    w.mutate("customers:delete", {"customerId": ids["Ben"]}, WRITER)
    w.mutate("customers:suspend", {"customerId": ids["Dan"]}, WRITER)
    result = listing(w)
    assert names(result) == ["Ann", "Cat", "Eve"]
    assert result["isDone"] is True
    assert result["page"][0] == {
        k: v
        for k, v in w.query("customers:get", {"customerId": ids["Ann"]}, READER).items()
        if k not in ("stateHistory", "updatedAt")
    }
    w.mutate("customers:restore", {"customerId": ids["Ben"]}, WRITER)
    assert names(listing(w)) == ["Ann", "Ben", "Cat", "Eve"]
    assert names(listing(w, RIVAL)) == ["Ann"]


def test_list_filters_by_lifecycle_and_location() -> None:
    w, _ = populated()
    assert names(listing(w, lifecycle="active")) == ["Ann", "Cat", "Eve"]
    assert names(listing(w, locationId="lo_2")) == ["Ben", "Eve"]
    assert names(listing(w, lifecycle="active", locationId="lo_1")) == ["Ann", "Cat"]
    assert names(listing(w, locationId="lo_none")) == []


def test_search_is_a_case_insensitive_substring_of_names_or_email() -> None:
    w, _ = populated()
    assert names(listing(w, search="ANN")) == ["Ann", "Ben"]  # first name, last name
    assert names(listing(w, search=" ann ")) == ["Ann", "Ben"]
    assert names(listing(w, search="eve.4@EXAMPLE")) == ["Eve"]
    assert names(listing(w, search="example.com")) == ["Ann", "Ben", "Cat", "Dan", "Eve"]
    assert names(listing(w, search="ann", lifecycle="lead")) == ["Ben"]
    # Neither the phone, nor text spanning two fields, nor separators match.
    assert names(listing(w, search="7946")) == []
    assert names(listing(w, search="annlee")) == []
    assert names(listing(w, search="ann\x1flee")) == []
    assert names(listing(w, search="")) == ["Ann", "Ben", "Cat", "Dan", "Eve"]


def test_search_follows_updates() -> None:
    w, ids = populated()
    w.mutate("customers:update", {"customerId": ids["Cat"], "lastName": "Annesley"}, WRITER)
    assert names(listing(w, search="anne")) == ["Cat"]
    w.mutate("customers:delete", {"customerId": ids["Cat"]}, WRITER)
    assert names(listing(w, search="anne")) == []


def test_cursor_pages_through_the_list() -> None:
    w, _ = populated()
    first = listing(w, limit=2)
    assert (names(first), first["isDone"]) == (["Ann", "Ben"], False)
    second = listing(w, limit=2, cursor=first["continueCursor"])
    assert (names(second), second["isDone"]) == (["Cat", "Dan"], False)
    third = listing(w, limit=2, cursor=second["continueCursor"])
    assert (names(third), third["isDone"]) == (["Eve"], True)
    done = listing(w, limit=2, cursor=third["continueCursor"])
    assert (names(done), done["isDone"]) == ([], True)
    searched = listing(w, limit=1, search="an")
    assert names(searched) == ["Ann"]
    assert names(listing(w, limit=5, search="an", cursor=searched["continueCursor"])) == [
        "Ben",
        "Dan",
    ]


def test_paging_search_and_filters_across_blocks_match_a_brute_force_scan() -> None:
    """Over several blocks, with archived, restored and moved customers, and filters both
    common (searched through a block's text) and rare (each member checked)."""
    w = CustomerWorld()
    for location_id in ("lo_rare", "lo_main"):
        open_location(w, location_id)
    firsts = ["Ann", "Bob", "Cara", "Dev", "Ella", "Finn"]
    rows: dict[str, dict[str, Any]] = {}
    for n in range(BLOCK * 2 + 37):
        first = firsts[n % len(firsts)]
        row = {
            "lifecycle": "active" if n % 3 else "lead",
            "locationId": "lo_rare" if n % 10 == 0 else "lo_main",
        }
        customer_id = w.mutate("customers:create", person(n, first, f"Nr{n}", **row), WRITER)
        texts = (first.lower(), f"nr{n}", f"{first.lower()}.{n}@example.com")
        rows[customer_id] = {**row, "texts": texts, "active": True}
    ids = list(rows)
    for customer_id in ids[1::13]:
        change = {"lifecycle": "churned", "locationId": "lo_rare"}
        w.mutate("customers:update", {"customerId": customer_id, **change}, WRITER)
        rows[customer_id].update(change)
    for customer_id in ids[5::7]:
        w.mutate("customers:archive", {"customerId": customer_id}, WRITER)
        rows[customer_id]["active"] = False
    for customer_id in ids[5::21]:
        w.mutate("customers:restore", {"customerId": customer_id}, WRITER)
        rows[customer_id]["active"] = True
    for search, lifecycle, location in [
        (None, None, None),
        ("nr1", None, None),
        ("a", "lead", None),
        ("finn", "active", None),
        ("a.1", None, None),
        ("zz", None, None),
        (None, None, "lo_rare"),
        ("nr", "churned", None),
        ("e", "lead", "lo_rare"),
        ("nr2", None, "lo_main"),
        ("example", "churned", "lo_main"),
    ]:
        expected = [
            customer_id
            for customer_id, row in rows.items()
            if row["active"]
            and (lifecycle is None or row["lifecycle"] == lifecycle)
            and (location is None or row["locationId"] == location)
            and (search is None or any(search in text for text in row["texts"]))
        ]
        seen: list[str] = []
        cursor = None
        while True:
            args: dict[str, Any] = {"limit": 17, "cursor": cursor}
            for key, value in (
                ("search", search),
                ("lifecycle", lifecycle),
                ("locationId", location),
            ):
                if value is not None:
                    args[key] = value
            result = listing(w, **args)
            seen.extend(doc["_id"] for doc in result["page"])
            cursor = result["continueCursor"]
            if result["isDone"]:
                break
        assert seen == expected, (search, lifecycle, location)


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "-1"}, "cursor"),
        ({"lifecycle": "vip"}, "lifecycle"),
        ({"search": 5}, "search"),
    ],
)
def test_list_validates_with_wire_paths(args: dict[str, Any], path: str) -> None:
    w, _ = populated()
    with pytest.raises(InvalidArgs) as failure:
        listing(w, **args)
    assert failure.value.data()["path"] == path


def test_list_and_statistics_need_customers_read_and_an_org() -> None:
    w, _ = populated()
    for name in ("customers:list", "customers:typeStatistics"):
        with pytest.raises(Forbidden):
            w.query(name, {}, NO_CAPS)
        with pytest.raises(Forbidden):
            w.query(name, {"orgId": OTHER_ORG}, READER)
        with pytest.raises(InvalidArgs):
            w.query(name, {}, ADMIN)
    assert names(listing(w, ADMIN, orgId=OTHER_ORG)) == ["Ann"]


def test_type_statistics_count_active_customers_per_type_and_lifecycle() -> None:
    w, ids = populated()
    w.mutate("customers:delete", {"customerId": ids["Dan"]}, WRITER)
    w.mutate("customers:update", {"customerId": ids["Ann"], "lifecycle": "at-risk"}, WRITER)
    assert w.query("customers:typeStatistics", {}, READER) == {
        "total": 4,
        "byCustomerType": {"regular": 3, "unregistered": 0, "new": 1, "anonymous": 0},
        "byLifecycle": {"lead": 1, "active": 2, "at-risk": 1, "churned": 0},
    }
    assert w.query("customers:typeStatistics", {}, RIVAL)["total"] == 1


def test_queries_read_only_their_orgs_key_and_events_touch_only_theirs() -> None:
    w, _ = populated()
    view = DictView(w.states, w.projections)
    list_customers(view, ListCustomersArgs(search="a"), READER)
    type_statistics(view, OrgArgs(), RIVAL)
    assert view.reads == [(CUSTOMER_DIRECTORY.name, ORG), (CUSTOMER_DIRECTORY.name, OTHER_ORG)]
    for event in w.journal:
        if event.stream.startswith("customer/"):
            org = w.states[event.stream].org_id
            assert list(CUSTOMER_DIRECTORY.keys(event)) == [org]
        else:
            assert list(CUSTOMER_DIRECTORY.keys(event)) == []


def test_the_directory_survives_the_snapshot_codec_and_equals_a_replay() -> None:
    w, ids = populated()
    w.mutate("customers:delete", {"customerId": ids["Ben"]}, WRITER)
    w.mutate("customers:update", {"customerId": ids["Cat"], "customFields": {"a": 1.5}}, WRITER)
    directory = w.projections[CUSTOMER_DIRECTORY.name]
    assert w.replay_projections()[CUSTOMER_DIRECTORY.name] == directory
    encoded = encode_value(directory, CustomerDirectory)
    assert decode_value(encoded, CustomerDirectory) == directory
