"""One client's sync session: the server half of Convex's `BaseConvexClient`.

Plan (docs/engine.md, "Live queries" and "Fan-out to sync clients"):
- A *reader* task parses each client message in order. Query-set changes and authentication
  change the session's target version; mutations are handed to their actors synchronously
  (`Engine.begin_mutation`), so one client's mutations reach each actor in the order sent.
  No task awaits a mutation: its MutationResponse is queued by a callback of its outcome
  (`PendingMutation.add_done_callback`), which runs in the engine's commit processing after
  `committed_seq` covers the write, and marks the session urgent.
- Writing is the server's one fan-out loop (`engine/sync/fanout.py`): any change marks the
  session due, and the loop calls `flush()` (a session with answers: the engine's hook right
  after the batch that answered them, `Fanout.flush_urgent`), which builds the finished
  MutationResponses, then at most one Transition, from the session's current state without
  awaiting in between, so every result in it is at one journal position
  `ts = engine.committed_seq`, which is at or past every response just sent (read-your-writes:
  Convex's client resolves a mutation on the first Transition after its response that reaches
  its `ts`). The frames go to the connection's `Sender` (`engine/sync/sender.py`; the
  server's `Outbox`) without a wait.
- While the socket holds unsent bytes, `flush()` writes nothing more; the session's *keeper*
  task drains the socket and marks the session due again. Each query holds one pending result
  (the newest), so a client that reads slowly gets fewer, newer Transitions and the session's
  memory stays bounded; unchanged results are not re-sent.
- A Ping every 15 s keeps the client's inactivity timer quiet.
- A user token holds its identity until its `exp` plus `ServerConfig.token_leeway` (the clock
  skew its verification allows). Then, as Convex's server does, the session sends AuthError
  (`authUpdateAttempted: false`, `baseVersion` the session's identity version), and the identity
  is suspended: every query's subscription is dropped (a result computed for it and not yet
  sent is never sent), queries added meanwhile are held unevaluated, and mutations are held
  unbegun (they take their in-flight slots). The connection stays open. A new Authenticate
  restores the session: every query is evaluated again for the new identity, then the held
  mutations begin, in the order sent, as the new identity. Convex's client answers the
  AuthError by closing the connection, fetching a fresh token and reconnecting (it sends its
  unanswered mutations again); one already refreshing sends the new Authenticate here. The
  deadline is on trio's clock (one sleep, moved by each Authenticate; nothing wakes while none
  is due): `exp` is turned into it once, from the wall clock, when the token is verified.
- A page of a paginated list subscribed without `endCursor` is pinned at its first answer's
  `continueCursor`, sent as the query's journal; an `Add` with a journal is pinned there
  (`_pin`, domain/pagination.py): Convex's client relies on this to keep its pages gapless.

Limits (`SessionLimits`, numbers in `ServerConfig`): the client's Connect must arrive within the
handshake time; its messages are admitted by its connection's `Throttle` and by its signed-in
user's `IdentityAllowance` (reading pauses while either is spent); at most
`max_mutations_in_flight` mutations run at once (reading waits) and `max_queries_per_session`
queries are held; a signed-in user holds at most `max_sessions_per_identity` sessions; frames
that cannot be written within `send_timeout` mean the client is not reading, and the
connection is dropped. Going past a limit that is the
client's doing ends the session with FatalError (close 1008).

Layering: the session needs nothing of `engine.server`. The server hands it a `SessionHost`
(the engine, an authenticator, and optionally the shared fan-out loop and the session's
limits) and a `Sender` (`engine/sync/sender.py`): Protocols of this package, below the
server. Messages and values are `engine.wire`'s.

Versions: the session mirrors the client's `{querySet, ts, identity}`. Every Transition starts
at the version the last one ended at; `ModifyQuerySet.baseVersion` and
`Authenticate.baseVersion` must match the session's, or the session ends with FatalError.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import orjson
import trio
import trio_websocket

from domain.errors import Internal, TurnstileError, Unauthenticated
from domain.identity import ANONYMOUS, Identity
from domain.pagination import pinned_args
from engine import codec
from engine.actions import ActionRunner
from engine.engine import PendingMutation
from engine.subscriptions import Result, Subscription
from engine.sync.fanout import Fanout
from engine.sync.limits import SessionLimits
from engine.sync.sender import MessageOutbox, Sender
from engine.wire import values as convex_values
from engine.wire.protocol import (
    INITIAL_VERSION,
    ProtocolViolation,
    StateVersion,
    check_udf_path,
    encode_ts,
    fatal,
    parse,
    ping,
    protocol_int,
    single_args,
    version_wire,
)

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger("turnstile.sync")

PING_SECONDS = 15.0
#: Close code for a session ended by a limit.
POLICY_VIOLATION = 1008
#: Mutation responses a client may leave unread before the session is ended.
MAX_UNSENT_RESPONSES = 10_000
#: Distinct Transitions kept on one query result for other sessions to reuse.
MAX_SHARED_TRANSITIONS = 64


class Authenticates(Protocol):
    """Turns a client's credential into an `Identity` (the server's `Authenticator`)."""

    def admin(self, key: str) -> Identity:
        """The admin identity for the admin key; raises `Unauthenticated` otherwise."""

    async def authenticate(self, token: str) -> VerifiedToken:
        """The identity a valid user token grants, and its expiry (it may fetch an identity
        provider's keys, bounded); raises `Unauthenticated` otherwise."""


class VerifiedToken(Protocol):
    """A verified user token (the server's `SignedIn`)."""

    @property
    def identity(self) -> Identity: ...

    @property
    def expires_at(self) -> float:
        """Seconds since the epoch."""
        ...


class SyncSocket(Protocol):
    """What a session uses of its WebSocket connection (the server's `ServerWebSocket`, or a
    trio-websocket connection). A closed connection raises `trio_websocket.ConnectionClosed`."""

    @property
    def closed(self) -> trio_websocket.CloseReason | None:
        """Why the connection was or is being closed, else None."""

    async def get_message(self) -> str | bytes: ...

    async def send_message(self, message: str | bytes) -> None: ...

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None: ...


class SessionHost(Protocol):
    """What a session needs of the server that runs it (the server's `ServerContext`). A host
    may also carry `fanout` (the server's one writing loop) and `limits` (this session's
    `SessionLimits`); without them the session runs a loop of its own and the shipped limits."""

    @property
    def engine(self) -> Engine: ...

    @property
    def authenticator(self) -> Authenticates: ...


@attrs.define
class QuerySetEntry:
    """One query of the client's query set, by its `queryId`: what was asked, the engine
    subscription that answers it, and a failure not yet sent."""

    query_id: int
    udf_path: str
    args: Any
    sub: Subscription | None = None
    #: A failure found when the query was added (bad name or args), not yet sent.
    error: TurnstileError | None = None

    @property
    def journal(self) -> str | None:
        """Convex's query journal of this query: the `endCursor` of a page (domain.pagination),
        which is how the client keeps a page's range when it subscribes again."""
        opts = self.args.get("paginationOpts") if isinstance(self.args, dict) else None
        end = opts.get("endCursor") if isinstance(opts, dict) else None
        return end if isinstance(end, str) else None


@attrs.define
class QueuedResponse:
    """A MutationResponse or ActionResponse waiting for the next flush; `ts` is where the
    mutation committed (0 for a refusal)."""

    message: dict[str, Any]
    ts: int


class DropConnection(Exception):
    """End the connection without a closing handshake: the client is not reading (a close
    frame would wait behind everything it left unread) or never said Connect."""


class LimitReached(Exception):
    """The client went past one of its session's limits; the session ends with FatalError."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class SyncSession:
    def __init__(
        self,
        ws: SyncSocket,
        server: SessionHost,
        *,
        limits: SessionLimits | None = None,
        outbox: Sender | None = None,
    ) -> None:
        self.ws = ws
        self.server = server
        #: Where frames are written: the connection's `Outbox`, or its `send_message`.
        self.outbox: Sender = outbox if outbox is not None else MessageOutbox(ws)
        # The server's one fan-out loop; a stand-in server (tests) has none, and then the
        # session runs a loop of its own.
        shared: Fanout | None = getattr(server, "fanout", None)
        self._own_fanout = shared is None
        self.fanout: Fanout = shared if shared is not None else Fanout()
        self.engine = server.engine
        # The server hands each session a context carrying its limits; a stand-in server
        # (tests) may carry none, and then the shipped limits apply.
        self.limits = limits or getattr(server, "limits", None) or SessionLimits.defaults()
        self._in_flight = trio.Semaphore(self.limits.config.max_mutations_in_flight)
        #: Mutations begun and not yet answered (each holds an in-flight slot until then).
        self._unanswered = 0
        #: Set when the last unanswered mutation is answered, while an ended session waits.
        self._all_answered: trio.Event | None = None
        #: The `SessionSlots` key this session holds (a signed-in user's subject), if any.
        self.slot: str | None = None
        #: Why the connection is to be dropped rather than closed (see `DropConnection`).
        self.drop: str | None = None
        self.session_id: str | None = None
        self.identity: Identity = ANONYMOUS
        self.identity_version = 0
        self.query_set_version = 0
        #: The version the last Transition ended at.
        self._sent: StateVersion = INITIAL_VERSION
        self.queries: dict[int, QuerySetEntry] = {}
        self.removed: list[int] = []
        self.responses: list[QueuedResponse] = []
        self.ping_due = False
        self.closing: str | None = None
        #: Set when the session is over: nothing is flushed any more.
        self.over = False
        #: Wakes the keeper: unsent bytes to drain, or a session to end.
        self._attention = trio.Event()
        #: `trio.current_time()` at which the user token's identity ends (inf: never).
        self.identity_deadline = math.inf
        #: The identity's token has expired: nothing is evaluated or begun for it until a new
        #: Authenticate.
        self.expired = False
        #: Mutations that arrived while `expired`, to begin after the next Authenticate.
        self._held: list[dict[str, Any]] = []
        #: The action runner of a stand-in server that has none (tests).
        self._own_actions: ActionRunner | None = None
        #: Sleeps until `identity_deadline` (`_expiry`).
        self._expiry_scope = trio.CancelScope()

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until the client leaves or breaks the protocol. Raises `DropConnection` when
        the client stopped reading or never said Connect."""
        detach = self.engine.after_answers(self.fanout.flush_urgent) if self._own_fanout else None
        try:
            async with trio.open_nursery() as nursery:
                if self._own_fanout:
                    nursery.start_soon(self.fanout.run)
                nursery.start_soon(self._keeper)
                nursery.start_soon(self._pinger)
                nursery.start_soon(self._expiry)
                self._nursery = nursery
                try:
                    await self._reader()
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            if detach is not None:
                detach()
            self._release()
        if self._unanswered:
            # Mutations in flight outlive the connection (the engine goes on executing them;
            # their answers go nowhere), and the session waits for them for a while: the
            # engine knows each one's request id until it has an outcome, so a reconnected
            # client re-sending it is given this execution, whether or not anyone waits.
            self._all_answered = trio.Event()
            with trio.move_on_after(self.limits.config.mutation_grace):
                await self._all_answered.wait()
        if self.drop is not None:
            raise DropConnection(self.drop)

    def _release(self) -> None:
        """Give back what the connection held (its subscriptions and its user's slot) as soon
        as it is over; idempotent."""
        self.over = True
        self.fanout.forget(self)
        for query in self.queries.values():
            self._drop(query)
        if self.slot is not None:
            self.limits.slots.release(self.slot)
            self.slot = None

    def wake(self, *, urgent: bool = False) -> None:
        """Something is due to be sent: the fan-out loop will `flush()` this session."""
        if not self.over:
            self.fanout.mark(self, urgent=urgent)

    async def _fail(self, message: str, code: int = 1011) -> None:
        """End the session with FatalError (the client shows it and stops), after what was
        already written."""
        with trio.move_on_after(5):
            try:
                await self.outbox.drain()
                await self.ws.send_message(fatal(message))
                await self.ws.aclose(code=code, reason=message[:120])
            except (trio_websocket.ConnectionClosed, trio.BrokenResourceError):
                pass

    # -- reading --------------------------------------------------------------------------

    async def _reader(self) -> None:
        ws, limits = self.ws, self.limits
        throttle, identities = limits.throttle, limits.identities
        while True:
            try:
                if self.session_id is None:
                    with trio.move_on_at(limits.connect_by) as waiting:
                        data = await ws.get_message()
                    if waiting.cancelled_caught:
                        limits.reached("handshake")
                        self.drop = "no Connect arrived in time"
                        return
                else:
                    data = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            await throttle.admit(len(data))
            if identities is not None:
                await identities.admit(self.identity)
            try:
                message = parse(data)
                if self.session_id is None and message["type"] != "Connect":
                    raise ProtocolViolation("The first message must be Connect.")
                await self._handle(message)
            except ProtocolViolation as violation:
                log.info("session %s: protocol violation: %s", self.session_id, violation)
                await self._fail(str(violation))
                return
            except LimitReached as limit:
                log.info("session %s: %s", self.session_id, limit)
                self.limits.reached(limit.limit)
                await self._fail(str(limit), code=POLICY_VIOLATION)
                return
            if self.closing is not None:
                return

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "Connect":
            self.session_id = message["sessionId"]
        elif kind == "ModifyQuerySet":
            self._modify_query_set(message)
        elif kind == "Mutation":
            if self._in_flight.value:
                self._in_flight.acquire_nowait()  # (no checkpoint: the reader yields when
                # the socket has nothing more for it)
            else:
                await self._in_flight.acquire()  # past the limit, reading waits for one to end
            handed_over = False
            try:
                if self.expired:
                    single_args(message["args"])  # (refused now if malformed, as when begun)
                    self._held.append(message)  # keeps its slot until it is begun
                    handed_over = True
                else:
                    handed_over = self._mutation(message)
            finally:
                if not handed_over:
                    self._in_flight.release()
        elif kind == "Action":
            if self._in_flight.value:
                self._in_flight.acquire_nowait()
            else:
                await self._in_flight.acquire()
            handed_over = False
            try:
                if self.expired:
                    single_args(message["args"])
                    self._held.append(message)  # begun after the next Authenticate
                    handed_over = True
                else:
                    handed_over = self._action(message)
            finally:
                if not handed_over:
                    self._in_flight.release()
        elif kind == "Authenticate":
            await self._authenticate(message)
        # "Event" is client telemetry: nothing to do.

    def _modify_query_set(self, message: dict[str, Any]) -> None:
        if message["baseVersion"] != self.query_set_version:
            raise ProtocolViolation(
                f"ModifyQuerySet baseVersion {message['baseVersion']} does not match the"
                f" session's query set version {self.query_set_version}."
            )
        if message["newVersion"] <= message["baseVersion"]:
            raise ProtocolViolation("ModifyQuerySet newVersion must be above baseVersion.")
        for change in message["modifications"]:
            if not isinstance(change, dict) or not protocol_int(change.get("queryId")):
                raise ProtocolViolation("A query set modification needs a queryId (0..2**53-1).")
            query_id = change["queryId"]
            if change.get("type") == "Add":
                path, args = change.get("udfPath"), change.get("args")
                if not isinstance(path, str) or not isinstance(args, list):
                    raise ProtocolViolation("Add needs udfPath and args.")
                check_udf_path(path)
                if query_id in self.queries:
                    raise ProtocolViolation(f"Query {query_id} is already in the set.")
                if len(self.queries) >= self.limits.config.max_queries_per_session:
                    raise LimitReached(
                        "queries",
                        "Too many live queries in one session (at most"
                        f" {self.limits.config.max_queries_per_session}).",
                    )
                query = QuerySetEntry(query_id, path, single_args(args))
                # A page subscribed again keeps the range of its journal.
                query.args = pinned_args(query.args, change.get("journal")) or query.args
                self.queries[query_id] = query
                self._subscribe(query)
            elif change.get("type") == "Remove":
                found = self.queries.pop(query_id, None)
                if found is None:
                    raise ProtocolViolation(f"Query {query_id} is not in the set.")
                self._drop(found)
                self.removed.append(query_id)
            else:
                raise ProtocolViolation("A modification is Add or Remove.")
        self.query_set_version = message["newVersion"]
        self.wake()

    def _subscribe(self, query: QuerySetEntry) -> None:
        if self.expired:
            return  # evaluated for the next identity (`_authenticate`)
        try:
            spec = self.engine.registry.query(query.udf_path)
            raw = convex_values.json_to_convex(query.args)
            parsed = codec.decode_args(raw, spec.args_type)
        except TurnstileError as error:
            query.error = error
            return
        group = (spec.name, codec.dumps(query.args), self.identity)
        query.sub = Subscription(spec, parsed, self.identity, group, on_change=self.wake)
        self.engine.subscriptions.add(query.sub, self.engine.committed_seq)
        if isinstance(query.args, dict) and "paginationOpts" in query.args:
            self._pin(query)

    def _pin(self, query: QuerySetEntry) -> None:
        """Keep a page asked for without `endCursor` at the range of its first answer, as
        Convex's server does with its query journal (domain.pagination): the subscription is
        replaced by one ending at that answer's `continueCursor`, evaluated on the same
        committed state, so it answers the same page and keeps its range from then on. A
        first answer that is an error pins nothing (until the query is subscribed again)."""
        pending = query.sub.pending if query.sub is not None else None
        if pending is None or pending[1].error is not None:
            return
        value = pending[1].value
        end = value.get("continueCursor") if isinstance(value, dict) else None
        pinned = pinned_args(query.args, end)
        if pinned is None:
            return
        self._drop(query)
        query.args = pinned
        self._subscribe(query)

    def _drop(self, query: QuerySetEntry) -> None:
        if query.sub is not None:
            self.engine.subscriptions.remove(query.sub)
            query.sub = None

    def _mutation(self, message: dict[str, Any]) -> bool:
        """Begin a Mutation; True if it now holds its in-flight slot until `_answer` gives it
        back, False if it was refused before it began (answered here)."""
        request_id = message["requestId"]
        raw_args = single_args(message["args"])
        try:
            # The function first, then its args: an unknown name is NotFound whatever the args,
            # as over HTTP and for queries.
            self.engine.registry.mutation(message["udfPath"])
            args = convex_values.json_to_convex(raw_args)
            pending = self.engine.begin_mutation(
                message["udfPath"],
                args,
                self.identity,
                session_id=self.session_id,
                request_id=request_id,
            )
        except TurnstileError as error:
            self._respond_error("MutationResponse", request_id, error)
            return False
        self._unanswered += 1
        # Answered when its outcome is known (at once if it already is), with no task awaiting
        # it: responses are queued in the order outcomes become known, which for mutations of
        # one actor is the order they were begun.
        pending.add_done_callback(functools.partial(self._answer, request_id))
        return True

    def _answer(self, request_id: int, pending: PendingMutation) -> None:
        """Queue the MutationResponse of a finished mutation and give back its in-flight slot.
        Called once per mutation, on the event loop, inside the engine's commit processing (or
        at once from `_mutation`): it must not wait, and does no more than encode and queue.
        After the session is over the answer goes nowhere (nothing is flushed any more)."""
        self._in_flight.release()
        self._unanswered -= 1
        if not self._unanswered and self._all_answered is not None:
            self._all_answered.set()
        try:
            outcome = pending.result()
            result = convex_values.convex_to_json(outcome.value)
        except TurnstileError as error:
            self._respond_error("MutationResponse", request_id, error)
            return
        except Exception:
            # (a bug; an awaiting task would have ended the session: here the client is told)
            log.exception("session %s: answering mutation %s failed", self.session_id, request_id)
            failure = Internal("The server failed to answer this mutation.")
            self._respond_error("MutationResponse", request_id, failure)
            return
        message = {
            "type": "MutationResponse",
            "requestId": request_id,
            "success": True,
            "result": result,
            "ts": encode_ts(outcome.ts),
            "logLines": [],
        }
        self._queue_response(QueuedResponse(message, outcome.ts))

    def _action(self, message: dict[str, Any]) -> bool:
        """Begin an Action in a task of its own (it may run long); True if it now holds its
        in-flight slot until it is answered, False if it was refused at once."""
        request_id = message["requestId"]
        raw_args = single_args(message["args"])  # refused as a malformed Mutation is
        try:
            self.engine.registry.action(message["udfPath"])
            args = convex_values.json_to_convex(raw_args)
        except TurnstileError as error:
            self._respond_error("ActionResponse", request_id, error)
            return False
        self._unanswered += 1
        # In the server's nursery when there is one: an action outlives the session that
        # asked for it (its answer then goes nowhere), as in Convex, and ends with the server.
        nursery = self._actions().nursery or self._nursery
        nursery.start_soon(self._run_action, request_id, message["udfPath"], args, self.identity)
        return True

    async def _run_action(self, request_id: int, name: str, args: Any, identity: Identity) -> None:
        started = time.perf_counter()
        outcome = "Internal"
        try:
            ran = await self._actions().run(name, args, identity)
            outcome = "success"
            message = {
                "type": "ActionResponse",
                "requestId": request_id,
                "success": True,
                "result": ran.value,
                "logLines": list(ran.log_lines),
            }
            self._queue_response(QueuedResponse(message, 0))
        except TurnstileError as error:
            outcome = error.code
            self._respond_error("ActionResponse", request_id, error)
        finally:
            self._in_flight.release()
            self._unanswered -= 1
            if not self._unanswered and self._all_answered is not None:
                self._all_answered.set()
            metrics = getattr(self.server, "metrics", None)
            if metrics is not None:
                label = self.engine.registry.action(name).name
                metrics.observe_call(label, "action", "ws", outcome, time.perf_counter() - started)

    def _actions(self) -> ActionRunner:
        runner: ActionRunner | None = getattr(self.server, "actions", None)
        if runner is None:  # a stand-in server (tests) runs actions of its own
            if self._own_actions is None:
                self._own_actions = ActionRunner(self.engine)
            runner = self._own_actions
        return runner

    def _respond_error(self, kind: str, request_id: int, error: TurnstileError) -> None:
        message = {
            "type": kind,
            "requestId": request_id,
            "success": False,
            "result": error.message,
            "logLines": [],
            "errorData": error.data(),
        }
        self._queue_response(QueuedResponse(message, 0))

    def _queue_response(self, response: QueuedResponse) -> None:
        self.responses.append(response)
        if len(self.responses) > MAX_UNSENT_RESPONSES:
            self.closing = "The client is not reading its responses."
        # The client waits on this answer: write it before the fan-out of other changes.
        self.wake(urgent=True)

    async def _authenticate(self, message: dict[str, Any]) -> None:
        base = message["baseVersion"]
        if base != self.identity_version:
            raise ProtocolViolation(
                f"Authenticate baseVersion {base} does not match the session's identity"
                f" version {self.identity_version}."
            )
        token_type = message["tokenType"]
        value = message.get("value")
        expires_at = math.inf
        try:
            if token_type == "None":
                identity = ANONYMOUS
            elif token_type not in ("Admin", "User") or not isinstance(value, str):
                raise ProtocolViolation("Authenticate needs tokenType Admin, User or None.")
            elif token_type == "Admin":
                identity = self.server.authenticator.admin(value)
            else:
                signed_in = await self.server.authenticator.authenticate(value)
                identity, expires_at = signed_in.identity, signed_in.expires_at
        except Unauthenticated as failure:
            error = {
                "type": "AuthError",
                "error": str(failure),
                "baseVersion": base,
                "authUpdateAttempted": True,
            }
            with trio.move_on_after(5):
                try:
                    await self.outbox.drain()
                    await self.ws.send_message(orjson.dumps(error).decode())
                    await self.ws.aclose(code=1000, reason="AuthError")
                except (trio_websocket.ConnectionClosed, trio.BrokenResourceError):
                    pass
            self.closing = "AuthError"
            return
        self._hold_slot(identity)
        self.identity = identity
        self.identity_version = base + 1
        # `exp` is on the wall clock; the deadline on trio's, turned once, here.
        leeway = self.limits.config.token_leeway
        self._hold_until(trio.current_time() + (expires_at + leeway - time.time()))
        self.expired = False
        # Results depend on who asks: re-evaluate every query for the new identity.
        for query in self.queries.values():
            self._drop(query)
            query.error = None
            self._subscribe(query)
        held, self._held = self._held, []
        for message in held:
            begin = self._action if message["type"] == "Action" else self._mutation
            if not begin(message):
                self._in_flight.release()
        self.wake()

    def _hold_until(self, deadline: float) -> None:
        self.identity_deadline = deadline
        self._expiry_scope.deadline = deadline

    async def _expiry(self) -> None:
        """End the identity when its deadline passes; sleeps while none is due (the deadline
        is the sleep's, moved by `_hold_until`)."""
        while True:
            self._expiry_scope = trio.CancelScope(deadline=self.identity_deadline)
            with self._expiry_scope:
                await trio.sleep_forever()
            self._expire()

    def _expire(self) -> None:
        """The user token's time is up: tell the client with Convex's AuthError, and suspend
        the identity (see the module's docstring). Runs without a checkpoint, so no result of
        the identity is written after the AuthError."""
        self._hold_until(math.inf)
        if self.over:
            return
        log.info("session %s: the user token has expired", self.session_id)
        self.expired = True
        for query in self.queries.values():
            self._drop(query)
            query.error = None
        error = {
            "type": "AuthError",
            "error": "The token has expired.",
            "baseVersion": self.identity_version,
            "authUpdateAttempted": False,
        }
        self.outbox.write_texts([orjson.dumps(error)])
        self._attention.set()

    def _hold_slot(self, identity: Identity) -> None:
        """Count this session against its signed-in user's `max_sessions_per_identity`."""
        key = identity.subject if not identity.is_admin else None
        if key == self.slot:
            return
        if key is not None and not self.limits.slots.claim(key):
            raise LimitReached(
                "identity",
                "Too many open sessions for this user (at most"
                f" {self.limits.slots.per_key}); close one and retry.",
            )
        if self.slot is not None:
            self.limits.slots.release(self.slot)
        self.slot = key

    # -- writing --------------------------------------------------------------------------

    async def _pinger(self) -> None:
        while True:
            await trio.sleep(PING_SECONDS)
            self.ping_due = True
            self.wake()

    async def _keeper(self) -> None:
        """Drain what the socket did not take at once (then mark the session due again: its
        changes were held back meanwhile), and end the session when it is to end."""
        while True:
            await self._attention.wait()
            self._attention = trio.Event()
            if self.outbox.pending or self.outbox.broken:
                with trio.move_on_after(self.limits.config.send_timeout) as sending:
                    try:
                        await self.outbox.drain()
                    except trio.BrokenResourceError:
                        self._nursery.cancel_scope.cancel()
                        return
                if sending.cancelled_caught:
                    # The client's buffers stay full: it is not reading. What it missed is
                    # lost with the connection; a reconnect replays its query set.
                    self.drop = "the client read nothing in time"
                    self.limits.reached("send_timeout")
                    self._nursery.cancel_scope.cancel()
                    return
                self.wake()
            if self.closing is not None:
                await self._fail(self.closing)
                self._nursery.cancel_scope.cancel()
                return

    def flush(self) -> None:
        """Write everything due now, without waiting (called by the fan-out loop)."""
        if self.over or self.outbox.pending or self.outbox.broken or self.ws.closed is not None:
            return
        # The common case of a fan-out: one live query, nothing else due. At most its update
        # is sent, as the Transition other sessions at the same versions share (what `_frames`
        # would build, without its lists).
        queries = self.queries
        if (
            len(queries) == 1
            and not self.responses
            and not self.removed
            and not self.ping_due
            and self.closing is None
        ):
            sent = self._sent
            (query,) = queries.values()
            sub = query.sub
            if (
                sent[0] == self.query_set_version
                and sent[2] == self.identity_version
                and query.error is None
                and sub is not None
            ):
                update = sub.take()
                if update is None:
                    return  # nothing due (what `_frames` would find)
                target = (sent[0], self.engine.committed_seq, sent[2])
                result = update[1]
                frame = result.encodings.get((query.query_id, *sent, *target))
                if frame is None:
                    frame = self._one_update(query.query_id, result, target)
                self._sent = target
                outbox = self.outbox
                outbox.write_texts([frame])
                if outbox.pending or outbox.broken:
                    self._attention.set()
                return
        frames = self._frames()
        if frames:
            self.outbox.write_texts(frames)
        if self.outbox.pending or self.outbox.broken or self.closing is not None:
            self._attention.set()

    def abandon(self, reason: str) -> None:
        self.closing = reason
        self._attention.set()

    def _frames(self) -> list[bytes]:
        """Everything due now, computed without a checkpoint: one consistent cut."""
        frames: list[bytes] = []
        # Modifications in order: built ones, or (query id, result) for a QueryUpdated.
        entries: list[dict[str, Any] | tuple[int, Result]] = []
        if self.removed:  # (not replaced when empty: a list per flush would outlive the GC's
            # young generations, and each one kept makes a full collection come sooner)
            entries += ({"type": "QueryRemoved", "queryId": query_id} for query_id in self.removed)
            self.removed = []
        for query in self.queries.values():
            if query.error is not None:
                entries.append(_failed(query.query_id, query.error))
                query.error = None
            elif query.sub is not None:
                update = query.sub.take()
                if update is not None:
                    entries.append((query.query_id, update[1]))
        # Responses first: Convex's client resolves a completed mutation on the next Transition
        # that reaches its ts, so that Transition must follow the response.
        answered = bool(self.responses)
        if answered:
            for response in self.responses:
                frames.append(orjson.dumps(response.message))
            self.responses = []
        # `ts` moves only with results or answers. A Transition that merely acknowledges a new
        # identity or query set keeps the old `ts`: after a reconnect Convex's client resolves
        # a mutation completed on the old connection at the first Transition reaching its ts,
        # and its re-subscribed queries (sent just after Authenticate) must be in that one.
        moves = bool(entries) or answered
        sent = self._sent
        target = (
            self.query_set_version,
            self.engine.committed_seq if moves else sent[1],
            self.identity_version,
        )
        if moves or target[0] != sent[0] or target[2] != sent[2]:
            if len(entries) == 1 and isinstance(entries[0], tuple):
                frames.append(self._one_update(*entries[0], target))
            else:
                frames.append(self._transition(entries, target))
            self._sent = target
        if self.ping_due:
            self.ping_due = False
            if not frames:
                frames.append(ping())
        return frames

    def _transition(
        self, entries: list[dict[str, Any] | tuple[int, Result]], target: StateVersion
    ) -> bytes:
        modifications = [
            entry
            if isinstance(entry, dict)
            else _updated(*entry, convex_values.convex_to_json, self._journal(entry[0]))
            for entry in entries
        ]
        transition = {
            "type": "Transition",
            "startVersion": version_wire(self._sent),
            "endVersion": version_wire(target),
            "modifications": modifications,
        }
        return orjson.dumps(transition)

    def _journal(self, query_id: int) -> str | None:
        query = self.queries.get(query_id)
        return None if query is None else query.journal

    def _one_update(self, query_id: int, result: Result, target: StateVersion) -> bytes:
        """A Transition carrying one QueryUpdated: the common case of a fan-out. Sessions at
        the same versions with the same query id get the same bytes, so they are built once
        per result and kept on it."""
        key = (query_id, *self._sent, *target)
        frame = result.encodings.get(key)
        if frame is None:
            frame = self._transition([(query_id, result)], target)
            if len(result.encodings) < MAX_SHARED_TRANSITIONS:
                result.encodings[key] = frame
        return frame


def _updated(
    query_id: int, result: Result, encode: Any, journal: str | None = None
) -> dict[str, Any]:
    """A QueryUpdated (or QueryFailed) of `result`. `journal` is a function of the query's
    args (a page's `endCursor`), so the frame can be shared by every session holding the
    same result (`_one_update`)."""
    if result.error is not None:
        return _failed(query_id, result.error)
    try:
        value = result.wire(encode)
    except TurnstileError as error:
        # A stored value the wire cannot carry fails this query, not the whole session (and
        # not every other session subscribed to it).
        log.error("a result of query %s cannot be sent: %s", query_id, error.message)
        return _failed(query_id, error)
    return {
        "type": "QueryUpdated",
        "queryId": query_id,
        "value": value,
        "logLines": [],
        "journal": journal,
    }


def _failed(query_id: int, error: TurnstileError) -> dict[str, Any]:
    return {
        "type": "QueryFailed",
        "queryId": query_id,
        "errorMessage": error.message,
        "logLines": [],
        "errorData": error.data(),
        "journal": None,
    }


async def run_sync_session(
    ws: SyncSocket,
    server: SessionHost,
    *,
    limits: SessionLimits | None = None,
    outbox: Sender | None = None,
) -> None:
    """Serve one WebSocket connection until it closes (the server's entry point). Without
    `limits`, the shipped `ServerConfig` limits apply with a throttle of its own; without
    `outbox` (the `Outbox` under `ws`), frames go through `ws.send_message`. Raises
    `DropConnection` when the connection is to be dropped without a closing handshake."""
    await SyncSession(ws, server, limits=limits, outbox=outbox).run()


__all__ = [
    "Authenticates",
    "DropConnection",
    "LimitReached",
    "SessionHost",
    "SyncSession",
    "SyncSocket",
    "run_sync_session",
]
