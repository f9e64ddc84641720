"""Actors: one per aggregate stream, deciding its commands one at a time.

An actor owns two states of its aggregate:
- the *working* state, ahead of the disk, which decides the next command (pipelining: the actor
  does not wait for the fsync of one command before deciding the next);
- the *committed* state, exactly the journal up to the last durable batch, the only state
  queries read.

A command is decided synchronously by the domain's one decide step (`domain.model.decide`: the
handler on a `Decision` of the working state), in the task that offers it, and its events handed
to the group commit; the command's `Reply` resolves only once the batch holding those events is
durable. Deciding inline is what keeps commands serial: the event loop runs one task at a time
and a decision never awaits, so no two decisions of one actor interleave, and commands are
decided in the order they are offered (no mailbox to queue in, no task hop per command).
A handler that raises leaves no trace: the working state is untouched and nothing is submitted.
So does a change the codec refuses: the group commit encodes a submission as it is handed
over, and the actors accept the new working states only once that has worked.

The pipeline is bounded: an actor with `pipeline_limit` commands decided and not yet durable
refuses the next with `Overloaded` at once, instead of queueing without limit or dropping the
command silently.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import trio

from domain.errors import Internal, Overloaded, TurnstileError
from domain.identity import ADMIN, Identity
from domain.model import Aggregate, Decision, Event, View, decide
from domain.ratelimit import RateLimit, Taken
from engine import refusals
from engine.limiters import Limiters

log = logging.getLogger("turnstile.actor")

RequestKey = tuple[str, int]

#: The caller of the commands the engine makes itself (timers, cron jobs, internal commands).
SYSTEM = ADMIN


class Reply:
    """The outcome of one command, resolved exactly once; any number of tasks may wait on it.

    Waiters park on trio's low-level primitives directly (no `trio.Event` per command): the
    commit of a batch reschedules each caller once. The first waiter (almost always the only
    one: the caller) is kept in a slot of its own, and the reply itself is its abort function,
    so that waiting allocates nothing of its own (each command in flight is walked by a sweep
    of the collector, engine/collector.py); later waiters go in a list."""

    __slots__ = ("_callbacks", "_more", "_waiter", "done", "error", "on_done", "ts", "value")

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.ts = 0
        self.error: TurnstileError | None = None
        #: Called once, when the outcome is known (before any waiter wakes).
        self.on_done: Callable[[], None] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._more: list[trio.lowlevel.Task] | None = None
        self._callbacks: list[Callable[[], None]] | None = None

    @property
    def is_done(self) -> bool:
        return self.done

    def resolve(self, value: Any, ts: int) -> None:
        self.value, self.ts = value, ts
        self._finish()

    def fail(self, error: TurnstileError) -> None:
        """Resolve with a refusal, kept without tracebacks; waiters raise a copy (refusals)."""
        self.error = refusals.stored(error)
        self._finish()

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once the outcome is known (at once if it is), on the event loop,
        before any waiter wakes. A callback that raises is logged and does not stop the rest."""
        if self.done:
            _call(callback)
            return
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(callback)

    def _finish(self) -> None:
        self.done = True
        if self.on_done is not None:
            on_done, self.on_done = self.on_done, None
            on_done()
        callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for callback in callbacks:
                _call(callback)
        reschedule = trio.lowlevel.reschedule
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            reschedule(waiter)
        more, self._more = self._more, None
        if more:
            for task in more:
                reschedule(task)

    def parked(self) -> Awaitable[Any]:
        """What the current task awaits for the outcome (a checkpoint, like every trio wait:
        cancellable while the outcome is unknown; the command itself goes on); `result()`
        then gives it. Not a coroutine of its own: one object less per command in flight."""
        if self.done:
            return trio.lowlevel.checkpoint()  # noqa: ASYNC105 (awaited by the caller)
        task = trio.lowlevel.current_task()
        if self._waiter is None:
            self._waiter = task
            return trio.lowlevel.wait_task_rescheduled(self)  # noqa: ASYNC105
        more = self._more
        if more is None:
            more = self._more = []
        more.append(task)
        abort = functools.partial(_abort_wait, more, task)
        return trio.lowlevel.wait_task_rescheduled(abort)  # noqa: ASYNC105

    def __call__(self, _: Any) -> trio.lowlevel.Abort:
        """The first waiter's abort function (see `parked`): it stops waiting."""
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def result(self) -> tuple[Any, int]:
        """The value and ts of a resolved reply, or raise (a copy of) its refusal."""
        if self.error is not None:
            raise refusals.fresh(self.error)
        return self.value, self.ts

    async def wait(self) -> tuple[Any, int]:
        """The value and ts, or raise the refusal (`parked`, then `result`)."""
        await self.parked()
        return self.result()


def _reach(
    host: ActorHost, reached: dict[str, Actor], aggregate: Aggregate[Any], stream: str
) -> tuple[Any, int]:
    """A decide step's `reach`: the working state of another actor, noted in `reached`."""
    actor = reached[stream] = host.resident(aggregate, stream)
    return actor.working_state, actor.working_version


