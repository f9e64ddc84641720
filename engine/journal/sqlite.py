"""The SQLite journal: one database file per data dir (`journal.db`, WAL), holding the rows
(`events`), the idempotency records (`requests`), the rate limiters' takes (`takes`), the
erasures done (`erasures_done`) and the format (`meta`); `quarantine`, `quarantine_requests`
and `quarantine_takes` appear when a damaged tail is set aside. Beside it, `streams.db` is the
derived index: which seqs hold each stream's versions, which record holds each `(session_id,
request_id)`, and which take is each limiter's latest. This module is the only one that knows
these tables.

The commit path only appends: rows in `seq` order (`seq` is the rowid: each batch goes to the end
of the table), idempotency records and takes in commit order (`rid`, their rowid), so a commit
dirties a few pages whatever the journal's size. Lookups are served by the index, kept off the
commit path (format 4; format 1 had a unique `(stream, version)` index on `events`, format 2
still kept `requests` under a primary key `(session_id, request_id)`, a B-tree each batch
scattered into, and format 3 had no `takes` (a limiter's takes were rows of its stream); each is
converted when opened for writing, see `_convert`):
- `stream_index(stream, version, seq)` in `streams.db`, with `indexed.seq` the position up to
  which it holds every row, `request_index(session_id, request_id, rid)`, with
  `requests_indexed.rid` its own position, and `take_index(limiter, rid)`, each limiter's
  latest take up to `takes_indexed.rid`. `index_tail` copies the rows, records and takes after
  those positions into them, in SQL, in one transaction of `streams.db` on a connection of its
  own (the engine runs it in a worker thread every `INDEX_SECONDS`); it writes only
  `streams.db`, so it never holds the journal's write lock. It inserts in key order (the
  rows sorted by `(stream, version)`, the records by their key, the takes by limiter, each
  limiter's highest rid among them replacing the one it held), so that the B-tree's pages
  are visited in order once each, not as the rows' random streams fall.
- a read of one stream (`read_stream`) takes its indexed rows by seq plus the rows after
  `indexed.seq` (the unindexed tail, a short range scan), in one statement, so it sees every
  committed row whatever the indexer is doing; each row is checked (its stream, versions
  ascending) and any disagreement falls back to a full scan of the journal (the index is
  derived data: it is never trusted over the journal). The reads of records (`lookup_request`,
  `last_request_id`, `sessions`, `requests`) do the same with the request index and the records
  after `requests_indexed.rid`: each record the index names is read from `requests` by rid and
  must carry the key the index gave it, else the read scans `requests` instead. `read_take`
  takes the take the index names and the limiter's latest after `takes_indexed.rid`, in one
  statement, the higher rid winning; a take the index names must be that limiter's, else the
  read scans `takes` (from its end). A take's `crc` (`take_checksum`, over its six fields) is
  computed by `append`, on the writer's side, and verified by every read of takes.
- `streams.db` is written with `synchronous=OFF`: everything in it can be derived again from the
  journal. At open it is checked against the journal (each position must hold the row or record
  the index says it holds) and each part rebuilt from scratch if it is missing, unreadable or
  disagrees (a `streams.db` of format 2, without the request index, gets one built, one of
  format 3 a take index). A reader (`open_reader`) uses what of it is sound and scans for the
  rest; it never writes, so it reads a format-2 journal as it is (there `requests` still has its
  key, which the scans then use), and a journal of format 3 or before as one without takes.
- "No version written twice" is checked by `append` before it writes: each stream's first
  version in a batch must follow the highest version the journal holds for it (indexed or in
  the tail), and versions within a batch must ascend; otherwise the batch writes nothing and raises
  `sqlite3.IntegrityError`, as the unique index did. The highest version of a stream in the
  tail is not read from the tail (a scan of every unindexed row per batch: most of the writer's
  time) but kept in memory (`_tops`): the writer is the journal's only one (`open` takes the
  data dir's lock: engine/journal/lock.py), so the rows after the index's position are exactly
  those of the tail when the journal was opened (none: `open` catches the index up) and those
  its own appends wrote since. Each append looks the other streams up in the index, in
  statements that answer only the streams that would be written twice (none, normally: one
  step each).
- "No `(session_id, request_id)` recorded twice" (the primary key's guarantee in format 2) is
  checked the same way: a batch holding a key twice, or a key the journal holds, writes nothing
  and raises `sqlite3.IntegrityError`. The tail's keys are the writer's memory
  (`_tail_requests`, key -> rid); the others are looked up in the request index, one statement
  per chunk of the batch that answers only a key already recorded, checked against `requests`
  (a key the index names wrongly is looked for by a scan). Past `_TAIL_KEYS` keys in that
  memory (a bulk copy through `append`, which no indexer follows) the writer runs `index_tail`
  itself after its commit, so the memory stays bounded.

Guarantees beyond `engine.journal.interface`:
- `append` is one `BEGIN IMMEDIATE` transaction; with `synchronous=FULL` the batch is durable
  across power loss when it returns. Rows, records and takes go in as multi-row INSERTs (see
  `append`). Takes are not checked against anything: each is appended as given.
- `repair_tail` sets aside, with the rows from the first bad seq on, the records and the takes
  whose `seq` is at or past it (a batch's takes name seqs of that batch or before it, so those
  of a batch set aside go with it). It checks no take itself.
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

import hashlib
import logging
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.journal.interface import (
    Batch,
    DamagedRow,
    GroupCount,
    Grouping,
    JournalReadError,
    RequestRecord,
    Row,
    TailRepair,
    Take,
    Totals,
    checksum,
    verify,
)
from engine.journal.lock import lock_data_dir

log = logging.getLogger("turnstile.journal")

FORMAT_VERSION = 4
JOURNAL_FILE = "journal.db"
#: The stream index beside the journal (derived from it; see the module docstring).
INDEX_FILE = "streams.db"
#: The unique index format 1 kept on `events`, dropped when a journal is converted.
_FORMAT_1_INDEX = "idx_events_stream_version"
#: `requests` since format 3: appended in commit order, its rowid named (`rid`) so that nothing
#: (a VACUUM) renumbers the records the request index points at; no other key.
_REQUESTS_TABLE = (
    "(rid INTEGER PRIMARY KEY, session_id TEXT NOT NULL, request_id INTEGER NOT NULL,"
    " result BLOB NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL)"
)

#: `takes` since format 4: appended in commit order, its rowid named (`rid`) so that nothing
#: renumbers the takes the take index points at; no other key.
_TAKES_TABLE = (
    "(rid INTEGER PRIMARY KEY, seq INTEGER NOT NULL, limiter TEXT NOT NULL, at INTEGER NOT NULL,"
    " window_start INTEGER NOT NULL, count INTEGER NOT NULL, milli_tokens INTEGER NOT NULL,"
    " crc INTEGER NOT NULL)"
)

_COLUMNS = "seq, stream, version, type, schema, payload, at, crc"
_REQUEST_COLUMNS = "session_id, request_id, result, seq, at"
#: A take's fields (`Take`'s order) and its checksum.
_TAKE_COLUMNS = "seq, limiter, at, window_start, count, milli_tokens, crc"
#: The most rows of one multi-row INSERT (SQLite allows 32,766 bound values per statement; 8
#: per row). Every size of these statements is a power of two (`_pieces`), so that a connection
#: keeps at most a dozen of each kind prepared: its cache of prepared statements (128) would
#: otherwise fill with one per batch size, each some hundreds of KiB for thousands of rows.
_ROWS_PER_INSERT = 2_048
#: Streams looked up in the stream index per statement by the append's version check.
_STREAMS_PER_LOOKUP = 512
#: Keys looked up in the request index per statement by the append's uniqueness check.
_KEYS_PER_LOOKUP = 512
#: Rows (or records) indexed between two prunings of the writer's `_tops` (`_tail_requests`).
_PRUNE_EVERY = 50_000
#: Keys of the tail past which the writer indexes them itself (`append`): a bulk copy through
#: `append` (a PITR copy) has no indexer beside it, and each key costs some 240 bytes.
_TAIL_KEYS = 100_000
#: Rows at the end of the journal checked at every start (`SqliteJournal.repair_tail`).
TAIL_WINDOW = 10_000
#: And 5 per idempotency record.
_REQUESTS_PER_INSERT = 4_096
#: And 7 per take.
_TAKES_PER_INSERT = 4_096
#: Multi-row INSERT statements made so far, by (table, rows).
_INSERT_SQL: dict[tuple[str, int], str] = {}
_GROUP_COLUMN: dict[str, str] = {
    "type": "type",
    "kind": "substr(stream, 1, instr(stream || '/', '/') - 1)",
    "stream": "stream",
}


#: A take's numbers as `take_checksum` reads them: seq, at, window_start, count, milli_tokens.
_TAKE_NUMBERS = struct.Struct("<5q")


def take_checksum(take: Take) -> int:
    """A take's `crc`: CRC-32 of its five numbers (little-endian 64-bit: seq, at, window_start,
    count, milli_tokens) followed by its limiter in UTF-8. Raises for a number SQLite could
    not store (not an int, or past 64 bits)."""
    seq, limiter, at, window_start, count, milli_tokens = take
    numbers = _TAKE_NUMBERS.pack(seq, at, window_start, count, milli_tokens)
    return zlib.crc32(limiter.encode(), zlib.crc32(numbers))


def _pieces(count: int, largest: int) -> Iterator[tuple[int, int]]:
    """`(start, size)` pieces covering `range(count)` in order, each size a power of two at
    most `largest` (a power of two), the larger first: the binary digits of `count`, with
    `largest` repeated for what is above it."""
    start, size = 0, largest
    while start < count:
        while size > count - start:
            size >>= 1
        yield start, size
        start += size


def _insert_sql(table: str, columns: str, count: int) -> str:
    """`INSERT INTO table (columns) VALUES (...), ...` for `count` rows (kept for reuse)."""
    sql = _INSERT_SQL.get((table, count))
    if sql is None:
        row = "(" + ", ".join(["?"] * (columns.count(",") + 1)) + ")"
        sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * count)}"
        if len(_INSERT_SQL) < 1024:
            _INSERT_SQL[(table, count)] = sql
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
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.request_index (session_id TEXT NOT NULL,"
        " request_id INTEGER NOT NULL, rid INTEGER NOT NULL,"
        " PRIMARY KEY (session_id, request_id)) WITHOUT ROWID"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.requests_indexed"
        " (id INTEGER PRIMARY KEY CHECK (id = 0), rid INTEGER NOT NULL)"
    )
    conn.execute(f"INSERT OR IGNORE INTO {schema}.requests_indexed VALUES (0, 0)")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.take_index (limiter TEXT PRIMARY KEY,"
        " rid INTEGER NOT NULL) WITHOUT ROWID"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.takes_indexed"
        " (id INTEGER PRIMARY KEY CHECK (id = 0), rid INTEGER NOT NULL)"
    )
    conn.execute(f"INSERT OR IGNORE INTO {schema}.takes_indexed VALUES (0, 0)")


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the journal's tables in a new database (or check an existing one's format)."""
    tables = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if not {"events", "requests", "meta"} <= tables:
        # (imported only here: a writer child opens an existing journal and needs none of it)
        import sqlite_utils

        db = sqlite_utils.Database(conn)
        if "events" not in tables:
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
        if "requests" not in tables:
            conn.execute(f"CREATE TABLE requests {_REQUESTS_TABLE}")
        if "meta" not in tables:  # a new journal (an older one has its tables already)
            conn.execute(f"CREATE TABLE IF NOT EXISTS takes {_TAKES_TABLE}")
            db.table("meta").create({"key": str, "value": str}, pk="key")
            db.table("meta").insert({"key": "format", "value": str(FORMAT_VERSION)})
    found = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if found is not None and int(found[0]) in (1, 2, 3):
        return  # converted by `SqliteJournal.open` (`_convert`); a reader reads it as it is
    if found is None or int(found[0]) != FORMAT_VERSION:
        raise RuntimeError(f"journal format {found} is not {FORMAT_VERSION}")


