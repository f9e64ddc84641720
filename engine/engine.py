"""The engine: actors, journal, read models, timers and live queries in one trio process.

Open it with `open_engine(data_dir)` (an async context manager). On entry it recovers: newest
valid snapshot + journal tail rebuild the read models and the armed timers (overdue timers fire
at once); aggregate states are loaded lazily, on first use, from the snapshot and the stream's
own journal rows. On exit it stops taking commands, lets every decided command reach the disk,
answers them, and closes the journal.

Guarantees (docs/engine.md, "Invariants"):
1. `mutation()` returns only after the command's events are durable; its `ts` is their sequence
   number.
2. `query()` and every subscription value are computed on committed states only, all at one
   journal position `ts` (the event loop runs one task at a time and a batch's effects are
   applied without a checkpoint in between).
3. A rejected command (bad args, broken rule, not allowed, overloaded) writes nothing and
   changes no state.
4. A repeated `(session_id, request_id)` returns the original result and `ts`, durably.
"""

from __future__ import annotations

import base64
import functools
import gc
import itertools
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio
import trio.lowlevel

from domain.errors import Internal, InvalidArgs, NotFound, Overloaded, TurnstileError
from domain.identity import ANONYMOUS, Identity
from domain.ids import is_root_id, root_id
from domain.model import EVENT_TYPES, Aggregate, Decision, Erasure, Module, Projection, View
from domain.ratelimit import RATE_LIMITER, LimiterState, taken_state
from domain.storage import STORED_FILES, FileDeleted, StoredFile
from engine import codec, erasure, refusals
from engine.actor import SUPERSEDED, SYSTEM, Actor, Command, Reply, RequestKey, Submission
from engine.clock import Clock
from engine.collector import Collector
from engine.files import FileStore
from engine.group_commit import GroupCommit
from engine.journal import (
    DamagedRow,
    JournalReader,
    append_process,
    open_journal,
    verify,
)
from engine.journal.writer_process import AppendProcess
from engine.journal_filter import JournalFilter
from engine.journal_filter import build as build_filter
from engine.limiters import Limiters
from engine.readmodels import ReadModels, refold
from engine.registry import ENGINE_MODULE, Registry
from engine.scheduled import ScheduledFunctions, SchedulingView
from engine.scheduler import Scheduler
from engine.snapshotting import SnapshotInfo, build_snapshot, load_stream, stale_kinds
from engine.subscriptions import ReadKey, RecordingView, Result, Subscription, Subscriptions
from engine.timers import TimerService
from snapshots import Snapshot, list_files, newest_valid, snapshot_dir

log = logging.getLogger("turnstile.engine")


def _list_streams(reader: JournalReader) -> Iterable[str]:
    """What `Engine._written` holds: the streams with rows, and the limiters with takes."""
    return itertools.chain(reader.streams(), reader.limiters())


def _list_sessions(reader: JournalReader) -> Iterable[str]:
    return reader.sessions()


T = TypeVar("T")
S = TypeVar("S")
A = TypeVar("A")

#: How often overdue timers are swept up (docs/reference/limits.md, "The engine").
SWEEP_SECONDS = 60.0
#: Sessions whose highest committed request id the engine keeps in memory (least recently used
#: forgotten first; a forgotten one is read again from the journal when it next sends).
REQUEST_MARKS = 100_000
#: How often the journal's per-stream and per-request lookups catch up with the commits
#: (`Journal.index_tail`, in a worker thread); reads scan what was committed since.
INDEX_SECONDS = 0.25


@attrs.frozen(kw_only=True)
class EngineConfig:
    #: SQLite `synchronous`: FULL survives power loss; NORMAL only process crashes.
    synchronous: str = "FULL"
    #: Commands of one actor decided and not yet durable (its pipeline to the journal) before
    #: the next is refused with `Overloaded`.
    mailbox_size: int = 4_096
    #: Actors kept in memory at most; idle ones beyond are passivated, least recently used first.
    max_resident_actors: int = 20_000
    #: Actors unused this long are passivated by the housekeeping sweep.
    idle_seconds: float = 300.0
    #: Write a snapshot after this many events since the last one (0: never automatically).
    snapshot_every: int = 200_000
    #: Snapshots kept on disk.
    snapshots_kept: int = 2
    #: Run each aggregate's invariant check after every command (tests turn this on).
    check_invariants: bool = False
    #: Largest number of commands in one journal transaction.
    max_batch: int = 4_096
    #: Run disk work (commits, snapshots, recovery) in worker threads, so the event loop keeps
    #: deciding commands meanwhile. Tests turn it off: under trio's autojump `MockClock` a
    #: thread at work looks like idleness and would let virtual time leap during a commit.
    offload_io: bool = True
    #: With `offload_io`: append in a child process of the journal's own
    #: (engine/journal/writer_process.py) instead of a worker thread, so that writing overlaps
    #: the event loop's work instead of waiting for its interpreter lock. Off: appends go
    #: through `Journal.append` in a worker thread (tests that wrap it turn this off).
    writer_process: bool = True
    #: Run the domain's cron jobs. An engine opened only to inspect or check a data dir turns
    #: this off, so that nothing is written but what its caller asks for.
    run_jobs: bool = True


