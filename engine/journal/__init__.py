"""The durable journal: every event, in one global order, every idempotency record, and every
rate limiter's take.

Plan:
- `interface.py` says what a journal is, whatever stores it: the records (`Row`,
  `RequestRecord`, `Take`, `Batch`), the read side (`JournalReader`: scan a range by seq or
  time, read a stream, look up a request or a limiter's latest take, list records, aggregate
  figures) and the writer (`Journal`:
  append a batch atomically and durably, set a damaged tail aside, rewrite payloads for an
  erasure and record it done). The guarantees are in its docstrings.
- `sqlite.py` is the backend (one SQLite file per data dir, WAL, group commit's one fsync per
  batch), and the only module in the code base with SQL on the journal's tables.
- `writer_process.py` (the parent's side) and `writer_child.py` (the child's) run that
  backend's appends in a child process for the engine's group commit (`append_process`), so
  that writing overlaps the event loop.
- Everything else (the engine, the snapshot builder, erasure, `turnstile replay`, the chaos
  ledger) reaches the journal through `open_journal` / `open_reader` and the interface. A
  second backend implements the same two protocols and passes the same contract suite
  (tests/journal/), run over every backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.journal.interface import (
    Batch,
    DamagedRow,
    GroupCount,
    Journal,
    JournalLocked,
    JournalReader,
    JournalReadError,
    RequestRecord,
    Row,
    TailRepair,
    Take,
    Totals,
    checksum,
    verify,
)
from engine.journal.sqlite import JOURNAL_FILE, SqliteJournal
from engine.journal.sqlite import open_reader as _open_sqlite_reader

if TYPE_CHECKING:
    from engine.journal.writer_process import AppendProcess


def open_journal(data_dir: Path, *, synchronous: str = "FULL") -> Journal:
    """Open (creating if need be) the journal of `data_dir` for writing. One writer per data
    dir: raises `JournalLocked` if it is open for writing already. `synchronous`: FULL (each
    append durable across power loss when it returns), EXTRA, or NORMAL (durable across a
    crash of the process only). Close it when done."""
    return SqliteJournal.open(data_dir, synchronous=synchronous)


def append_process(journal: Journal, synchronous: str = "FULL") -> AppendProcess | None:
    """The writer process of `journal` (not started yet: `start()`), for the engine's group
    commit to append through (engine/journal/writer_process.py); None for a journal that has
    none. `synchronous` as the journal was opened with."""
    if isinstance(journal, SqliteJournal):
        # (imported here: the writer child imports this package, and needs none of the
        # parent's side, trio included)
        from engine.journal.writer_process import AppendProcess

        return AppendProcess(journal, synchronous)
    return None


def open_reader(data_dir: Path) -> JournalReader:
    """A read-only reader of the journal of `data_dir` (beside a live writer or without one);
    it never writes. Raises `FileNotFoundError` if the data dir holds no journal."""
    return _open_sqlite_reader(data_dir)


__all__ = [
    "JOURNAL_FILE",
    "Batch",
    "DamagedRow",
    "GroupCount",
    "Journal",
    "JournalLocked",
    "JournalReadError",
    "JournalReader",
    "RequestRecord",
    "Row",
    "TailRepair",
    "Take",
    "Totals",
    "append_process",
    "checksum",
    "open_journal",
    "open_reader",
    "verify",
]
