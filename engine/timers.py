"""The durable timer service: fires each armed timer when the clock reaches its due time.

Which timers are armed is a read model (`ReadModels.timers`), derived from the journal, so a
restart re-arms every live timer and fires the overdue ones at once. This service only keeps a
heap of due times and calls `fire(stream, key)` for each due timer, once per arming: if firing
fails (the command was refused for load), the timer is retried a second later.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import trio

from engine.clock import Clock
from engine.readmodels import TimerKey

RETRY_MS = 1_000
#: How late a timer must be before the sweep fires it again.
SWEEP_GRACE_MS = 5_000


class TimerService:
    def __init__(self, clock: Clock, armed: dict[TimerKey, int]) -> None:
        self._clock = clock
        self._armed = armed  # shared with ReadModels: the durable truth
        self._heap: list[tuple[int, str, str]] = [(due, s, k) for (s, k), due in armed.items()]
        heapq.heapify(self._heap)
        self._firing: set[TimerKey] = set()
        self._wakeup = trio.Event()

    def rearm(self, armed: dict[TimerKey, int]) -> None:
        self._armed = armed
        self._heap = [(due, s, k) for (s, k), due in armed.items()]
        heapq.heapify(self._heap)
        self._wakeup.set()

    def armed(self, stream: str, key: str, due_at: int) -> None:
        """Tell the service that `(stream, key)` is now armed for `due_at`."""
        heapq.heappush(self._heap, (due_at, stream, key))
        if self._heap[0][0] == due_at:
            self._wakeup.set()

    def done(self, key: TimerKey, *, retry: bool) -> None:
        """The firing of `key` finished; if it must be retried and is still armed, retry soon."""
        self._firing.discard(key)
        if retry and key in self._armed:
            self.armed(key[0], key[1], self._clock.now_ms() + RETRY_MS)

    def sweep(self) -> int:
        """Queue again every armed timer that is overdue by more than `SWEEP_GRACE_MS` and not
        firing (a safety net: a timer whose firing was lost is fired now; one due this very
        moment is left to the heap). Returns how many were queued."""
        cutoff = self._clock.now_ms() - SWEEP_GRACE_MS
        overdue = [
            (due, stream, key)
            for (stream, key), due in self._armed.items()
            if due <= cutoff and (stream, key) not in self._firing
        ]
        for entry in overdue:
            heapq.heappush(self._heap, entry)
        if overdue:
            self._wakeup.set()
        return len(overdue)

    async def run(self, fire: Callable[[str, str], None]) -> None:
        while True:
            now = self._clock.now_ms()
            while self._heap and self._heap[0][0] <= now:
                due, stream, key = heapq.heappop(self._heap)
                timer = (stream, key)
                armed_due = self._armed.get(timer)
                # Skip entries of disarmed timers, and early entries of re-armed ones.
                if timer in self._firing or armed_due is None or armed_due > due:
                    continue
                self._firing.add(timer)
                fire(stream, key)
            self._wakeup = trio.Event()
            if self._heap:
                with trio.move_on_at(self._clock.trio_deadline(self._heap[0][0])):
                    await self._wakeup.wait()
            else:
                await self._wakeup.wait()
