"""lab.index_tail at a small size: every row appended is indexed by its catch-ups, and their CPU
comes out per row."""

from __future__ import annotations

import pytest

from lab.index_tail import main, measure


def test_every_row_is_indexed_by_the_catch_ups() -> None:
    measured = measure(6_000, 2_000)
    assert measured.rows == 6_000  # three catch-ups of 2,000 rows each
    assert measured.position == measured.last_seq  # the index is up to the last row
    assert measured.per_row > 0  # their CPU was counted


def test_main_prints_the_figure(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--rows", "3000", "--every", "1000"])
    assert "us of CPU per row" in capsys.readouterr().out
