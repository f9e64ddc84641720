"""Storage faults, long form: a busy engine whose journal fails on and off.

    python -m lab.storage_faults [--duration 60] [--tasks 64] [--seed 1]

Runs the real engine in-process on a temporary data dir (`synchronous=FULL`, appends in a worker
thread rather than the journal's writer process) with the journal's `append` wrapped: for random
spells (0.05-0.5 s) every append raises a fault (disk full, I/O error, database locked, in
turn), then works again. Meanwhile `--tasks` tasks join waiting lists
as fresh users, each attempt once. At the end the engine is closed and recovered from disk, and:

- every acknowledged join is in the recovered state (lost = 0);
- no refused join is (phantoms = 0): a refusal means nothing was written;
- every refusal was `Overloaded` naming its fault;
- writing resumed after every spell without a restart.

Prints the figures; exit status 1 if lost or phantoms is not 0. The test suite runs the same
function for two seconds (tests/engine/test_storage_faults.py).
"""

from __future__ import annotations

import argparse
import errno
import random
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from domain.errors import Overloaded, TurnstileError
from domain.identity import ADMIN, Identity
from engine import Engine, EngineConfig, open_engine

FAULTS: dict[str, Callable[[], BaseException]] = {
    "diskFull": lambda: sqlite3.OperationalError("database or disk is full"),
    "ioError": lambda: OSError(errno.EIO, "Input/output error"),
    "locked": lambda: sqlite3.OperationalError("database is locked"),
}


async def run(
    data_dir: Path, *, seconds: float, tasks: int, seed: int, config: EngineConfig | None = None
) -> dict[str, Any]:
    rng = random.Random(seed)
    # (`writer_process` off: the faults are raised by a wrapper of `Journal.append`, in this
    # process; the writer process's own failures are tests/engine/test_writer_process_faults.py)
    config = config or EngineConfig(snapshot_every=0, run_jobs=False, writer_process=False)
    acknowledged: dict[str, str] = {}  # user -> event
    refused: dict[str, str] = {}
    codes: Counter[str] = Counter()
    spells: Counter[str] = Counter()
    fault: list[Callable[[], BaseException] | None] = [None]
    async with open_engine(data_dir, config=config) as engine:
        events = [await _create_event(engine, i) for i in range(20)]
        real = engine.journal.append

        def append(batch: Any) -> None:
            failure = fault[0]
            if failure is not None:
                raise failure()
            real(batch)

        engine.journal.append = append  # type: ignore[method-assign]
        counter = iter(range(10**9))

        async def joiner() -> None:
            while True:
                user = f"u{next(counter)}"
                event = rng.choice(events)
                try:
                    await engine.mutation(
                        "events:joinWaitingList",
                        {"eventId": event, "userId": user},
                        Identity(subject=user),
                    )
                    acknowledged[user] = event
                except Overloaded as error:
                    refused[user] = event
                    codes[str(error.data().get("fault", "none"))] += 1
                except TurnstileError as error:
                    refused[user] = event
                    codes[error.code] += 1

        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(joiner)
            with trio.move_on_after(seconds):
                kinds = sorted(FAULTS)
                while True:
                    await trio.sleep(rng.uniform(0.05, 0.5))
                    kind = kinds[spells.total() % len(kinds)]
                    fault[0] = FAULTS[kind]
                    spells[kind] += 1
                    await trio.sleep(rng.uniform(0.05, 0.5))
                    fault[0] = None
            fault[0] = None
            nursery.cancel_scope.cancel()
        engine.journal.append = real  # type: ignore[method-assign]
    lost = phantoms = 0
    async with open_engine(data_dir, config=config) as recovered:
        for user, event in acknowledged.items():
            if not await _holds_entry(recovered, event, user):
                lost += 1
        for user, event in refused.items():
            if await _holds_entry(recovered, event, user):
                phantoms += 1
    return {
        "seconds": seconds,
        "attempts": len(acknowledged) + len(refused),
        "acknowledged": len(acknowledged),
        "refused": dict(codes),
        "fault spells": dict(spells),
        "lost": lost,
        "phantoms": phantoms,
    }


async def _create_event(engine: Engine, i: int) -> str:
    args = {
        "name": f"Faulty {i}",
        "description": "",
        "location": "Hall",
        "eventDate": 1_900_000_000_000,
        "price": 100,
        "totalTickets": 1_000_000,
        "orgId": "org_faults",
    }
    return str((await engine.mutation("events:create", args, ADMIN)).value)


async def _holds_entry(engine: Engine, event: str, user: str) -> bool:
    args = {"eventId": event, "userId": user}
    found = await engine.query("waitingList:getQueuePosition", args, ADMIN)
    return found.value is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = trio.run(
            lambda: run(Path(tmp) / "data", seconds=args.duration, tasks=args.tasks, seed=args.seed)
        )
    for name, value in figures.items():
        print(f"{name}: {value}")
    return 0 if figures["lost"] == 0 and figures["phantoms"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
