"""lab.auth_bench at a tiny size: every kind of token verifies, in-process and over a live
WebSocket, and the report has a line per algorithm (no figure is checked: nothing here
asserts on time)."""

from __future__ import annotations

import pytest

from lab.auth_bench import ALGORITHMS, DESCRIBED, Sizes, main, measure, report


def test_every_algorithm_is_measured_and_reported() -> None:
    result = measure(Sizes(tokens=10, distinct=3, ws_rounds=2))
    assert set(result["verify"]) == set(ALGORITHMS)
    for figures in result["verify"].values():
        assert set(figures) == {"authenticate", "user", "decode"}
        assert all(seconds > 0 for seconds in figures.values())
    assert {a: len(rounds) for a, rounds in result["websocket"].items()} == dict.fromkeys(
        ALGORITHMS, 2
    )
    text = report(result)
    for algorithm in ALGORITHMS:
        assert text.count(f"| {DESCRIBED[algorithm]} |") == 2
    assert "time per token vs HS256" in text and "p50 vs HS256" in text


def test_the_command_prints_the_machine_and_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--tokens", "5", "--distinct", "2", "--ws-rounds", "0"]) == 0
    out = capsys.readouterr().out
    assert "CPUs" in out and "authenticate /s" in out
    assert "WebSocket" not in out
    with pytest.raises(SystemExit) as exit_:
        main(["--tokens", "0"])
    assert exit_.value.code == 2
