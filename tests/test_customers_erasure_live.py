"""GDPR erasure end to end (issue: "after customers:erase, the customer's email and phone appear
nowhere in the SQLite files or snapshot files (search the raw bytes), and `turnstile replay
--verify` still passes"). The customer's photo (a stored file) and the notes of the customer's
orders at a location (a stream shared with other customers) are gone too; another customer's
order notes at the same location stay."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio
import trio.testing

from domain.identity import Identity
from engine.testing import EngineHarness
from tests.storage.helpers import store_file

REPO = Path(__file__).resolve().parents[1]
STAFF = Identity(
    subject="u_dpo",
    org_id="org_a",
    caps=frozenset({"customers:read", "customers:write", "customers:erase"}),
)
SECRETS = [b"zoe.quartermaine@example.org", b"zoe.q2@example.org", b"447700900913", b"Quartermaine"]
MANAGER = Identity(
    subject="u_manager", org_id="org_a", caps=frozenset({"locations:manage", "orders:manage"})
)
#: The photo's bytes: a marker no other file of the data dir can hold by chance.
PHOTO = b"\x89PNG zoe's face " + bytes(range(256)) * 64
ZOE_NOTES = b"zoe-order: leave with the neighbour at 12"
KIM_NOTES = b"kim-order: ring twice"


async def place_order(t: EngineHarness, location_id: str, customer_id: str, notes: bytes) -> None:
    await t.mutation(
        "orders:create",
        {
            "customerId": customer_id,
            "locationId": location_id,
            "type": "purchase",
            "items": [{"name": "Oil", "quantity": 1, "price": 900}],
            "notes": notes.decode(),
        },
        MANAGER,
    )


def holders(data_dir: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(data_dir))
        for p in data_dir.rglob("*")
        if p.is_file() and needle in p.read_bytes()
    )


async def test_erased_personal_data_is_in_no_file_and_replay_verifies(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile
    zoe = await t.mutation(
        "customers:create",
        {
            "firstName": "Zoe",
            "lastName": "Quartermaine",
            "email": "zoe.quartermaine@example.org",
            "phone": "+44 7700 900913",
            "notes": "allergic to nuts",
        },
        STAFF,
    )
    kept = await t.mutation(
        "customers:create",
        {"firstName": "Kim", "email": "kim@example.org", "phone": "07700 900111"},
        STAFF,
    )
    photo = await store_file(t.engine, PHOTO, STAFF)
    await t.mutation("customers:uploadPhoto", {"customerId": zoe, "storageId": photo}, STAFF)
    got = await t.query("customers:get", {"customerId": zoe}, STAFF)
    assert got["photoStorageId"] == photo
    assert got["photoUrl"].endswith(f"/api/storage/{photo}")
    location_id = await t.mutation(
        "locations:create",
        {
            "name": "Shop",
            "address": {"city": "London"},
            "timezone": "Europe/London",
            "operatingHours": {},
            "settings": {},
        },
        MANAGER,
    )
    await place_order(t, location_id, zoe, ZOE_NOTES)
    await place_order(t, location_id, kept, KIM_NOTES)
    await t.engine.snapshot_now()  # a snapshot holding Zoe's profile
    await t.mutation("customers:update", {"customerId": zoe, "email": "zoe.q2@example.org"}, STAFF)
    await t.mutation("customers:suspend", {"customerId": zoe, "reason": "asked to"}, STAFF)
    for secret in [*SECRETS, PHOTO, ZOE_NOTES]:
        assert holders(t.data_dir, secret), secret  # there before
    await t.mutation("customers:erase", {"customerId": zoe}, STAFF)
    await t.engine.wait_erasures()
    for secret in [*SECRETS, b"allergic to nuts", PHOTO, ZOE_NOTES]:
        assert holders(t.data_dir, secret) == [], secret
    assert holders(t.data_dir, b"kim@example.org")  # nobody else's data was touched
    assert holders(t.data_dir, KIM_NOTES)
    assert await t.query("storage:getUrl", {"storageId": photo}, STAFF) is None
    orders = await t.query("orders:listByLocation", {"locationId": location_id}, MANAGER)
    notes = {order["customerId"]: order["notes"] for order in orders}
    assert notes == {zoe: None, kept: KIM_NOTES.decode()}
    doc = await t.query("customers:get", {"customerId": zoe}, STAFF)
    assert doc["state"] == "erased" and doc.get("email") is None
    # The released email may be used by a new customer.
    again = await t.mutation(
        "customers:create",
        {"firstName": "Z", "email": "zoe.quartermaine@example.org", "phone": "07700 900222"},
        STAFF,
    )
    assert again not in (zoe, kept)
    await t.restart()
    assert (await t.query("customers:get", {"customerId": zoe}, STAFF))["state"] == "erased"
    await t.stop()
    verified = await trio.run_process(
        [sys.executable, "-m", "tools.cli", "replay", str(t.data_dir), "--verify", "--json"],
        cwd=REPO,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    out = verified.stdout.decode() + verified.stderr.decode()
    assert verified.returncode == 0, out
    report = json.loads(verified.stdout)
    assert report, report