def _abort_wait(waiters: list[trio.lowlevel.Task], task: trio.lowlevel.Task, _: Any) -> Any:
    waiters.remove(task)
    return trio.lowlevel.Abort.SUCCEEDED


def _call(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.exception("a reply's callback failed")


@attrs.define(slots=True)
class Command:
    handle: Callable[[Decision[Any], Any], Any]
    args: Any
    identity: Identity
    reply: Reply
    request: RequestKey | None = None
    rate_limit: RateLimit | None = None


class _Superseded:
    __slots__ = ()

    def __repr__(self) -> str:
        return "SUPERSEDED"


#: A `Submission.state` released because a later one of the same actor is in the same batch.
SUPERSEDED: Any = _Superseded()


@attrs.define(slots=True)
class Submission:
    """One decided command on its way to the journal.

    `companions` are other actors' parts of the same command (the co-decisions of
    `Decision.co_decide`) and `take` its rate limiter's take (engine/limiters.py): they are
    written in the same transaction, the companions' events before the main ones, so all land
    or none does.

    `state` is the actor's working state once this command is decided: its committed state
    when the batch holding it is durable. It is `SUPERSEDED` once a later submission of the
    same actor is in the same batch (that one's state is what the batch commits), so that the
    states between are freed while the batch is written."""

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
    take: Taken | None = None


class ActorHost(Protocol):
    def now_ms(self) -> int: ...
    def resident(self, aggregate: Aggregate[Any], stream: str) -> Actor:
        """The resident actor of `stream` (loaded on first use), for a co-decision inside
        another actor's step; may raise a `TurnstileError`."""
        ...

    @property
    def limiters(self) -> Limiters:
        """The rate limiters a command takes from (engine/limiters.py)."""
        ...

    def new_token(self) -> str: ...
    def committed_view(self) -> View:
        """A view of the committed states and read models, as a query reads them."""
        ...

    def submit(self, submission: Submission) -> None: ...
    @property
    def checks_invariants(self) -> bool: ...


class Actor:
    __slots__ = (
        "aggregate",
        "committed_state",
        "committed_version",
        "host",
        "in_flight",
        "last_used",
        "pipeline_limit",
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
        pipeline_limit: int,
    ) -> None:
        self.host = host
        self.aggregate = aggregate
        self.stream = stream
        self.working_state = self.committed_state = state
        self.working_version = self.committed_version = version
        #: Submissions decided and not yet committed (or failed).
        self.in_flight = 0
        #: The engine's housekeeping sweep count when last used (engine.Engine._sweeps).
        self.last_used = 0
        self.pipeline_limit = pipeline_limit

    @property
    def is_idle(self) -> bool:
        """Nothing on its way to disk: safe to drop from memory."""
        return not self.in_flight

    def offer(self, command: Command) -> None:
        """Decide `command` now, or raise `Overloaded` at once if `pipeline_limit` commands of
        this actor are still on their way to disk."""
        if self.in_flight >= self.pipeline_limit:
            raise Overloaded(
                "Too many commands are waiting for this record; retry shortly.",
                stream=self.stream,
            )
        self.decide(command)

    def reset_to_committed(self) -> None:
        """Forget the working state (its batch failed): decide again from the journal's state."""
        self.working_state = self.committed_state
        self.working_version = self.committed_version
        self.in_flight = 0

    def _accept_state(self, state: Any, version: int) -> None:
        self.working_state = state
        self.working_version = version
        self.in_flight += 1

    def decide(self, command: Command) -> None:
        """Decide one command with the domain's one decide step (`domain.model.decide`), on the
        working states: a rate-limited command takes its unit from its limiter, and a
        handler may decide on other aggregates (`Decision.co_decide`), all within the same
        synchronous step (no checkpoint: nothing can interleave). The take and the other
        actors' parts are kept only if the command itself is accepted, so a refused command
        spends nothing and changes nothing anywhere."""
        host = self.host
        now = host.now_ms()
        reached: dict[str, Actor] = {}
        limit = command.rate_limit
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
                reach=functools.partial(_reach, host, reached),
                rate_limit=limit,
                limiters=None if limit is None else host.limiters.state,
                check_invariants=host.checks_invariants,
                committed=host.committed_view,
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
            companions.append(
                Submission(
                    actor=reached[part.stream],
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
        submission = Submission(
            actor=self,
            events=tuple(decision.events),
            state=decision.state,
            version=decision.version,
            value=decided.value,
            reply=command.reply,
            request=command.request,
            decided_at=now,
            companions=tuple(companions),
            take=decided.taken,
        )
        try:
            host.submit(submission)
        except Exception:
            # The codec refused a value of its change (a bug in one function): refused before
            # any actor accepted it, so nothing is decided on top of it.
            log.exception("a change on %s cannot be encoded; nothing was written", self.stream)
            command.reply.fail(
                Internal("The server could not save this change, so nothing was changed.")
            )
            return
        if decided.taken is not None:
            host.limiters.accept(decided.taken)
        for companion in companions:
            companion.actor._accept_state(companion.state, companion.version)
        self._accept_state(decision.state, decision.version)
