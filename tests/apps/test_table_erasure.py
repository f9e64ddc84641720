"""Erasure of a table's personal fields, as a property: over random histories of workspaces
(tests/apps/workspaces.py, `description` personal) with creates, re-descriptions, deletes,
snapshots and restarts, once the engine has settled and stopped, no file of the data dir holds
a personal value a deleted document ever had (in its insert, its patches' before and after, or
a snapshot), while every live document's current value is still there, and `replay --verify`
is clean.

Each example opens its own harness (the `turnstile` fixture lives for one trio run, Hypothesis
runs each example in its own), in virtual time."""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.apps import load_apps
from engine.testing import open_harness, staff
from tools.cli import main

APP = "tests.apps.workspaces"
ANN = staff("ann", "org_a", "locations:manage")

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, 5)),
        st.tuples(st.just("describe"), st.integers(0, 5)),
        st.tuples(st.just("delete"), st.integers(0, 5)),
        st.tuples(st.just("snapshot"), st.just(0)),
        st.tuples(st.just("restart"), st.just(0)),
    ),
    min_size=1,
    max_size=14,
)


def _files_holding(data_dir: Path, value: str) -> list[Path]:
    needle = value.encode()
    return [p for p in data_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(STEPS)
def test_no_personal_value_of_a_deleted_document_is_left_in_the_data_dir(
    steps: list[tuple[str, int]],
) -> None:
    secrets = (f"zq-secret-{n:03d}-plan" for n in range(1_000))
    live: dict[int, tuple[str, str]] = {}  # slot -> (document id, its description now)
    erased: list[str] = []  # every description a deleted document ever had
    history: dict[int, list[str]] = {}  # slot -> descriptions its document has had

    async def run(data_dir: Path) -> None:
        async with open_harness(data_dir, modules=load_apps([APP])) as t:
            for n, (step, slot) in enumerate(steps):
                if step == "create" and slot not in live:
                    secret = next(secrets)
                    made = await t.mutation(
                        "workspaces:create",
                        {"name": "W", "slug": f"s{n}", "description": secret},
                        ANN,
                    )
                    live[slot], history[slot] = (made, secret), [secret]
                elif step == "describe" and slot in live:
                    secret = next(secrets)
                    await t.mutation(
                        "workspaces:describe",
                        {"workspaceId": live[slot][0], "description": secret},
                        ANN,
                    )
                    live[slot] = (live[slot][0], secret)
                    history[slot].append(secret)
                elif step == "delete" and slot in live:
                    await t.mutation("workspaces:delete", {"workspaceId": live[slot][0]}, ANN)
                    del live[slot]
                    erased.extend(history.pop(slot))
                elif step == "snapshot":
                    await t.engine.snapshot_now()
                elif step == "restart":
                    await t.restart()
            await t.settle()  # erasures run in the background

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        trio.run(run, data_dir, clock=trio.testing.MockClock(autojump_threshold=0))
        left = {secret: _files_holding(data_dir, secret) for secret in erased}
        assert {s: f for s, f in left.items() if f} == {}
        for _, description in live.values():  # the check can see what is there
            assert _files_holding(data_dir, description)
        assert main(["replay", str(data_dir), "--verify", "--app", APP]) == 0
