"""The data dir as the replay tool reads it: the journal opened read-only, its rows in seq
order a chunk at a time, and the registry every aggregate and read model is folded with.

Guarantees: nothing here writes to the data dir. The journal is opened with a `mode=ro` URI
(SQLite may still create the WAL index files `-wal`/`-shm` beside a WAL database, as any reader
does; the database itself is never written). Rows are fetched `chunk` at a time by seq, so
memory does not grow with the journal.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from domain.catalog import MODULES
from engine.engine import ENGINE_MODULE
from engine.journal import JOURNAL_FILE, Row
from engine.registry import Registry

_COLUMNS = "seq, stream, version, type, schema, payload, at, crc"


class NoJournal(Exception):
    """The data dir holds no journal."""


def load_registry() -> Registry:
    """Every aggregate and projection the engine serves (domain modules + the engine's own),
    so the tool works over whatever domain/catalog.py registers."""
    return Registry((*MODULES, ENGINE_MODULE))


def journal_path(data_dir: Path) -> Path:
    path = data_dir / JOURNAL_FILE
    if not path.is_file():
        raise NoJournal(f"no journal at {path}")
    return path


def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection (`file:...?mode=ro`); any write through it fails."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only=1")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def journal_end(conn: sqlite3.Connection) -> int:
    """The highest seq in the journal (0 if empty)."""
    return int(conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0)


def rows(
    conn: sqlite3.Connection,
    *,
    after_seq: int = 0,
    until_seq: int | None = None,
    streams: Sequence[str] = (),
    types: Sequence[str] = (),
    since_ms: int | None = None,
    until_ms: int | None = None,
    chunk: int = 5_000,
) -> Iterator[Row]:
    """The rows with `after_seq < seq <= until_seq` matching every given filter, in seq order.

    `streams`/`types` keep rows of those streams or types (empty: all); `since_ms <= at <=
    until_ms` bounds the decision time. Checksums are not checked here (callers decide what a
    damaged row means to them)."""
    filters = ["seq > ?"]
    params: list[object] = []
    if until_seq is not None:
        filters.append("seq <= ?")
        params.append(until_seq)
    if streams:
        filters.append(f"stream IN ({', '.join('?' for _ in streams)})")
        params.extend(streams)
    if types:
        filters.append(f"type IN ({', '.join('?' for _ in types)})")
        params.extend(types)
    if since_ms is not None:
        filters.append("at >= ?")
        params.append(since_ms)
    if until_ms is not None:
        filters.append("at <= ?")
        params.append(until_ms)
    sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(filters)} ORDER BY seq LIMIT ?"
    cursor = after_seq
    while True:
        found = conn.execute(sql, [cursor, *params, chunk]).fetchall()
        for raw in found:
            yield Row(*raw)
        if len(found) < chunk:
            return
        cursor = found[-1][0]


def row_at(conn: sqlite3.Connection, seq: int) -> Row | None:
    found = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,)).fetchone()
    return Row(*found) if found else None


def stream_kind(stream: str) -> str:
    return stream.partition("/")[0]
