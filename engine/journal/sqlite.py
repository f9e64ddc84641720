"""The SQLite journal: one database file per data dir (`journal.db`, WAL), holding the rows
(`events`), the idempotency records (`requests`), the erasures done (`erasures_done`) and the
format (`meta`); `quarantine` and `quarantine_requests` appear when a damaged tail is set aside.
Beside it, `streams.db` is the stream index: which seqs hold each stream's versions. This module
is the only one that knows these tables.

The commit path appends rows in `seq` order only (`seq` is the rowid: each batch goes to the end
of the table), so a commit dirties a few pages whatever the journal's size. Per-stream lookups
are served by the stream index, kept off the commit path (format 2; a format-1 journal, which
had a unique `(stream, version)` index on `events`, is converted when opened for writing):
- `stream_index(stream, version, seq)` in `streams.db`, with `indexed.seq` the position up to
  which it holds every row. `index_tail` copies the rows after that position into it, in SQL, on
  a connection of its own (the engine runs it in a worker thread every `INDEX_EVERY` rows or
  seconds); it writes only `streams.db`, so it never holds the journal's write lock.
- a read of one stream (`read_stream`) takes its indexed rows by seq plus the rows after
  `indexed.seq` (the unindexed tail, a short range scan), in one statement, so it sees every
  committed row whatever the indexer is doing; each row is checked (its stream, versions
  ascending) and any disagreement falls back to a full scan of the journal (the index is
  derived data: it is never trusted over the journal).
- `streams.db` is written with `synchronous=OFF`: everything in it can be derived again from the
  journal. At open it is checked against the journal (its position must hold the row the index
  says it holds) and rebuilt from scratch if it is missing, unreadable or disagrees.
- "No version written twice" is checked by `append` before it writes: each stream's first
  version in a batch must follow the highest version the journal holds for it (indexed or in the
  tail), and versions within a batch must ascend; otherwise the batch writes nothing and raises
  `sqlite3.IntegrityError`, as the unique index did. The highest version of a stream in the
  tail is not read from the tail (a scan of every unindexed row per batch: most of the writer's
  time) but kept in memory (`_tops`): the writer is the journal's only one (`open` takes the
  data dir's lock, `LOCK_FILE`), so the rows after the index's position are exactly those of
  the tail when the journal was opened (none: `open` catches the index up) and those its own
  appends wrote since. Each append looks the other streams up in the index, in statements that
  answer only the streams that would be written twice (none, normally: one step each).

Guarantees beyond `engine.journal.interface`:
- `append` is one `BEGIN IMMEDIATE` transaction; with `synchronous=FULL` the batch is durable
  across power loss when it returns. Rows go in as multi-row INSERTs (see `append`).
- A `SqliteJournal` holds two connections: the writer (one thread at a time: the group commit
  moves `append` to a worker thread) and a reader for the event loop. WAL lets both proceed
  at once; `reader()` opens a further read-only connection (`mode=ro`, `query_only`) for
  another thread, and `open_reader` one on a data dir without opening it for writing.
- A reader's calls raise `JournalReadError` for what SQLite cannot read (a damaged file, an
  I/O error, a lock held past the busy timeout); the writer's raise SQLite's own errors, which
  the engine names for clients (`storage_fault`).
- `rewrite_payloads` and the erasure bookkeeping use a connection of their own, so they run
  in a worker thread beside the writer; `rewrite_payloads` writes with `secure_delete` on and
  then checkpoints the WAL with TRUNCATE, so no image of a replaced page survives.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.journal.interface import (
    Batch,
    GroupCount,
    Grouping,
    JournalLocked,
    JournalReadError,
    RequestRecord,
    Row,
    TailRepair,
    Totals,
    checksum,
    verify,
)

log = logging.getLogger("turnstile.journal")

FORMAT_VERSION = 2
JOURNAL_FILE = "journal.db"
#: Held (an exclusive `flock`) by the one `SqliteJournal` writing a data dir, while it is open.
LOCK_FILE = "journal.lock"
#: The stream index beside the journal (derived from it; see the module docstring).
INDEX_FILE = "streams.db"
#: The unique index format 1 kept on `events`, dropped when a journal is converted.
_FORMAT_1_INDEX = "idx_events_stream_version"

_COLUMNS = "seq, stream, version, type, schema, payload, at, crc"
_REQUEST_COLUMNS = "session_id, request_id, result, seq, at"
#: SQLite allows 32,766 bound values per statement; 8 per row.
_ROWS_PER_INSERT = 4_000
#: Streams looked up in the stream index per statement by the append's version check.
_STREAMS_PER_LOOKUP = 500
#: Index rows indexed between two prunings of the writer's `_tops`.
_PRUNE_EVERY = 50_000
#: Rows at the end of the journal checked at every start (`SqliteJournal.repair_tail`).
TAIL_WINDOW = 10_000
_INSERT_SQL: dict[int, str] = {}
#: And 5 per idempotency record.
_REQUESTS_PER_INSERT = 6_000
_INSERT_REQUESTS_SQL: dict[int, str] = {}
_GROUP_COLUMN: dict[str, str] = {
    "type": "type",
    "kind": "substr(stream, 1, instr(stream || '/', '/') - 1)",
    "stream": "stream",
}


def _insert_sql(count: int) -> str:
    sql = _INSERT_SQL.get(count)
    if sql is None:
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * count)
        sql = f"INSERT INTO events ({_COLUMNS}) VALUES {values}"
        if len(_INSERT_SQL) < 512:
            _INSERT_SQL[count] = sql
    return sql


def _insert_requests_sql(count: int) -> str:
    sql = _INSERT_REQUESTS_SQL.get(count)
    if sql is None:
        values = ", ".join(["(?, ?, ?, ?, ?)"] * count)
        sql = f"INSERT INTO requests ({_REQUEST_COLUMNS}) VALUES {values}"
        if len(_INSERT_REQUESTS_SQL) < 512:
            _INSERT_REQUESTS_SQL[count] = sql
    return sql


def _connect(path: Path, *, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path.resolve().as_uri(), uri=True, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection (`file:...?mode=ro`); any write through it fails. SQLite may
    still create the WAL index files beside the database, as any reader does."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only=1")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _attach_index(conn: sqlite3.Connection, journal_path: Path, *, read_only: bool) -> bool:
    """Attach the stream index as `idx` to a journal connection; False (nothing attached) if a
    read-only connection finds no index to read."""
    path = journal_path.with_name(INDEX_FILE)
    if read_only and not path.is_file():
        return False
    uri = path.resolve().as_uri() + ("?mode=ro" if read_only else "")
    conn.execute("ATTACH DATABASE ? AS idx", (uri,))
    return True


def _create_index_schema(conn: sqlite3.Connection, schema: str = "main") -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.stream_index (stream TEXT NOT NULL,"
        " version INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (stream, version))"
        " WITHOUT ROWID"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.indexed"
        " (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL)"
    )
    conn.execute(f"INSERT OR IGNORE INTO {schema}.indexed VALUES (0, 0)")


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the journal's tables in a new database (or check an existing one's format)."""
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
    if found is not None and int(found[0]) == 1:
        return  # converted by `SqliteJournal.open` once the stream index is built
    if found is None or int(found[0]) != FORMAT_VERSION:
        raise RuntimeError(f"journal format {found} is not {FORMAT_VERSION}")


