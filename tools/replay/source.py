"""The data dir as the replay tool reads it: the journal through a read-only `JournalReader`
(engine.journal), and the registry every aggregate and read model is folded with.

Guarantees: nothing here writes to the data dir. The reader never writes to the journal (the
SQLite backend opens it `mode=ro`; SQLite may still create the WAL index files `-wal`/`-shm`
beside a WAL database, as any reader does). Rows are read a chunk at a time by seq
(`JournalReader.scan`), so memory does not grow with the journal.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from domain.catalog import BOOKING
from domain.model import Module
from engine.journal import JOURNAL_FILE, JournalReader, open_reader
from engine.registry import ENGINE_MODULE, Registry


class NoJournal(Exception):
    """The data dir holds no journal."""


def load_registry(modules: Iterable[Module] | None = None) -> Registry:
    """Every aggregate and projection the engine serves with `modules` (the apps that
    `engine.apps.load_apps` gives; by default the built-in app alone) and the engine's own."""
    return Registry((*(modules or (BOOKING,)), ENGINE_MODULE))


def journal_path(data_dir: Path) -> Path:
    """The journal's file; `NoJournal` if the data dir has none."""
    path = data_dir / JOURNAL_FILE
    if not path.is_file():
        raise NoJournal(f"no journal at {path}")
    return path


def read_journal(data_dir: Path) -> JournalReader:
    """A read-only reader of the data dir's journal (close it when done); `NoJournal` if
    there is none."""
    journal_path(data_dir)
    try:
        return open_reader(data_dir)
    except FileNotFoundError as exc:
        raise NoJournal(str(exc)) from None
