"""GDPR erasure end to end (issue: "after customers:erase, the customer's email and phone appear
nowhere in the SQLite files or snapshot files (search the raw bytes), and `turnstile replay
--verify` still passes")."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio
import trio.testing

from domain.identity import Identity
from engine.testing import EngineHarness

REPO = Path(__file__).resolve().parents[1]
STAFF = Identity(
    subject="u_dpo",
    org_id="org_a",
    caps=frozenset({"customers:read", "customers:write", "customers:erase"}),
)
SECRETS = [b"zoe.quartermaine@example.org", b"zoe.q2@example.org", b"447700900913", b"Quartermaine"]


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
    await t.engine.snapshot_now()  # a snapshot holding Zoe's profile
    await t.mutation("customers:update", {"customerId": zoe, "email": "zoe.q2@example.org"}, STAFF)
    await t.mutation("customers:suspend", {"customerId": zoe, "reason": "asked to"}, STAFF)
    for secret in SECRETS:
        assert holders(t.data_dir, secret), secret  # there before
    await t.mutation("customers:erase", {"customerId": zoe}, STAFF)
    await t.engine.wait_erasures()
    for secret in [*SECRETS, b"allergic to nuts"]:
        assert holders(t.data_dir, secret) == [], secret
    assert holders(t.data_dir, b"kim@example.org")  # nobody else's data was touched
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