def _format(conn: sqlite3.Connection) -> int:
    [(value,)] = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchall()
    return int(value)


class SqliteReader:
    """`JournalReader` over one SQLite connection (see `engine.journal.interface`)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, indexed: bool) -> None:
        self.path = path
        self._conn = conn
        #: The stream index is attached as `idx` (a reader of a journal without one scans).
        self._indexed = indexed

    def close(self) -> None:
        self._conn.close()

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Every row of `sql`; what SQLite cannot read is a `JournalReadError`."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise JournalReadError(f"{self.path.name}: {exc}") from exc

    @contextmanager
    def consistent(self) -> Iterator[None]:
        if self._conn.in_transaction:  # already inside one: that position holds
            yield
            return
        self._query("BEGIN")
        try:
            yield
        finally:
            self._query("COMMIT")  # a read transaction: nothing to keep or undo

    def last_seq(self) -> int:
        [(seq,)] = self._query("SELECT max(seq) FROM events")
        return int(seq or 0)

    def scan(
        self,
        *,
        after_seq: int = 0,
        until_seq: int | None = None,
        streams: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        chunk: int = 20_000,
    ) -> Iterator[Row]:
        if (streams is not None and not streams) or (types is not None and not types):
            return
        filters = ["seq > ?"]
        params: list[object] = []
        if until_seq is not None:
            filters.append("seq <= ?")
            params.append(until_seq)
        if streams is not None:
            filters.append(f"stream IN ({', '.join('?' for _ in streams)})")
            params.extend(streams)
        if types is not None:
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
            found = self._query(sql, [cursor, *params, chunk])
            for raw in found:
                yield Row(*raw)
            if len(found) < chunk:
                return
            cursor = found[-1][0]

    def row_at(self, seq: int) -> Row | None:
        found = self._query(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,))
        return Row(*found[0]) if found else None

    def first_seq_after(self, at_ms: int) -> int | None:
        [(seq,)] = self._query("SELECT min(seq) FROM events WHERE at > ?", (at_ms,))
        return None if seq is None else int(seq)

    def read_stream(self, stream: str, after_version: int = 0) -> list[Row]:
        params = (stream, after_version)
        found = self._query(_INDEXED_STREAM_SQL if self._indexed else _SCAN_STREAM_SQL, params)
        out = [Row(*r) for r in found]
        if not _stream_rows_agree(out, stream, after_version):
            log.error("the stream index disagrees with the journal on %s; scanning", stream)
            out = [Row(*r) for r in self._query(_SCAN_STREAM_SQL, (stream, after_version))]
        for row in out:
            verify(row)
        return out

    def streams(self) -> Iterator[str]:
        # The index's (stream, version) order walked once, then the unindexed tail.
        sql = (
            "SELECT DISTINCT stream FROM idx.stream_index UNION"
            " SELECT stream FROM events WHERE seq > (SELECT seq FROM idx.indexed)"
            if self._indexed
            else "SELECT DISTINCT stream FROM events"
        )
        try:
            for (stream,) in self._conn.execute(sql):
                yield stream
        except sqlite3.DatabaseError as exc:
            raise JournalReadError(f"{self.path.name}: {exc}") from exc

    def last_request_id(self, session_id: str) -> int:
        [(found,)] = self._query(
            "SELECT max(request_id) FROM requests WHERE session_id = ?", (session_id,)
        )
        return int(found or 0)

    def sessions(self) -> Iterator[str]:
        # An index-only walk of the requests' primary key (session_id, request_id).
        try:
            for (session_id,) in self._conn.execute("SELECT DISTINCT session_id FROM requests"):
                yield session_id
        except sqlite3.DatabaseError as exc:
            raise JournalReadError(f"{self.path.name}: {exc}") from exc

    def lookup_request(self, session_id: str, request_id: int) -> RequestRecord | None:
        found = self._query(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE session_id = ? AND request_id = ?",
            (session_id, request_id),
        )
        return RequestRecord(*found[0]) if found else None

    def requests(
        self, *, after_seq: int = 0, until_seq: int | None = None, chunk: int = 5_000
    ) -> Iterator[RequestRecord]:
        filters = ["seq > ?"]
        params: list[object] = [after_seq]
        if until_seq is not None:
            filters.append("seq <= ?")
            params.append(until_seq)
        where = " AND ".join(filters)
        order = f"ORDER BY session_id, request_id LIMIT {int(chunk)}"
        found = [
            RequestRecord(*r)
            for r in self._query(
                f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE {where} {order}", params
            )
        ]
        while found:
            yield from found
            if len(found) < chunk:
                return
            last = found[-1]
            found = [
                RequestRecord(*r)
                for r in self._query(
                    f"SELECT {_REQUEST_COLUMNS} FROM requests"
                    f" WHERE {where} AND (session_id, request_id) > (?, ?) {order}",
                    [*params, last.session_id, last.request_id],
                )
            ]

    def totals(self) -> Totals:
        [(events, payload, first_seq, last_seq, first_at, last_at, streams)] = self._query(
            "SELECT count(*), coalesce(sum(length(payload)), 0), min(seq), max(seq),"
            " min(at), max(at), count(DISTINCT stream) FROM events"
        )
        return Totals(
            events=events,
            payload_bytes=payload,
            first_seq=first_seq,
            last_seq=last_seq,
            first_at=first_at,
            last_at=last_at,
            streams=streams,
        )

    def counts(self, by: Grouping, *, limit: int | None = None) -> list[GroupCount]:
        column = _GROUP_COLUMN[by]
        sql = (
            f"SELECT {column} AS name, count(*) AS n, sum(length(payload)) AS b FROM events"
            " GROUP BY name ORDER BY n DESC, b DESC, name"
        )
        params: tuple[int, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return [GroupCount(n, e, b) for n, e, b in self._query(sql, params)]

    def rate(self, step_ms: int) -> dict[int, int]:
        if step_ms < 1:
            raise ValueError("a time bucket is at least 1 ms")
        found = self._query("SELECT at / ? AS b, count(*) FROM events GROUP BY b", (step_ms,))
        return {int(bucket): int(count) for bucket, count in found}


def _stream_rows_agree(rows: list[Row], stream: str, after_version: int) -> bool:
    last = after_version
    for row in rows:
        if row.stream != stream or row.version <= last:
            return False
        last = row.version
    return True


#: One stream's rows after a version, in one statement (one position): through the stream index
#: up to its position (the index's order, joined to `events` by rowid), then the unindexed tail
#: after it (a range scan of the last rows). The two parts are disjoint by seq.
_INDEXED_STREAM_SQL = (
    "SELECT " + ", ".join(f"e.{c.strip()}" for c in _COLUMNS.split(",")) + " FROM"
    " idx.stream_index i JOIN events e ON e.seq = i.seq"
    " WHERE i.stream = ?1 AND i.version > ?2"
    f" UNION ALL SELECT {_COLUMNS} FROM events WHERE seq > (SELECT seq FROM idx.indexed)"
    " AND stream = ?1 AND version > ?2"
    " ORDER BY 3"
)
#: The same without an index (a full scan): for a reader of a journal that has none, and when
#: the index disagrees with the journal.
_SCAN_STREAM_SQL = (
    f"SELECT {_COLUMNS} FROM events WHERE stream = ?1 AND version > ?2 ORDER BY version"
)


def _index_is_sound(conn: sqlite3.Connection) -> bool:
    """Does the attached index describe this journal? Its position must not be past the
    journal's end, and the row at its position must be the one it indexes there."""
    try:
        [(position,)] = conn.execute("SELECT seq FROM idx.indexed").fetchall()
        if position == 0:
            return not conn.execute("SELECT 1 FROM idx.stream_index LIMIT 1").fetchall()
        found = conn.execute(
            "SELECT e.stream, e.version, i.seq FROM events e"
            " LEFT JOIN idx.stream_index i ON i.stream = e.stream AND i.version = e.version"
            " WHERE e.seq = ?",
            (position,),
        ).fetchall()
        return bool(found) and found[0][2] == position
    except sqlite3.DatabaseError:
        return False