def _format(conn: sqlite3.Connection) -> int:
    [(value,)] = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchall()
    return int(value)


class SqliteReader:
    """`JournalReader` over one SQLite connection (see `engine.journal.interface`)."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        indexed: bool,
        requests_indexed: bool,
        takes_indexed: bool,
    ) -> None:
        self.path = path
        self._conn = conn
        #: The stream index is attached as `idx` (a reader of a journal without one scans).
        self._indexed = indexed
        #: The request index is attached in `idx` too (without it, record reads scan).
        self._requests_indexed = requests_indexed
        #: And the take index (without it, take reads scan).
        self._takes_indexed = takes_indexed
        #: The journal has its `takes` table (format 4); False until seen (`_has_takes`).
        self._takes_table = False

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
        if self._requests_indexed:
            found = self._query(_LAST_REQUEST_INDEXED_SQL, (session_id,))
            # Each row: the highest id the index (or the tail) gives, and the record's key.
            if all(top is None or (s, r) == (session_id, top) for top, s, r in found):
                return max((int(top) for top, _, _ in found if top is not None), default=0)
            log.error("the request index disagrees with the journal on %s; scanning", session_id)
        [(top,)] = self._query(
            "SELECT max(request_id) FROM requests WHERE session_id = ?", (session_id,)
        )
        return int(top or 0)

    def sessions(self) -> Iterator[str]:
        # Indexed: a walk of the request index's key order, then the tail's other sessions.
        # Without it, a walk of the key of format 2, or a scan of format 3's records.
        sql = (
            "SELECT DISTINCT session_id FROM idx.request_index UNION ALL"
            " SELECT DISTINCT session_id FROM requests q"
            " WHERE rowid > (SELECT rid FROM idx.requests_indexed) AND NOT EXISTS"
            " (SELECT 1 FROM idx.request_index i WHERE i.session_id = q.session_id)"
            if self._requests_indexed
            else "SELECT DISTINCT session_id FROM requests"
        )
        try:
            for (session_id,) in self._conn.execute(sql):
                yield session_id
        except sqlite3.DatabaseError as exc:
            raise JournalReadError(f"{self.path.name}: {exc}") from exc

    def lookup_request(self, session_id: str, request_id: int) -> RequestRecord | None:
        key = (session_id, request_id)
        if self._requests_indexed:
            found = [RequestRecord(*r) for r in self._query(_LOOKUP_INDEXED_SQL, key)]
            if len(found) <= 1 and all(r[:2] == key for r in found):
                return found[0] if found else None
            log.error("the request index disagrees with the journal on %s; scanning", key)
        found = [RequestRecord(*r) for r in self._query(_LOOKUP_SCAN_SQL, key)]
        return found[0] if found else None

    def requests(
        self, *, after_seq: int = 0, until_seq: int | None = None, chunk: int = 5_000
    ) -> Iterator[RequestRecord]:
        # Each chunk is one statement: the records after the last key yielded, in key order.
        # Indexed, each row carries the index's key beside the record's, which must agree
        # (and ascend); a disagreement goes on from the last key yielded with scans.
        bounds = (after_seq, _MAX_SEQ if until_seq is None else until_seq, int(chunk))
        indexed = self._requests_indexed
        last: tuple[str, int] | None = None
        while True:
            sql = _REQUESTS_SQL[indexed, last is not None]
            found = self._query(sql, bounds if last is None else (*bounds, *last))
            records = [RequestRecord(*r[2:]) for r in found]
            if indexed and not _records_agree(found, last):
                log.error("the request index disagrees with the journal; scanning")
                indexed = False
                continue
            yield from records
            if len(records) < chunk:
                return
            last = records[-1][:2]

    def _has_takes(self) -> bool:
        """Whether the journal has `takes`: one of format 3 or before, read as it is, has none
        (until a writer converts it: looked for again by each read of takes until then)."""
        if not self._takes_table:
            self._takes_table = bool(
                self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'takes'")
            )
        return self._takes_table

    def read_take(self, limiter: str) -> Take | None:
        if not self._has_takes():
            return None
        # Indexed, each row: the rid the index names (or the tail's own) and the take there.
        found = self._query(
            _TAKE_INDEXED_SQL if self._takes_indexed else _TAKE_SCAN_SQL, (limiter,)
        )
        if any(raw[2] != limiter for raw in found):  # another limiter's take, or none
            log.error("the take index disagrees with the journal on %s; scanning", limiter)
            found = self._query(_TAKE_SCAN_SQL, (limiter,))
        if not found:
            return None
        return _checked_take(max(found, key=lambda raw: int(raw[0]))[1:])

    def takes(
        self, *, after_seq: int = 0, until_seq: int | None = None, chunk: int = 20_000
    ) -> Iterator[Take]:
        if not self._has_takes():
            return
        # Chunks by rid (the append order), each after the last rid yielded.
        bounds = (after_seq, _MAX_SEQ if until_seq is None else until_seq, int(chunk))
        cursor = 0
        while True:
            found = self._query(_TAKES_SQL, (cursor, *bounds))
            for raw in found:
                yield _checked_take(raw[1:])
            if len(found) < chunk:
                return
            cursor = found[-1][0]

    def limiters(self) -> Iterator[str]:
        if not self._has_takes():
            return
        # Indexed: a walk of the take index's key order, then the tail's other limiters.
        sql = (
            "SELECT limiter FROM idx.take_index UNION ALL"
            " SELECT DISTINCT limiter FROM takes t"
            " WHERE rid > (SELECT rid FROM idx.takes_indexed) AND NOT EXISTS"
            " (SELECT 1 FROM idx.take_index i WHERE i.limiter = t.limiter)"
            if self._takes_indexed
            else "SELECT DISTINCT limiter FROM takes"
        )
        try:
            for (limiter,) in self._conn.execute(sql):
                yield limiter
        except sqlite3.DatabaseError as exc:
            raise JournalReadError(f"{self.path.name}: {exc}") from exc

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

_RECORD_COLUMNS = ", ".join(f"q.{c.strip()}" for c in _REQUEST_COLUMNS.split(","))
#: The tail of the records: those after the request index's position (a range of rowids).
_REQUESTS_TAIL = "rowid > (SELECT rid FROM idx.requests_indexed)"
#: One record, in one statement: through the request index (the record it names, by rid), then
#: the unindexed tail. Each answer must carry the key asked for (else: `_LOOKUP_SCAN_SQL`).
_LOOKUP_INDEXED_SQL = (
    f"SELECT {_RECORD_COLUMNS} FROM idx.request_index i JOIN requests q ON q.rowid = i.rid"
    " WHERE i.session_id = ?1 AND i.request_id = ?2"
    f" UNION ALL SELECT {_REQUEST_COLUMNS} FROM requests WHERE {_REQUESTS_TAIL}"
    " AND session_id = ?1 AND request_id = ?2"
)
#: Without the index: format 2's key, or a scan of format 3's records.
_LOOKUP_SCAN_SQL = (
    f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE session_id = ?1 AND request_id = ?2"
)
#: A session's highest request id: the index's highest (with the key of the record it names)
#: and the tail's.
_LAST_REQUEST_INDEXED_SQL = (
    "SELECT * FROM (SELECT i.request_id, q.session_id, q.request_id FROM idx.request_index i"
    " JOIN requests q ON q.rowid = i.rid WHERE i.session_id = ?1"
    " ORDER BY i.request_id DESC LIMIT 1)"
    f" UNION ALL SELECT max(request_id), ?1, max(request_id) FROM requests"
    f" WHERE {_REQUESTS_TAIL} AND session_id = ?1"
)
#: Largest seq a bound can name (SQLite's integers are 64-bit).
_MAX_SEQ = 2**63 - 1


def _requests_sql(*, indexed: bool, after_key: bool) -> str:
    """One chunk of `SqliteReader.requests`: records with `?1 < seq <= ?2` (after the key
    `(?4, ?5)` if `after_key`), the first `?3` in key order, each row the key (the index's, when
    indexed) and then the record. Indexed: the index's key order merged with the sorted tail."""
    tail = "AND (session_id, request_id) > (?4, ?5)" if after_key else ""
    keys = f"session_id, request_id, {_REQUEST_COLUMNS}"
    if not indexed:
        return (
            f"SELECT {keys} FROM requests WHERE seq > ?1 AND seq <= ?2 {tail}"
            " ORDER BY 1, 2 LIMIT ?3"
        )
    after = "AND (i.session_id, i.request_id) > (?4, ?5)" if after_key else ""
    return (
        f"SELECT i.session_id, i.request_id, {_RECORD_COLUMNS} FROM idx.request_index i"
        f" JOIN requests q ON q.rowid = i.rid WHERE q.seq > ?1 AND q.seq <= ?2 {after}"
        f" UNION ALL SELECT {keys} FROM requests WHERE {_REQUESTS_TAIL}"
        f" AND seq > ?1 AND seq <= ?2 {tail} ORDER BY 1, 2 LIMIT ?3"
    )


