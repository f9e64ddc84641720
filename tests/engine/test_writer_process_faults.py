"""An engine whose journal writer process is killed while commands are in flight: nothing it
acknowledged is lost, nothing it refused was written, and writing goes on with a new writer
without a restart. The kill comes after a number of acknowledgements, not after a delay.

And the group commit over a real writer process: of two batches in flight that write no event
(only idempotency records), the first refused by the journal, the second is refused with it and
not written (had it been, the group commit would end the engine), and writing goes on."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, cast

import trio

from domain.errors import Overloaded
from domain.identity import ADMIN, Identity
from domain.ticketing.aggregate import EVENT_QUEUE
from engine import EngineConfig, open_engine
from engine.actor import Actor, Reply, Submission
from engine.group_commit import GroupCommit
from engine.journal import Batch, RequestRecord
from engine.journal.sqlite import SqliteJournal
from engine.journal.writer_process import AppendProcess
from lab.bench import event_args

JOIN = "events:joinWaitingList"
TASKS = 16
KILL_AFTER = (60, 180)
ACKS = 300


async def test_killing_the_writer_process_loses_nothing_acknowledged_and_writes_nothing_refused(
    tmp_path: Path,
) -> None:
    config = EngineConfig(snapshot_every=0, run_jobs=False)
    acknowledged: dict[str, str] = {}  # user -> event
    refused: dict[str, str] = {}
    reasons: set[str] = set()
    pids: list[int] = []
    async with open_engine(tmp_path, config=config) as engine:
        appender = engine._appender
        assert appender is not None
        events = [
            (await engine.mutation("events:create", event_args(i, 1_000), ADMIN)).value
            for i in range(4)
        ]
        done = trio.Event()

        async def client(index: int) -> None:
            n = 0
            while not done.is_set():
                user, event = f"u{index}x{n}", events[n % len(events)]
                n += 1
                try:
                    await engine.mutation(
                        JOIN, {"eventId": event, "userId": user}, Identity(subject=user)
                    )
                except Overloaded as refusal:
                    refused[user] = event
                    reasons.add(str(refusal.details.get("reason")))
                    continue
                acknowledged[user] = event
                if len(acknowledged) in KILL_AFTER and appender.pid not in pids:
                    pid = appender.pid
                    assert pid is not None
                    pids.append(pid)
                    os.kill(pid, signal.SIGKILL)
                if len(acknowledged) >= ACKS:
                    done.set()

        async with trio.open_nursery() as nursery:
            for index in range(TASKS):
                nursery.start_soon(client, index)
        assert appender.started == 1 + len(KILL_AFTER)  # a new writer after each kill
    assert len(pids) == len(KILL_AFTER)
    assert reasons <= {"AppendFailed"}
    async with open_engine(tmp_path, config=config) as engine:
        joined: set[tuple[str, str]] = set()
        for event in events:
            state = engine.committed_state(EVENT_QUEUE, event)
            joined |= {(entry.user_id, event) for entry in state.entries.values()}
    lost = [user for user, event in acknowledged.items() if (user, event) not in joined]
    phantoms = [user for user, event in refused.items() if (user, event) in joined]
    assert lost == [] and phantoms == []
    assert len(acknowledged) >= ACKS


def recorded(request_id: int) -> Submission:
    """A command that wrote no event, with its idempotency record (session "s")."""
    return Submission(
        actor=cast(Actor, object()),
        events=(),
        state=None,
        version=0,
        value=None,
        reply=Reply(),
        request=("s", request_id),
        decided_at=0,
    )


async def no_io(work: Any) -> None:
    raise AssertionError("a writer process's commit does not use run_io")


async def test_a_batch_of_records_only_failing_refuses_the_one_in_flight_behind_it_unwritten(
    tmp_path: Path,
) -> None:
    journal = SqliteJournal.open(tmp_path)
    journal.append(Batch(rows=[], requests=[RequestRecord("s", 1, b"null", 0, 0)]))
    appender = AppendProcess(journal, "FULL")
    committed: list[Submission] = []
    failed: list[Submission] = []
    commit = GroupCommit(
        journal,
        run_io=no_io,
        on_committed=lambda batch, _: committed.extend(batch),
        on_failed=lambda batch, _: failed.extend(batch),
        threaded=True,
        appender=appender,
        min_cut=1,
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(commit.run)
            again, behind = recorded(1), recorded(2)  # 1 is recorded already
            commit.submit(again)  # a batch of its own, and the next one in flight behind it
            commit.submit(behind)
            await commit.drained()
            assert failed == [again, behind] and committed == []
            last = recorded(2)
            commit.submit(last)
            await commit.drained()
            assert committed == [last]
            nursery.cancel_scope.cancel()
        record = journal.lookup_request("s", 2)
        assert record is not None and journal.last_request_rid() == 2
    finally:
        await appender.aclose()
        journal.close()
