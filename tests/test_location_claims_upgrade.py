"""A journal written before locations took their organization's claim at creation
(tests/fixtures/locations_before_claims, by the code of that day): after the upgrade, the
`locationClaims` job gives its locations their claims, so their organization names them again,
and another organization's reference stays NotFound."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from domain.errors import NotFound
from engine.testing import open_harness, staff
from engine.testing.harness import TEST_EPOCH_MS
from tools.cli import main

DAY_MS = 24 * 3600 * 1000
FIXTURE = Path(__file__).parent / "fixtures" / "locations_before_claims" / "data"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(FIXTURE, copy)
    return copy


def _ids() -> dict[str, Any]:
    ids: dict[str, Any] = json.loads((FIXTURE / "ids.json").read_text())
    return ids


def _customer(org: str, location_id: str, email: str) -> dict[str, Any]:
    return {
        "firstName": "Bo",
        "lastName": "New",
        "email": email,
        "phone": "+447700900456",
        "orgId": org,
        "locationId": location_id,
    }


async def test_old_locations_get_their_claims_and_are_named_again(
    data_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    ids = _ids()
    first, second = ids["locations"]
    # A day after the fixture was written (by a harness on the same epoch): time moved on.
    async with open_harness(data_dir, epoch_ms=TEST_EPOCH_MS + DAY_MS) as h:
        await h.settle()  # the job's run at start
        created = await h.mutation(
            "customers:create", _customer(ids["org"], second, "bo@x.example")
        )
        doc = await h.query("customers:get", {"customerId": created})
        assert doc["locationId"] == second
        await h.mutation("customers:update", {"customerId": ids["customer"], "locationId": second})
        # The job has nothing left to do, and another organization still cannot name them.
        with pytest.raises(NotFound):
            await h.mutation("customers:create", _customer("org_other", first, "cy@x.example"))
        clerk = staff("clerk", "org_other", "customers:write")
        with pytest.raises(NotFound):
            await h.mutation(
                "customers:create",
                {**_customer("org_other", first, "dee@x.example"), "orgId": None},
                clerk,
            )
    assert main(["replay", str(data_dir), "--verify"]) == 0
