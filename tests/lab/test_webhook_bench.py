"""lab.webhook_bench at a tiny size: both paths deliver every notification to the subscribers
and the report has a line for each (no figure is checked: nothing here asserts on time)."""

from __future__ import annotations

import pytest

from lab.webhook_bench import PATHS, Sizes, main, measure, report


def test_both_paths_are_measured_and_reported() -> None:
    sizes = Sizes(events=30, clients=3, users=2, rounds=1)
    rounds = measure(sizes)
    assert {path: len(done) for path, done in rounds.items()} == dict.fromkeys(PATHS, 1)
    assert all(len(r.latencies_ms) == 30 for done in rounds.values() for r in done)
    text = report(rounds, sizes)
    assert "`POST /stripe/webhook`" in text and "| 1.00x |" in text


def test_the_command_prints_the_machine_and_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "CPUs" in out and "requests/s" in out
