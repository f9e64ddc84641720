"""A progress bar on stderr for long runs, drawn only when stderr is a terminal (so logs and
scripts never see it), at most ten times a second (and once at 100%), erased when done. No
dependency."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

_WIDTH = 28


class Progress:
    """`update(done)` with `done` out of `total` (the journal's last seq, usually)."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
    ) -> None:
        self.label = label
        self.total = max(total, 0)
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._clock = clock
        self._interval = interval
        self._started = clock()
        self._drawn_at: float | None = None
        self._width = 0
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        now = self._clock()
        finished = done >= self.total
        if self._drawn_at is not None and now - self._drawn_at < self._interval and not finished:
            return
        self._drawn_at = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        total = self.total
        fraction = min(1.0, self.done / total) if total else 1.0
        filled = round(fraction * _WIDTH)
        elapsed = now - self._started
        rate = f"  {self.done / elapsed:,.0f}/s" if elapsed > 0 else ""
        line = (
            f"{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {fraction:4.0%}"
            f"  {self.done:,}/{total:,}{rate}"
        )
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        if self.enabled and self._drawn_at is not None:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


#: What the operations take to report progress: `(label, total) -> Progress`.
ProgressFactory = Callable[[str, int], Progress]


def quiet(label: str, total: int) -> Progress:
    return Progress(label, total, enabled=False)
