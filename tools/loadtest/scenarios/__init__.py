"""The load-test scenarios: `onsale`, `booking`, `fanout`, and `mixed` (all of them at once;
booking only where the server has its functions)."""

from __future__ import annotations

from tools.loadtest.scenarios.base import (
    Audience,
    RunContext,
    Scenario,
    ScenarioUnavailable,
)
from tools.loadtest.scenarios.booking import Booking
from tools.loadtest.scenarios.fanout import FanOut
from tools.loadtest.scenarios.onsale import OnSale

SCENARIOS: dict[str, type[Scenario]] = {s.name: s for s in (OnSale, Booking, FanOut)}
#: What `mixed` runs, and which of those it may leave out when the server lacks them.
MIXED = ("onsale", "fanout", "booking")
MIXED_OPTIONAL = frozenset({"booking"})


def scenario_plan(name: str) -> list[tuple[type[Scenario], bool]]:
    """The scenario classes a run of `name` starts, each with whether it may be skipped."""
    if name == "mixed":
        return [(SCENARIOS[n], n in MIXED_OPTIONAL) for n in MIXED]
    return [(SCENARIOS[name], False)]


__all__ = [
    "MIXED",
    "SCENARIOS",
    "Audience",
    "RunContext",
    "Scenario",
    "ScenarioUnavailable",
    "scenario_plan",
]
