"""The stream index's catch-up, alone: `python -m lab.index_tail [--rows N] [--every N]`.

`Journal.index_tail` runs in a worker thread of the server every `INDEX_SECONDS` (0.25 s),
copying the rows committed since into `streams.db`'s `stream_index`. Its CPU is not the event
loop's, but on a machine of two cores it shares the second with the journal's writer process
and with anything else the machine runs. This tool measures it on the rows of `lab.bench`'s
case 1 (fresh users joining random events of 1,000: each join a rate-limit take on a limiter
stream of its own, the join, mostly an offer), appended to a fresh journal in batches of 1,000
(`synchronous=NORMAL`: the appends are not what is measured), with a catch-up after every
`--every` rows, as a server catches up about every 7,500 rows at 30,000 rows/s. It prints the
catch-ups' CPU time (`time.thread_time`) per row indexed. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from engine.journal import Batch
from engine.journal.sqlite import SqliteJournal
from lab.bench import realistic_rows

BATCH = 1_000


class Measured(NamedTuple):
    #: CPU seconds of the catch-ups per row they indexed.
    per_row: float
    #: Rows appended before the last catch-up (the ones the catch-ups indexed).
    rows: int
    #: The stream index's position after the last catch-up, and the seq of the last row
    #: appended before it: equal when the catch-ups left nothing behind.
    position: int
    last_seq: int


def measure(rows: int, every: int) -> Measured:
    """The catch-ups of `index_tail` over `rows` rows of case 1, one after each `every`."""
    made = realistic_rows(rows, 1_000, 100, seed=6)
    cpu = 0.0
    indexed = position = last_seq = 0
    with tempfile.TemporaryDirectory(prefix="index_tail_") as tmp:
        journal = SqliteJournal.open(Path(tmp), synchronous="NORMAL")
        try:
            since = 0
            for start in range(0, len(made), BATCH):
                batch = made[start : start + BATCH]
                journal.append(Batch(rows=batch, requests=[]))
                since += len(batch)
                if since >= every:
                    began = time.thread_time()
                    position += journal.index_tail()  # (no records: only rows' seqs moved)
                    cpu += time.thread_time() - began
                    indexed += since
                    last_seq = batch[-1].seq
                    since = 0
        finally:
            journal.close()
    return Measured(cpu / max(1, indexed), indexed, position, last_seq)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=600_000, help="rows appended (600,000)")
    parser.add_argument("--every", type=int, default=8_000, help="rows per catch-up (8,000)")
    args = parser.parse_args(argv)
    per_row = measure(args.rows, max(BATCH, args.every)).per_row
    print(
        f"stream index catch-up: {per_row * 1e6:.2f} us of CPU per row"
        f" ({args.rows:,} rows of case 1, a catch-up every {args.every:,})"
    )


if __name__ == "__main__":
    main()