def open_reader(data_dir: Path) -> SqliteReader:
    """A read-only reader of the journal in `data_dir`; nothing is written to the database.
    Raises `FileNotFoundError` if there is no journal, `JournalReadError` if it cannot be
    opened."""
    path = data_dir / JOURNAL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no journal at {path}")
    try:
        return _open_reader(path)
    except sqlite3.DatabaseError as exc:
        raise JournalReadError(f"{path.name}: {exc}") from exc


def _open_reader(path: Path) -> SqliteReader:
    conn = _connect_ro(path)
    indexed = False
    try:
        if _attach_index(conn, path, read_only=True):
            indexed = _index_is_sound(conn)
            if not indexed:
                conn.execute("DETACH DATABASE idx")
    except sqlite3.DatabaseError:
        indexed = False  # an index it cannot read: scan instead
    return SqliteReader(path, conn, indexed=indexed)


class SqliteJournal(SqliteReader):
    """`Journal` on SQLite. Open with `SqliteJournal.open(data_dir)`; close when done. Its
    own reads go through the event loop's reader connection."""

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        indexer: sqlite3.Connection,
    ):
        super().__init__(path, reader, indexed=True)
        self._writer = writer
        #: The stream index's own connection (`streams.db` as main, the journal read-only).
        self._indexer = indexer
        self._lock: int | None = None
        #: stream -> (highest version, its seq) of each stream this journal appended to after
        #: the index position it last pruned at (see the module docstring); the writer's own.
        self._tops: dict[str, tuple[int, int]] = {}
        #: The stream index's position after its last catch-up (set by `index_tail`).
        self._index_position = 0
        #: The position the writer last pruned `_tops` at.
        self._pruned_at = 0

    @classmethod
    def open(cls, data_dir: Path, *, synchronous: str = "FULL") -> SqliteJournal:
        """Open (creating it if need be) the journal of `data_dir`. `synchronous` is SQLite's
        setting: FULL (durable across power loss), EXTRA, or NORMAL (durable across a crash of
        the process only)."""
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, EXTRA or NORMAL, not {synchronous}")
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = _lock_data_dir(data_dir)
        try:
            journal = cls._open(data_dir, synchronous)
        except BaseException:
            os.close(lock)
            raise
        journal._lock = lock
        return journal

    @classmethod
    def _open(cls, data_dir: Path, synchronous: str) -> SqliteJournal:
        path = data_dir / JOURNAL_FILE
        writer = _connect(path, synchronous=synchronous)
        create_schema(writer)
        indexer = _open_indexer(path)
        # Read-only for the writer and the loop's reader: the writer's BEGIN IMMEDIATE must not
        # take the index's write lock (the indexer writes it beside the appends).
        _attach_index(writer, path, read_only=True)
        if not _index_is_sound(writer):
            log.warning("the stream index does not match the journal: rebuilding it")
            _reset_index(indexer)
        reader = _connect(path, synchronous=synchronous)
        _attach_index(reader, path, read_only=True)
        journal = cls(path, writer, reader, indexer)
        journal._catch_up()  # what the last run left unindexed: the tail is empty after
        if _format(writer) == 1:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute(f"DROP INDEX IF EXISTS {_FORMAT_1_INDEX}")
            writer.execute("UPDATE meta SET value = ? WHERE key = 'format'", (str(FORMAT_VERSION),))
            writer.execute("COMMIT")
            log.info(
                "journal converted to format %d (stream index in %s)", FORMAT_VERSION, INDEX_FILE
            )
        return journal

    def close(self) -> None:
        self._conn.close()
        self._writer.close()
        self._indexer.close()
        if self._lock is not None:
            lock, self._lock = self._lock, None
            os.close(lock)  # (and with it the flock)

    def _catch_up(self) -> None:
        """Index every committed row; with no row in the tail, `_tops` starts empty."""
        while self.index_tail():
            pass
        self._tops = {}
        self._pruned_at = self._index_position

    def reader(self) -> SqliteReader:
        return _open_reader(self.path)

    # -- the stream index (one thread at a time, beside the writer) -----------------------

    def index_tail(self, max_rows: int = 200_000) -> int:
        """Copy up to `max_rows` committed rows after the index's position into the stream
        index and move the position past them, in one transaction of `streams.db` (never the
        journal's write lock). Returns how many seqs it moved over (0: up to date)."""
        conn = self._indexer
        conn.execute(
            "BEGIN IMMEDIATE"
        )  # the index's write lock only: the journal is attached read-only
        try:
            [(position,)] = conn.execute("SELECT seq FROM indexed").fetchall()
            [(end,)] = conn.execute("SELECT max(seq) FROM j.events").fetchall()
            until = min(int(end or 0), position + max_rows)
            if until <= position:
                conn.execute("COMMIT")
                self._index_position = position
                return 0
            conn.execute(
                "INSERT INTO stream_index SELECT stream, version, seq FROM j.events"
                " WHERE seq > ? AND seq <= ?",
                (position, until),
            )
            conn.execute("UPDATE indexed SET seq = ?", (until,))
            conn.execute("COMMIT")
            self._index_position = until
            return int(until - position)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def unindexed(self) -> int:
        """Rows committed after the stream index's position (the tail reads scan)."""
        [(count,)] = self._query("SELECT max(seq) - (SELECT seq FROM idx.indexed) FROM events")
        return int(count or 0)

    # -- writing (one thread at a time) -------------------------------------------------

    def append(self, batch: Batch) -> None:
        conn = self._writer
        tops = self._tops
        conn.execute("BEGIN IMMEDIATE")
        try:
            written = _check_versions(conn, batch.rows, tops)
            # Multi-row INSERTs, not executemany (the rows, then the idempotency records):
            # executemany gives up the interpreter lock around every row and, with the event
            # loop busy, waits to get it back each time.
            rows = batch.rows
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                conn.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
            requests = batch.requests
            for start in range(0, len(requests), _REQUESTS_PER_INSERT):
                part = requests[start : start + _REQUESTS_PER_INSERT]
                conn.execute(_insert_requests_sql(len(part)), [v for r in part for v in r])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        tops.update(written)
        position = self._index_position
        if position - self._pruned_at >= _PRUNE_EVERY:
            self._tops = {s: top for s, top in tops.items() if top[1] > position}
            self._pruned_at = position

    def repair_tail(self, window: int = TAIL_WINDOW) -> TailRepair | None:
        """See `Journal.repair_tail`. The rows set aside go to the `quarantine` table, their
        idempotency records to `quarantine_requests`.

        A torn write inside SQLite never reaches here (its WAL checksums drop an unfinished
        commit); this catches what SQLite cannot see: a payload whose bytes changed on disk."""
        conn = self._writer
        end = self.last_seq()
        start = max(1, end - window + 1)
        expected = start
        bad: tuple[int, str] | None = None
        for raw in conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE seq >= ? ORDER BY seq", (start,)
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
        # Seqs from `first` on will be written again: the index forgets everything first and
        # is built again from what stays (a crash in between leaves it empty: rebuilt at open).
        _reset_index(self._indexer)
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
        self._catch_up()
        return TailRepair(
            first_seq=first, last_seq=end, rows=rows, requests=requests, reason=reason
        )

    # -- reading ------------------------------------------------------------------------

    def holds_records(self, *, ignoring_kinds: tuple[str, ...] = ()) -> bool:
        where = " AND ".join("stream NOT LIKE ?" for _ in ignoring_kinds) or "1"
        found = self._query(
            f"SELECT 1 FROM events WHERE {where} LIMIT 1",
            [f"{kind}/%" for kind in ignoring_kinds],
        )
        return bool(found)

    # -- erasure (own connection: safe from any thread) ---------------------------------

    def _erasure_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def rewrite_payloads(
        self, stream: str, before_seq: int, rewrite: Callable[[Row], tuple[int, bytes]]
    ) -> int:
        conn = self._erasure_connection()
        try:
            rows = [
                Row(*raw)
                for raw in conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND seq < ? ORDER BY seq",
                    (stream, before_seq),
                )
            ]
            updates: list[tuple[int, bytes, int, int]] = []
            for row in rows:
                verify(row)
                schema, payload = rewrite(row)
                if payload != row.payload or schema != row.schema:
                    updates.append((schema, payload, checksum(payload), row.seq))
            if updates:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "UPDATE events SET schema = ?, payload = ?, crc = ? WHERE seq = ?",
                        updates,
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            _truncate_wal(conn)
            return len(updates)
        finally:
            conn.close()

    def unfinished_erasures(self, types: Sequence[str]) -> list[tuple[str, int]]:
        """See `Journal.unfinished_erasures`: the rows are found through a partial index over
        these types (created here if missing; only their rows are in it, so appends pay
        nothing for it)."""
        conn = self._erasure_connection()
        try:
            _create_erasures_done(conn)
            if not types:
                return []
            where = _types_clause(types)
            name = "erasure_rows_" + hashlib.blake2b(where.encode(), digest_size=6).hexdigest()
            conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON events (seq) WHERE {where}")
            return [
                (str(stream), int(seq))
                for stream, seq in conn.execute(
                    f"SELECT e.stream, e.seq FROM events e WHERE {where}"
                    " AND NOT EXISTS (SELECT 1 FROM erasures_done d"
                    " WHERE d.stream = e.stream AND d.seq = e.seq) ORDER BY e.seq"
                )
            ]
        finally:
            conn.close()

    def mark_erasure_done(self, stream: str, seq: int, at: int) -> None:
        conn = self._erasure_connection()
        try:
            _create_erasures_done(conn)
            conn.execute("INSERT OR IGNORE INTO erasures_done VALUES (?, ?, ?)", (stream, seq, at))
        finally:
            conn.close()


