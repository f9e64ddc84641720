"""The load-test scenarios: `onsale`, `booking`, `fanout`, and `mixed` (all of them at once;
booking only where the server has its functions), and those an app declares.

What an app's own scenario is written against (docs/loadtest.md, "Apps' own scenarios"):
`Scenario` (subclass it: a `name` and the five methods), `RunContext` (what each scenario and
its participants share: the config, the admin connection, `connect`, `user_token`, the phases),
`Participant`, `Audience` (a live query whose subscribers must converge), `MeasuredClient` and
`Watch` (a connection and what one of its subscriptions saw), `ScenarioUnavailable` with
`missing_function` (the server does not serve what the scenario needs); the checks are in
`tools.loadtest.checks` (`Check`, `converged`, ...). The rest of this package is the harness's.
"""

from __future__ import annotations

from collections.abc import Mapping

from tools.loadtest.config import SCENARIO_NAMES, ConfigError, LoadConfig
from tools.loadtest.recorder import Watch
from tools.loadtest.scenarios.apps import declared_scenarios
from tools.loadtest.scenarios.base import (
    Audience,
    Participant,
    RunContext,
    Scenario,
    ScenarioUnavailable,
    missing_function,
)
from tools.loadtest.scenarios.booking import Booking
from tools.loadtest.scenarios.fanout import FanOut
from tools.loadtest.scenarios.onsale import OnSale
from tools.loadtest.users import MeasuredClient

SCENARIOS: dict[str, type[Scenario]] = {s.name: s for s in (OnSale, Booking, FanOut)}
#: What `mixed` runs, and which of those it may leave out when the server lacks them.
MIXED = ("onsale", "fanout", "booking")
MIXED_OPTIONAL = frozenset({"booking"})


def scenario_plan(
    name: str, declared: Mapping[str, type[Scenario]] | None = None
) -> list[tuple[type[Scenario], bool]]:
    """The scenario classes a run of `name` starts, each with whether it may be skipped;
    `declared` holds the apps' own scenarios by name."""
    if name == "mixed":
        return [(SCENARIOS[n], n in MIXED_OPTIONAL) for n in MIXED]
    if name in SCENARIOS:
        return [(SCENARIOS[name], False)]
    return [((declared or {})[name], False)]


def resolve_scenarios(config: LoadConfig) -> list[tuple[type[Scenario], bool]]:
    """`scenario_plan` of `config.scenario` among the built-in scenarios and those
    `config.apps` declare; `ConfigError` if an app or its declaration is wrong
    (`declared_scenarios`) or no scenario has that name."""
    declared = declared_scenarios(config.apps, SCENARIO_NAMES) if config.apps else {}
    if config.scenario not in SCENARIO_NAMES and config.scenario not in declared:
        if not config.apps:
            raise ConfigError(f"unknown scenario {config.scenario!r}")
        by_app = ", ".join(sorted(declared)) or "none"
        raise ConfigError(
            f"unknown scenario {config.scenario!r}: not built in ({', '.join(SCENARIO_NAMES)})"
            f" nor declared by {', '.join(config.apps)} ({by_app})"
        )
    return scenario_plan(config.scenario, {n: cls for n, (_, cls) in declared.items()})


__all__ = [
    "MIXED",
    "SCENARIOS",
    "Audience",
    "MeasuredClient",
    "Participant",
    "RunContext",
    "Scenario",
    "ScenarioUnavailable",
    "Watch",
    "missing_function",
    "resolve_scenarios",
    "scenario_plan",
]
