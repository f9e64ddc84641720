"""A simulated user's connection: the project's own sync client (`engine.client`),
instrumented to stamp what the load test measures.

`MeasuredClient` is `engine.client.Client` unchanged on the wire: it reconnects and re-sends
by itself exactly as an app's client does. It adds, without changing behaviour:

- `call(name, args)`: `mutation()` timed from just before it is sent to the moment it resolves
  (the server committed it *and* this connection applied a Transition reaching its `ts`, the
  moment a Convex app's `await mutation(...)` returns); the round trip or the error code goes to
  the run's `Recorder` (and, when the recorder keeps that log, the mutation with its
  `(session, request)` and outcome as a `Sent`), and the reply carries when its
  MutationResponse was read and its `ts`;
- `watch(topic, name, args)`: every QueryUpdated for that live query is stamped (read time and
  the Transition's journal position) into a `Watch`.

It overrides the client's two message handlers (`_transition`, `_mutation_response`) and reads
its request counter and session id; the load test's own test runs it end to end, so a change
there shows.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import orjson
import trio

from engine.client import Client, FunctionError
from engine.wire.protocol import decode_ts
from tools.loadtest.recorder import Recorder, Sent, Watch, now


@attrs.frozen(kw_only=True)
class Reply:
    """A mutation's result, when it was sent, when its MutationResponse was read, and its
    commit position (None only if the response was never seen, which the protocol does not
    allow)."""

    value: Any
    sent_at: float
    acked_at: float | None
    ts: int | None


def _query_key(name: str, args: dict[str, Any]) -> tuple[str, bytes]:
    return name, orjson.dumps(args, option=orjson.OPT_SORT_KEYS)


class MeasuredClient(Client):
    """Use through `open_measured_client`. Safe to use from many tasks at once."""

    def __init__(
        self,
        url: str,
        recorder: Recorder,
        *,
        token: str | None,
        admin_key: str | None,
        measured: bool = True,
    ) -> None:
        super().__init__(url, token=token, admin_key=admin_key)
        self.recorder = recorder
        #: A simulated user's connection; the harness's own (measured=False) adds no updates.
        self.measured = measured
        self.connection = recorder.new_connection()
        self._watches: dict[tuple[str, bytes], Watch] = {}
        self._acks: dict[int, tuple[float, int]] = {}

    async def call(self, name: str, args: dict[str, Any]) -> Reply:
        """Run mutation `name`, recording its round trip, or its error code and re-raising the
        `FunctionError`; one cut short by cancellation counts as unfinished."""
        # Client.mutation takes this request id before its first checkpoint.
        request_id = self._next_request
        sent = now()
        log = functools.partial(
            Sent, function=name, args=args, session_id=self._session_id, request_id=request_id
        )
        try:
            value = await self.mutation(name, args)
        except FunctionError as error:
            self.recorder.failed(name, error.code, str(error))
            self.recorder.log_sent(log(outcome="refused", code=error.code))
            raise
        except trio.Cancelled:
            self.recorder.mutation_unfinished(name)
            self.recorder.log_sent(log(outcome="unfinished"))
            raise
        finally:
            ack = self._acks.pop(request_id, None)
        resolved = now()
        self.recorder.mutation_succeeded(name, sent, resolved)
        self.recorder.log_sent(
            log(outcome="acknowledged", value=value, ts=None if ack is None else ack[1])
        )
        if ack is None:
            return Reply(value=value, sent_at=sent, acked_at=None, ts=None)
        return Reply(value=value, sent_at=sent, acked_at=ack[0], ts=ack[1])

    def watch(
        self,
        topic: str,
        name: str,
        args: dict[str, Any],
        inspect: Callable[[Any], None] | None = None,
        *,
        measured: bool = True,
    ) -> Watch:
        """Stamp every value of live query `name(args)` (subscribe to it with `subscribe`)."""
        watch = self.recorder.watch(topic, self.connection, inspect, measured=measured)
        self._watches[_query_key(name, args)] = watch
        return watch

    @asynccontextmanager
    async def watching(
        self,
        topic: str,
        name: str,
        args: dict[str, Any],
        inspect: Callable[[Any], None] | None = None,
        *,
        measured: bool = True,
    ) -> AsyncIterator[Watch]:
        """Subscribe to `name(args)` for the block, stamping its values into the `Watch`."""
        watch = self.watch(topic, name, args, inspect, measured=measured)
        async with self.subscribe(name, args):
            yield watch

    def _transition(self, message: dict[str, Any]) -> None:
        arrived = now()
        super()._transition(message)
        updated = 0
        for change in message["modifications"]:
            if change["type"] != "QueryUpdated":
                continue
            updated += 1
            query = self._queries.get(change["queryId"])
            if query is None:
                continue
            watch = self._watches.get(_query_key(query.name, query.args))
            if watch is not None:
                watch.observe(arrived, self._ts, query.value)
        if self.measured:
            self.recorder.updated(updated)

    def _mutation_response(self, message: dict[str, Any]) -> None:
        if message.get("success") and message.get("requestId") in self._mutations:
            self._acks[message["requestId"]] = (now(), decode_ts(message["ts"]))
        super()._mutation_response(message)


def leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    """The exceptions in `group` and its nested groups (nurseries nest them), in order."""
    found: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(leaves(error))
        else:
            found.append(error)
    return found


@asynccontextmanager
async def open_measured_client(
    url: str,
    recorder: Recorder,
    *,
    token: str | None = None,
    admin_key: str | None = None,
    connect_timeout: float = 10.0,
    measured: bool = True,
) -> AsyncIterator[MeasuredClient]:
    """A connected `MeasuredClient` for the block (as `engine.client.open_client`).

    Raises `trio.TooSlowError` if the first connection is not made within `connect_timeout`;
    a refused credential surfaces as a `FunctionError` with code `Unauthenticated`.
    """
    client = MeasuredClient(url, recorder, token=token, admin_key=admin_key, measured=measured)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(connect_timeout):
            await nursery.start(client._run)
        recorder.open_connections += measured
        try:
            yield client
        finally:
            recorder.open_connections -= measured
            recorder.reconnects += client.reconnects
            nursery.cancel_scope.cancel()


__all__ = ["MeasuredClient", "Reply", "leaves", "open_measured_client"]
