"""The durable journal: one SQLite database (WAL) holding every event and every idempotency
record.

Guarantees:
- `append(batch)` writes all rows of a batch in one transaction; when it returns, the batch is
  durable (with `synchronous=FULL`, also across power loss). If it raises, nothing of the batch
  is in the journal.
- Rows are `(seq, stream, version, type, schema, payload, at, crc)`; `seq` is the global,
  gap-free sequence number (the `ts` of the wire), `(stream, version)` is unique, `crc` is the
  CRC-32 of the payload so a damaged row is detected on read rather than trusted.
- The idempotency record `(session_id, request_id) -> result, seq, at` is written in the same
  transaction as the events of its mutation.

One `Journal` holds two connections: the writer (used by one thread at a time: the group
commit moves `append` to a worker thread) and a reader for the event loop's point reads (a
stream's events on activation, an idempotency lookup). WAL lets both proceed at once.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import attrs
import sqlite_utils

from domain.model import Event
from engine import codec

FORMAT_VERSION = 1
JOURNAL_FILE = "journal.db"


class Row(NamedTuple):
    seq: int
    stream: str
    version: int
    type: str
    schema: int
    payload: bytes
    at: int
    crc: int


class RequestRecord(NamedTuple):
    session_id: str
    request_id: int
    result: bytes
    seq: int
    at: int


@attrs.frozen(kw_only=True)
class Batch:
    """What one transaction writes: event rows (already numbered) and idempotency records."""

    rows: Sequence[Row]
    requests: Sequence[RequestRecord]


#: SQLite allows 32,766 bound values per statement; 8 per row.
_ROWS_PER_INSERT = 4_000
#: Rows at the end of the journal checked at every start (`Journal.repair_tail`).
TAIL_WINDOW = 10_000
_INSERT_SQL: dict[int, str] = {}


def _insert_sql(count: int) -> str:
    sql = _INSERT_SQL.get(count)
    if sql is None:
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * count)
        sql = (
            "INSERT INTO events (seq, stream, version, type, schema, payload, at, crc)"
            f" VALUES {values}"
        )
        if len(_INSERT_SQL) < 512:
            _INSERT_SQL[count] = sql
    return sql


class DamagedRow(Exception):
    """A journal row failed its checksum or could not be read."""

    def __init__(self, seq: int, stream: str, reason: str) -> None:
        super().__init__(f"journal row seq={seq} stream={stream}: {reason}")
        self.seq = seq
        self.stream = stream


def checksum(payload: bytes) -> int:
    return zlib.crc32(payload)


def row_of(seq: int, event: Event) -> Row:
    """The journal row of `event` at sequence number `seq` (payload encoded, checksummed)."""
    payload = codec.encode_event(event)
    return Row(
        seq,
        event.stream,
        event.version,
        type(event).__name__,
        type(event).schema,
        payload,
        event.at,
        checksum(payload),
    )


def _connect(path: Path, *, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    if "events" not in db.table_names():
        db.table("events").create(
            {
                "seq": int,
                "stream": str,
                "version": int,
                "type": str,
                "schema": int,
                "payload": bytes,
                "at": int,
                "crc": int,
            },
            pk="seq",
            not_null={"stream", "version", "type", "schema", "payload", "at", "crc"},
        )
        db.table("events").create_index(["stream", "version"], unique=True)
    if "requests" not in db.table_names():
        db.table("requests").create(
            {"session_id": str, "request_id": int, "result": bytes, "seq": int, "at": int},
            pk=("session_id", "request_id"),
            not_null={"result", "seq", "at"},
        )
    if "meta" not in db.table_names():
        db.table("meta").create({"key": str, "value": str}, pk="key")
        db.table("meta").insert({"key": "format", "value": str(FORMAT_VERSION)})
    found = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if found is None or int(found[0]) != FORMAT_VERSION:
        raise RuntimeError(f"journal format {found} is not {FORMAT_VERSION}")


@attrs.frozen(kw_only=True)
class TailRepair:
    """What `Journal.repair_tail` set aside: rows from `first_seq` on (a damaged or missing
    row there), moved to the `quarantine` table, and the idempotency records that pointed at
    them (moved to `quarantine_requests`)."""

    first_seq: int
    last_seq: int
    rows: int
    requests: int
    reason: str


class Journal:
    """The journal of one data dir. Open with `Journal.open(data_dir)`; close when done."""

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader

    @classmethod
    def open(cls, data_dir: Path, *, synchronous: str = "FULL") -> Journal:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, EXTRA or NORMAL, not {synchronous}")
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / JOURNAL_FILE
        writer = _connect(path, synchronous=synchronous)
        create_schema(writer)
        reader = _connect(path, synchronous=synchronous)
        return cls(path, writer, reader)

    def close(self) -> None:
        self._reader.close()
        self._writer.close()

    def repair_tail(self, window: int = TAIL_WINDOW) -> TailRepair | None:
        """Check the last `window` rows (checksums, and sequence numbers without a gap); if one
        is damaged or missing, set it and every row after it aside, so the journal ends at the
        last good commit, and return what was set aside (None if the tail is sound).

        A torn write inside SQLite never reaches here (its WAL checksums drop an unfinished
        commit); this catches what SQLite cannot see: a payload whose bytes changed on disk.
        The rows are kept in `quarantine` for an operator, never silently dropped."""
        conn = self._writer
        end = self.last_seq()
        start = max(1, end - window + 1)
        expected = start
        bad: tuple[int, str] | None = None
        for raw in conn.execute(
            "SELECT seq, stream, version, type, schema, payload, at, crc FROM events"
            " WHERE seq >= ? ORDER BY seq",
            (start,),
        ):
            row = Row(*raw)
            if row.seq != expected:
                bad = (expected, f"row {expected} is missing (next is {row.seq})")
                break
            if checksum(row.payload) != row.crc:
                bad = (row.seq, f"row {row.seq} of {row.stream} fails its checksum")
                break
            expected += 1
        if bad is None:
            return None
        first, reason = bad
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS quarantine AS SELECT * FROM events WHERE 0")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS quarantine_requests AS SELECT * FROM requests WHERE 0"
            )
            rows = conn.execute(
                "INSERT INTO quarantine SELECT * FROM events WHERE seq >= ?", (first,)
            ).rowcount
            requests = conn.execute(
                "INSERT INTO quarantine_requests SELECT * FROM requests WHERE seq >= ?", (first,)
            ).rowcount
            conn.execute("DELETE FROM events WHERE seq >= ?", (first,))
            conn.execute("DELETE FROM requests WHERE seq >= ?", (first,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return TailRepair(
            first_seq=first, last_seq=end, rows=rows, requests=requests, reason=reason
        )

    # -- writing (one thread at a time) -------------------------------------------------

    def append(self, batch: Batch) -> None:
        """Write the batch in one transaction and make it durable, or write nothing and raise."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Multi-row INSERTs, not executemany: executemany gives up the interpreter lock
            # around every row and, with the event loop busy, waits to get it back each time.
            rows = batch.rows
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                conn.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
            if batch.requests:
                conn.executemany(
                    "INSERT INTO requests (session_id, request_id, result, seq, at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    batch.requests,
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- reading (event loop) -----------------------------------------------------------

    def last_seq(self) -> int:
        row = self._reader.execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def holds_records(self, *, ignoring_kinds: tuple[str, ...] = ()) -> bool:
        """True if any event belongs to a stream whose kind is not in `ignoring_kinds` (the
        engine's own bookkeeping, such as job schedules, does not make a journal hold data)."""
        where = " AND ".join("stream NOT LIKE ?" for _ in ignoring_kinds) or "1"
        row = self._reader.execute(
            f"SELECT 1 FROM events WHERE {where} LIMIT 1",
            [f"{kind}/%" for kind in ignoring_kinds],
        ).fetchone()
        return row is not None

    def read_stream(self, stream: str, after_version: int = 0) -> list[Row]:
        """The stream's rows after `after_version`, in version order, checksums verified."""
        rows = self._reader.execute(
            "SELECT seq, stream, version, type, schema, payload, at, crc FROM events"
            " WHERE stream = ? AND version > ? ORDER BY version",
            (stream, after_version),
        ).fetchall()
        out = [Row(*r) for r in rows]
        for row in out:
            verify(row)
        return out

    def lookup_request(self, session_id: str, request_id: int) -> RequestRecord | None:
        found = self._reader.execute(
            "SELECT session_id, request_id, result, seq, at FROM requests"
            " WHERE session_id = ? AND request_id = ?",
            (session_id, request_id),
        ).fetchone()
        return RequestRecord(*found) if found else None


def verify(row: Row) -> None:
    if checksum(row.payload) != row.crc:
        raise DamagedRow(row.seq, row.stream, "payload checksum mismatch")


def scan(
    path: Path,
    *,
    after_seq: int = 0,
    until_seq: int | None = None,
    types: Sequence[str] | None = None,
    chunk: int = 20_000,
) -> Iterator[Row]:
    """Every row with `after_seq < seq <= until_seq` in seq order, on a private read-only
    connection (safe from any thread). `types` limits the rows to those event types."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only=1")
        filters = ["seq > ?"]
        params: list[object] = []
        if until_seq is not None:
            filters.append("seq <= ?")
            params.append(until_seq)
        if types is not None:
            filters.append(f"type IN ({', '.join('?' for _ in types)})")
            params.extend(types)
        sql = (
            "SELECT seq, stream, version, type, schema, payload, at, crc FROM events"
            f" WHERE {' AND '.join(filters)} ORDER BY seq LIMIT {chunk}"
        )
        cursor = after_seq
        while True:
            rows = conn.execute(sql, [cursor, *params]).fetchall()
            if not rows:
                return
            for raw in rows:
                yield Row(*raw)
            cursor = rows[-1][0]
    finally:
        conn.close()