@attrs.frozen
class Outcome:
    """A function's result and the journal position `ts` it reflects (mutations: where its
    events were committed)."""

    value: Any
    ts: int


@attrs.frozen
class RecoveryReport:
    snapshot_seq: int
    journal_seq: int
    events_folded: int
    seconds: float


def storage_fault(error: BaseException) -> str:
    """A client-facing name for why the journal could not write: `diskFull`, `locked`,
    `ioError` or `other` (the `fault` detail of the `Overloaded` refusal)."""
    text = str(error).lower()
    errno_ = getattr(error, "errno", None)
    if errno_ == 28 or "full" in text:  # ENOSPC, SQLITE_FULL
        return "diskFull"
    if "locked" in text or "busy" in text:
        return "locked"
    if errno_ == 5 or "i/o" in text or isinstance(error, OSError):
        return "ioError"
    return "other"


def _with_companions(batch: list[Submission]) -> list[Submission]:
    """Each submission preceded by its companions (written first, committed together)."""
    if not any(s.companions for s in batch):
        return batch
    out: list[Submission] = []
    for submission in batch:
        out.extend(submission.companions)
        out.append(submission)
    return out


def _remove_hook(hooks: list[Callable[[], None]], hook: Callable[[], None]) -> None:
    if hook in hooks:
        hooks.remove(hook)


class PendingMutation:
    """A mutation handed to its actor; `await outcome()` for its durable result."""

    __slots__ = ("_reply",)

    def __init__(self, reply: Reply) -> None:
        self._reply = reply

    async def outcome(self) -> Outcome:
        """The durable result (or the refusal). Cancelling the wait does not cancel the
        mutation, and the engine keeps knowing its request id until it has an outcome: a
        repeat of the request meanwhile waits on this same execution."""
        value, ts = await self._reply.wait()
        return Outcome(value, ts)

    @property
    def done(self) -> bool:
        """The outcome is known (`result()` gives it without waiting)."""
        return self._reply.done

    def result(self) -> Outcome:
        """The outcome of a finished mutation: its durable result, or raises its refusal.
        Raises RuntimeError while it is not finished."""
        reply = self._reply
        if not reply.done:
            raise RuntimeError("the mutation has no outcome yet")
        value, ts = reply.result()
        return Outcome(value, ts)

    def add_done_callback(self, callback: Callable[[PendingMutation], None]) -> None:
        """Call `callback(self)` once the outcome is known (at once if it is), on the event
        loop, without a task: e.g. to queue the answer to a client. It must not block; one
        that raises is logged."""
        self._reply.add_callback(functools.partial(callback, self))


class QueryUpdates:
    """The updates of one in-process subscription (`Engine.subscribe`), as an async iterator
    of `(ts, value)`."""

    def __init__(self, sub: Subscription) -> None:
        self._sub = sub

    def __aiter__(self) -> QueryUpdates:
        return self

    async def __anext__(self) -> tuple[int, Any]:
        ts, result = await self._sub.next()
        if result.error is not None:
            raise refusals.fresh(result.error)
        return ts, result.value


