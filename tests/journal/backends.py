"""The journal backends the contract suite runs on, each with what only a test needs of it:
a way to damage a stored row or take the way a disk does (bytes changed under a valid-looking
checksum).

A new backend adds a class here and a name to `BACKENDS`; tests/journal/test_contract.py then
holds it to everything the SQLite journal is held to.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol

from engine.journal import Journal, JournalReader
from engine.journal.sqlite import INDEX_FILE, JOURNAL_FILE, SqliteJournal, open_reader


class Backend(Protocol):
    name: str

    def open(self, data_dir: Path) -> Journal: ...

    def open_reader(self, data_dir: Path) -> JournalReader: ...

    def damage_payload(self, data_dir: Path, seq: int) -> None:
        """Change the stored payload of row `seq` and nothing else (its checksum stays)."""
        ...

    def damage_take(self, data_dir: Path, limiter: str) -> None:
        """Change the `count` of the limiter's latest stored take and nothing else (its
        checksum stays)."""
        ...

    def stored_bytes(self, data_dir: Path) -> bytes:
        """Everything the backend keeps on disk for this journal, concatenated."""
        ...

    def make_unreadable(self, data_dir: Path) -> None:
        """Damage the closed journal so that the backend cannot read it at all."""
        ...


class Sqlite:
    name = "sqlite"

    def open(self, data_dir: Path) -> Journal:
        return SqliteJournal.open(data_dir)

    def open_reader(self, data_dir: Path) -> JournalReader:
        return open_reader(data_dir)

    def damage_payload(self, data_dir: Path, seq: int) -> None:
        conn = sqlite3.connect(data_dir / JOURNAL_FILE, isolation_level=None)
        try:
            conn.execute(
                "UPDATE events SET payload = CAST(payload || X'20' AS BLOB) WHERE seq = ?", (seq,)
            )
        finally:
            conn.close()

    def damage_take(self, data_dir: Path, limiter: str) -> None:
        conn = sqlite3.connect(data_dir / JOURNAL_FILE, isolation_level=None)
        try:
            conn.execute(
                "UPDATE takes SET count = count + 1"
                " WHERE rid = (SELECT max(rid) FROM takes WHERE limiter = ?)",
                (limiter,),
            )
        finally:
            conn.close()

    def stored_bytes(self, data_dir: Path) -> bytes:
        return b"".join(
            path.read_bytes()
            for path in sorted(data_dir.iterdir())
            if path.name.startswith(JOURNAL_FILE)
        )

    def make_unreadable(self, data_dir: Path) -> None:
        path = data_dir / JOURNAL_FILE
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        path.write_bytes(b"\0" * 100 + path.read_bytes()[100:])  # the header


BACKENDS: dict[str, Backend] = {"sqlite": Sqlite()}


def damage_index(data_dir: Path, damage: str) -> sqlite3.Connection | None:
    """Damage a closed journal's `streams.db`: "deleted" removes it, "garbage" overwrites it
    with bytes that are no database (None returned for both); any other `damage` returns a
    connection to it for the caller to change and close (its WAL files gone either way)."""
    index = data_dir / INDEX_FILE
    for suffix in ("-wal", "-shm"):
        index.with_name(index.name + suffix).unlink(missing_ok=True)
    if damage == "deleted":
        index.unlink()
        return None
    if damage == "garbage":
        index.write_bytes(b"not a database at all" * 100)
        return None
    return sqlite3.connect(index)


#: `events` as journals of formats 1 to 3 created it (tests of their conversion build one).
OLD_EVENTS_TABLE = (
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER"
    " NOT NULL, type TEXT NOT NULL, schema INTEGER NOT NULL, payload BLOB NOT NULL,"
    " at INTEGER NOT NULL, crc INTEGER NOT NULL)"
)
