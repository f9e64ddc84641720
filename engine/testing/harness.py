"""`EngineHarness`: an engine on a data dir that a test can restart, crash-free, at will.

Used with trio's `MockClock` (pytest-trio's `autojump_clock`), `advance()` moves virtual time,
so a 30-minute offer expiry takes milliseconds and timers fire in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

from domain.identity import ADMIN, Identity
from domain.model import Module
from engine.clock import Clock
from engine.engine import Engine, EngineConfig, Outcome, open_engine

#: 2026-01-01T00:00:00Z: the virtual wall clock's start in tests, so times are reproducible.
TEST_EPOCH_MS = 1_767_225_600_000


def user(subject: str, *, org: str | None = None, caps: tuple[str, ...] = ()) -> Identity:
    """An identity as a verified user token would give it."""
    return Identity(subject=subject, org_id=org, caps=frozenset(caps))


def staff(subject: str, org: str, *caps: str) -> Identity:
    return Identity(subject=subject, org_id=org, caps=frozenset(caps))


class EngineHarness:
    """Owns one running engine at a time over `data_dir`; `restart()` closes and reopens it."""

    admin = ADMIN

    def __init__(
        self,
        data_dir: Path,
        *,
        config: EngineConfig | None = None,
        modules: Iterable[Module] | None = None,
        epoch_ms: int = TEST_EPOCH_MS,
        nursery: trio.Nursery,
    ) -> None:
        self._nursery = nursery
        self._stop: trio.Event | None = None
        self._stopped = trio.Event()
        self.data_dir = data_dir
        self.modules = None if modules is None else tuple(modules)
        self.config = config or EngineConfig(
            check_invariants=True, snapshot_every=0, offload_io=False
        )
        self._epoch_ms = epoch_ms
        self._clock: Clock | None = None
        self.engine: Engine

    async def start(self) -> Engine:
        """Recover and run the engine in a task of the harness's nursery (so any task may
        later stop or restart it)."""
        if self._clock is None:
            self._clock = Clock(self._epoch_ms)
        self._stop = stop = trio.Event()
        self._stopped = trio.Event()
        self.engine = await self._nursery.start(self._host, stop)
        return self.engine

    async def _host(
        self, stop: trio.Event, task_status: trio.TaskStatus[Engine] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with open_engine(
                self.data_dir, modules=self.modules, clock=self._clock, config=self.config
            ) as engine:
                task_status.started(engine)
                await stop.wait()
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Close the engine cleanly: every decided command is committed and answered."""
        stop = self._stop
        if stop is not None and not stop.is_set():
            stop.set()
            await self._stopped.wait()

    async def restart(self) -> Engine:
        """Close cleanly and recover from the data dir."""
        await self.stop()
        return await self.start()

    def now_ms(self) -> int:
        assert self._clock is not None
        return self._clock.now_ms()

    async def advance(self, minutes: float = 0, *, seconds: float = 0) -> None:
        """Let virtual time pass (needs trio's MockClock, e.g. pytest-trio's autojump_clock)."""
        await trio.sleep(minutes * 60 + seconds)
        await self.settle()

    async def settle(self) -> None:
        """Wait until timers that fell due have run and every decided command is committed."""
        await trio.testing.wait_all_tasks_blocked()
        await self.engine.wait_idle()
        await trio.testing.wait_all_tasks_blocked()

    async def mutation(
        self, name: str, args: dict[str, Any], identity: Identity = ADMIN, **kw: Any
    ) -> Any:
        return (await self.engine.mutation(name, args, identity, **kw)).value

    async def query(self, name: str, args: dict[str, Any], identity: Identity = ADMIN) -> Any:
        return (await self.engine.query(name, args, identity)).value

    async def outcome(self, name: str, args: dict[str, Any], identity: Identity = ADMIN) -> Outcome:
        return await self.engine.mutation(name, args, identity)


@asynccontextmanager
async def open_harness(data_dir: Path, **kw: Any) -> AsyncIterator[EngineHarness]:
    """A started `EngineHarness` for the duration of the block."""
    async with trio.open_nursery() as nursery:
        harness = EngineHarness(data_dir, nursery=nursery, **kw)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()
