"""The live progress line: one line on stderr, rewritten in place twice a second."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

import trio

from tools.loadtest.recorder import Recorder

INTERVAL = 0.5


def progress_line(recorder: Recorder, phase: str, duration: float) -> str:
    seconds = recorder.load_seconds
    mutations = recorder.load_mutations
    rate = mutations / seconds if seconds > 0 else 0.0
    p99 = recorder.round_trip.percentile_ms(99.0)
    return (
        f"[{phase} {seconds:5.1f}/{duration:g}s] "
        f"connections {recorder.open_connections:,}  "
        f"mutations {mutations:,} ({rate:,.0f}/s)  "
        f"updates {recorder.load_updates:,}  "
        f"errors {sum(recorder.errors.values()):,}  "
        f"round trip p99 {'-' if p99 is None else f'{p99:.1f} ms'}"
    )


async def show_progress(
    recorder: Recorder, phase: Callable[[], str], duration: float, stream: TextIO
) -> None:
    """Rewrite the line until cancelled (`phase()` names the run's current phase); the line
    is cleared when it stops."""
    width = 0
    try:
        while True:
            line = progress_line(recorder, phase(), duration)
            stream.write("\r" + line.ljust(width))
            stream.flush()
            width = len(line)
            await trio.sleep(INTERVAL)
    finally:
        stream.write("\r" + " " * width + "\r")
        stream.flush()


__all__ = ["progress_line", "show_progress"]