def _open_indexer(journal_path: Path) -> sqlite3.Connection:
    """The stream index's own connection: `streams.db` (created, or recreated if it cannot be
    read) with the journal attached read-only as `j`."""
    path = journal_path.with_name(INDEX_FILE)
    for attempt in range(2):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # derived data: rebuilt, never trusted
            conn.execute("PRAGMA busy_timeout=5000")
            _create_index_schema(conn)
            conn.execute("SELECT count(*) FROM indexed").fetchall()
            conn.execute("ATTACH DATABASE ? AS j", (journal_path.resolve().as_uri() + "?mode=ro",))
            return conn
        except sqlite3.DatabaseError:
            conn.close()
            if attempt:
                raise
            log.warning("the stream index %s cannot be read: rebuilding it", path)
            for stale in (
                path,
                path.with_name(path.name + "-wal"),
                path.with_name(path.name + "-shm"),
            ):
                stale.unlink(missing_ok=True)
    raise AssertionError("unreachable")


def _reset_index(indexer: sqlite3.Connection) -> None:
    indexer.execute("BEGIN IMMEDIATE")
    try:
        indexer.execute("DELETE FROM stream_index")
        indexer.execute("UPDATE indexed SET seq = 0")
        indexer.execute("COMMIT")
    except BaseException:
        if indexer.in_transaction:
            indexer.execute("ROLLBACK")
        raise