_REQUESTS_SQL = {
    (indexed, after_key): _requests_sql(indexed=indexed, after_key=after_key)
    for indexed in (False, True)
    for after_key in (False, True)
}


_TAKE_ROW = f"rid, {_TAKE_COLUMNS}"
#: A limiter's latest take, in one statement: the take the take index names (by rid; its columns
#: NULL if there is none), and the limiter's latest in the unindexed tail (a scan back from the
#: end to the index's position). Each row: a rid, then the take there (`_TAKE_COLUMNS`), which
#: must be the limiter's; the higher rid wins.
_TAKE_INDEXED_SQL = (
    f"SELECT i.rid, {', '.join(f't.{c.strip()}' for c in _TAKE_COLUMNS.split(','))}"
    " FROM idx.take_index i LEFT JOIN takes t ON t.rid = i.rid WHERE i.limiter = ?1"
    f" UNION ALL SELECT * FROM (SELECT {_TAKE_ROW} FROM takes"
    " WHERE rid > (SELECT rid FROM idx.takes_indexed) AND limiter = ?1 ORDER BY rid DESC LIMIT 1)"
)
#: The same without the index: a scan back from the end of `takes`.
_TAKE_SCAN_SQL = f"SELECT {_TAKE_ROW} FROM takes WHERE limiter = ?1 ORDER BY rid DESC LIMIT 1"
#: One chunk of `SqliteReader.takes`: after rid ?1, with `?2 < seq <= ?3`, the first ?4.
_TAKES_SQL = (
    f"SELECT {_TAKE_ROW} FROM takes WHERE rid > ?1 AND seq > ?2 AND seq <= ?3 ORDER BY rid LIMIT ?4"
)


