"""lab.index_tail at a small size: catch-ups run and their CPU comes out per row."""

from __future__ import annotations

import pytest

from lab.index_tail import main, measure


def test_catch_ups_are_timed_per_row() -> None:
    per_row = measure(6_000, 2_000)
    assert 0 < per_row < 1  # seconds per row: some CPU was counted, and it is a rate


def test_main_prints_the_figure(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--rows", "3000", "--every", "1000"])
    assert "us of CPU per row" in capsys.readouterr().out