def _check_versions(
    conn: sqlite3.Connection, rows: Sequence[Row], tops: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """Refuse a batch that would write a stream's version twice or out of order (see the module
    docstring): each stream's first version in `rows` must follow the highest it holds, from
    `tops` (the tail) or else the stream index, read inside the append's transaction. Returns
    each stream's last (version, seq) in `rows`, for `tops` once the batch is committed."""
    first: dict[str, int] = {}
    last: dict[str, tuple[int, int]] = {}
    for row in rows:
        stream, version = row.stream, row.version
        previous = last.get(stream)
        if previous is None:
            first[stream] = version
        elif version <= previous[0]:
            raise sqlite3.IntegrityError(
                f"{stream}: version {version} after {previous[0]} in one batch"
            )
        last[stream] = (version, row.seq)
    others: list[object] = []
    for stream, version in first.items():
        top = tops.get(stream)
        if top is None:
            others += (stream, version)
        elif version <= top[0]:
            raise _written_twice(stream, version, top[0])
    step = 2 * _STREAMS_PER_LOOKUP
    for start in range(0, len(others), step):
        chunk = others[start : start + step]
        values = ", ".join(["(?, ?)"] * (len(chunk) // 2))
        clash = conn.execute(
            f"WITH b(name, first) AS (VALUES {values}) SELECT name, first, top FROM"
            " (SELECT name, first, (SELECT max(version) FROM idx.stream_index"
            " WHERE stream = name) AS top FROM b) WHERE top >= first LIMIT 1",
            chunk,
        ).fetchall()
        if clash:
            [(stream, version, top)] = clash
            raise _written_twice(stream, version, top)
    return last


def _written_twice(stream: str, version: int, top: int) -> sqlite3.IntegrityError:
    return sqlite3.IntegrityError(
        f"{stream}: version {version} is already written (the stream is at {top})"
    )


def _lock_data_dir(data_dir: Path) -> int:
    """Take the data dir's writer lock (`LOCK_FILE`), or raise `JournalLocked` at once."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalLocked(
            f"{data_dir} is in use: another process (or another open journal) writes it"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_erasures_done(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS erasures_done"
        " (stream TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,"
        " PRIMARY KEY (stream, seq))"
    )


def _types_clause(types: Sequence[str]) -> str:
    # Type names are event class names, an app's prefixed by its namespace (`shop.ItemAdded`):
    # identifiers joined by dots, safe to inline, as a partial index's WHERE clause must be
    # literal.
    for name in types:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(f"not an event type name: {name!r}")
    return "type IN (" + ", ".join(f"'{name}'" for name in sorted(types)) + ")"


def _truncate_wal(conn: sqlite3.Connection) -> None:
    """Copy every WAL frame into the database and empty the WAL file. Readers in the middle of
    a read can hold it back: retry briefly (they finish in milliseconds)."""
    for _ in range(200):
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        time.sleep(0.01)
    raise sqlite3.OperationalError("could not checkpoint the journal's WAL after an erasure")


__all__ = [
    "JOURNAL_FILE",
    "TAIL_WINDOW",
    "SqliteJournal",
    "SqliteReader",
    "create_schema",
    "open_reader",
]
