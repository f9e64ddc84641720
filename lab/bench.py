"""The engine benchmark: `python -m lab.bench [--quick] [--write-doc]` (`./dev bench` runs it).

Every figure comes from one run on this machine, and every throughput claim is a ratio against a
baseline measured in the same run (raw sqlite3 `executemany` of the journal's own rows). Each case
runs in its own subprocess, so one case's heap, GC state and page cache do not leak into the next,
and the peak RSS of a case is that subprocess's `ru_maxrss`.

Cases (see docs/benchmarks.md for what each one means):

- `baseline`   raw sqlite3: rows like the engine's, 1,000 per transaction, WAL, synchronous=FULL
               (run three times, spread over the run; ratios use the median);
- `floor`      the floor of the design, bare trio: 64 client tasks each handing requests to one
               server task and parking for its answer (round trips/s, loop CPU per round trip),
               and one hop (an Event set, its waiter resuming) per second;
- `many`       1. durable `events:joinWaitingList` commands/s spread over 1,000 events, many
               concurrent clients, and 3. their call-to-durable-ack latency under that load;
- `light`      latency of the same command with 1 and 64 clients (the unloaded floor);
- `hot`        2. commands/s on one hot event, 10,000 users joining (100 seats, most wait);
- `websocket`  lab.ws_bench's mutations/s over WebSocket (100 clients of the bundled client) and
               in-process, in the same run, and their ratio;
- `recovery`   4. recovery of a 1,000,000-event journal without and with a snapshot, plus the
               time to activate (lazily load) one hot stream and ordinary streams;
- `memory`     5. peak RSS with 100,000 events touched (created + one join each).

Cases 1 and 2 are also given as a ratio of the bare trio round trip, and every garbage
collection during their windows is timed per generation (`gc.callbacks`).

Nothing here asserts on time: it measures and prints. `--quick` runs small sizes (a smoke test,
well under a minute); the full run takes a few minutes. `--cprofile DIR` also writes a cProfile of
the event-loop thread for the `many` and `hot` cases (`DIR/<case>.prof`, and a text summary).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from lab.figures import (
    BENCHMARKS_DOC,
    machine,
    peak_rss_mib,
    percentile,
    process_cpu,
    run_lines,
    server_cpu,
    write_section,
    writer_pid,
)

REPO = Path(__file__).resolve().parent.parent
DOC = BENCHMARKS_DOC
TITLE = "# Engine benchmark"

AIM_MANY = 50_000
AIM_HOT = 20_000
AIM_RECOVERY = 300_000
AIM_GC_PAUSE_MS = 50.0  # no full (generation 2) collection pausing longer
AIM_WS_RATIO = 0.5  # WebSocket mutations/s over in-process, same run

JOIN = "events:joinWaitingList"
CREATE = "events:create"


@attrs.frozen(kw_only=True)
class Sizes:
    baseline_batches: int  # of 1,000 rows
    many_events: int
    many_clients: int
    many_warmup_s: float
    many_seconds: float
    light_clients: tuple[int, ...]
    light_seconds: float
    hot_users: int
    hot_clients: int
    hot_rounds: int
    hot_tickets: int
    rec_streams: int  # ordinary events (10 seats) with rec_joins joins each
    rec_joins: int
    rec_hot_joins: int  # plus one hot event (100 seats) with this many joins
    rec_sample_streams: int
    mem_events: int
    mem_clients: int
    floor_clients: int
    floor_round_trips: int  # per client
    floor_hop_rounds: int  # per pair of tasks (two hops a round)
    ws_warmup_s: float
    ws_seconds: float


FULL = Sizes(
    baseline_batches=300,
    many_events=1_000,
    many_clients=2_000,
    many_warmup_s=2.0,
    many_seconds=12.0,
    light_clients=(1, 64),
    light_seconds=3.0,
    hot_users=10_000,
    hot_clients=2_000,
    hot_rounds=5,
    hot_tickets=100,
    rec_streams=9_704,  # x 101 rows, + 19,899 of the hot event = 1,000,003 journal rows
    rec_joins=45,
    rec_hot_joins=9_899,  # the hot event's stream: 10,000 events
    rec_sample_streams=200,
    mem_events=100_000,
    mem_clients=2_000,
    floor_clients=64,
    floor_round_trips=3_000,
    floor_hop_rounds=3_000,
    ws_warmup_s=1.0,
    ws_seconds=3.0,
)

QUICK = Sizes(
    baseline_batches=30,
    many_events=100,
    many_clients=200,
    many_warmup_s=0.5,
    many_seconds=2.0,
    light_clients=(1, 64),
    light_seconds=0.7,
    hot_users=2_000,
    hot_clients=500,
    hot_rounds=1,
    hot_tickets=100,
    rec_streams=480,
    rec_joins=45,
    rec_hot_joins=899,
    rec_sample_streams=20,
    mem_events=5_000,
    mem_clients=500,
    floor_clients=64,
    floor_round_trips=500,
    floor_hop_rounds=500,
    ws_warmup_s=0.5,
    ws_seconds=1.5,
)

#: The order the parent runs the cases in: the baseline is measured next to the throughput cases.
PLAN = (
    ("baseline", "baseline"),
    ("baseline-no-index", "baseline-no-index"),
    ("floor", "floor"),
    ("many", "many"),
    ("baseline", "baseline"),
    ("hot", "hot"),
    ("baseline", "baseline"),
    ("light", "light"),
    ("websocket", "websocket"),
    ("recovery", "recovery"),
    ("memory", "memory"),
)


# -- small helpers ----------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def maxrss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


@contextmanager
def temp_data_dir(tag: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"turnstile-bench-{tag}-", dir="/tmp"))
    try:
        yield path / "data"
    finally:
        shutil.rmtree(path, ignore_errors=True)


def event_args(i: int, total_tickets: int) -> dict[str, Any]:
    return {
        "name": f"Benchmark concert #{i}",
        "description": "An evening of loud music, benchmarked. Doors open an hour before.",
        "location": "Hall 3, 12 Example Street, Springfield",
        "eventDate": 1_800_000_000_000 + i * 86_400_000,
        "price": 4_500,
        "totalTickets": total_tickets,
        "orgId": "org1",
    }


async def create_events(engine: Any, count: int, total_tickets: int, clients: int) -> list[str]:
    import trio

    from domain.identity import ADMIN

    ids: list[str] = [""] * count
    next_index = iter(range(count))

    async def creator() -> None:
        for i in next_index:
            outcome = await engine.mutation(CREATE, event_args(i, total_tickets), ADMIN)
            ids[i] = outcome.value

    async with trio.open_nursery() as nursery:
        for _ in range(min(clients, count)):
            nursery.start_soon(creator)
    return ids


def commit_stats(engine: Any) -> tuple[int, int]:
    return engine._commit.batches, engine._commit.rows_written


def write_seconds(engine: Any) -> float:
    """Wall time the group commit has spent in committed appends (the writer's busy time)."""
    return float(engine._commit.write_seconds)


def config_line(engine: Any) -> str:
    c = engine.config
    return (
        f"synchronous={c.synchronous}, offload_io={c.offload_io}, max_batch={c.max_batch}, "
        f"snapshot_every={c.snapshot_every}, automatic gc={'on' if gc.isenabled() else 'off'}"
    )


# -- case 6: the baseline -------------------------------------------------------------------


class Synth:
    """Real domain events of a join workload, shaped as the engine journaled them before its
    rate-limit takes were records of their own (the baseline's rows stay those, so that ratios
    compare across commits): every join is `RateLimitTaken` on the user's limiter stream
    (written first, same transaction), `WaitingListJoined`, and `OfferMade` while the event has
    free seats; versions consistent per stream; payloads from the engine's codec."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seq = 0
        self.limiter_versions: dict[str, int] = {}

    def row(self, event: Any) -> Any:
        from engine.group_commit import row_of

        self.seq += 1
        row = row_of(self.seq, event)
        # A copy: each retained orjson.dumps result pins ~4 KiB of heap (measured here: 100,000
        # small results kept = 390 MiB RSS; copies = 12 MiB), and the baseline keeps 300k rows.
        return row._replace(payload=bytes(memoryview(row.payload)))

    def create(self, index: int, event_id: str, tickets: int) -> SynthEvent:
        return SynthEvent(index, event_id, tickets)

    def created(self, ev: SynthEvent) -> list[Any]:
        from domain.ticketing.events import EventCreated

        args = event_args(ev.index, ev.tickets)
        ev.version = 1
        return [
            EventCreated(
                stream=ev.stream,
                version=1,
                at=self.at,
                name=args["name"],
                description=args["description"],
                location=args["location"],
                event_date=args["eventDate"],
                price=args["price"],
                total_tickets=ev.tickets,
                org_id="org1",
                location_id=None,
                user_id=None,
                average_service_minutes=5,
            )
        ]

    def join(self, ev: SynthEvent, user: str) -> list[Any]:
        from domain.ids import child_id
        from domain.ratelimit import RATE_LIMITER, RateLimitTaken, limiter_id
        from domain.ticketing.events import OfferMade, WaitingListJoined
        from domain.ticketing.module import QUEUE_JOIN_LIMIT
        from domain.ticketing.state import OFFER_DURATION_MS

        limiter = RATE_LIMITER.stream_of(limiter_id(QUEUE_JOIN_LIMIT.name, user))
        taken = self.limiter_versions.get(limiter, 0) + 1
        self.limiter_versions[limiter] = taken
        n = ev.joins
        ev.joins += 1
        wid = child_id("wl", ev.event_id, n)
        ev.version += 1
        out: list[Any] = [
            RateLimitTaken(
                stream=limiter,
                version=taken,
                at=self.at,
                window_start=self.at,
                count=taken,
                milli_tokens=0,
            )
        ]
        out.append(
            WaitingListJoined(
                stream=ev.stream,
                version=ev.version,
                at=self.at,
                waiting_list_id=wid,
                user_id=user,
                number=n,
            )
        )
        if n < ev.tickets:
            ev.version += 1
            out.append(
                OfferMade(
                    stream=ev.stream,
                    version=ev.version,
                    at=self.at,
                    waiting_list_id=wid,
                    user_id=user,
                    offer_expires_at=self.at + OFFER_DURATION_MS,
                )
            )
        return out


class SynthEvent:
    def __init__(self, index: int, event_id: str, tickets: int) -> None:
        self.index = index
        self.event_id = event_id
        self.stream = f"event/{event_id}"
        self.tickets = tickets
        self.version = 0
        self.joins = 0


def new_event_id(rng: random.Random) -> str:
    return f"ev_{rng.getrandbits(80):020x}"[:19]


def realistic_rows(count: int, streams: int, tickets: int, seed: int) -> list[Any]:
    """`count` journal rows of the join workload of case 1: joins of fresh users on random events
    among `streams` (created before, not included), `tickets` seats each."""
    rng = random.Random(seed)
    synth = Synth(int(time.time() * 1000))
    events = [synth.create(i, new_event_id(rng), tickets) for i in range(streams)]
    for ev in events:
        synth.created(ev)  # versions only: these rows are not part of the baseline
    synth.seq = streams
    rows: list[Any] = []
    while len(rows) < count:
        ev = events[rng.randrange(streams)]
        joined = synth.join(ev, f"u{len(rows)}")
        rows.extend(synth.row(e) for e in joined)
    return rows[:count]


#: The unique index of journal format 1 (the baseline's schema; format 2 has none on `events`).
FORMAT_1_INDEX = "idx_events_stream_version"


def case_baseline(sizes: Sizes, *, stream_index: bool = True) -> dict[str, Any]:
    """Raw sqlite3 inserts of case-1-shaped rows into the journal's tables as format 1 had them
    (with the unique (stream, version) index); `stream_index=False` leaves that index out: the
    shape format 2 appends to."""
    from engine.journal.sqlite import create_schema

    batch = 1_000
    warm = 3
    rows = realistic_rows((sizes.baseline_batches + warm) * batch, 1_000, 100, seed=6)
    row_bytes = statistics.fmean(len(r[1]) + len(r[3]) + len(r[5]) + 8 * 5 for r in rows[:10_000])
    payload_bytes = statistics.fmean(len(r[5]) for r in rows[:10_000])
    times: list[float] = []
    with temp_data_dir("baseline") as data_dir:
        data_dir.mkdir(parents=True)
        conn = sqlite3.connect(data_dir / "journal.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        create_schema(conn)
        if stream_index:
            # The baseline stays the journal's schema as it was (format 1), whatever the
            # journal becomes, so that ratios compare across commits: its unique index.
            conn.execute(f"CREATE UNIQUE INDEX {FORMAT_1_INDEX} ON events (stream, version)")
        sql = (
            "INSERT INTO events (seq, stream, version, type, schema, payload, at, crc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        for b in range(warm + sizes.baseline_batches):
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows[b * batch : (b + 1) * batch])
            conn.execute("COMMIT")
            times.append(time.perf_counter() - t0)
        conn.close()
    times = times[warm:]
    elapsed = sum(times)
    tenth = max(1, len(times) // 10)
    inserted = sizes.baseline_batches * batch
    return {
        "rows": inserted,
        "seconds": elapsed,
        "rows_per_s": inserted / elapsed,
        "first_tenth_rows_per_s": tenth * batch / sum(times[:tenth]),
        "last_tenth_rows_per_s": tenth * batch / sum(times[-tenth:]),
        "row_bytes": row_bytes,
        "payload_bytes": payload_bytes,
        "stream_index": stream_index,
    }


# -- the floor: bare trio hand-offs -----------------------------------------------------------


async def trio_round_trips(clients: int, per_client: int) -> dict[str, Any]:
    """The floor of the engine's design: `clients` tasks each hand `per_client` requests, one at
    a time, to one server task through a memory channel and park until it answers
    (`trio.lowlevel.reschedule`, as a mutation's caller parks on its reply): task A -> task B ->
    task A, closed loop, nothing else. The counts come back for checking: `round_trips`
    (answers the clients took), `served` (requests the server took) and `wrong` (answers that
    were not the server's reply to that request)."""
    import trio

    send, receive = trio.open_memory_channel[tuple[int, Any, list[int]]](clients)
    total = clients * per_client
    counts = {"round_trips": 0, "served": 0, "wrong": 0}
    reschedule = trio.lowlevel.reschedule

    def cannot_abort(_: Any) -> trio.lowlevel.Abort:
        return trio.lowlevel.Abort.FAILED

    async def server() -> None:
        served = 0
        for _ in range(total):
            n, task, box = await receive.receive()
            box[0] = n + 1
            reschedule(task)
            served += 1
        counts["served"] = served

    async def client() -> None:
        task = trio.lowlevel.current_task()
        box = [0]
        done = wrong = 0
        for n in range(per_client):
            send.send_nowait((n, task, box))
            await trio.lowlevel.wait_task_rescheduled(cannot_abort)
            done += 1
            wrong += box[0] != n + 1
        counts["round_trips"] += done
        counts["wrong"] += wrong

    loop0 = time.thread_time()
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        for _ in range(clients):
            nursery.start_soon(client)
    elapsed = time.perf_counter() - t0
    loop_s = time.thread_time() - loop0
    done = counts["round_trips"]
    return {
        "clients": clients,
        "per_client": per_client,
        **counts,
        "seconds": elapsed,
        "per_s": done / elapsed,
        "loop_us_per_round_trip": loop_s / max(1, done) * 1e6,
    }


async def trio_hops(pairs: int, rounds: int) -> dict[str, Any]:
    """One hop: a task sets a `trio.Event` and the task waiting on it resumes. `pairs` pairs of
    tasks play ping-pong `rounds` times (two hops a round), each side waiting on an Event of its
    own that the other sets. `hops` counts the wake-ups that ran."""
    import trio

    counts = {"hops": 0}

    async def pair() -> None:
        events = {"a": trio.Event(), "b": trio.Event()}

        async def pinger() -> None:
            for _ in range(rounds):
                events["b"].set()
                await events["a"].wait()
                events["a"] = trio.Event()
                counts["hops"] += 1

        async def ponger() -> None:
            for _ in range(rounds):
                await events["b"].wait()
                events["b"] = trio.Event()
                counts["hops"] += 1
                events["a"].set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ponger)
            nursery.start_soon(pinger)

    loop0 = time.thread_time()
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(pairs):
            nursery.start_soon(pair)
    elapsed = time.perf_counter() - t0
    loop_s = time.thread_time() - loop0
    hops = counts["hops"]
    return {
        "tasks": 2 * pairs,
        "rounds": rounds,
        "hops": hops,
        "seconds": elapsed,
        "per_s": hops / elapsed,
        "loop_us_per_hop": loop_s / max(1, hops) * 1e6,
    }


async def run_floor(sizes: Sizes) -> dict[str, Any]:
    # The first, short run of each warms the interpreter's caches; the second is reported.
    await trio_round_trips(sizes.floor_clients, max(1, sizes.floor_round_trips // 10))
    round_trip = await trio_round_trips(sizes.floor_clients, sizes.floor_round_trips)
    await trio_hops(sizes.floor_clients // 2, max(1, sizes.floor_hop_rounds // 10))
    hop = await trio_hops(sizes.floor_clients // 2, sizes.floor_hop_rounds)
    return {"round_trip": round_trip, "hop": hop}


# -- GC pauses --------------------------------------------------------------------------------


class GcPauses:
    """Every collection's duration per generation while recording: `gc.callbacks`, perf_counter
    from 'start' to 'stop' (the wall time the collecting thread was in the collector: the pause
    the other tasks see) and thread_time (its CPU: less when the OS or another thread took the
    core meanwhile)."""

    def __init__(self) -> None:
        self.pauses: list[list[float]] = [[], [], []]
        self.cpu: list[list[float]] = [[], [], []]
        self._started: tuple[float, float] | None = None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.thread_time())
        elif self._started is not None:
            wall, cpu = self._started
            generation = info["generation"]
            self.pauses[generation].append(time.perf_counter() - wall)
            self.cpu[generation].append(time.thread_time() - cpu)
            self._started = None

    @contextmanager
    def recording(self) -> Iterator[GcPauses]:
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)

    def summary(self) -> dict[str, list[float]]:
        return gc_summary(self.pauses, self.cpu)


def gc_summary(pauses: list[list[float]], cpu: list[list[float]]) -> dict[str, list[float]]:
    """Per generation: collections, the longest pause (wall) and the most CPU one took (ms), and
    the total pause (ms)."""
    return {
        "collections": [len(p) for p in pauses],
        "max_ms": [max(p, default=0.0) * 1e3 for p in pauses],
        "max_cpu_ms": [max(c, default=0.0) * 1e3 for c in cpu],
        "total_ms": [sum(p) * 1e3 for p in pauses],
    }


def gc_merge(summaries: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """One summary of several windows (the hot rounds)."""
    out: dict[str, list[float]] = {}
    for key in ("collections", "total_ms"):
        out[key] = [sum(s[key][g] for s in summaries) for g in range(3)]
    for key in ("max_ms", "max_cpu_ms"):
        out[key] = [max((s[key][g] for s in summaries), default=0.0) for g in range(3)]
    return out


# -- cases 1 and 3: many events, many clients -------------------------------------------------


class Load:
    """Closed-loop clients joining random events, each join for a user never seen before."""

    def __init__(self, engine: Any, event_ids: list[str], clients: int, tag: str = "u") -> None:
        self.engine = engine
        self.tag = tag
        self.event_ids = event_ids
        self.clients = clients
        self.stop = False
        self.window: tuple[float, float] | None = None  # (start, end) perf_counter
        self.acked = 0
        self.latencies: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    async def client(self, index: int) -> None:
        import trio

        from domain.errors import Overloaded, TurnstileError
        from domain.identity import Identity

        rng = random.Random(index)
        events = self.event_ids
        mutation = self.engine.mutation
        perf = time.perf_counter
        n = 0
        while not self.stop:
            user = f"{self.tag}{index}-{n}"
            n += 1
            args = {"eventId": events[rng.randrange(len(events))], "userId": user}
            t0 = perf()
            try:
                outcome = await mutation(JOIN, args, Identity(subject=user))
            except Overloaded:
                self.errors["Overloaded"] += 1
                await trio.sleep(0.005)
                continue
            except TurnstileError as exc:
                self.errors[type(exc).__name__] += 1
                continue
            t1 = perf()
            window = self.window
            if window is not None and window[0] <= t0 and t1 <= window[1]:
                self.acked += 1
                self.latencies.append(t1 - t0)
                self.outcomes[outcome.value["status"]] += 1

    async def measure(self, warmup: float, seconds: float) -> dict[str, Any]:
        """Run the clients; measure `seconds` after `warmup`. Counts only commands started and
        acknowledged (durable) inside the window."""
        import trio

        engine = self.engine
        result: dict[str, Any] = {}
        pauses = GcPauses()
        async with trio.open_nursery() as nursery:
            for i in range(self.clients):
                nursery.start_soon(self.client, i)
            await trio.sleep(warmup)
            with pauses.recording():
                batches0, rows0 = commit_stats(engine)
                writing0 = write_seconds(engine)
                writer = writer_pid(engine)
                cpu0, loop0 = server_cpu(engine), time.thread_time()
                writer_cpu0 = process_cpu(writer)
                start = time.perf_counter()
                self.window = (start, start + seconds + 3600)
                await trio.sleep(seconds)
                end = time.perf_counter()
                self.window = (start, end)
                cpu1, loop1 = server_cpu(engine), time.thread_time()
                writer_cpu1 = process_cpu(writer)
                batches1, rows1 = commit_stats(engine)
                writing = write_seconds(engine) - writing0
            self.stop = True
        elapsed = end - start
        lat = sorted(self.latencies)
        batches = batches1 - batches0
        rows = rows1 - rows0
        result.update(
            clients=self.clients,
            seconds=elapsed,
            acked=self.acked,
            cmds_per_s=self.acked / elapsed,
            rows_per_s=rows / elapsed,
            batches=batches,
            rows_per_batch=rows / batches if batches else 0.0,
            batches_per_s=batches / elapsed,
            cpu_us_per_cmd=(cpu1 - cpu0) / max(1, self.acked) * 1e6,
            loop_us_per_cmd=(loop1 - loop0) / max(1, self.acked) * 1e6,
            loop_busy=(loop1 - loop0) / elapsed,
            writer_busy=writing / elapsed,
            writer_us_per_row=writing / max(1, rows) * 1e6,
            writer_cpu_busy=(writer_cpu1 - writer_cpu0) / elapsed,
            writer_cpu_us_per_row=(writer_cpu1 - writer_cpu0) / max(1, rows) * 1e6,
            p50_ms=percentile(lat, 50) * 1e3,
            p90_ms=percentile(lat, 90) * 1e3,
            p99_ms=percentile(lat, 99) * 1e3,
            max_ms=(lat[-1] if lat else float("nan")) * 1e3,
            outcomes=dict(self.outcomes),
            errors=dict(self.errors),
            gc=pauses.summary(),
        )
        return result


async def run_many(sizes: Sizes) -> dict[str, Any]:
    from engine import EngineConfig, open_engine

    with temp_data_dir("many") as data_dir:
        config = EngineConfig(synchronous="FULL", snapshot_every=0)
        async with open_engine(data_dir, config=config, modules=engine_modules()) as engine:
            started = time.perf_counter()
            ids = await create_events(engine, sizes.many_events, 100, sizes.many_clients)
            create_s = time.perf_counter() - started
            log(f"many: {len(ids)} events created in {create_s:.2f}s; {config_line(engine)}")
            load = Load(engine, ids, sizes.many_clients)
            result = await load.measure(sizes.many_warmup_s, sizes.many_seconds)
            result["events"] = len(ids)
            result["config"] = config_line(engine)
            await engine.wait_idle()
            result["writer_peak_rss_mib"] = peak_rss_mib(writer_pid(engine))
        result["journal_rows"], result["avg_payload_bytes"] = journal_shape(data_dir)
    return result


def journal_shape(data_dir: Path) -> tuple[int, float]:
    from engine.journal import open_reader

    journal = open_reader(data_dir)
    try:
        totals = journal.totals()
    finally:
        journal.close()
    return totals.events, totals.payload_bytes / totals.events if totals.events else 0.0


async def run_light(sizes: Sizes) -> dict[str, Any]:
    from engine import EngineConfig, open_engine

    out: dict[str, Any] = {}
    with temp_data_dir("light") as data_dir:
        config = EngineConfig(synchronous="FULL", snapshot_every=0)
        async with open_engine(data_dir, config=config, modules=engine_modules()) as engine:
            ids = await create_events(engine, 100, 100, 50)
            for clients in sizes.light_clients:
                load = Load(engine, ids, clients, tag=f"c{clients}-")
                out[str(clients)] = await load.measure(0.3, sizes.light_seconds)
                await engine.wait_idle()
    return {"by_clients": out}


# -- case 2: one hot event ------------------------------------------------------------------


async def hot_round(engine: Any, sizes: Sizes, round_no: int) -> dict[str, Any]:
    """One fresh event with `hot_tickets` seats; `hot_users` users join it through `hot_clients`
    client tasks; timed from the first call to the last acknowledgement."""
    import trio

    from domain.errors import Overloaded, TurnstileError
    from domain.identity import ADMIN, Identity

    created = await engine.mutation(CREATE, event_args(round_no, sizes.hot_tickets), ADMIN)
    event_id = created.value
    users = iter(range(sizes.hot_users))
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []

    async def client() -> None:
        perf = time.perf_counter
        for u in users:
            user = f"h{round_no}-{u}"
            args = {"eventId": event_id, "userId": user}
            while True:
                t0 = perf()
                try:
                    outcome = await engine.mutation(JOIN, args, Identity(subject=user))
                except Overloaded:
                    errors["Overloaded (retried)"] += 1
                    await trio.sleep(0.005)
                    continue
                except TurnstileError as exc:
                    errors[type(exc).__name__] += 1
                    break
                latencies.append(perf() - t0)
                outcomes[outcome.value["status"]] += 1
                break

    await engine.wait_idle()
    with GcPauses().recording() as pauses:
        batches0, rows0 = commit_stats(engine)
        cpu0, loop0 = server_cpu(engine), time.thread_time()
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(sizes.hot_clients):
                nursery.start_soon(client)
        elapsed = time.perf_counter() - started
        cpu1, loop1 = server_cpu(engine), time.thread_time()
        batches1, rows1 = commit_stats(engine)
    acked = sum(outcomes.values())
    batches = batches1 - batches0
    lat = sorted(latencies)
    log(f"hot round {round_no}: {acked / elapsed:,.0f} cmds/s, {dict(outcomes)} {dict(errors)}")
    return {
        "acked": acked,
        "seconds": elapsed,
        "cmds_per_s": acked / elapsed,
        "rows": rows1 - rows0,
        "batches": batches,
        "rows_per_batch": (rows1 - rows0) / batches if batches else 0.0,
        "cpu_us_per_cmd": (cpu1 - cpu0) / max(1, acked) * 1e6,
        "loop_us_per_cmd": (loop1 - loop0) / max(1, acked) * 1e6,
        "p50_ms": percentile(lat, 50) * 1e3,
        "p99_ms": percentile(lat, 99) * 1e3,
        "outcomes": dict(outcomes),
        "errors": dict(errors),
        "gc": pauses.summary(),
    }


async def run_hot(sizes: Sizes) -> dict[str, Any]:
    from engine import EngineConfig, open_engine

    rounds: list[dict[str, Any]] = []
    with temp_data_dir("hot") as data_dir:
        config = EngineConfig(synchronous="FULL", snapshot_every=0)
        async with open_engine(data_dir, config=config, modules=engine_modules()) as engine:
            for r in range(sizes.hot_rounds):
                rounds.append(await hot_round(engine, sizes, r))
            config_text = config_line(engine)
    rates = [x["cmds_per_s"] for x in rounds]
    return {
        "users": sizes.hot_users,
        "clients": sizes.hot_clients,
        "tickets": sizes.hot_tickets,
        "rounds": rounds,
        "cmds_per_s": statistics.median(rates),
        "cmds_per_s_min": min(rates),
        "cmds_per_s_max": max(rates),
        "config": config_text,
        "gc": gc_merge([x["gc"] for x in rounds]),
    }


# -- case 4: recovery ------------------------------------------------------------------------


def generate_journal(data_dir: Path, sizes: Sizes) -> dict[str, Any]:
    """Write a journal straight through `Journal.append` (synchronous=NORMAL: only the reading
    is timed): `rec_streams` events with 10 seats and `rec_joins` joins each, plus one hot event
    with 100 seats and `rec_hot_joins` joins; every join as the engine journals it (limiter take,
    join, offer while seats remain). Users join up to 3 different events (the join limit allows
    3 per 30 minutes), the hot event's users only it. Streams are interleaved: creations first,
    then rounds in which each ordinary event takes one join and the hot event its share."""
    from engine.journal import Batch, open_journal

    rng = random.Random(4)
    started = time.perf_counter()
    # `at` is now: the offers must not expire during the benchmark (they would fire on recovery).
    synth = Synth(int(time.time() * 1000))
    ordinary = [synth.create(i, new_event_id(rng), 10) for i in range(sizes.rec_streams)]
    hot = synth.create(sizes.rec_streams, new_event_id(rng), 100)
    journal = open_journal(data_dir, synchronous="NORMAL")
    rows: list[Any] = []

    def emit(events: list[Any]) -> None:
        nonlocal rows
        rows.extend(synth.row(e) for e in events)
        if len(rows) >= 20_000:
            journal.append(Batch(rows=rows, requests=()))
            rows = []

    everyone = [*ordinary, hot]
    rng.shuffle(everyone)
    for ev in everyone:
        emit(synth.created(ev))
    hot_per_round = -(-sizes.rec_hot_joins // sizes.rec_joins)
    hot_user = 0
    for r in range(sizes.rec_joins):
        rng.shuffle(ordinary)
        hot_at = rng.randrange(len(ordinary))
        for i, ev in enumerate(ordinary):
            # Within a round every event is different, so a user's 3 joins are 3 events.
            emit(synth.join(ev, f"user_{r}_{i // 3}"))
            if i == hot_at:
                for _ in range(min(hot_per_round, sizes.rec_hot_joins - hot.joins)):
                    emit(synth.join(hot, f"hot_{hot_user}"))
                    hot_user += 1
    if rows:
        journal.append(Batch(rows=rows, requests=()))
    while journal.index_tail():  # as a running engine keeps its stream index caught up
        pass
    journal.close()
    return {
        "events": synth.seq,
        "event_streams": len(everyone),
        "limiter_streams": len(synth.limiter_versions),
        "hot_id": hot.event_id,
        "hot_events": hot.version,
        "ordinary_events": ordinary[0].version,
        "ordinary_ids": [ev.event_id for ev in ordinary],
        "seconds": time.perf_counter() - started,
    }


async def time_recovery(
    data_dir: Path, hot_id: str, sample: list[str], events: int
) -> dict[str, Any]:
    from domain.ticketing.aggregate import EVENT_QUEUE
    from engine import EngineConfig, open_engine

    config = EngineConfig(snapshot_every=0)
    gc.collect()
    started = time.perf_counter()
    async with open_engine(data_dir, config=config, modules=engine_modules()) as engine:
        entered = time.perf_counter() - started
        report = engine.recovery
        assert report is not None
        t0 = time.perf_counter()
        hot = engine.committed_state(EVENT_QUEUE, hot_id)
        hot_s = time.perf_counter() - t0
        times = []
        for event_id in sample:
            t0 = time.perf_counter()
            engine.committed_state(EVENT_QUEUE, event_id)
            times.append(time.perf_counter() - t0)
        # Not timed: the loaded state must be the real thing.
        EVENT_QUEUE.check_invariants(hot)  # type: ignore[misc]
        hot_entries = len(hot.entries)
        timers = len(engine.read_models.timers)
    return {
        "enter_s": entered,
        "recovery_s": report.seconds,
        "events_folded": report.events_folded,
        "snapshot_seq": report.snapshot_seq,
        "events_per_s": events / report.seconds,
        "events_per_s_wall": events / entered,
        "armed_timers": timers,
        "hot_activate_ms": hot_s * 1e3,
        "hot_entries": hot_entries,
        "stream_activate_ms_median": statistics.median(times) * 1e3,
        "stream_activate_ms_mean": statistics.fmean(times) * 1e3,
    }


#: `--app` import paths: every engine of the run serves these apps beside the built-in one
#: (their cost to the built-in cases is then what the figures show).
APPS: list[str] = []


def engine_modules() -> Any:
    """What every engine of the run serves: the built-in app and the `--app` ones."""
    try:
        from engine.apps import load_apps
    except ImportError:  # an engine from before apps (an A/B against an older commit)
        from domain.catalog import MODULES

        return MODULES
    return load_apps(APPS)


def engine_registry() -> Any:
    """The registry an engine of the run builds (its apps + the engine's own)."""
    from engine import Registry

    try:
        from engine.registry import ENGINE_MODULE
    except ImportError:  # an engine without aggregates of its own
        return Registry(engine_modules())
    return Registry((*engine_modules(), ENGINE_MODULE))


def case_recovery(sizes: Sizes) -> dict[str, Any]:
    import trio

    from engine.snapshotting import build_snapshot

    with temp_data_dir("recovery") as data_dir:
        log("recovery: generating the journal")
        gen = generate_journal(data_dir, sizes)
        events = gen["events"]
        log(f"recovery: {events:,} events in {gen['seconds']:.1f}s; recovering without snapshot")
        sample = random.Random(7).sample(gen["ordinary_ids"], sizes.rec_sample_streams)
        size_mib = (data_dir / "journal.db").stat().st_size / 2**20
        plain = trio.run(time_recovery, data_dir, gen["hot_id"], sample, events)
        log("recovery: building the snapshot")
        gc.collect()
        t0 = time.perf_counter()
        info = build_snapshot(data_dir, engine_registry())
        build_s = time.perf_counter() - t0
        assert info is not None
        snap_mib = info.path.stat().st_size / 2**20
        log(f"recovery: snapshot built in {build_s:.1f}s; recovering with it")
        snap = trio.run(time_recovery, data_dir, gen["hot_id"], sample, events)
    return {
        "events": events,
        "hot_events": gen["hot_events"],
        "ordinary_events": gen["ordinary_events"],
        "event_streams": gen["event_streams"],
        "limiter_streams": gen["limiter_streams"],
        "generate_s": gen["seconds"],
        "journal_mib": size_mib,
        "plain": plain,
        "snapshot_build_s": build_s,
        "snapshot_events_per_s": info.events_folded / build_s,
        "snapshot_streams": info.streams_written,
        "snapshot_mib": snap_mib,
        "with_snapshot": snap,
    }


# -- case 5: memory -------------------------------------------------------------------------


async def run_memory(sizes: Sizes) -> dict[str, Any]:
    import trio

    from domain.identity import ADMIN, Identity
    from engine import EngineConfig, open_engine

    gc.collect()
    before = rss_mib()
    with temp_data_dir("memory") as data_dir:
        config = EngineConfig(synchronous="FULL", snapshot_every=0)
        async with open_engine(data_dir, config=config, modules=engine_modules()) as engine:
            todo = iter(range(sizes.mem_events))
            statuses: Counter[str] = Counter()

            async def client() -> None:
                for i in todo:
                    created = await engine.mutation(CREATE, event_args(i, 100), ADMIN)
                    user = f"m{i}"
                    joined = await engine.mutation(
                        JOIN, {"eventId": created.value, "userId": user}, Identity(subject=user)
                    )
                    statuses[joined.value["status"]] += 1

            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(sizes.mem_clients):
                    nursery.start_soon(client)
            elapsed = time.perf_counter() - started
            await engine.wait_idle()
            resident = engine.resident_actors()
            stats = dict(engine.stats)
            max_resident = engine.config.max_resident_actors
            end_rss = rss_mib()
            writer_peak = peak_rss_mib(writer_pid(engine))
    peak = maxrss_mib()
    return {
        "events": sizes.mem_events,
        "commands": 2 * sizes.mem_events,
        "seconds": elapsed,
        "cmds_per_s": 2 * sizes.mem_events / elapsed,
        "rss_before_mib": before,
        "rss_end_mib": end_rss,
        "peak_rss_mib": peak,
        "writer_peak_rss_mib": writer_peak,
        "kib_per_event": (peak - before) * 1024 / sizes.mem_events,
        "resident_actors": resident,
        "max_resident_actors": max_resident,
        "passivated": stats["passivated"],
        "activated": stats["activated"],
        "statuses": dict(statuses),
    }


# -- WebSocket end to end ------------------------------------------------------------------


def case_websocket(sizes: Sizes) -> dict[str, Any]:
    """lab.ws_bench's phases (in-process, then 100 `open_client` clients over WebSocket, then
    in-process with request ids), shortened to `ws_warmup_s` + `ws_seconds` each."""
    from lab import ws_bench

    ws_sizes = attrs.evolve(ws_bench.FULL, warmup=sizes.ws_warmup_s, seconds=sizes.ws_seconds)
    return ws_bench.measure(ws_sizes)


# -- the child side ---------------------------------------------------------------------------


def run_case(case: str, sizes: Sizes, profile_dir: Path | None) -> dict[str, Any]:
    import trio

    from engine import tune_gc

    if case == "baseline":
        return case_baseline(sizes)
    if case == "baseline-no-index":
        return case_baseline(sizes, stream_index=False)
    if case == "recovery":
        tune_gc()
        return case_recovery(sizes)
    if case == "websocket":
        return case_websocket(sizes)
    runners: dict[str, Callable[[Sizes], Any]] = {
        "floor": run_floor,
        "many": run_many,
        "light": run_light,
        "hot": run_hot,
        "memory": run_memory,
    }
    tune_gc()  # as a server would run (engine.tune_gc)
    if profile_dir is not None and case in ("many", "hot"):
        profiler = cProfile.Profile()
        profiler.enable()
        result: dict[str, Any] = trio.run(runners[case], sizes)
        profiler.disable()
        profile_dir.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile_dir / f"{case}.prof")
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(40)
        (profile_dir / f"{case}.txt").write_text(text.getvalue())
        log(f"cProfile of {case} written to {profile_dir}/{case}.prof (commands: see JSON)")
        return result
    return trio.run(runners[case], sizes)


def child_main(case: str, quick: bool, out: Path, profile_dir: Path | None) -> None:
    sizes = QUICK if quick else FULL
    started = time.perf_counter()
    result = run_case(case, sizes, profile_dir)
    result["case_wall_s"] = time.perf_counter() - started
    result["maxrss_mib"] = maxrss_mib()
    out.write_text(json.dumps(result))


# -- the parent side: run everything, print the table ------------------------------------------


def run_child(case: str, quick: bool, profile_dir: Path | None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    try:
        command = [sys.executable, "-m", "lab.bench", "--child", case, "--out", str(out)]
        if quick:
            command.append("--quick")
        if profile_dir is not None:
            command += ["--cprofile", str(profile_dir)]
        for app in APPS:
            command += ["--app", app]
        subprocess.run(command, cwd=REPO, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    finally:
        out.unlink(missing_ok=True)


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def verdict(value: float, aim: float) -> str:
    return "met" if value >= aim else f"MISSED ({value / aim:.0%} of aim)"


def build_table(res: dict[str, Any], sizes: Sizes) -> list[tuple[str, str, str, str]]:
    base = res["baseline"]
    base_rate = statistics.median(b["rows_per_s"] for b in base)
    base_runs = ", ".join(fmt_int(b["rows_per_s"]) for b in base)
    many, hot, light = res["many"], res["hot"], res["light"]
    rec, mem = res["recovery"], res["memory"]
    rows: list[tuple[str, str, str, str]] = []

    def add(what: str, value: str, aim: str = "", note: str = "") -> None:
        rows.append((what, value, aim, note))

    add(
        "6. baseline: sqlite3 executemany, 1,000 rows/txn, WAL, FULL",
        f"{fmt_int(base_rate)} rows/s",
        "",
        f"median of 3 runs ({base_runs}); rows {base[0]['row_bytes']:.0f} B, "
        f"payload {base[0]['payload_bytes']:.0f} B",
    )
    grow = statistics.median(b["first_tenth_rows_per_s"] for b in base)
    shrink = statistics.median(b["last_tenth_rows_per_s"] for b in base)
    add(
        f"   baseline over its first / last tenth ({base[0]['rows'] // 10:,} rows)",
        f"{fmt_int(grow)} / {fmt_int(shrink)} rows/s",
        "",
        "the journal slows as it grows: inserts scatter over the (stream, version) index",
    )
    bare = res["baseline_no_index"]
    add(
        "   diagnostic: the same without the (stream, version) index",
        f"{fmt_int(bare['rows_per_s'])} rows/s",
        "",
        f"first / last tenth {fmt_int(bare['first_tenth_rows_per_s'])} / "
        f"{fmt_int(bare['last_tenth_rows_per_s'])}; one run; not the journal's schema",
    )
    floor = res.get("floor")
    floor_rate = floor["round_trip"]["per_s"] if floor else 0.0
    if floor:
        trip, hop = floor["round_trip"], floor["hop"]
        add(
            f"7. floor: bare trio round trip A -> B -> A, {trip['clients']} clients",
            f"{fmt_int(trip['per_s'])} round trips/s",
            "",
            f"{trip['loop_us_per_round_trip']:,.1f} us loop CPU per round trip; memory channel to "
            f"one server task, reply by reschedule; {trip['round_trips']:,} round trips",
        )
        add(
            f"   one hop: Event set, waiter resumes ({hop['tasks']} tasks in pairs)",
            f"{fmt_int(hop['per_s'])} hops/s",
            "",
            f"{hop['loop_us_per_hop']:,.1f} us loop CPU per hop; {hop['hops']:,} hops",
        )

    def ratios(rate: float) -> str:
        if not floor:
            return f"{rate / base_rate:.3f}x baseline"
        return f"{rate / base_rate:.3f}x baseline, {rate / floor_rate:.3f}x trio round trip"

    def gc_line(case: str, gc_res: dict[str, Any], acked: int) -> None:
        counts, longest = gc_res["collections"], gc_res["max_ms"]
        # Any generation: a load sweep of the collector is a collection of generation 1 of all
        # that is not frozen (engine/collector.py), a pause as long as a full one would be.
        full_max = max(longest)
        if not any(counts):
            mark = "met (no collection in the window)"
        elif full_max <= AIM_GC_PAUSE_MS:
            mark = "met"
        else:
            mark = f"MISSED (longest {full_max:,.0f} ms)"
        per_cmd = sum(gc_res["total_ms"]) * 1e3 / max(1, acked)
        add(
            f"   GC in case {case}: collections gen 0/1/2, max pause per gen",
            f"{'/'.join(str(n) for n in counts)}; {' / '.join(f'{m:,.1f}' for m in longest)} ms",
            f"each <= {AIM_GC_PAUSE_MS:,.0f} ms",
            f"{mark}; GC {per_cmd:,.1f} us per command "
            f"({sum(gc_res['total_ms']):,.0f} ms in the window); most CPU one took per gen "
            f"{' / '.join(f'{m:,.1f}' for m in gc_res.get('max_cpu_ms', [0.0] * 3))} ms",
        )

    add(
        f"1. durable joins over {many['events']:,} events, {many['clients']:,} clients",
        f"{fmt_int(many['cmds_per_s'])} cmds/s",
        f">= {AIM_MANY:,}",
        f"{verdict(many['cmds_per_s'], AIM_MANY)}; {ratios(many['cmds_per_s'])}",
    )
    add(
        "   journal rows/s during case 1",
        f"{fmt_int(many['rows_per_s'])} rows/s",
        "",
        f"{many['rows_per_s'] / base_rate:.3f}x baseline; "
        f"{many['rows_per_batch']:,.0f} rows/batch, {many['batches_per_s']:,.1f} commits/s; "
        f"{many['rows_per_s'] / many['cmds_per_s']:.2f} rows per command (2 with an offer, 1"
        " once the seats are gone; the rate limit's take a record beside them)",
    )
    add(
        "   CPU per command, case 1 (event loop / whole server, writer process included)",
        f"{many['loop_us_per_cmd']:,.0f} / {many['cpu_us_per_cmd']:,.0f} us",
        "",
        f"event loop busy {many['loop_busy']:.0%} of wall time",
    )
    if "writer_busy" in many:
        add(
            "   the writer in case 1 (batches in flight, wall time)",
            f"{many['writer_us_per_row']:,.1f} us per row",
            "",
            f"busy {many['writer_busy']:.0%} of wall time (hand-over to outcome on the loop; "
            "the journal's writer process, beside the loop)",
        )
    if many.get("writer_cpu_busy"):
        add(
            "   the writer process's own CPU in case 1",
            f"{many['writer_cpu_us_per_row']:,.1f} us per row",
            "",
            f"{many['writer_cpu_busy']:.0%} of wall time: the rest of the time above, its answer "
            "waits for the loop or it waits for the next batch",
        )
    if "gc" in many:
        gc_line("1", many["gc"], many["acked"])
    add(
        f"2. one hot event, {hot['users']:,} users join ({hot['tickets']} seats)",
        f"{fmt_int(hot['cmds_per_s'])} cmds/s",
        f">= {AIM_HOT:,}",
        f"{verdict(hot['cmds_per_s'], AIM_HOT)}; {ratios(hot['cmds_per_s'])}; "
        f"median of {len(hot['rounds'])} rounds "
        f"({fmt_int(hot['cmds_per_s_min'])}-{fmt_int(hot['cmds_per_s_max'])}), "
        f"{hot['clients']:,} clients",
    )
    hot_rpb = statistics.median(r["rows_per_batch"] for r in hot["rounds"])
    hot_loop = statistics.median(r["loop_us_per_cmd"] for r in hot["rounds"])
    add(
        "   case 2: rows/batch, event-loop CPU per command",
        f"{hot_rpb:,.0f} rows, {hot_loop:,.0f} us",
    )
    if "gc" in hot:
        gc_line("2", hot["gc"], sum(r["acked"] for r in hot["rounds"]))
    add(
        "3. latency call -> durable ack, under case 1 load",
        f"p50 {many['p50_ms']:,.1f} ms, p99 {many['p99_ms']:,.1f} ms",
        "",
        f"{many['clients']:,} closed-loop clients (queueing: ~clients / throughput); "
        f"max {many['max_ms']:,.0f} ms",
    )
    hot_p50 = statistics.median(r["p50_ms"] for r in hot["rounds"])
    hot_p99 = statistics.median(r["p99_ms"] for r in hot["rounds"])
    add(
        "   latency under case 2 load (one hot event)",
        f"p50 {hot_p50:,.1f} ms, p99 {hot_p99:,.1f} ms",
        "",
        f"{hot['clients']:,} clients",
    )
    for clients, lr in light["by_clients"].items():
        add(
            f"   latency with {clients} client(s), same command",
            f"p50 {lr['p50_ms']:,.1f} ms, p99 {lr['p99_ms']:,.1f} ms",
            "",
            f"{fmt_int(lr['cmds_per_s'])} cmds/s, {lr['rows_per_batch']:,.1f} rows/batch",
        )
    ws = res.get("websocket")
    if ws:
        over, inproc = ws["websocket"], ws["in_process"]
        ratio = ws["ratio"]
        mark = "met" if ratio >= AIM_WS_RATIO else f"MISSED ({ratio / AIM_WS_RATIO:.0%} of aim)"
        add(
            f"8. WebSocket, {ws['sizes']['clients']} clients (lab.ws_bench, closed loop)",
            f"{fmt_int(over['rate'])} mutations/s",
            f">= {AIM_WS_RATIO}x in-process",
            f"{mark}; = {ratio:.2f}x in-process ({fmt_int(inproc['rate'])}/s in the same run, "
            f"{ws['sizes']['tasks']} tasks); p50 {over['p50_ms']:,.1f} ms, "
            f"p99 {over['p99_ms']:,.1f} ms; {ws['ratio_with_ids']:.2f}x in-process with "
            f"request ids",
        )
    plain, snap = rec["plain"], rec["with_snapshot"]
    add(
        f"4. recovery of {rec['events']:,} events, no snapshot",
        f"{plain['recovery_s']:,.2f} s = {fmt_int(plain['events_per_s'])} events/s",
        f">= {AIM_RECOVERY:,}",
        f"{verdict(plain['events_per_s'], AIM_RECOVERY)}; {rec['event_streams']:,} event + "
        f"{rec['limiter_streams']:,} limiter streams; {plain['events_folded']:,} decoded "
        f"(read-model types), {plain['armed_timers']:,} timers re-armed; "
        f"open_engine entry {plain['enter_s']:,.2f} s",
    )
    add(
        "   snapshot build (build_snapshot, all streams folded)",
        f"{rec['snapshot_build_s']:,.2f} s = {fmt_int(rec['snapshot_events_per_s'])} events/s",
        "",
        f"{rec['snapshot_streams']:,} streams, {rec['snapshot_mib']:,.0f} MiB "
        f"(journal {rec['journal_mib']:,.0f} MiB)",
    )
    add(
        f"   recovery of {rec['events']:,} events, with that snapshot",
        f"{snap['recovery_s']:,.2f} s = {fmt_int(snap['events_per_s'])} events/s",
        f">= {AIM_RECOVERY:,}",
        f"{verdict(snap['events_per_s'], AIM_RECOVERY)}; tail {snap['events_folded']:,} events; "
        f"open_engine entry {snap['enter_s']:,.2f} s",
    )
    add(
        f"   activate hot stream ({rec['hot_events']:,} events), no snapshot / snapshot",
        f"{plain['hot_activate_ms']:,.0f} / {snap['hot_activate_ms']:,.0f} ms",
        "",
        f"{plain['hot_entries']:,} waiting-list entries; first use after recovery",
    )
    add(
        f"   activate a {rec['ordinary_events']}-event stream, no snapshot / snapshot",
        f"{plain['stream_activate_ms_median']:,.2f} / {snap['stream_activate_ms_median']:,.2f} ms",
        "",
        f"median of {sizes.rec_sample_streams} streams",
    )
    add(
        f"5. peak RSS, {mem['events']:,} events created + 1 join each",
        f"{mem['peak_rss_mib']:,.0f} MiB",
        "",
        f"{mem['rss_before_mib']:,.0f} MiB before the engine, {mem['rss_end_mib']:,.0f} MiB at the "
        f"end; {mem['kib_per_event']:,.1f} KiB per event touched; the journal's writer process "
        f"beside it: {mem.get('writer_peak_rss_mib', 0.0):,.0f} MiB at its peak",
    )
    add(
        "   resident actors at the end",
        f"{mem['resident_actors']:,}",
        "",
        f"max_resident_actors={mem['max_resident_actors']:,}; {mem['passivated']:,} passivated; "
        f"{fmt_int(mem['cmds_per_s'])} cmds/s while filling",
    )
    return rows


def render_table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("measure", "measured", "aim", "notes")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = []
    for r in [header, (*("-" * w for w in widths), "-----"), *rows]:
        lines.append(
            f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        )
    return "\n".join(lines)


def anomalies(res: dict[str, Any]) -> list[str]:
    out = []
    many = res["many"]
    if many["errors"]:
        out.append(f"case 1 refusals: {many['errors']}")
    for i, r in enumerate(res["hot"]["rounds"]):
        if r["errors"]:
            out.append(f"case 2 round {i} refusals: {r['errors']}")
    for clients, lr in res["light"]["by_clients"].items():
        if lr["errors"]:
            out.append(f"light load ({clients} clients) refusals: {lr['errors']}")
    floor = res.get("floor")
    if floor:
        trip, hop = floor["round_trip"], floor["hop"]
        expected = trip["clients"] * trip["per_client"]
        if not trip["round_trips"] == trip["served"] == expected or trip["wrong"]:
            out.append(
                f"trio round trip counts off: {trip['round_trips']:,} answered, "
                f"{trip['served']:,} served, {trip['wrong']:,} wrong of {expected:,}"
            )
        if hop["hops"] != hop["tasks"] * hop["rounds"]:
            out.append(f"trio hops: {hop['hops']:,} of {hop['tasks'] * hop['rounds']:,}")
    ws = res.get("websocket")
    if ws and not ws["ok"]:
        out.append(
            f"WebSocket case: counts do not add up (joins held {ws['joins_held']:,}; "
            f"see lab.ws_bench)"
        )
    return out


DOC_NOTES = """\
## What each line measures

All cases run `events:joinWaitingList` / `events:create` through `Engine.mutation` in-process (no
WebSocket), each case in its own subprocess, with `engine.tune_gc()` applied as a server would,
`synchronous=FULL` and the default `EngineConfig` except `snapshot_every=0` (automatic snapshots
are measured separately in case 4 instead of landing at a random point of a throughput window).
Only acknowledged commands count, i.e. commands whose events were durable (committed and fsynced)
when `mutation()` returned; each join is for a user never seen before, so none is refused.

1. Many events: `--quick` shrinks it; the full run creates 1,000 events (100 seats each), then
   2,000 closed-loop client tasks each join a random event as a fresh user. After a warm-up, the
   window counts commands started and acknowledged inside it. "Rows/s" is what reached the
   journal's events: a join writes `WaitingListJoined`, and `OfferMade` while seats remain,
   and beside them its take of the per-user join limit (a record of its own, not a row:
   engine/limiters.py). There are 100,000 seats in all, so at 10,000 joins/s they run out
   within the window: its later joins write one row and make no offer (no state fold for it,
   no timer). The rows per command show the mix,
   and a faster tree makes more of its window's joins cheap ones, which widens an A/B's gap in
   this case (`lab.opcount`, whose joins all make an offer, counts the same work in each tree).
   "CPU per command": `time.thread_time()` of the event-loop thread and `time.process_time()` of the
   process plus the CPU of the journal's writer process (the server's whole CPU) over the
   window, divided by the commands acknowledged.
2. One hot event: a fresh event with 100 seats, 10,000 users joining through 2,000 client tasks
   (an actor's pipeline to disk holds 4,096); timed from the first call to the last
   acknowledgement; several rounds on fresh events, median reported.
3. Latency: `perf_counter` from the call to the return of `mutation()` for the commands of case 1
   (so under its load: with closed-loop clients it is about clients / throughput, mostly
   queueing), plus the same command with 1 and 64 clients to show the unloaded floor.
4. Recovery: a journal written straight through `Journal.append` with real, codec-encoded
   domain events shaped as the engine journals them: 9,704 events (10 seats, 45 joins: 56
   events per stream) and one hot event (100 seats, 9,899 joins: 10,000 events in its stream);
   each join is `RateLimitTaken` on the user's limiter stream + `WaitingListJoined` (+
   `OfferMade` while seats remain); users join up to 3 events (the limit allows 3 per 30
   minutes); creations first, then joins interleaved over the streams. Then `open_engine` is
   timed: `engine.recovery.seconds` (what the events/s figure uses; it covers scanning the
   journal, folding the read models and re-arming the offer timers) and the wall time of
   entering the context. Recovery folds only the event types the read models and timers
   need (decoded count shown); aggregate states load lazily, so "activate" is the first use of a
   stream after recovery (`load_stream`: snapshot row + journal rows after it). The journal file
   was just written, so it is in the page cache: these are warm-cache figures.
5. Memory: `ru_maxrss` of the subprocess that creates N events and joins each once (2,000
   clients), with the default `max_resident_actors`; beside it, the peak RSS (`VmHWM`) of the
   engine's journal writer process.
6. Baseline: the journal's ceiling: raw `sqlite3` `executemany` of rows shaped like case 1's
   (same schema via `engine.journal.sqlite.create_schema`, payloads from the engine's codec),
   1,000 per `BEGIN IMMEDIATE`..`COMMIT`, WAL, `synchronous=FULL`, 300,000 rows (about what case 1
   writes); run three times spread over the run (before case 1, between cases 1 and 2, after
   case 2) and the median used for the ratios. Its rate falls as the file grows, because rows
   of many streams scatter over the unique (stream, version) index, so each commit dirties many
   index pages; the diagnostic line drops that index (not the journal's schema) to show it.
   Ratios compare commands/s (case 1: ~3 rows per command) and rows/s against rows/s.
7. Floor: what the design costs with nothing in it, in bare trio and the same process setup
   (`tune_gc()`, own subprocess). 64 client tasks each put a request on a memory channel to one
   server task and park (`trio.lowlevel.wait_task_rescheduled`, as a mutation's caller parks on
   its reply); the server takes each with `receive()` and reschedules its client with the
   answer: task A -> task B -> task A, closed loop, 3,000 round trips per client. "Loop CPU per
   round trip" is `time.thread_time()` over the run divided by the round trips. One hop: 32
   pairs of tasks playing ping-pong through `trio.Event`s (one task sets, the other resumes),
   3,000 rounds of two hops each, hops per second. A tenth-size run of each goes first,
   unreported (warm-up). Cases 1 and 2 are also given as a ratio of the round trip's rate: the
   share of trio's own hand-off rate the engine reaches while also deciding, encoding and
   fsyncing each command. Counts (answers, requests served, answers matched to
   their request, hops) are checked; a mismatch is listed under the table.
   GC lines: during the measured windows of cases 1 and 2 (all rounds of case 2), a
   `gc.callbacks` hook times every collection with `perf_counter` from its 'start' to its
   'stop', per generation (a collection in the commit thread counts too: it holds the
   interpreter as well). Shown: collections per generation, the longest pause per generation,
   all GC time divided by the commands acknowledged, and the most `thread_time` one collection
   took per generation (below its pause when the OS or the other thread took the core). Aim:
   no collection pausing more than 50 ms; with `tune_gc()` automatic collection is off and the
   collector of engine/collector.py sweeps at rest, and under a load that never rests once per
   10,000 new objects (a collection of generation 1: everything older is frozen): the window
   holds those sweeps, and the line shows their pauses.
8. WebSocket: `lab.ws_bench.measure()` in its own subprocess, with shorter phases (1 s warm-up
   and 3 s counted each): `events:joinWaitingList` through a server on 127.0.0.1 by 100 clients
   of `engine.client.open_client`, each one mutation at a time, held by a child process so
   their CPU is not the server's; before it, 64 in-process tasks calling `Engine.mutation` on
   the same server's engine. The ratio WebSocket / in-process is the figure (aim >= 0.5);
   `python -m lab.ws_bench` reports the phases in full, a third one included.

The machine is shared and noisy: runs differ by 10-30 %; compare ratios within one run, not
absolute figures across runs.
"""


def write_doc(
    table: str, info: dict[str, Any], command: str, total_s: float, notes: list[str], quick: bool
) -> None:
    lines = [
        TITLE,
        "",
        "Generated by `python -m lab.bench --write-doc` (`./dev bench --write-doc`); do not edit",
        "by hand, re-run it.",
        "",
        *run_lines(info, command=command, seconds=total_s, quick=quick),
        "",
        "```",
        table,
        "```",
        "",
    ]
    if notes:
        lines += ["Anomalies in this run:", ""] + [f"- {n}" for n in notes] + [""]
    lines.append(DOC_NOTES)
    # This benchmark's part is the page's title section and the one explaining its lines.
    write_section(TITLE, "\n".join(lines), through=("## What each line measures",), path=DOC)


def parent_main(args: argparse.Namespace) -> None:
    sizes = QUICK if args.quick else FULL
    info = machine()
    started = time.perf_counter()
    results: dict[str, Any] = {"baseline": []}
    for label, case in PLAN:
        log(f"case {label} ...")
        t0 = time.perf_counter()
        out = run_child(case, args.quick, args.cprofile)
        log(f"case {label} done in {time.perf_counter() - t0:.1f}s")
        if case == "baseline":
            results["baseline"].append(out)
        elif case == "baseline-no-index":
            results["baseline_no_index"] = out
        else:
            results[case] = out
    total = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()
    table = render_table(build_table(results, sizes))
    notes = anomalies(results)
    print()
    print(
        f"Turnstile engine benchmark, {info['date']}: {info['cpus']} CPUs, {info['python']}, "
        f"SQLite {info['sqlite']}; {'quick' if args.quick else 'full'} sizes; {total:,.0f} s"
    )
    print(f"code: commit {info['commit']}; uncommitted: {', '.join(info['dirty']) or 'none'}")
    if APPS:
        print(f"apps served beside the built-in one: {', '.join(APPS)}")
    print(
        f"load average at start {info['loadavg_start'][0]:.2f}, at end {info['loadavg_end'][0]:.2f}"
    )
    print()
    print(table)
    for note in notes:
        print(f"note: {note}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    if args.write_doc:
        command = "python -m lab.bench " + " ".join(sys.argv[1:])
        write_doc(table, info, command.strip(), total, notes, args.quick)
        print(f"\nwrote {DOC.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lab.bench", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test, < 1 min)")
    parser.add_argument("--write-doc", action="store_true", help=f"also write {DOC.name}")
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    parser.add_argument(
        "--cprofile", type=Path, help="write cProfile output of the many/hot cases to this dir"
    )
    parser.add_argument(
        "--app",
        dest="apps",
        action="append",
        default=[],
        metavar="MODULE",
        help="serve this app beside the built-in one in every engine of the run (repeatable)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    APPS[:] = args.apps
    engine_modules()  # a wrong app stops the run before any case starts
    if args.child:
        child_main(args.child, args.quick, args.out, args.cprofile)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