def _checked_take(raw: Sequence[Any]) -> Take:
    """The `Take` of a stored take's columns (`_TAKE_COLUMNS`), its checksum verified."""
    take = Take._make(raw[:6])
    try:
        sound = take_checksum(take) == raw[6]
    except (struct.error, AttributeError):  # a column not of its type: damaged as well
        sound = False
    if not sound:
        raise DamagedRow(take.seq, str(take.limiter), "take checksum mismatch")
    return take


def _records_agree(found: list[Any], last: tuple[str, int] | None) -> bool:
    """Does each row's key (the index's) match its record's, in ascending key order?"""
    for raw in found:
        key = (raw[0], raw[1])
        if key != (raw[2], raw[3]) or (last is not None and key <= last):
            return False
        last = key
    return True


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


def _request_index_is_sound(conn: sqlite3.Connection) -> bool:
    """Does the attached request index describe this journal's records (as `_index_is_sound`:
    the record at its position must be the one it indexes there)? False if it has none."""
    try:
        [(position,)] = conn.execute("SELECT rid FROM idx.requests_indexed").fetchall()
        if position == 0:
            return not conn.execute("SELECT 1 FROM idx.request_index LIMIT 1").fetchall()
        found = conn.execute(
            "SELECT i.rid FROM requests q LEFT JOIN idx.request_index i"
            " ON i.session_id = q.session_id AND i.request_id = q.request_id WHERE q.rowid = ?",
            (position,),
        ).fetchall()
        return bool(found) and found[0][0] == position
    except sqlite3.DatabaseError:
        return False


