"""Bytecodes and Python calls per durable join on the loop: `python -m lab.opcount [--joins N]`.

A deterministic figure beside the timed ones of `lab.bench` (which a shared, noisy machine
blurs): the engine in-process over 1,000 events, 64 tasks each joining with users never seen
before, a warm-up round untraced, then `--joins` joins traced with `sys.settrace` opcode events
on the loop thread (the commit thread's Python is not counted). It prints the totals per join
and the functions that execute the most bytecodes. Tracing makes it slow (seconds), never
wrong; nothing here asserts.

`--instructions` (needs valgrind) counts machine instructions instead, the C parts included
(SQLite reads on the loop, the codec, hashing, the interpreter itself): the same workload
untraced (`--plain`) run under `valgrind --tool=cachegrind --cache-sim=no --trace-children=yes`
for two numbers of joins, and the difference of the instruction counts over the difference of
joins, for the server's process (the loop and its worker threads) and for the journal's writer
process apart. The garbage collector is tuned as `turnstile serve` tunes it (`engine.tune_gc`),
so its collections are counted as a server makes them. The stream index's catch-up, which runs
every `engine.engine.INDEX_SECONDS` of wall time and so more often per join the slower the
run, is held off in `--plain` (it runs once, as the engine closes), so that the figure does
not depend on how fast valgrind ran.
`--request-ids` makes each task a session numbering its calls (`session_id`, `request_id`),
as a sync client's mutations are: the engine then keeps each one's idempotency record.
Each figure is printed for two pairs of runs, so that what is left of the timing (how the
joins fall into commit batches) shows as their spread.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import trio

import engine.engine as engine_module
from lab.bench import JOIN, create_events, engine_modules
from lab.figures import instructions

TASKS = 64
#: Joins per task in the untraced warm-up round.
WARM_UP = 50


class Counts:
    def __init__(self) -> None:
        self.bytecodes: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            self.calls[_name(frame)] += 1
            return self._local
        return None

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            self.bytecodes[_name(frame)] += 1
        return self._local


def _name(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_qualname}"


async def count(joins: int, *, traced: bool = True, request_ids: bool = False) -> Counts:
    from domain.identity import Identity
    from engine import EngineConfig, open_engine

    counts = Counts()
    with tempfile.TemporaryDirectory(prefix="opcount_") as tmp:
        config = EngineConfig(snapshot_every=0)
        async with open_engine(Path(tmp), config=config, modules=engine_modules()) as engine:
            events = await create_events(engine, 1_000, 100, TASKS)

            async def client(index: int, n: int, tag: str, first: int) -> None:
                rng = random.Random(index)
                session = f"session-{index}" if request_ids else None
                for k in range(n):
                    user = f"{tag}{index}-{k}"
                    args = {"eventId": events[rng.randrange(len(events))], "userId": user}
                    request = first + k if request_ids else None
                    await engine.mutation(
                        JOIN, args, Identity(subject=user), session_id=session, request_id=request
                    )

            rounds = (("w", WARM_UP, False, 1), ("m", joins // TASKS, True, WARM_UP + 1))
            for tag, per_task, measured, first in rounds:
                if measured and traced:
                    sys.settrace(counts.trace)
                try:
                    async with trio.open_nursery() as nursery:
                        for index in range(TASKS):
                            nursery.start_soon(client, index, per_task, tag, first)
                finally:
                    sys.settrace(None)
    return counts


def print_instructions(small: int, large: int, *, request_ids: bool = False) -> None:
    """Two pairs of `--plain` runs under cachegrind: instructions per join, by process."""

    def run(joins: int) -> tuple[int, int]:
        ids = ["--request-ids"] if request_ids else []
        return instructions(["lab.opcount", "--plain", "--joins", str(joins), *ids])

    for attempt in (1, 2):
        main_small, child_small = run(small)
        main_large, child_large = run(large)
        joins = large - small
        print(
            f"pair {attempt} ({small:,} and {large:,} joins): instructions per join: server"
            f" process {(main_large - main_small) / joins:,.0f}, journal writer process"
            f" {(child_large - child_small) / joins:,.0f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=1_280, help="joins traced (default 1,280)")
    parser.add_argument("--top", type=int, default=30, help="functions listed (default 30)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="machine instructions per join under cachegrind (needs valgrind)",
    )
    parser.add_argument("--plain", action="store_true", help="run the joins untraced, quietly")
    parser.add_argument(
        "--request-ids",
        action="store_true",
        help="each task a session numbering its calls, as a sync client's mutations are",
    )
    args = parser.parse_args(argv)
    joins = max(TASKS, args.joins // TASKS * TASKS)
    ids = args.request_ids
    if args.instructions:
        print_instructions(joins, 4 * joins, request_ids=ids)
        return
    if args.plain:
        engine_module.INDEX_SECONDS = 3_600.0
        engine_module.tune_gc()  # as `turnstile serve` runs: its collections are counted too
        trio.run(functools.partial(count, joins, traced=False, request_ids=ids))
        return
    counts = trio.run(functools.partial(count, joins, request_ids=ids))
    total, calls = sum(counts.bytecodes.values()), sum(counts.calls.values())
    per_join = f"{total / joins:,.0f} bytecodes and {calls / joins:.1f} calls per join"
    print(f"{joins} joins traced: {per_join}")
    print("bytecodes/join  calls/join  function")
    for name, value in counts.bytecodes.most_common(args.top):
        print(f"{value / joins:14.1f}  {counts.calls[name] / joins:10.2f}  {name}")


if __name__ == "__main__":
    main()
