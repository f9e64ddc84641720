"""Actors: one trio task per aggregate, handling its commands one at a time.

An actor owns two states of its aggregate:
- the *working* state, ahead of the disk, which decides the next command (pipelining: the actor
  does not wait for the fsync of one command before deciding the next);
- the *committed* state, exactly the journal up to the last durable batch, the only state
  queries read.

A command is decided synchronously by the domain's one decide step (`domain.model.decide`: the
handler on a `Decision` of the working state) and its events handed to the group commit; the
command's `Reply` resolves only once the batch holding those events is durable.
A handler that raises leaves no trace: the working state is untouched and nothing is submitted.

The mailbox is bounded: when it is full, `offer` raises `Overloaded` at once instead of queueing
without limit or dropping the command silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

from domain.errors import Internal, Overloaded, TurnstileError
from domain.identity import ADMIN, Identity
from domain.model import Aggregate, Decision, Event, decide
from domain.ratelimit import RateLimit

log = logging.getLogger("turnstile.actor")

RequestKey = tuple[str, int]

#: The caller of the commands the engine makes itself (timers, cron jobs, internal commands).
SYSTEM = ADMIN


class Reply:
    """The outcome of one command, resolved exactly once; any number of tasks may wait on it."""

    __slots__ = ("_done", "error", "on_done", "ts", "value")

    def __init__(self) -> None:
        self._done = trio.Event()
        self.value: Any = None
        self.ts = 0
        self.error: TurnstileError | None = None
        #: Called once, when the outcome is known (before any waiter wakes).
        self.on_done: Callable[[], None] | None = None

    @property
    def is_done(self) -> bool:
        return self._done.is_set()

    def resolve(self, value: Any, ts: int) -> None:
        self.value, self.ts = value, ts
        self._finish()

    def fail(self, error: TurnstileError) -> None:
        self.error = error
        self._finish()

    def _finish(self) -> None:
        self._done.set()
        if self.on_done is not None:
            on_done, self.on_done = self.on_done, None
            on_done()

    async def wait(self) -> tuple[Any, int]:
        await self._done.wait()
        if self.error is not None:
            raise self.error
        return self.value, self.ts


@attrs.define(slots=True)
class Command:
    handle: Callable[[Decision[Any], Any], Any]
    args: Any
    identity: Identity
    reply: Reply
    request: RequestKey | None = None
    rate_limit: RateLimit | None = None


@attrs.define(slots=True)
class Submission:
    """One decided command on its way to the journal.

    `companions` are other actors' parts of the same command (a rate limiter's take, the
    co-decisions of `Decision.co_decide`): they are written in the same transaction, before the
    main events, so all land or none does."""

    actor: Actor
    events: tuple[Event, ...]
    state: Any
    version: int
    value: Any
    reply: Reply
    request: RequestKey | None
    decided_at: int
    ts: int = 0
    companions: tuple[Submission, ...] = ()


class ActorHost(Protocol):
    def now_ms(self) -> int: ...
    def resident(self, aggregate: Aggregate[Any], stream: str) -> Actor:
        """The resident actor of `stream` (loaded on first use), for a co-decision or a
        rate limiter's take inside another actor's step; may raise a `TurnstileError`."""
        ...

    def new_token(self) -> str: ...
    def submit(self, submission: Submission) -> None: ...
    def start_actor(self, actor: Actor) -> None: ...
    @property
    def checks_invariants(self) -> bool: ...


class Actor:
    __slots__ = (
        "_mailbox_size",
        "_receive",
        "_send",
        "aggregate",
        "committed_state",
        "committed_version",
        "host",
        "in_flight",
        "last_used",
        "started",
        "stream",
        "working_state",
        "working_version",
    )

    def __init__(
        self,
        *,
        host: ActorHost,
        aggregate: Aggregate[Any],
        stream: str,
        state: Any,
        version: int,
        mailbox_size: int,
    ) -> None:
        self.host = host
        self.aggregate = aggregate
        self.stream = stream
        self.working_state = self.committed_state = state
        self.working_version = self.committed_version = version
        self.in_flight = 0
        self.last_used = 0.0
        self.started = False
        self._mailbox_size = mailbox_size
        # The mailbox and task are made on the first command (many actors only serve reads).
        self._send: trio.MemorySendChannel[Command] | None = None
        self._receive: trio.MemoryReceiveChannel[Command] | None = None

    @property
    def is_idle(self) -> bool:
        """Nothing queued and nothing on its way to disk: safe to drop from memory."""
        if self.in_flight:
            return False
        return self._send is None or self._send.statistics().current_buffer_used == 0

    def offer(self, command: Command) -> None:
        """Queue the command, or raise `Overloaded` at once if the mailbox is full.

        Raises `trio.ClosedResourceError` if the actor was passivated meanwhile (the caller
        then looks the actor up again)."""
        if self._send is None:
            if self.started:  # closed before it ever got a mailbox
                raise trio.ClosedResourceError
            self._send, self._receive = trio.open_memory_channel[Command](self._mailbox_size)
            self.started = True
            self.host.start_actor(self)
        try:
            self._send.send_nowait(command)
        except trio.WouldBlock:
            raise Overloaded(
                "Too many commands are waiting for this record; retry shortly.",
                stream=self.stream,
            ) from None

    @property
    def has_queued(self) -> bool:
        return self._send is not None and self._send.statistics().current_buffer_used > 0

    def refuse_queued(self, error: TurnstileError) -> None:
        """Answer every command still in the mailbox with `error` (at shutdown)."""
        if self._receive is None:
            return
        while True:
            try:
                command = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            command.reply.fail(error)

    def close(self) -> None:
        self.started = True
        if self._send is not None:
            self._send.close()

    def reset_to_committed(self) -> None:
        """Forget the working state (its batch failed): decide again from the journal's state."""
        self.working_state = self.committed_state
        self.working_version = self.committed_version
        self.in_flight = 0

    async def run(self) -> None:
        receive = self._receive
        assert receive is not None
        async with receive:
            async for command in receive:
                self.decide(command)
                # Decide everything already queued before yielding: a hot actor then costs one
                # scheduler pass per burst, not one per command.
                while True:
                    try:
                        command = receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    self.decide(command)

    def _accept(self, decision: Decision[Any]) -> None:
        self.working_state = decision.state
        self.working_version = decision.version
        self.in_flight += 1

    def decide(self, command: Command) -> None:
        """Decide one command with the domain's one decide step (`domain.model.decide`), on the
        working states: a rate-limited command takes its unit from the limiter actor, and a
        handler may decide on other aggregates (`Decision.co_decide`), all within the same
        synchronous step (no checkpoint: nothing can interleave). The other actors' parts are
        kept only if the command itself is accepted, so a refused command spends nothing and
        changes nothing anywhere."""
        host = self.host
        now = host.now_ms()
        reached: dict[str, Actor] = {}

        def reach(aggregate: Aggregate[Any], stream: str) -> tuple[Any, int]:
            actor = reached[stream] = host.resident(aggregate, stream)
            return actor.working_state, actor.working_version

        try:
            decided = decide(
                self.aggregate,
                self.stream,
                self.working_state,
                self.working_version,
                command.handle,
                command.args,
                identity=command.identity,
                now=now,
                tokens=host.new_token,
                reach=reach,
                rate_limit=command.rate_limit,
                check_invariants=host.checks_invariants,
            )
        except TurnstileError as error:
            command.reply.fail(error)
            return
        except Exception:
            log.exception("command on %s failed unexpectedly; nothing was written", self.stream)
            command.reply.fail(Internal("The server failed to handle this command."))
            return
        companions = []
        for part in decided.others:
            if not part.events:
                continue  # only read: nothing to write or to hold back
            actor = reached[part.stream]
            actor._accept(part)
            companions.append(
                Submission(
                    actor=actor,
                    events=tuple(part.events),
                    state=part.state,
                    version=part.version,
                    value=None,
                    reply=command.reply,
                    request=None,
                    decided_at=now,
                )
            )
        decision = decided.decision
        self._accept(decision)
        host.submit(
            Submission(
                actor=self,
                events=tuple(decision.events),
                state=decision.state,
                version=decision.version,
                value=decided.value,
                reply=command.reply,
                request=command.request,
                decided_at=now,
                companions=tuple(companions),
            )
        )