def _take_index_is_sound(conn: sqlite3.Connection) -> bool:
    """Does the attached take index describe this journal's takes (as `_index_is_sound`: the
    take at its position must be there, and be its limiter's latest in the index)? False if
    there is no take index, or no `takes`."""
    try:
        [(position,)] = conn.execute("SELECT rid FROM idx.takes_indexed").fetchall()
        if position == 0:
            return not conn.execute("SELECT 1 FROM idx.take_index LIMIT 1").fetchall()
        found = conn.execute(
            "SELECT i.rid FROM takes t LEFT JOIN idx.take_index i ON i.limiter = t.limiter"
            " WHERE t.rid = ?",
            (position,),
        ).fetchall()
        return bool(found) and found[0][0] == position
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
    indexed = requests_indexed = takes_indexed = False
    try:
        if _attach_index(conn, path, read_only=True):
            indexed = _index_is_sound(conn)
            requests_indexed = _request_index_is_sound(conn)
            takes_indexed = _take_index_is_sound(conn)
            if not (indexed or requests_indexed or takes_indexed):
                conn.execute("DETACH DATABASE idx")
    except sqlite3.DatabaseError:
        indexed = requests_indexed = takes_indexed = False  # an index it cannot read: scan
    return SqliteReader(
        path,
        conn,
        indexed=indexed,
        requests_indexed=requests_indexed,
        takes_indexed=takes_indexed,
    )


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
        super().__init__(path, reader, indexed=True, requests_indexed=True, takes_indexed=True)
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
        #: (session_id, request_id) -> rid of each record this journal appended after the
        #: request index's position it last pruned at; the writer's own, as `_tops`.
        self._tail_requests: dict[tuple[str, int], int] = {}
        #: The request index's position after its last catch-up (set by `index_tail`).
        self._request_position = 0
        #: The position the writer last pruned `_tail_requests` at.
        self._requests_pruned_at = 0
        #: Held by `index_tail`, which `append` also calls past `_TAIL_KEYS`.
        self._indexing = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path, *, synchronous: str = "FULL") -> SqliteJournal:
        """Open (creating it if need be) the journal of `data_dir`. `synchronous` is SQLite's
        setting: FULL (durable across power loss), EXTRA, or NORMAL (durable across a crash of
        the process only)."""
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, EXTRA or NORMAL, not {synchronous}")
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_data_dir(data_dir)
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
        found = _format(writer)
        if found != FORMAT_VERSION:
            # The records of format 1 or 2 get new rids: the request index forgets its own
            # first, and the take index anything it holds (a crash in between leaves them
            # empty, or the journal unconverted: done again at the next open).
            _reset_index(indexer, streams=False, requests=found in (1, 2))
            _convert(writer, found)
        if not _index_is_sound(writer):
            log.warning("the stream index does not match the journal: rebuilding it")
            _reset_index(indexer, takes=False)
        if not _request_index_is_sound(writer):
            log.warning("the request index does not match the journal: rebuilding it")
            _reset_index(indexer, streams=False, takes=False)
        if not _take_index_is_sound(writer):
            log.warning("the take index does not match the journal: rebuilding it")
            _reset_index(indexer, streams=False, requests=False)
        reader = _connect(path, synchronous=synchronous)
        _attach_index(reader, path, read_only=True)
        journal = cls(path, writer, reader, indexer)
        journal._catch_up()  # what the last run left unindexed: the tail is empty after
        return journal

    @property
    def lock_fd(self) -> int | None:
        """The descriptor holding the data dir's lock (None if this journal took none)."""
        return self._lock

    def note_index_positions(self) -> None:
        """Read the indexes' positions (moved by another process's `index_tail`), so that the
        writer's memory of the tail is pruned past them."""
        [(position,)] = self._writer.execute("SELECT seq FROM idx.indexed").fetchall()
        [(rposition,)] = self._writer.execute("SELECT rid FROM idx.requests_indexed").fetchall()
        self._index_position = max(self._index_position, int(position))
        self._request_position = max(self._request_position, int(rposition))

    def close(self) -> None:
        self._conn.close()
        self._writer.close()
        self._indexer.close()
        if self._lock is not None:
            lock, self._lock = self._lock, None
            os.close(lock)  # (and with it the flock)

    def _catch_up(self) -> None:
        """Index every committed row and record; with none in the tail, `_tops` and
        `_tail_requests` start empty."""
        while self.index_tail():
            pass
        self._tops = {}
        self._pruned_at = self._index_position
        self._tail_requests = {}
        self._requests_pruned_at = self._request_position

    def reader(self) -> SqliteReader:
        return _open_reader(self.path)

    # -- the stream index (one thread at a time, beside the writer) -----------------------

    def index_tail(self, max_rows: int = 200_000) -> int:
        """Copy up to `max_rows` committed rows after the stream index's position into it, up
        to `max_rows` records after the request index's position into that, and up to
        `max_rows` takes after the take index's position into that (each limiter's latest of
        them), and move the three positions past them, in one transaction of `streams.db`
        (never the journal's write lock). Returns how many seqs and rids it moved over (0: up
        to date)."""
        with self._indexing:
            return self._index_tail(max_rows)

    def _index_tail(self, max_rows: int) -> int:
        conn = self._indexer
        conn.execute(
            "BEGIN IMMEDIATE"
        )  # the index's write lock only: the journal is attached read-only
        try:
            [(position,)] = conn.execute("SELECT seq FROM indexed").fetchall()
            [(end,)] = conn.execute("SELECT max(seq) FROM j.events").fetchall()
            until = min(int(end or 0), position + max_rows)
            if until > position:
                conn.execute(
                    "INSERT INTO stream_index SELECT stream, version, seq FROM j.events"
                    " WHERE seq > ? AND seq <= ? ORDER BY stream, version",
                    (position, until),
                )
                conn.execute("UPDATE indexed SET seq = ?", (until,))
            [(rposition,)] = conn.execute("SELECT rid FROM requests_indexed").fetchall()
            [(rend,)] = conn.execute("SELECT max(rowid) FROM j.requests").fetchall()
            runtil = min(int(rend or 0), rposition + max_rows)
            if runtil > rposition:
                conn.execute(
                    "INSERT INTO request_index SELECT session_id, request_id, rowid"
                    " FROM j.requests WHERE rowid > ? AND rowid <= ?"
                    " ORDER BY session_id, request_id",
                    (rposition, runtil),
                )
                conn.execute("UPDATE requests_indexed SET rid = ?", (runtil,))
            [(tposition,)] = conn.execute("SELECT rid FROM takes_indexed").fetchall()
            [(tend,)] = conn.execute("SELECT max(rid) FROM j.takes").fetchall()
            tuntil = min(int(tend or 0), tposition + max_rows)
            if tuntil > tposition:
                # A limiter's latest take of the range replaces what the index held for it
                # (an older take: the range follows the position).
                conn.execute(
                    "INSERT OR REPLACE INTO take_index SELECT limiter, max(rid) FROM j.takes"
                    " WHERE rid > ? AND rid <= ? GROUP BY limiter ORDER BY limiter",
                    (tposition, tuntil),
                )
                conn.execute("UPDATE takes_indexed SET rid = ?", (tuntil,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._index_position = max(position, until)
        self._request_position = max(rposition, runtil)
        moved = max(0, until - position) + max(0, runtil - rposition) + max(0, tuntil - tposition)
        return int(moved)

    def unindexed(self) -> int:
        """Rows committed after the stream index's position (the tail reads scan)."""
        [(count,)] = self._query("SELECT max(seq) - (SELECT seq FROM idx.indexed) FROM events")
        return int(count or 0)

    def unindexed_requests(self) -> int:
        """Records committed after the request index's position (the tail lookups scan)."""
        [(count,)] = self._query(
            "SELECT count(*) FROM requests WHERE rowid > (SELECT rid FROM idx.requests_indexed)"
        )
        return int(count)

    def unindexed_takes(self) -> int:
        """Takes committed after the take index's position (`read_take` scans them)."""
        [(count,)] = self._query(
            "SELECT count(*) FROM takes WHERE rid > (SELECT rid FROM idx.takes_indexed)"
        )
        return int(count)

    def last_take_rid(self) -> int:
        """The rid of the take appended last (0 if none): each append of `n` takes moves it by
        `n` (part of the journal's end as the writer process checks it)."""
        [(rid,)] = self._query("SELECT max(rid) FROM takes")
        return int(rid or 0)

    def last_request_rid(self) -> int:
        """The rid of the idempotency record appended last (0 if none): each append of `n`
        records moves it by `n`, as `last_take_rid`."""
        [(rid,)] = self._query("SELECT max(rowid) FROM requests")
        return int(rid or 0)

    # -- writing (one thread at a time) -------------------------------------------------

    def append(self, batch: Batch) -> None:
        conn = self._writer
        tops = self._tops
        conn.execute("BEGIN IMMEDIATE")
        tail = self._tail_requests
        requests = batch.requests
        try:
            written = _check_versions(conn, batch.rows, tops)
            keys = _check_requests(conn, requests, tail)
            # Multi-row INSERTs, not executemany (the rows, then the idempotency records):
            # executemany gives up the interpreter lock around every row and, with the event
            # loop busy, waits to get it back each time.
            rows = batch.rows
            for start, size in _pieces(len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + size]
                conn.execute(
                    _insert_sql("events", _COLUMNS, len(chunk)), [v for row in chunk for v in row]
                )
            last_rid = 0
            for start, size in _pieces(len(requests), _REQUESTS_PER_INSERT):
                part = requests[start : start + size]
                inserted = conn.execute(
                    _insert_sql("requests", _REQUEST_COLUMNS, len(part)),
                    [v for r in part for v in r],
                )
                last_rid = inserted.lastrowid or 0
            takes = batch.takes
            for start, size in _pieces(len(takes), _TAKES_PER_INSERT):
                values: list[object] = []
                for take in takes[start : start + size]:
                    values += take
                    values.append(take_checksum(take))  # (the writer's time, not the loop's)
                conn.execute(_insert_sql("takes", _TAKE_COLUMNS, size), values)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        tops.update(written)
        # The records took the rids after the last one, in order (the only writer appends).
        tail.update(zip(keys, range(last_rid - len(keys) + 1, last_rid + 1), strict=True))
        position = self._index_position
        if position - self._pruned_at >= _PRUNE_EVERY:
            self._tops = {s: top for s, top in tops.items() if top[1] > position}
            self._pruned_at = position
        if len(tail) > _TAIL_KEYS:
            self.index_tail()
        position = self._request_position
        if position - self._requests_pruned_at >= _PRUNE_EVERY or len(tail) > _TAIL_KEYS:
            self._tail_requests = {k: rid for k, rid in tail.items() if rid > position}
            self._requests_pruned_at = position

    def repair_tail(self, window: int = TAIL_WINDOW) -> TailRepair | None:
        """See `Journal.repair_tail`. The rows set aside go to the `quarantine` table, their
        idempotency records to `quarantine_requests`, their takes to `quarantine_takes`.

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
            # The records' columns, not their rid (a quarantine of format 2 has none).
            conn.execute(
                "CREATE TABLE IF NOT EXISTS quarantine_requests AS"
                f" SELECT {_REQUEST_COLUMNS} FROM requests WHERE 0"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS quarantine_takes AS SELECT * FROM takes WHERE 0"
            )
            rows = conn.execute(
                "INSERT INTO quarantine SELECT * FROM events WHERE seq >= ?", (first,)
            ).rowcount
            requests = conn.execute(
                f"INSERT INTO quarantine_requests ({_REQUEST_COLUMNS})"
                f" SELECT {_REQUEST_COLUMNS} FROM requests WHERE seq >= ?",
                (first,),
            ).rowcount
            takes = conn.execute(
                "INSERT INTO quarantine_takes SELECT * FROM takes WHERE seq >= ?", (first,)
            ).rowcount
            conn.execute("DELETE FROM events WHERE seq >= ?", (first,))
            conn.execute("DELETE FROM requests WHERE seq >= ?", (first,))
            conn.execute("DELETE FROM takes WHERE seq >= ?", (first,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._catch_up()
        return TailRepair(
            first_seq=first,
            last_seq=end,
            rows=rows,
            requests=requests,
            reason=reason,
            takes=takes,
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
            conn.execute("SELECT count(*) FROM requests_indexed").fetchall()
            conn.execute("SELECT count(*) FROM takes_indexed").fetchall()
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


def _reset_index(
    indexer: sqlite3.Connection, *, streams: bool = True, requests: bool = True, takes: bool = True
) -> None:
    """Empty the stream index, the request index and the take index (those asked for), each
    back at position 0, in one transaction: rebuilt by `index_tail`."""
    indexer.execute("BEGIN IMMEDIATE")
    try:
        if streams:
            indexer.execute("DELETE FROM stream_index")
            indexer.execute("UPDATE indexed SET seq = 0")
        if requests:
            indexer.execute("DELETE FROM request_index")
            indexer.execute("UPDATE requests_indexed SET rid = 0")
        if takes:
            indexer.execute("DELETE FROM take_index")
            indexer.execute("UPDATE takes_indexed SET rid = 0")
        indexer.execute("COMMIT")
    except BaseException:
        if indexer.in_transaction:
            indexer.execute("ROLLBACK")
        raise


def _convert(writer: sqlite3.Connection, found: int) -> None:
    """Convert a journal of format 1, 2 or 3 to this one, in one transaction: format 1's unique
    `(stream, version)` index dropped; format 1's or 2's `requests` written again without its
    primary key, in the order its records were committed (their rowids), the table then renamed
    in place of the old one; `takes` created, empty (a limiter's takes before it stay rows of
    its stream). The indexes are built after, by `index_tail`."""
    if found not in (1, 2, 3):
        raise RuntimeError(f"journal format {found} is not {FORMAT_VERSION}")
    writer.execute("BEGIN IMMEDIATE")
    try:
        if found in (1, 2):
            writer.execute(f"DROP INDEX IF EXISTS {_FORMAT_1_INDEX}")
            writer.execute("DROP TABLE IF EXISTS requests_format_3")  # (a rollback left none)
            writer.execute(f"CREATE TABLE requests_format_3 {_REQUESTS_TABLE}")
            writer.execute(
                f"INSERT INTO requests_format_3 ({_REQUEST_COLUMNS})"
                f" SELECT {_REQUEST_COLUMNS} FROM requests ORDER BY rowid"
            )
            writer.execute("DROP TABLE requests")
            writer.execute("ALTER TABLE requests_format_3 RENAME TO requests")
        writer.execute(f"CREATE TABLE IF NOT EXISTS takes {_TAKES_TABLE}")
        writer.execute("UPDATE meta SET value = ? WHERE key = 'format'", (str(FORMAT_VERSION),))
        writer.execute("COMMIT")
    except BaseException:
        if writer.in_transaction:
            writer.execute("ROLLBACK")
        raise
    log.info(
        "journal converted from format %d to %d (indexes in %s)", found, FORMAT_VERSION, INDEX_FILE
    )


def _check_requests(
    conn: sqlite3.Connection, requests: Sequence[RequestRecord], tail: dict[tuple[str, int], int]
) -> list[tuple[str, int]]:
    """Refuse a batch that would record a `(session_id, request_id)` twice (see the module
    docstring): twice in `requests`, or one the journal holds, from `tail` (the records after
    the request index's position) or else the request index, read inside the append's
    transaction and checked against `requests`. Returns the batch's keys, in order."""
    keys = [(r.session_id, r.request_id) for r in requests]
    if len(set(keys)) < len(keys):
        twice = next(key for key, count in Counter(keys).items() if count > 1)
        raise sqlite3.IntegrityError(f"request {twice} twice in one batch")
    others: list[object] = []
    for key in keys:
        if key in tail:
            raise _recorded_twice(key)
        others += key
    for start, size in _pieces(len(others) // 2, _KEYS_PER_LOOKUP):
        chunk = others[2 * start : 2 * (start + size)]
        values = ", ".join(["(?, ?)"] * (len(chunk) // 2))
        clash = conn.execute(
            f"WITH b(s, r) AS (VALUES {values}) SELECT b.s, b.r, q.session_id, q.request_id"
            " FROM b JOIN idx.request_index i ON i.session_id = b.s AND i.request_id = b.r"
            " LEFT JOIN requests q ON q.rowid = i.rid LIMIT 1",
            chunk,
        ).fetchall()
        if not clash:
            continue
        [(session_id, request_id, *held)] = clash
        if held == [session_id, request_id]:
            raise _recorded_twice((session_id, request_id))
        # The index names another record: look for these keys in the journal itself.
        log.error("the request index disagrees with the journal on %s", (session_id, request_id))
        found = conn.execute(
            "SELECT session_id, request_id FROM requests"
            f" WHERE (session_id, request_id) IN (VALUES {values}) LIMIT 1",
            chunk,
        ).fetchall()
        if found:
            [(session_id, request_id)] = found
            raise _recorded_twice((session_id, request_id))
    return keys


def _recorded_twice(key: tuple[str, int]) -> sqlite3.IntegrityError:
    return sqlite3.IntegrityError(f"request {key} is already recorded")


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
    for start, size in _pieces(len(others) // 2, _STREAMS_PER_LOOKUP):
        chunk = others[2 * start : 2 * (start + size)]
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
    "take_checksum",
]
