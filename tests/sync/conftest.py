"""What the session tests share: an engine harness over the built-in domain (`h`), and the
args of an event to create (`ORG_ARGS`, imported from here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.testing import EngineHarness
from engine.testing.harness import open_harness

ORG_ARGS = {
    "name": "Gig",
    "description": "",
    "location": "Hall",
    "eventDate": 1_900_000_000_000,
    "price": 100,
    "totalTickets": 1,
    "orgId": "org_a",
}


@pytest.fixture
async def h(tmp_path: Any) -> AsyncIterator[EngineHarness]:
    async with open_harness(tmp_path / "data") as harness:
        yield harness