class Engine:
    """Use through `open_engine`. All methods run on the engine's trio event loop."""

    def __init__(
        self,
        data_dir: Path,
        *,
        modules: Iterable[Module],
        clock: Clock,
        config: EngineConfig,
        nursery: trio.Nursery,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.registry = Registry((*modules, ENGINE_MODULE))
        self.clock = clock
        self._nursery = nursery
        self.journal = open_journal(data_dir, synchronous=config.synchronous)
        #: Stored files' bytes (engine/files.py); a file's record is its `file` aggregate.
        self.files = FileStore(data_dir)
        self.tail_repair = self.journal.repair_tail()
        if self.tail_repair is not None:
            log.error(
                "journal tail damaged (%s): rows %d..%d (%d rows, %d request records) set aside"
                " in the quarantine tables; recovering up to seq %d",
                self.tail_repair.reason,
                self.tail_repair.first_seq,
                self.tail_repair.last_seq,
                self.tail_repair.rows,
                self.tail_repair.requests,
                self.tail_repair.first_seq - 1,
            )
            # Snapshots at or past the damage hold what was set aside: never recover from them.
            directory = snapshot_dir(data_dir)
            for seq, path in list_files(directory):
                if seq >= self.tail_repair.first_seq:
                    (directory / "quarantine").mkdir(exist_ok=True)
                    path.rename(directory / "quarantine" / path.name)
        self.read_models = ReadModels(self.registry.projections.values())
        self._snapshot: Snapshot | None = None
        #: Aggregate kinds whose state rows in `_snapshot` are of another state version.
        self._stale_kinds: frozenset[str] = frozenset()
        self._actors: OrderedDict[str, Actor] = OrderedDict()
        #: The rate limiters in use (engine/limiters.py), as many at most as actors.
        self.limiters = Limiters(self._load_limiter, config.max_resident_actors)
        #: Housekeeping sweeps so far: an actor's `last_used` is this count when it was last
        #: used (a counter, not the clock, since every command uses two actors).
        self._sweeps = 0
        #: Mutations begun, queries evaluated and batches committed so far: what tells the
        #: collector (engine/collector.py) whether the engine is at rest.
        self.work = 0
        #: Mutation specs by the name a caller gave (a name resolves to the same spec forever).
        self._mutation_specs: dict[str, Any] = {}
        #: Streams (and rate limiters) the journal may hold: spares the read of one never
        #: written.
        self._written = JournalFilter()
        #: Sessions that may have idempotency records (engine/journal_filter.py), and the highest
        #: request id known committed per session seen since start: a request above it cannot
        #: have a record, so only a re-sent one is looked up in the journal.
        self._recorded = JournalFilter()
        self._request_marks: OrderedDict[str, int] = OrderedDict()
        self._requests: dict[RequestKey, Reply] = {}
        #: Called after each committed batch's callers are answered (`after_answers`).
        self._after_answers: list[Callable[[], None]] = []
        #: The journal's writer process (started once recovery is done), if the config has one.
        self._appender: AppendProcess | None = (
            append_process(self.journal, config.synchronous)
            if config.offload_io and config.writer_process
            else None
        )
        self._commit = GroupCommit(
            self.journal,
            run_io=self.run_io,
            on_committed=self._on_committed,
            on_failed=self._on_failed,
            max_batch=config.max_batch,
            threaded=config.offload_io,
            appender=self._appender,
        )
        self.committed_seq = self._commit.last_seq
        self._timers = TimerService(clock, self.read_models.timers)
        self.scheduler = Scheduler(self, self.registry.jobs, run_jobs=config.run_jobs)
        #: Scheduled functions (engine/scheduled.py), run by the same rule as cron jobs.
        self.scheduled = ScheduledFunctions(self, run=config.run_jobs)
        self.subscriptions = Subscriptions(self._view)
        self._closing = False
        self._seq_advanced = trio.Event()
        self._events_since_snapshot = 0
        self._snapshot_lock = trio.Lock()
        self._index_lock = trio.Lock()
        self._erasure_lock = trio.Lock()
        self._erasure_types = sorted(
            name
            for name, cls in EVENT_TYPES.items()
            if issubclass(cls, Erasure) and cls is not Erasure
        )
        self._erasures_running = 0
        self._erasures_idle = trio.Event()
        self.recovery: RecoveryReport | None = None
        self.stats = {
            "passivated": 0,
            "activated": 0,
            "snapshots": 0,
            "write_failures": 0,
            "erasures": 0,
        }

    # -- public API -----------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def checks_invariants(self) -> bool:
        return self.config.check_invariants

    async def mutation(
        self,
        name: str,
        args: Any,
        identity: Identity = ANONYMOUS,
        *,
        session_id: str | None = None,
        request_id: int | None = None,
    ) -> Outcome:
        """Run a mutation by name; return once its events are durable.

        With `session_id` and `request_id`, a repeat of an executed request returns the
        original result and `ts` without executing again (also after a restart); a repeat of a
        request still in flight waits for it. Raises a `TurnstileError` on refusal."""
        reply = self._begin(name, args, identity, session_id, request_id)
        await reply.parked()
        value, ts = reply.result()
        return Outcome(value, ts)

    def begin_mutation(
        self,
        name: str,
        args: Any,
        identity: Identity = ANONYMOUS,
        *,
        session_id: str | None = None,
        request_id: int | None = None,
    ) -> PendingMutation:
        """The synchronous half of `mutation`: validate, de-duplicate and decide the command
        before returning, so that mutations begun in order are decided in that order (a sync
        session relies on this). Refusals known before deciding raise here; the decision's own
        refusal comes from `outcome()`."""
        return PendingMutation(self._begin(name, args, identity, session_id, request_id))

    def _begin(
        self,
        name: str,
        args: Any,
        identity: Identity,
        session_id: str | None,
        request_id: int | None,
    ) -> Reply:
        # A batch the writer process has answered meanwhile is finished first (its callers
        # answered, the next batch handed over), rather than after this scheduler pass.
        self._commit.poll()
        self.work += 1
        spec = self._mutation_specs.get(name)
        if spec is None:
            spec = self._mutation_specs[name] = self.registry.mutation(name)
        request: RequestKey | None = None
        if session_id is not None and request_id is not None:
            request = (session_id, request_id)
            running = self._requests.get(request)
            if running is not None:
                return running
            record = (
                self.journal.lookup_request(session_id, request_id)
                if request_id <= self._request_mark(session_id)
                else None
            )
            if record is not None:
                done = Reply()
                done.resolve(codec.loads(record.result), record.seq)
                return done
        parsed = codec.decode_args(args, spec.args_type)
        aggregate = spec.aggregate
        if spec.route is None:
            aggregate_id = root_id(aggregate.id_prefix, self.new_token())
        else:
            aggregate_id = spec.route(parsed)
            if not is_root_id(aggregate_id, aggregate.id_prefix):
                raise NotFound(f"No {aggregate.kind} with id {aggregate_id!r}.")
        reply = Reply()
        command = Command(spec.handle, parsed, identity, reply, request, spec.rate_limit)
        self._offer(aggregate, aggregate.stream_of(aggregate_id), command)
        if request is not None and not reply.done:
            self._requests[request] = reply
            # Forgotten once its outcome is known (committed with the request's record, or
            # refused), whoever waits for it or stops waiting.
            reply.on_done = functools.partial(self._forget_request, request, reply)
        return reply

    def after_answers(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call `hook()` after each committed batch, once every caller of the batch has its
        outcome (their callbacks have run), synchronously on the event loop: e.g. to write the
        answers those callbacks queued, at the same cut, without waiting for another task's
        turn. It must not block; one that raises is logged. Returns the function that removes
        it."""
        self._after_answers.append(hook)
        return functools.partial(_remove_hook, self._after_answers, hook)

    def _request_mark(self, session_id: str) -> int:
        """The highest request id of `session_id` that may have a record."""
        marks = self._request_marks
        mark = marks.get(session_id)
        if mark is None:
            might = self._recorded.might_hold(session_id)
            mark = marks[session_id] = self.journal.last_request_id(session_id) if might else 0
            if len(marks) > REQUEST_MARKS:
                marks.popitem(last=False)
        else:
            marks.move_to_end(session_id)
        return mark

    def _forget_request(self, request: RequestKey, reply: Reply) -> None:
        if self._requests.get(request) is reply:
            del self._requests[request]

    async def wait_for_seq(self, seq: int) -> None:
        """Wait until the journal position `seq` is committed (and applied everywhere)."""
        while self.committed_seq < seq:
            await self._seq_advanced.wait()

    async def query(self, name: str, args: Any, identity: Identity = ANONYMOUS) -> Outcome:
        """Evaluate a query on committed state; `ts` is the journal position it reflects."""
        spec = self.registry.query(name)
        parsed = codec.decode_args(args, spec.args_type)
        result = self.evaluate(spec, parsed, identity)
        if result.error is not None:
            raise refusals.fresh(result.error)
        return Outcome(result.value, self.committed_seq)

    def read_view(self) -> View:
        """A view of committed state at `committed_seq` (valid until the next checkpoint)."""
        return self._view()

    async def run_internal(
        self,
        aggregate: Aggregate[S],
        aggregate_id: str,
        handle: Callable[[Decision[S], A], Any],
        args: A,
    ) -> Outcome:
        """Run an engine-made command (no registered name; the system caller) on one
        aggregate; return once it is durable. Raises the handler's `TurnstileError`."""
        reply = Reply()
        command = Command(handle, args, SYSTEM, reply)
        self._offer(aggregate, aggregate.stream_of(aggregate_id), command)
        value, ts = await reply.wait()
        return Outcome(value, ts)

    async def schedule_function(
        self, function: str, args: Mapping[str, Any], at_ms: int, identity: Identity
    ) -> str:
        """Schedule `function` (a mutation, or what else `scheduled.dispatch` reaches: an
        action while a server serves) with wire args `args` to run at `at_ms` (ms epoch; a
        past time runs at once), as `identity` scheduled it (its organization sees and may
        cancel it); the schedule's id, once it is durable. For code outside a mutation (an
        action); a mutation uses `domain.run_at` / `run_after`, atomic with its own commit.
        The function runs once, as the system caller (engine/scheduled.py). `InvalidArgs`
        (nothing written) as `domain.run_at` refuses; `Overloaded` past the pending bound."""
        return await self.scheduled.schedule(function, args, at_ms, identity)

    async def cancel_scheduled(self, scheduled_id: str, identity: Identity) -> None:
        """Cancel a pending schedule once and for all (durable when this returns): it never
        runs. `NotFound` for none that `identity` may reach, `Conflict` once it is running,
        done or failed; one already cancelled is left as it is."""
        await self.scheduled.cancel(scheduled_id, identity)

    def mutation_spec(self, name: str) -> Any:
        """The mutation a name (or alias) serves; `NotFound` for none."""
        return self.registry.mutation(name)

    def serves_action(self, name: str) -> bool:
        """Whether `name` (or an alias) is an action of the apps served."""
        try:
            self.registry.action(name)
        except (NotFound, InvalidArgs):
            return False
        return True

    def projection_state(self, projection: Projection[S]) -> S:
        """A read model's committed state (not recorded as a read)."""
        state: S = self.read_models.states[projection.name]
        return state

    def evaluate(self, spec: Any, parsed: Any, identity: Identity) -> Result:
        from engine.subscriptions import evaluate

        self.work += 1
        return evaluate(spec, parsed, identity, self._view())

    @asynccontextmanager
    async def subscribe(
        self, name: str, args: Any, identity: Identity = ANONYMOUS
    ) -> AsyncIterator[AsyncIterator[tuple[int, Any]]]:
        """A live query: yields an async iterator of `(ts, value)`, first the current value,
        then each changed value (coalesced if the consumer is slow). A failing evaluation
        raises its `TurnstileError` from the iterator; iterating again waits for the next."""
        spec = self.registry.query(name)
        parsed = codec.decode_args(args, spec.args_type)
        sub = Subscription(spec, parsed, identity, (spec.name, codec.dumps(args), identity))
        self.subscriptions.add(sub, self.committed_seq)

        try:
            yield QueryUpdates(sub)
        finally:
            self.subscriptions.remove(sub)

    async def snapshot_now(self) -> SnapshotInfo | None:
        """Write a snapshot of everything committed so far (in a worker thread)."""
        await self._commit.drained()
        return await self._write_snapshot()

    async def wait_idle(self) -> None:
        """Wait until every command decided so far is committed (or failed)."""
        await self._commit.drained()

    def stored_files(self) -> Mapping[str, StoredFile]:
        """Every stored file's record at `committed_seq` (storage id -> size, sha256)."""
        files: Mapping[str, StoredFile] = self.read_models.states[STORED_FILES.name]
        return files

    def resident_actors(self) -> int:
        return len(self._actors)

    def committed_state(self, aggregate: Aggregate[Any], aggregate_id: str) -> Any:
        """The committed state of one aggregate (its `initial` if it has no events)."""
        actor = self._resident(aggregate, aggregate.stream_of(aggregate_id))
        return actor.committed_state

    async def run_io(self, work: Callable[[], T]) -> T:
        """Run blocking disk work: in a worker thread, or inline if `offload_io` is off."""
        if self.config.offload_io:
            return await trio.to_thread.run_sync(work)
        await trio.lowlevel.checkpoint()
        return work()

    # -- ActorHost ------------------------------------------------------------------------

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def new_token(self) -> str:
        return base64.b32encode(os.urandom(10)).decode("ascii").lower()

    def submit(self, submission: Submission) -> None:
        self._commit.submit(submission)

    def resident(self, aggregate: Aggregate[Any], stream: str) -> Actor:
        """The resident actor of another aggregate's stream, for a co-decision or a rate
        limiter's take inside a command (the decide step has checked the id)."""
        return self._resident(aggregate, stream)

    # -- actors ---------------------------------------------------------------------------

    def _offer(self, aggregate: Aggregate[Any], stream: str, command: Command) -> None:
        if self._closing:
            raise Overloaded("The server is shutting down; retry on the next connection.")
        self._resident(aggregate, stream).offer(command)

    def _resident(self, aggregate: Aggregate[Any], stream: str) -> Actor:
        actor = self._actors.get(stream)
        if actor is not None:
            self._actors.move_to_end(stream)
            actor.last_used = self._sweeps
            return actor
        state, version = self._load(aggregate, stream)
        return self._activate(aggregate, stream, state, version)

    def _load(self, aggregate: Aggregate[Any], stream: str) -> tuple[Any, int]:
        """A stream's committed state from disk: its snapshot row plus its later journal rows
        (none to read for a stream never written)."""
        if not self._written.might_hold(stream):
            return aggregate.initial, 0
        try:
            return load_stream(
                self._snapshot,
                aggregate,
                stream,
                lambda v: self.journal.read_stream(stream, v),
                self._stale_kinds,
            )
        except DamagedRow as exc:
            log.error("cannot load %s: %s", stream, exc)
            raise Internal("A stored record is damaged; the operator has been told.") from None

    def _load_limiter(self, stream: str) -> LimiterState:
        """A rate limiter's committed state from disk: its last take (none to read for a
        limiter never taken), or, for a limiter of a journal from before takes were records of
        their own, its stream's `RateLimitTaken` rows folded."""
        if not self._written.might_hold(stream):
            return RATE_LIMITER.initial
        try:
            found = self.journal.read_take(stream)
        except DamagedRow as exc:
            log.error("cannot load %s: %s", stream, exc)
            raise Internal("A stored record is damaged; the operator has been told.") from None
        if found is not None:
            return taken_state(
                at=found.at,
                window_start=found.window_start,
                count=found.count,
                milli_tokens=found.milli_tokens,
            )
        state: LimiterState = self._load(RATE_LIMITER, stream)[0]
        return state

    def _activate(self, aggregate: Aggregate[Any], stream: str, state: Any, version: int) -> Actor:
        actor = Actor(
            host=self,
            aggregate=aggregate,
            stream=stream,
            state=state,
            version=version,
            pipeline_limit=self.config.mailbox_size,
        )
        actor.last_used = self._sweeps
        self._actors[stream] = actor
        self.stats["activated"] += 1
        if len(self._actors) > self.config.max_resident_actors:
            self._passivate_lru()
        return actor

    def _read_committed(self, aggregate: Aggregate[Any], aggregate_id: str) -> Any:
        if not is_root_id(aggregate_id, aggregate.id_prefix):
            return None
        stream = aggregate.stream_of(aggregate_id)
        actor = self._actors.get(stream)
        if actor is not None:
            self._actors.move_to_end(stream)
            actor.last_used = self._sweeps
            return actor.committed_state if actor.committed_version else None
        state, version = self._load(aggregate, stream)  # one read, whether or not it exists
        if version == 0:
            return None  # no such record: nothing to keep in memory
        return self._activate(aggregate, stream, state, version).committed_state

    def _view(self) -> RecordingView:
        return RecordingView(self._read_committed, self.read_models.states)

    def committed_view(self) -> View:
        """What `Decision.committed_view` gives a handler: the view a query gets, which also
        checks the functions a handler schedules (`domain.scheduled.Schedulable`)."""
        return SchedulingView(self._read_committed, self.read_models.states, self.scheduled)

    def _passivate(self, stream: str) -> None:
        del self._actors[stream]
        self.stats["passivated"] += 1

    def _passivate_lru(self) -> None:
        """Passivate idle actors, least recently used first, down to 95% of the cap (in one
        sweep, so the cost is paid once per many activations)."""
        target = int(self.config.max_resident_actors * 0.95)
        excess = len(self._actors) - target
        candidates = list(itertools.islice(iter(self._actors), excess + 256))
        for stream in candidates:
            if excess <= 0:
                break
            if self._actors[stream].is_idle:
                self._passivate(stream)
                excess -= 1

    def _passivate_idle(self) -> None:
        """At a housekeeping sweep: passivate the idle actors unused for `idle_seconds` or more.
        One used since sweep n was last unused for at least (sweeps - n - 1) intervals between
        sweeps, so this passivates an actor between `idle_seconds` and one interval more after
        its last use, as comparing times at each sweep did."""
        self._sweeps += 1
        interval = max(1.0, self.config.idle_seconds / 4)
        cutoff = self._sweeps - 1 - math.ceil(self.config.idle_seconds / interval)
        for stream in list(self._actors):
            actor = self._actors[stream]
            if actor.last_used > cutoff:
                break  # ordered by last use: the rest are fresher
            if actor.is_idle:
                self._passivate(stream)

    # -- commit pipeline ------------------------------------------------------------------

    def _on_committed(self, batch: list[Submission], last_seq: int) -> None:
        # What the batch touched, for the live queries to re-evaluate; with none open there is
        # nothing to collect (a subscription opened later starts from the committed state).
        touched: set[ReadKey] | None = set() if self.subscriptions.count else None
        self.work += 1
        models = self.read_models
        armed = self._timers.armed
        events = 0
        erasures: list[tuple[str, int]] = []
        limiters = self.limiters
        for submission in _with_companions(batch):
            actor = submission.actor
            if not actor.committed_version and submission.events:
                self._written.add(actor.stream)  # its first rows: readable from now on
            taken = submission.take
            if taken is not None and limiters.committed(taken):
                self._written.add(taken.stream)  # its first take: read from now on
            if submission.request is not None:
                session_id, request_id = submission.request
                self._recorded.add(session_id)  # its record: found from now on
                if self._request_marks.get(session_id, request_id) < request_id:
                    self._request_marks[session_id] = request_id
            if submission.state is not SUPERSEDED:  # (a later one in the batch has the state)
                actor.committed_state = submission.state
            actor.committed_version = submission.version
            actor.in_flight -= 1
            if submission.events:
                if touched is not None:
                    touched.add(("a", actor.stream))
                for event in submission.events:
                    models.apply(event, touched, armed)
                    if type(event) is FileDeleted:  # gone before anyone is answered
                        self.files.remove(event.stream.partition("/")[2])
                    if isinstance(event, Erasure):  # its seq: batches are numbered in order
                        erasures.append((event.stream, self.committed_seq + events + 1))
                    events += 1
        for stream, seq in erasures:
            self._erasures_running += 1
            self._erasures_idle = trio.Event()
            self._nursery.start_soon(self._erase_in_background, stream, seq)
        self.committed_seq = last_seq
        if touched:
            self.subscriptions.on_commit(touched, last_seq)
        self._seq_advanced.set()
        self._seq_advanced = trio.Event()
        for submission in batch:
            submission.reply.resolve(submission.value, submission.ts)
        for hook in self._after_answers:
            try:
                hook()
            except Exception:
                log.exception("a hook after a batch's answers failed")
        self._events_since_snapshot += events
        if self._written.wants_rebuild or self._recorded.wants_rebuild:
            self._rebuild_filters()
        if (
            self.config.snapshot_every
            and self._events_since_snapshot >= self.config.snapshot_every
            and not self._snapshot_lock.locked()
        ):
            self._nursery.start_soon(self._write_snapshot)

    def _on_failed(self, failed: list[Submission], error: BaseException) -> None:
        """The journal could not write a batch: all of it, and what was queued behind it."""
        self._refuse(
            failed,
            Overloaded(
                "The journal could not save this change, so nothing was changed; retry shortly.",
                reason=type(error).__name__,
                fault=storage_fault(error),
            ),
        )

    def _refuse(self, submissions: list[Submission], refusal: TurnstileError) -> None:
        """Nothing of `submissions` was written: their actors start again from their committed
        states, and each caller is answered with `refusal`."""
        self.stats["write_failures"] += 1
        for submission in _with_companions(submissions):
            submission.actor.reset_to_committed()
            if submission.take is not None:
                self.limiters.reset(submission.take.stream)
        for submission in submissions:
            submission.reply.fail(refusal)

    # -- timers ---------------------------------------------------------------------------

    def _fire_timer(self, stream: str, key: str) -> None:
        self._nursery.start_soon(self._run_timer, stream, key)

    async def _run_timer(self, stream: str, key: str) -> None:
        if self.scheduled.owns(stream):
            try:
                finished = await self.scheduled.fire(stream)
            except TurnstileError as exc:
                log.error("scheduled function %s could not run: %s", stream, exc)
                finished = True
            self._timers.done((stream, key), retry=not finished and not self._closing)
            return
        if self.scheduler.owns(stream):
            try:
                finished = await self.scheduler.tick(stream)
            except Overloaded:
                finished = False
            except TurnstileError as exc:
                log.error("job %s failed: %s", stream, exc)
                finished = True
            self._timers.done((stream, key), retry=not finished and not self._closing)
            return
        aggregate = self.registry.aggregate_of(stream)
        on_timer = aggregate.on_timer
        if on_timer is None:
            self._timers.done((stream, key), retry=False)
            return

        def handle(decision: Decision[Any], timer_key: str) -> None:
            on_timer(decision, timer_key)

        reply = Reply()
        retry = False
        try:
            self._offer(aggregate, stream, Command(handle, key, SYSTEM, reply))
            await reply.wait()
        except Overloaded:
            retry = not self._closing
        except TurnstileError as exc:
            log.error("timer %s on %s failed: %s", key, stream, exc)
        self._timers.done((stream, key), retry=retry)

    # -- snapshots ------------------------------------------------------------------------

    async def _write_snapshot(self, *, fresh: bool = False) -> SnapshotInfo | None:
        """Build a snapshot in a worker thread. A periodic one is skipped while another build
        runs; a `fresh` one (for an erasure) waits for it, then replaces every snapshot."""
        if self._snapshot_lock.locked() and not fresh:
            return None
        async with self._snapshot_lock:
            self._events_since_snapshot = 0
            try:
                info = await self.run_io(
                    lambda: build_snapshot(
                        self.data_dir, self.registry, keep=self.config.snapshots_kept, fresh=fresh
                    )
                )
                if info is not None:
                    opened = await self.run_io(lambda: Snapshot.open(info.path))
                    self._stale_kinds = frozenset()  # it was built with this build's versions
                    old, self._snapshot = self._snapshot, opened
                    if old is not None:
                        old.close()
                    self.stats["snapshots"] += 1
                    log.info("snapshot at seq %d in %.2fs", info.seq, info.seconds)
                return info
            except Exception:
                if fresh:
                    raise
                log.exception("snapshot failed; the journal still holds everything")
                return None

    # -- erasure --------------------------------------------------------------------------

    async def _erase(self, stream: str, seq: int) -> None:
        """Scrub the personal data of `stream`'s events up to `seq` from the journal, replace
        every snapshot by a fresh one, and record the erasure as done (engine/erasure.py)."""
        journal = self.journal
        async with self._erasure_lock:
            rewritten = await self.run_io(lambda: erasure.scrub_stream(journal, stream, seq + 1))
            await self._write_snapshot(fresh=True)
            now = self.now_ms()
            await self.run_io(lambda: erasure.mark_done(journal, stream, seq, now))
            self.stats["erasures"] += 1
            log.info("erased personal data of %s (%d journal rows rewritten)", stream, rewritten)

    async def _erase_in_background(self, stream: str, seq: int) -> None:
        try:
            await self._erase(stream, seq)
        except Exception:
            # Not lost: it is not recorded as done, so the next start does it again.
            log.exception("erasure of %s failed; it will be redone at the next start", stream)
        finally:
            self._erasures_running -= 1
            if not self._erasures_running:
                self._erasures_idle.set()

    async def wait_erasures(self) -> None:
        """Wait until every erasure committed so far is complete in the files."""
        while self._erasures_running:
            await self._erasures_idle.wait()

    async def _finish_erasures(self) -> None:
        """At start: complete every erasure in the journal not yet recorded as done."""
        journal = self.journal
        types = self._erasure_types
        for stream, seq in await self.run_io(lambda: erasure.pending(journal, types)):
            await self._erase(stream, seq)

    # -- lifecycle ------------------------------------------------------------------------

    async def _recover(self) -> None:
        started = time.perf_counter()
        journal_seq = self.journal.last_seq()

        def rebuild() -> tuple[Snapshot | None, ReadModels, int]:
            snapshot = newest_valid(snapshot_dir(self.data_dir), at_most_seq=journal_seq)
            self._stale_kinds = stale_kinds(snapshot, self.registry)
            if self._stale_kinds:
                log.info(
                    "aggregate states of %s in the snapshot are of another version: folding"
                    " them from their events",
                    sorted(self._stale_kinds),
                )
            models = ReadModels(self.registry.projections.values())
            folded = 0
            reader = self.journal.reader()  # this may run in a worker thread: a reader of its own
            try:
                if snapshot is not None:
                    missing = models.load(snapshot.read_models())
                    if missing:  # new or changed projections: fold them over its prefix
                        log.info("read models %s not in the snapshot: folding", sorted(missing))
                        folded += refold(
                            models,
                            missing,
                            reader.scan(until_seq=snapshot.seq, types=models.refold_types(missing)),
                        )
                for row in reader.scan(
                    after_seq=snapshot.seq if snapshot else 0,
                    until_seq=journal_seq,
                    types=models.interesting_types(),
                ):
                    verify(row)
                    models.apply(codec.decode_row(row))
                    folded += 1
            finally:
                reader.close()
            return snapshot, models, folded

        snapshot, models, folded = await self.run_io(rebuild)
        self._snapshot = snapshot
        self.read_models = models
        self._timers.rearm(models.timers)
        self.committed_seq = journal_seq
        self.recovery = RecoveryReport(
            snapshot_seq=snapshot.seq if snapshot else 0,
            journal_seq=journal_seq,
            events_folded=folded,
            seconds=time.perf_counter() - started,
        )
        log.info("recovered to seq %d (%s)", journal_seq, self.recovery)

    async def _build_filters(self) -> None:
        await self._build_filter(self._written, _list_streams)
        await self._build_filter(self._recorded, _list_sessions)

    async def _build_filter(
        self, target: JournalFilter, listing: Callable[[JournalReader], Iterable[str]]
    ) -> None:
        """Build one filter off the event loop from the journal's listing of `streams` or
        `sessions` (reads go to the journal until it is installed; engine/journal_filter.py)."""
        target.begin_build()
        journal = self.journal

        def build() -> Any:
            reader = journal.reader()
            try:
                keys = list(listing(reader))
            finally:
                reader.close()
            return build_filter(keys, len(keys))

        try:
            bloom = await self.run_io(build)
        except Exception:
            target.abandon_build()
            log.exception("could not list the journal's keys; reading the journal instead")
            return
        target.install(bloom)

    async def _index_journal(self) -> None:
        """Keep the journal's stream index caught up. The lock is held for each catch-up, so
        `_close` never closes the journal while a worker thread still works on it. An idle
        engine waits for the next commit instead of polling (in virtual time, a test that lets
        days pass would otherwise wake this task every `INDEX_SECONDS` of them)."""
        indexed = self.committed_seq
        while not self._closing:
            if self.committed_seq == indexed:
                await self._seq_advanced.wait()
                continue
            await trio.sleep(INDEX_SECONDS)
            target = self.committed_seq
            async with self._index_lock:  # (held for good by `_close` once it has it)
                try:
                    await self.run_io(self.journal.index_tail)
                except Exception:
                    log.exception("the journal's stream index could not catch up; retrying")
                    continue
            indexed = target

    async def _housekeeping(self) -> None:
        while True:
            await trio.sleep(max(1.0, self.config.idle_seconds / 4))  # (as `_passivate_idle`)
            self._passivate_idle()
            self._rebuild_filters()

    def _rebuild_filters(self) -> None:
        """Start a larger build of each filter past its capacity (engine/journal_filter.py);
        the build is begun here, so a second call before its task runs starts no other."""
        for target, listing in (
            (self._written, _list_streams),
            (self._recorded, _list_sessions),
        ):
            if target.wants_rebuild:
                target.begin_build()
                self._nursery.start_soon(self._build_filter, target, listing)

    async def _sweep_timers(self) -> None:
        while True:
            await trio.sleep(SWEEP_SECONDS)
            swept = self._timers.sweep()
            if swept:
                log.warning("timer sweep fired %d overdue timers", swept)

    async def _close(self) -> None:
        """Refuse new commands, let every decided one be committed (and answered), then close.
        Bounded: if the journal cannot take them within 30 s, they are refused."""
        self._closing = True
        self._actors.clear()
        with trio.CancelScope(shield=True), trio.move_on_after(30):
            await self._commit.drained()
        unsaved = self._commit.take_queued()
        if unsaved:
            self._refuse(unsaved, Overloaded("The server shut down before saving this change."))
        with trio.CancelScope(shield=True):
            await self._index_lock.acquire()  # a catch-up in a worker thread ends first
            if self._appender is not None:
                await self._appender.aclose()
        if self._snapshot is not None:
            self._snapshot.close()
        self.journal.close()


@asynccontextmanager
async def open_engine(
    data_dir: str | os.PathLike[str],
    *,
    modules: Iterable[Module] | None = None,
    clock: Clock | None = None,
    config: EngineConfig | None = None,
) -> AsyncIterator[Engine]:
    """Recover the engine of `data_dir` and run it for the duration of the block.

    Leaving the block answers every command already decided (after its commit) and closes the
    journal; commands offered after that are refused with `Overloaded`."""
    if modules is None:
        from domain.catalog import BOOKING

        modules = (BOOKING,)
    async with trio.open_nursery() as nursery:
        engine = Engine(
            Path(data_dir),
            modules=modules,
            clock=clock or Clock(),
            config=config or EngineConfig(),
            nursery=nursery,
        )
        try:
            await engine._recover()
            if engine._appender is not None:
                engine._appender.start()
            recorded = engine.stored_files()
            removed = await engine.run_io(lambda: engine.files.reconcile(recorded))
            if removed:
                log.warning("removed %d unrecorded stored files at start", len(removed))
            if _tuned:
                gc.freeze()  # what recovery built: no collection walks it (engine/collector.py)
                collector = Collector(trio.current_time())
                nursery.start_soon(collector.run, lambda: engine.work)
            nursery.start_soon(engine._build_filters)
            nursery.start_soon(engine._index_journal)
            nursery.start_soon(engine._commit.run)
            nursery.start_soon(engine._timers.run, engine._fire_timer)
            nursery.start_soon(engine._housekeeping)
            nursery.start_soon(engine._sweep_timers)
            await engine._finish_erasures()
            await engine.scheduler.start()
            yield engine
        finally:
            await engine._close()
            nursery.cancel_scope.cancel()


#: Set by `tune_gc`: engines opened afterwards run the collector of engine/collector.py.
_tuned = False


def tune_gc() -> None:
    """The garbage collector as a long-lived server wants it (call once, before opening the
    engine; `turnstile serve` does): automatic collection off, and each engine opened
    afterwards freezes what its recovery built and collects by the policy of
    engine/collector.py: nothing while it works (what a command, a query or a session leaves
    is freed by reference counting; no cycles), a sweep of what is new once it rests, and
    under a load that never rests one per 10,000 new objects (`LOAD_SWEEP_OBJECTS`)."""
    global _tuned
    gc.disable()
    _tuned = True
