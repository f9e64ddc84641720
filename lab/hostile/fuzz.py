"""The fuzzer: Hypothesis draws hostile sync sessions or HTTP connections, each is played against
a live server and checked, and well-behaved bystanders must stay correct throughout.

Hypothesis runs in a worker thread and plays each case on the server's trio loop
(`trio.from_thread.run`), so one server (and one journal) lives through every case while
Hypothesis still shrinks a failing case to a minimal one. After each case, the server must not
have logged a failure; every `rounds_every` cases the bystanders do one round (`Bystanders`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning

from engine.codec import camel
from engine.engine import Engine
from lab.figures import percentile
from lab.hostile.bystanders import Bystanders
from lab.hostile.http_cases import http_cases, play_http_case
from lab.hostile.sync_cases import Credentials, SyncRecord, play_sync_case, sync_cases
from lab.hostile.target import Target

TRANSPORTS = ("sync", "http")


@attrs.define
class FuzzReport:
    transport: str
    #: Cases played (each one connection), counting replays while shrinking.
    cases: int = 0
    #: Sync frames or HTTP requests sent.
    messages: int = 0
    bystander_rounds: int = 0
    seconds: float = 0.0
    round_trips: list[float] = attrs.field(factory=list)

    def line(self) -> str:
        p99 = percentile(self.round_trips, 99) * 1000
        return (
            f"{self.transport}: {self.cases:,} cases ({self.messages:,} messages) in"
            f" {self.seconds:.1f} s; {self.bystander_rounds} bystander rounds, all correct;"
            f" bystander join round trip p99 {p99:.1f} ms"
        )


def catalogue(engine: Engine) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The served queries and mutations, each with its wire field names."""

    def fields(spec: Any) -> list[str]:
        return [camel(field.name) for field in attrs.fields(spec.args_type)]

    registry = engine.registry
    return (
        {name: fields(spec) for name, spec in registry.queries.items()},
        {name: fields(spec) for name, spec in registry.mutations.items()},
    )


async def fuzz(
    target: Target,
    transport: str,
    *,
    cases: int,
    bystanders: Bystanders,
    seed: int | None = None,
    rounds_every: int = 25,
) -> FuzzReport:
    """Play `cases` generated cases (more while shrinking a failure) over `transport`; raises
    the minimal failing case's error, with the case described. `seed` None: the deterministic
    sequence (CI); a number: a run of its own (the long form)."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}")
    queries, mutations = catalogue(target.engine)
    credentials = Credentials.for_target(target)
    limit = target.config.max_body_bytes
    report = FuzzReport(transport)
    record = SyncRecord()
    strategy: st.SearchStrategy[Any]
    play: Callable[[Any], Awaitable[None]]
    if transport == "sync":
        strategy = sync_cases(queries, mutations, credentials, limit)

        async def play(case: Any) -> None:
            await play_sync_case(target, case, record)
            report.messages += len(case.steps)
    else:
        strategy = http_cases(queries, mutations, credentials, limit)

        async def play(case: Any) -> None:
            await play_http_case(target, case)
            report.messages += max(len(case.requests), 1)

    async def play_checked(case: Any) -> None:
        report.cases += 1
        try:
            await play(case)
            target.assert_no_errors(" while playing it")
        except BaseException as error:
            if isinstance(error, trio.Cancelled | KeyboardInterrupt):
                raise
            target.errors.take()
            raise AssertionError(f"{error!r}\nThe case:\n{case.describe()}") from error
        if report.cases % rounds_every == 0:
            report.round_trips.append(await bystanders.round())
            report.bystander_rounds += 1

    @settings(
        max_examples=cases,
        deadline=None,
        derandomize=seed is None,
        database=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=(
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ),
        print_blob=False,
    )
    @given(strategy)
    def run(case: Any) -> None:
        trio.from_thread.run(play_checked, case)

    if seed is not None:
        run = hypothesis_seed(seed)(run)

    def run_quietly() -> None:
        # Reporting a failing case with a huge value warns that its repr is large; under
        # `-W error` that warning would replace the failure itself.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HypothesisWarning)
            run()

    started = time.perf_counter()
    await trio.to_thread.run_sync(run_quietly)
    report.round_trips.append(await bystanders.round())
    report.bystander_rounds += 1
    report.seconds = time.perf_counter() - started
    return report


__all__ = ["TRANSPORTS", "FuzzReport", "catalogue", "fuzz"]
