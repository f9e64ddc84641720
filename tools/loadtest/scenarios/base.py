"""What every scenario is given (`RunContext`) and what it provides (`Scenario`).

A run has three phases, the same for every scenario:

1. prepare: the harness's admin connection creates the scenario's records and opens its
   reference subscriptions (kept for the run);
2. load: every participant (a trio task with its own connection) connects and subscribes, then
   waits for `start`; all start together and do their steps until they are done or
   `load_deadline` passes (then they start nothing new; what is in flight may finish);
3. settle and check: participants keep their connections (and subscriptions) open until
   `release`, so the harness can wait for every subscriber to converge and read back what was
   acknowledged.
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, ClassVar

import attrs
import trio

from engine.client import FunctionError
from engine.server.auth import mint_token
from tools.loadtest.checks import Check
from tools.loadtest.config import GRACE_SECONDS, LoadConfig
from tools.loadtest.recorder import Recorder, Watch
from tools.loadtest.users import MeasuredClient, leaves, open_measured_client

#: User tokens minted for simulated users outlive any bounded run.
TOKEN_TTL_SECONDS = 6 * 3600


class ScenarioUnavailable(Exception):
    """The server lacks what a scenario needs (the message says what)."""


def missing_function(error: FunctionError) -> str | None:
    """The function's name when `error` is the server's refusal of a function it does not
    serve (`NotFound` naming it); None for any other error, a record not found included."""
    if error.code != "NotFound":
        return None
    function = error.data.get("function")
    return str(function) if function else None


@attrs.frozen(kw_only=True)
class Audience:
    """The subscribers of one live query, and how the harness reads its current value."""

    #: What a person calls it ("onsale availability").
    label: str
    topic: str
    name: str
    args: dict[str, Any]
    members: Sequence[Watch]


class Attendance:
    """One participant's place in the run: `ready()` once connected and subscribed, `done()`
    once its steps are over. Leaving marks both, whatever happened."""

    def __init__(self, context: RunContext) -> None:
        self._context = context
        self._ready = False
        self._done = False

    def ready(self) -> None:
        if not self._ready:
            self._ready = True
            self._context._arrived()

    def done(self) -> None:
        self.ready()
        if not self._done:
            self._done = True
            self._context._finished()


class RunContext:
    """Shared by the scenarios and participants of one run."""

    def __init__(
        self,
        config: LoadConfig,
        recorder: Recorder,
        admin: MeasuredClient,
        run_id: str,
        rng: random.Random,
        release: trio.Event,
    ) -> None:
        self.config = config
        self.recorder = recorder
        self.admin = admin
        self.run_id = run_id
        self.rng = rng
        #: Set when the load begins: every participant connected (or failed, or was late).
        self.start = trio.Event()
        #: Set when the checks are done: participants may disconnect.
        self.release = release
        self.load_deadline = math.inf
        self.all_arrived = trio.Event()
        self.all_done = trio.Event()
        self.expected = 0
        self.arrived = 0
        self.finished = 0

    # -- participants ----------------------------------------------------------------------

    def enlist(self, count: int) -> None:
        self.expected += count
        self._check_counts()

    @asynccontextmanager
    async def participant(self, role: str) -> AsyncIterator[Attendance]:
        """A participant's whole life; a credential refused or a connection not made in time
        is recorded as an error of `role` (the run goes on without it)."""
        attendance = Attendance(self)
        try:
            yield attendance
        except* FunctionError as group:
            for error in leaves(group):
                assert isinstance(error, FunctionError)
                self.recorder.failed(role, error.code, str(error))
        except* trio.TooSlowError:
            self.recorder.failed(
                role, "ConnectTimeout", f"not connected within {self.config.connect_timeout} s"
            )
        finally:
            attendance.done()

    def connect(
        self, *, token: str | None = None, admin: bool = False
    ) -> AbstractAsyncContextManager[MeasuredClient]:
        """A new connection of its own: a user's (`token`), the admin's, or anonymous."""
        return open_measured_client(
            self.config.url,
            self.recorder,
            token=token,
            admin_key=self.config.admin_key if admin else None,
            connect_timeout=self.config.connect_timeout,
        )

    def user_token(self, sub: str, org: str | None = None, caps: Sequence[str] = ()) -> str:
        return mint_token(self.config.jwt_secret, sub, org, caps, TOKEN_TTL_SECONDS)

    def load_scope(self) -> trio.CancelScope:
        """The scope a participant's steps run in. Participants start nothing new once
        `load_over()`; what is in flight then may finish for `config.grace` seconds more, and
        is cut short after (so the run stays bounded even if the server stops answering)."""
        return trio.move_on_at(self.load_deadline + self.config.grace)

    def load_over(self) -> bool:
        return trio.current_time() >= self.load_deadline

    async def think(self) -> None:
        """A pause of `think_ms` on average (uniform over 0..2x), ending at the deadline."""
        pause = self.rng.uniform(0.0, 2.0 * self.config.think_ms / 1000.0)
        await trio.sleep_until(min(trio.current_time() + pause, self.load_deadline))

    def begin_load(self) -> None:
        self.load_deadline = trio.current_time() + self.config.duration
        self.recorder.start_load()
        self.start.set()

    def _arrived(self) -> None:
        self.arrived += 1
        self._check_counts()

    def _finished(self) -> None:
        self.finished += 1
        self._check_counts()

    def _check_counts(self) -> None:
        if self.arrived >= self.expected:
            self.all_arrived.set()
        if self.finished >= self.expected:
            self.all_done.set()


Participant = Callable[[], Awaitable[None]]


class Scenario(abc.ABC):
    """One kind of simulated traffic, with the checks that say it was served correctly."""

    name: ClassVar[str]

    def __init__(self, context: RunContext) -> None:
        self.context = context

    @abc.abstractmethod
    async def prepare(self, stack: AsyncExitStack) -> None:
        """Create the scenario's records (as admin) and enter into `stack` what must stay open
        for the run. `ScenarioUnavailable` if the server lacks a function it needs."""

    @abc.abstractmethod
    def participants(self) -> list[Participant]:
        """The simulated users, each to be run as its own task."""

    @abc.abstractmethod
    def audiences(self) -> list[Audience]:
        """The live queries whose subscribers must converge."""

    @abc.abstractmethod
    async def verify(self) -> list[Check]:
        """The scenario's own checks, run after the load (convergence is checked apart)."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """What the scenario's users did, for the report (JSON-able)."""


__all__ = [
    "GRACE_SECONDS",
    "Attendance",
    "Audience",
    "Participant",
    "RunContext",
    "Scenario",
    "ScenarioUnavailable",
    "missing_function",
]
