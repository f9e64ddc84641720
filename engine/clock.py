"""The engine's clock: wall-clock milliseconds for the domain, trio's clock for waiting.

`now_ms()` is `epoch_ms` (the wall clock when the engine opened) plus the trio time elapsed
since, so it never jumps when the wall clock is stepped while the engine runs, and under trio's
`MockClock` it is virtual: a 30-minute offer expiry runs in milliseconds in tests.
"""

from __future__ import annotations

import time

import trio


class Clock:
    """Maps trio time to epoch milliseconds. Create inside `trio.run`."""

    def __init__(self, epoch_ms: int | None = None) -> None:
        self._epoch_ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms
        self._trio_start = trio.current_time()

    def now_ms(self) -> int:
        # Rounded, not truncated: waking at `trio_deadline(t)` must read t despite float error.
        return self._epoch_ms + round((trio.current_time() - self._trio_start) * 1000)

    def trio_deadline(self, at_ms: int) -> float:
        """The trio time at which `now_ms()` reaches `at_ms`."""
        return self._trio_start + (at_ms - self._epoch_ms) / 1000

    async def sleep_until(self, at_ms: int) -> None:
        await trio.sleep_until(max(self.trio_deadline(at_ms), trio.current_time()))
