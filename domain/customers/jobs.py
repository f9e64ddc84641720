"""The customers' scheduled work (docs/reference/functions.md): the daily CLV recalculation.

`recalculateClv` runs daily at 02:00 UTC and plans one `customers:calculateCLV` per customer
that is not erased, in every organization, from the directory projection (one cut of committed
state). The figures are kept current by the order reactions already, so on a healthy journal
the run emits nothing; it is a safety net behind the reactions. A recalculation repeated
changes nothing, so its commands run without idempotency records (`keyed=False`).
"""

from __future__ import annotations

from collections.abc import Iterator

from domain.customers.projections import CUSTOMER_DIRECTORY
from domain.model import View
from domain.scheduling import CronJob, DailyAt, JobCommand


def plan_clv_recalculation(view: View, now: int) -> Iterator[JobCommand]:
    directory = view.projection(CUSTOMER_DIRECTORY, "*")
    for org in directory.orgs.values():
        for block in org.blocks:
            for summary in block.entries:
                if summary.soft_state == "erased":
                    continue
                yield JobCommand(
                    mutation="customers:calculateCLV",
                    args={"customerId": summary.id},
                    key=summary.id,
                    keyed=False,
                )


CLV_RECALCULATION = CronJob(
    name="recalculateClv",
    schedule=DailyAt(hour=2, minute=0, timezone="UTC"),
    plan=plan_clv_recalculation,
)
