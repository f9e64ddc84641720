"""Erasing a stream's personal data from the journal and the snapshots (GDPR erasure).

Plan:
- The domain marks an erasure with an `Erasure` event (domain/model.py) and names the personal
  fields of each event type (`Event.personal_fields`). The live state forgets the data when the
  erasure event is folded in; this module makes the files forget it too.
- `scrub_stream` rewrites, in one transaction on its own connection, the payload (and checksum)
  of every earlier event of the stream whose `redacted()` form differs, with SQLite's
  `secure_delete` on so the replaced bytes are overwritten, then checkpoints the WAL with
  TRUNCATE so no old page image survives in it. Row order, sequence numbers and versions are
  untouched; replay still gives the live state, which never depended on the erased values
  after the erasure.
- Then every snapshot is replaced by one built afresh from the (scrubbed) journal alone, and
  older snapshot files are deleted: a snapshot built on a copy of an older one could keep
  freed bytes of it.
- Erasure events are found through a partial index (only their rows are in it, so appends
  pay nothing for it); each one's completion is recorded in `erasures_done` after its fresh
  snapshot is in place. At start, every erasure not recorded as done is done again (the steps
  are idempotent), so a crash mid-way leaves no personal data behind.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from engine import codec
from engine.journal import Row, checksum, verify

log = logging.getLogger("turnstile.erasure")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def scrub_stream(journal_path: Path, stream: str, before_seq: int) -> int:
    """Redact the personal fields of `stream`'s events below `before_seq`; the number of
    rows rewritten. Durable and with no old copy left in the WAL when it returns."""
    conn = _connect(journal_path)
    try:
        rows = [
            Row(*raw)
            for raw in conn.execute(
                "SELECT seq, stream, version, type, schema, payload, at, crc FROM events"
                " WHERE stream = ? AND seq < ? ORDER BY seq",
                (stream, before_seq),
            )
        ]
        updates: list[tuple[bytes, int, int]] = []
        for row in rows:
            verify(row)
            event = codec.decode_event(row.type, row.stream, row.version, row.at, row.payload)
            payload = codec.encode_event(event.redacted())
            if payload != row.payload:
                updates.append((payload, checksum(payload), row.seq))
        if updates:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("UPDATE events SET payload = ?, crc = ? WHERE seq = ?", updates)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        _truncate_wal(conn)
        return len(updates)
    finally:
        conn.close()


def _truncate_wal(conn: sqlite3.Connection) -> None:
    """Copy every WAL frame into the database and empty the WAL file. Readers in the middle of
    a read can hold it back: retry briefly (they finish in milliseconds)."""
    for _ in range(200):
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        time.sleep(0.01)
    raise sqlite3.OperationalError("could not checkpoint the journal's WAL after an erasure")


def _where(types: Sequence[str]) -> str:
    # Type names are Python identifiers (event class names): safe to inline, as a partial
    # index's WHERE clause must be literal.
    for name in types:
        if not name.isidentifier():
            raise ValueError(f"not an event type name: {name!r}")
    return "type IN (" + ", ".join(f"'{name}'" for name in sorted(types)) + ")"


def prepare(journal_path: Path, types: Sequence[str]) -> None:
    """Create the done-table and the partial index of erasure rows for these event types."""
    conn = _connect(journal_path)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS erasures_done"
            " (stream TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,"
            " PRIMARY KEY (stream, seq))"
        )
        if types:
            where = _where(types)
            name = "erasure_rows_" + hashlib.blake2b(where.encode(), digest_size=6).hexdigest()
            conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON events (seq) WHERE {where}")
    finally:
        conn.close()


def pending(journal_path: Path, types: Sequence[str]) -> list[tuple[str, int]]:
    """(stream, seq) of every erasure event not yet recorded as done, oldest first."""
    if not types:
        return []
    conn = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
    try:
        return [
            (str(stream), int(seq))
            for stream, seq in conn.execute(
                f"SELECT e.stream, e.seq FROM events e WHERE {_where(types)}"
                " AND NOT EXISTS (SELECT 1 FROM erasures_done d"
                " WHERE d.stream = e.stream AND d.seq = e.seq) ORDER BY e.seq"
            )
        ]
    finally:
        conn.close()


def mark_done(journal_path: Path, stream: str, seq: int, at: int) -> None:
    conn = _connect(journal_path)
    try:
        conn.execute("INSERT OR IGNORE INTO erasures_done VALUES (?, ?, ?)", (stream, seq, at))
    finally:
        conn.close()
