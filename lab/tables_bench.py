"""Tables benchmark: `python -m lab.tables_bench [--quick] [--write-doc]`.

What a table costs beside the hand-written aggregate path, in one run so that the ratios are of
one machine in one state. The app is lab/tables_app.py: one message shape written as a table
document (two indexes and an owner field) and as a hand-written aggregate with two read models
of the same groupings; each engine is `open_engine(data_dir, modules=load_apps(["lab.tables_app"]))`
in this process, `synchronous=FULL`, `snapshot_every=0`, `engine.tune_gc()` as a server runs.

1. Inserts: `clients` closed-loop tasks each call `benchTable:insert` (one new document per
   call) through `Engine.mutation` as a member of one of `orgs` organizations, into random
   channels; after `warmup_s`, the calls started and acknowledged (durable) within `seconds`
   are counted. The same for `benchAggregate:create` (one new aggregate per call, as
   `giftcards:issue`). Each path runs `rounds` times on a fresh engine, the two taking turns;
   the medians are reported. Beside them, lab/bench.py's raw SQLite baseline
   (`lab.bench.case_baseline`: journal-shaped rows, 1,000 per transaction, WAL, FULL), run
   before, between and after the rounds, median used; ratios are inserts/s over its rows/s
   (each insert writes one journal row).
2. Live query update latency: a subscription (`Engine.subscribe`) to
   `benchTable:latest` (one channel's index range: `by_channel`, number >= 0, newest first,
   20 documents) on an engine holding `prefill` documents in other channels, while one
   writer inserts `updates` documents into that channel at `rate` per second (open loop: a
   task per insert, on a fixed schedule). Per insert: from the commit of its batch (the moment
   the journal write returns to the event loop, before read models fold) to the subscriber
   holding a value with it, and from the call to the same moment. The same for
   `benchAggregate:latest` on a fresh engine.

Nothing here asserts on time. `--write-doc` writes the run's figures as the
"## Tables beside the hand-written aggregate path" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import bisect
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from domain.errors import Overloaded, TurnstileError
from domain.identity import Identity
from engine import EngineConfig, open_engine, tune_gc
from engine.apps import load_apps
from lab import bench
from lab.figures import percentile, run_and_report
from lab.tables_app import LATEST

SECTION = "## Tables beside the hand-written aggregate path"
COMMAND = "python -m lab.tables_bench --write-doc"
APP = "lab.tables_app"
BODY = "Lunch is at noon in the big room; bring the slides from Tuesday."
#: The two ways of writing the same record: (label, mutation, live query).
PATHS = {
    "table": ("table insert (`benchTable:insert`)", "benchTable:insert", "benchTable:latest"),
    "aggregate": (
        "hand-written aggregate (`benchAggregate:create`)",
        "benchAggregate:create",
        "benchAggregate:latest",
    ),
}
#: The channel the live query watches; the prefill and the load use the others.
WATCHED = "c_watched"


@attrs.frozen(kw_only=True)
class Sizes:
    baseline_batches: int = 100  # of 1,000 rows, per baseline run
    clients: int = 1_000
    orgs: int = 10
    channels: int = 100  # per organization
    warmup_s: float = 1.0
    seconds: float = 5.0
    rounds: int = 3
    prefill: int = 20_000
    rate: float = 100.0  # inserts/s into the watched range
    updates: int = 500


FULL = Sizes()
QUICK = Sizes(
    baseline_batches=5,
    clients=50,
    orgs=2,
    channels=10,
    warmup_s=0.2,
    seconds=0.5,
    rounds=1,
    prefill=200,
    rate=200.0,
    updates=40,
)
#: No call of the run waits longer than this (seconds).
CALL_TIMEOUT = 60.0


def _member(index: int, orgs: int) -> Identity:
    return Identity(subject=f"u{index}", org_id=f"org{index % orgs}")


def _args(channel: str, author: str, number: int) -> dict[str, Any]:
    return {"channel": channel, "author": author, "number": number, "body": BODY}


def _config() -> EngineConfig:
    return EngineConfig(synchronous="FULL", snapshot_every=0)


# -- 1. inserts/s ---------------------------------------------------------------------------------


async def _inserts(data_dir: Path, mutation: str, sizes: Sizes) -> dict[str, Any]:
    """Closed-loop clients calling `mutation`; what was started and acknowledged in the window."""
    acked = 0
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    window: list[float] = []  # [start, end] once measuring
    stop = False

    async with open_engine(data_dir, config=_config(), modules=load_apps([APP])) as engine:

        async def client(index: int) -> None:
            nonlocal acked
            rng = random.Random(index)
            identity = _member(index, sizes.orgs)
            perf = time.perf_counter
            n = 0
            while not stop:
                n += 1
                args = _args(f"c{rng.randrange(sizes.channels)}", f"u{index}", n)
                t0 = perf()
                try:
                    with trio.fail_after(CALL_TIMEOUT):
                        await engine.mutation(mutation, args, identity)
                except Overloaded:
                    errors["Overloaded (retried)"] += 1
                    await trio.sleep(0.005)
                    continue
                except TurnstileError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                t1 = perf()
                if len(window) == 2 and window[0] <= t0 and t1 <= window[1]:
                    acked += 1
                    latencies.append(t1 - t0)

        async with trio.open_nursery() as nursery:
            for i in range(sizes.clients):
                nursery.start_soon(client, i)
            await trio.sleep(sizes.warmup_s)
            batches0, rows0 = bench.commit_stats(engine)
            loop0 = time.thread_time()
            start = time.perf_counter()
            window[:] = [start, start + sizes.seconds + 3600]
            await trio.sleep(sizes.seconds)
            end = time.perf_counter()
            window[:] = [start, end]
            loop1 = time.thread_time()
            batches1, rows1 = bench.commit_stats(engine)
            stop = True
        await engine.wait_idle()
    elapsed = end - start
    batches, rows = batches1 - batches0, rows1 - rows0
    return {
        "acked": acked,
        "seconds": elapsed,
        "per_s": acked / elapsed,
        "rows_per_insert": rows / max(1, acked),
        "rows_per_batch": rows / batches if batches else 0.0,
        "loop_us_per_insert": (loop1 - loop0) / max(1, acked) * 1e6,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "errors": dict(errors),
    }


# -- 2. live query update latency -----------------------------------------------------------------


def _commit_clock(engine: Any) -> list[tuple[int, float]]:
    """`(last_seq, perf_counter)` of each batch from now on, taken as the journal write returns to
    the event loop (the engine's commit callback, before read models fold): a lab probe on the
    group commit, wrapped around the callback it was built with."""
    commits: list[tuple[int, float]] = []
    group_commit = engine._commit
    inner: Callable[[list[Any], int], None] = group_commit._on_committed

    def timed(batch: list[Any], last_seq: int) -> None:
        commits.append((last_seq, time.perf_counter()))
        inner(batch, last_seq)

    group_commit._on_committed = timed
    return commits


async def _prefill(engine: Any, mutation: str, sizes: Sizes) -> None:
    todo = iter(range(sizes.prefill))

    async def writer(index: int) -> None:
        identity = _member(index, sizes.orgs)
        for n in todo:
            with trio.fail_after(CALL_TIMEOUT):
                await engine.mutation(
                    mutation, _args(f"c{n % sizes.channels}", f"u{index}", n), identity
                )

    async with trio.open_nursery() as nursery:
        for i in range(min(64, sizes.prefill)):
            nursery.start_soon(writer, i)


async def _live(data_dir: Path, path: str, sizes: Sizes) -> dict[str, Any]:
    """The subscriber's view of `updates` inserts into the watched range (see the module's
    docstring): per insert, seconds from its commit and from its call to the subscriber's first
    value holding it."""
    _, mutation, query = PATHS[path]
    watcher = _member(0, sizes.orgs)
    seen: dict[str, float] = {}  # document id -> when the subscriber first held it
    calls: list[tuple[str, float, int]] = []  # (id, call time, ts)
    errors: Counter[str] = Counter()
    async with open_engine(data_dir, config=_config(), modules=load_apps([APP])) as engine:
        await _prefill(engine, mutation, sizes)
        await engine.wait_idle()
        commits = _commit_clock(engine)
        all_seen = trio.Event()

        def check() -> None:
            # The subscriber may hold the last value before its writer has the reply.
            done = len(calls) + sum(errors.values()) == sizes.updates
            if done and all(c[0] in seen for c in calls):
                all_seen.set()

        async with engine.subscribe(query, {"channel": WATCHED}, watcher) as updates:

            async def subscriber() -> None:
                async for _, value in updates:
                    now = time.perf_counter()
                    for doc in value:
                        seen.setdefault(doc["_id"], now)
                    check()

            async def insert(number: int) -> None:
                t0 = time.perf_counter()
                try:
                    with trio.fail_after(CALL_TIMEOUT):
                        outcome = await engine.mutation(
                            mutation, _args(WATCHED, "u0", number), watcher
                        )
                except TurnstileError as exc:
                    errors[type(exc).__name__] += 1
                    return
                calls.append((outcome.value, t0, outcome.ts))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(subscriber)
                start = trio.current_time()
                async with trio.open_nursery() as writers:
                    for number in range(sizes.updates):
                        await trio.sleep_until(start + number / sizes.rate)
                        writers.start_soon(insert, number)
                await engine.wait_idle()
                check()
                # Every update has been delivered once the engine is idle and the subscriber
                # has run; a document it never held (coalesced away) is counted as missed.
                with trio.move_on_after(5):
                    await all_seen.wait()
                nursery.cancel_scope.cancel()
    seqs = [seq for seq, _ in commits]
    from_commit: list[float] = []
    from_call: list[float] = []
    missed = 0
    for doc_id, t0, ts in calls:
        if doc_id not in seen:
            missed += 1
            continue
        committed = commits[bisect.bisect_left(seqs, ts)][1]
        from_commit.append(seen[doc_id] - committed)
        from_call.append(seen[doc_id] - t0)
    return {
        "updates": len(calls),
        "missed": missed,
        "errors": dict(errors),
        "from_commit": from_commit,
        "from_call": from_call,
    }


# -- the run --------------------------------------------------------------------------------------


def _baseline(sizes: Sizes) -> dict[str, Any]:
    return bench.case_baseline(attrs.evolve(bench.QUICK, baseline_batches=sizes.baseline_batches))


def _engine_case(case: Callable[..., Any], *args: Any) -> Any:
    with bench.temp_data_dir("tables") as data_dir:
        return trio.run(case, data_dir, *args)


def measure(sizes: Sizes = FULL, *, live: bool = True) -> dict[str, Any]:
    """Every figure of the run (part 2 only with `live`), in one process."""
    tune_gc()
    result: dict[str, Any] = {"sizes": attrs.asdict(sizes), "baseline": []}
    result["baseline"].append(_baseline(sizes))
    rounds: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
    for r in range(sizes.rounds):
        order = list(PATHS) if r % 2 == 0 else list(reversed(PATHS))
        for path in order:
            rounds[path].append(_engine_case(_inserts, PATHS[path][1], sizes))
        if r == sizes.rounds // 2:
            result["baseline"].append(_baseline(sizes))
    result["baseline"].append(_baseline(sizes))
    result["inserts"] = rounds
    if live:
        result["live"] = {path: _engine_case(_live, path, sizes) for path in PATHS}
    return result


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rounds))


def report(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    base_runs = [b["rows_per_s"] for b in result["baseline"]]
    base = statistics.median(base_runs)
    inserts = result["inserts"]
    hand = _median(inserts["aggregate"], "per_s")
    lines = [
        f"In-process, {sizes['clients']:,} closed-loop clients in {sizes['orgs']} organizations,"
        f" {sizes['seconds']:g} s counted after {sizes['warmup_s']:g} s, median of"
        f" {sizes['rounds']} round(s) on fresh engines",
        "",
        "| path | inserts/s | vs hand-written aggregate | vs raw SQLite rows/s |"
        " journal rows per insert | rows per commit | loop CPU us per insert |"
        " ack p50 ms | ack p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path, (label, _, _) in PATHS.items():
        rounds = inserts[path]
        rate = _median(rounds, "per_s")
        rows, batch = _median(rounds, "rows_per_insert"), _median(rounds, "rows_per_batch")
        loop, p50, p99 = (_median(rounds, k) for k in ("loop_us_per_insert", "p50_ms", "p99_ms"))
        lines.append(
            f"| {label} | {rate:,.0f} | {rate / hand:.2f}x | {rate / base:.3f}x | {rows:.2f} |"
            f" {batch:,.0f} | {loop:,.0f} | {p50:,.1f} | {p99:,.1f} |"
        )
    lines.append(
        f"| raw SQLite rows (lab.bench baseline) | {base:,.0f} rows/s | | 1.000x | 1 |"
        f" 1,000 | | | |"
    )
    lines += [
        "",
        f"Baseline runs: {', '.join(f'{r:,.0f}' for r in base_runs)} rows/s"
        f" ({sizes['baseline_batches']:,} transactions of 1,000 rows each).",
    ]
    refusals = {
        path: [r["errors"] for r in rounds if r["errors"]] for path, rounds in inserts.items()
    }
    for path, errors in refusals.items():
        if errors:
            lines.append(f"Refusals, {path} path: {errors}.")
    if "live" in result:
        live = result["live"]
        hand_p50 = percentile(live["aggregate"]["from_commit"], 50)
        lines += [
            "",
            f"Live query update latency: {sizes['updates']:,} inserts into one channel's range at"
            f" {sizes['rate']:g}/s, one subscriber (newest {LATEST} of the range), beside"
            f" {sizes['prefill']:,} documents in other channels",
            "",
            "| live query | updates seen | commit -> seen p50 ms | p99 ms |"
            " call -> seen p50 ms | p99 ms | commit -> seen p50 vs aggregate |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for path, (_, _, query) in PATHS.items():
            figures = live[path]
            commit = figures["from_commit"]
            call = figures["from_call"]
            p50 = percentile(commit, 50)
            seen = f"{len(commit):,} of {figures['updates']:,}"
            lines.append(
                f"| `{query}` | {seen} | {p50 * 1e3:.3f} | {percentile(commit, 99) * 1e3:.3f} |"
                f" {percentile(call, 50) * 1e3:.2f} | {percentile(call, 99) * 1e3:.2f} |"
                f" {p50 / hand_p50:.2f}x |"
            )
            if figures["errors"]:
                lines.append(f"Refusals, {path} writer: {figures['errors']}.")
    return "\n".join(lines)


#: What the section says it measures, above the figures.
ABOUT = (
    "One message shape written two ways (`lab/tables_app.py`): a table document (owner"
    " `org_id`, indexes `by_channel` over org, channel, number and `by_author` over org,"
    " author) and a hand-written aggregate with one event and two read models of the"
    " same groupings, the way `giftcards:issue` writes a card. Each call writes one"
    " journal row. Inserts: closed-loop clients through `Engine.mutation`, counted when"
    " started and acknowledged (durable) in the window, each path on fresh engines,"
    " taking turns; the raw SQLite rows baseline is `lab.bench`'s, run three times in"
    " the same process (before, between and after the rounds). Live queries: one"
    " subscriber to the newest 20 of one channel (the table's by an index range, the"
    " aggregate path's by sorting its read-model entries and reading each post), while"
    " one writer inserts into that channel at a fixed rate; commit -> seen runs from"
    " the moment the batch's journal write returns to the event loop (before read"
    " models fold) to the subscriber task holding a value with the document; call ->"
    " seen adds the call, the decision and the fsync."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=FULL.clients)
    parser.add_argument("--seconds", type=float, default=FULL.seconds, help="counted per round")
    parser.add_argument("--rounds", type=int, default=FULL.rounds, help="per path")
    parser.add_argument("--updates", type=int, default=FULL.updates, help="0: no live query")
    parser.add_argument(
        "--baseline-batches", type=int, default=FULL.baseline_batches, help="1,000 rows each"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    parser.add_argument("--write-doc", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args(argv)
    if min(args.clients, args.rounds, args.baseline_batches) < 1 or args.updates < 0:
        parser.error("--clients, --rounds and --baseline-batches must be at least 1")
    if not 0 < args.seconds <= 600:
        parser.error("--seconds must be above 0 and at most 600")
    if args.quick:
        sizes = QUICK
    else:
        sizes = attrs.evolve(
            FULL,
            clients=args.clients,
            seconds=args.seconds,
            rounds=args.rounds,
            updates=args.updates,
            baseline_batches=args.baseline_batches,
        )
    return run_and_report(
        SECTION,
        command=COMMAND,
        about=ABOUT,
        quick=args.quick,
        write_doc=args.write_doc,
        run=lambda: report(measure(sizes, live=sizes.updates > 0)),
    )


if __name__ == "__main__":
    sys.exit(main())
