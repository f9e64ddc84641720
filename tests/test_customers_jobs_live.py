"""The daily CLV recalculation (docs/reference/functions.md, "Scheduled work"), on
the engine's scheduler in virtual time."""

from __future__ import annotations

import trio.testing

from domain.identity import Identity
from domain.scheduling import JOB, job_id
from engine.testing import EngineHarness

STAFF = Identity(
    subject="u_staff",
    org_id="org_a",
    caps=frozenset({"customers:read", "customers:write", "customers:erase"}),
)
HOUR = 60


async def test_clv_is_recalculated_daily_at_two_utc_for_every_customer_not_erased(
    turnstile: EngineHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = turnstile  # the virtual clock starts at 2026-01-01T00:00Z
    ids = [
        await t.mutation(
            "customers:create",
            {"firstName": f"C{i}", "email": f"c{i}@example.com", "customerType": "new"},
            STAFF,
        )
        for i in range(3)
    ]
    await t.mutation("customers:erase", {"customerId": ids[0]}, STAFF)
    await t.advance(minutes=2 * HOUR - 1)
    job = t.engine.committed_state(JOB, job_id("recalculateClv"))
    assert job.runs == 0
    await t.advance(minutes=1)
    job = t.engine.committed_state(JOB, job_id("recalculateClv"))
    assert (job.runs, job.last_commands, job.last_refusals) == (1, 2, ())
    assert job.last_tick == t.now_ms()
    # The erased customer is left out; the figures were current, so nothing was rewritten.
    assert job.next_due == job.last_tick + 24 * HOUR * 60_000
    await t.advance(minutes=24 * HOUR)
    assert t.engine.committed_state(JOB, job_id("recalculateClv")).runs == 2
    for customer in ids[1:]:
        doc = await t.query("customers:get", {"customerId": customer}, STAFF)
        assert (doc["clv"], doc["orderCount"]) == (0, 0)
