"""The progress bar (drawn only on a terminal, throttled, erased) and the command line's
times."""

from __future__ import annotations

import io

import pytest

from tools.replay.progress import Progress
from tools.replay.times import format_time, parse_time


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_draws_on_a_terminal_at_most_ten_times_a_second() -> None:
    screen, clock = Terminal(), FakeClock()
    with Progress("verify", 1_000, stream=screen, clock=clock) as bar:
        clock.now += 1
        bar.update(250)
        drawn = screen.getvalue()
        assert drawn == "\rverify [#######.....................]  25%  250/1,000  250/s"
        clock.now += 0.05
        bar.update(300)  # too soon: not drawn
        assert screen.getvalue() == drawn
        clock.now += 0.05
        bar.update(1_000)  # just as soon, but the end is always shown
        assert screen.getvalue().endswith("[############################] 100%  1,000/1,000  909/s")
    last = screen.getvalue().split("\r")[-2]
    assert screen.getvalue().endswith("\r" + " " * len(last) + "\r")  # erased


def test_progress_stays_silent_off_a_terminal() -> None:
    log = io.StringIO()
    with Progress("verify", 10, stream=log) as bar:
        bar.update(5)
    assert log.getvalue() == "" and bar.done == 5


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-01-01T00:00:00Z", 1_767_225_600_000),
        ("2026-01-01T01:00:00.250+01:00", 1_767_225_600_250),
        ("1767225600123", 1_767_225_600_123),
    ],
)
def test_times_are_iso_8601_with_an_offset_or_milliseconds(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize("text", ["2026-01-01T00:00:00", "yesterday", "-5", ""])
def test_times_that_would_be_guesses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_times_read_back_in_utc() -> None:
    assert format_time(1_767_225_600_250) == "2026-01-01T00:00:00.250Z"
