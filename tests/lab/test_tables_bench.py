"""lab.tables_bench at a tiny size: both paths insert and are reported, the live queries see
every insert, and the command prints the machine and both tables (no figure is checked: nothing
here asserts on time)."""

from __future__ import annotations

import pytest

from lab.tables_bench import PATHS, Sizes, main, measure, report

TINY = Sizes(
    baseline_batches=1,
    clients=4,
    orgs=2,
    channels=3,
    warmup_s=0.05,
    seconds=0.2,
    rounds=1,
    prefill=10,
    rate=500.0,
    updates=6,
)


def test_both_paths_are_measured_and_reported() -> None:
    result = measure(TINY)
    assert len(result["baseline"]) == 3
    for path in PATHS:
        (round_,) = result["inserts"][path]
        assert round_["acked"] > 0 and not round_["errors"]
        live = result["live"][path]
        assert live["updates"] == TINY.updates and live["missed"] == 0
        assert len(live["from_commit"]) == len(live["from_call"]) == TINY.updates
    text = report(result)
    for label, _, query in PATHS.values():
        assert text.count(f"| {label} |") == 1
        assert text.count(f"| `{query}` | {TINY.updates} of {TINY.updates} |") == 1
    assert "| raw SQLite rows (lab.bench baseline) |" in text


def test_the_command_prints_the_machine_and_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--clients", "3", "--seconds", "0.1", "--rounds", "1", "--updates", "0"]
    argv += ["--baseline-batches", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "CPUs" in out and "inserts/s" in out and "vs hand-written aggregate" in out
    assert "Live query" not in out
    with pytest.raises(SystemExit) as exit_:
        main(["--clients", "0"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        main(["--seconds", "601"])
    assert exit_.value.code == 2
