"""What every journal backend is: its records and the two interfaces, `JournalReader` (read
only) and `Journal` (the one writer, which also reads). Nothing here touches storage.

A row is `(seq, stream, version, type, schema, payload, at, crc)`: `seq` is the global, gap-free
sequence number (the `ts` of the wire), `(stream, version)` is unique, `crc` is the CRC-32 of the
payload so a damaged row is detected on read rather than trusted. An idempotency record
`(session_id, request_id) -> result, seq, at` is written in the same transaction as the events
of its mutation; its `seq` is the mutation's last event (or the position its batch committed at).
A take `(seq, limiter, at, window_start, count, milli_tokens)` is a rate limiter's state after one
take, written in the same transaction as the batch of the command that took it (the engine keeps
its limiters in memory; a limiter's latest take is what it starts from when loaded again).

Every backend passes the contract suite in tests/journal/. The journal stores payloads as bytes
and never decodes them: it imports nothing of the engine (the codec that makes payloads from
events is the engine's, `engine.group_commit.rows_of`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Literal, NamedTuple, Protocol

import attrs


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


class Take(NamedTuple):
    """A rate limiter's state after one take (engine's limiters), journaled with the batch of the
    command that took it. The journal stores and checks it and never interprets the numbers."""

    #: The command's position: the seq of its last event, or, for a command that wrote no event,
    #: the last seq durable when its batch committed (never above the batch's last row).
    #: Non-decreasing within a batch (and so, batch after batch, in append order).
    seq: int
    #: The limiter's name, e.g. "ratelimit/rl_0123abcd..." (any non-empty str).
    limiter: str
    #: When it was taken (ms).
    at: int
    window_start: int
    count: int  # type: ignore[assignment]  # (the field hides `tuple.count`, unused on a take)
    milli_tokens: int


@attrs.frozen(kw_only=True)
class Batch:
    """What one transaction writes: event rows (already numbered), idempotency records and
    rate limiters' takes (any of them may be empty)."""

    rows: Sequence[Row]
    requests: Sequence[RequestRecord]
    takes: Sequence[Take] = ()


@attrs.frozen(kw_only=True)
class TailRepair:
    """What `Journal.repair_tail` set aside: rows from `first_seq` on (a damaged or missing
    row there), and the idempotency records and takes that pointed at them (`seq >=
    first_seq`), kept apart for an operator."""

    first_seq: int
    last_seq: int
    rows: int
    requests: int
    reason: str
    takes: int = 0


@attrs.frozen(kw_only=True)
class Totals:
    """Whole-journal figures, from one position. The `first_*`/`last_*` are None when empty."""

    events: int
    payload_bytes: int
    first_seq: int | None
    last_seq: int | None
    first_at: int | None
    last_at: int | None
    streams: int


class GroupCount(NamedTuple):
    """Rows and payload bytes of one group (an event type, a stream kind or a stream)."""

    name: str
    events: int
    bytes: int


#: How `JournalReader.counts` groups rows: by event type, by stream kind (the stream id's part
#: before its first `/`), or by stream.
Grouping = Literal["type", "kind", "stream"]


class DamagedRow(Exception):
    """A journal row (or take: `stream` is then its limiter) failed its checksum or could not
    be read."""

    def __init__(self, seq: int, stream: str, reason: str) -> None:
        super().__init__(f"journal row seq={seq} stream={stream}: {reason}")
        self.seq = seq
        self.stream = stream


class JournalReadError(Exception):
    """The stored journal could not be read (a damaged file, an I/O error): what a reader's
    calls raise, whatever the backend, with the backend's own error as the cause."""


class JournalLocked(Exception):
    """The data dir's journal is already open for writing, by another process or another open
    journal of this one: a data dir has one writer at a time."""


#: A row's `crc` of its payload: CRC-32, zlib's own function (no wrapper to call per row).
checksum: Callable[[bytes], int] = zlib.crc32


def verify(row: Row) -> None:
    """Raise `DamagedRow` if the row's payload does not match its checksum."""
    if checksum(row.payload) != row.crc:
        raise DamagedRow(row.seq, row.stream, "payload checksum mismatch")


class JournalReader(Protocol):
    """Read-only access to a journal. Use one reader from one thread at a time; open another
    for another thread. Each call sees every batch committed before it began (never part of a
    batch), unless inside `consistent()`. Rows and records are returned as stored: only
    `read_stream` verifies checksums, the others leave that to the caller. A `Take` carries no
    checksum, so the reads of takes (`read_take`, `takes`) verify theirs. Any call raises
    `JournalReadError` if the stored journal cannot be read."""

    def close(self) -> None: ...

    def consistent(self) -> AbstractContextManager[None]:
        """Within the block every call reads the journal at one position (the one of the
        block's first read), whatever is committed meanwhile. Hold it briefly on a live
        journal: a SQLite backend cannot empty its write-ahead log while it is held."""
        ...

    def last_seq(self) -> int:
        """The highest seq (0 when the journal is empty)."""
        ...

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
        """The rows with `after_seq < seq <= until_seq` (no upper bound if None), in seq
        order, read `chunk` at a time (memory does not grow with the journal; rows after the
        first chunk are those committed by the time each chunk is read). `streams`/`types`
        keep rows of those streams or event types (None: all; empty: none), `since_ms <= at
        <= until_ms` bounds the decision time."""
        ...

    def row_at(self, seq: int) -> Row | None:
        """The row at `seq`, if there is one."""
        ...

    def first_seq_after(self, at_ms: int) -> int | None:
        """The lowest seq of a row decided after `at_ms` (None if there is none)."""
        ...

    def read_stream(self, stream: str, after_version: int = 0) -> list[Row]:
        """The stream's rows after `after_version`, in version order, checksums verified
        (raises `DamagedRow` on the first that fails)."""
        ...

    def streams(self) -> Iterator[str]:
        """Every stream with at least one row, each once (in no particular order)."""
        ...

    def last_request_id(self, session_id: str) -> int:
        """The highest request id of `session_id` with an idempotency record (0 if none)."""
        ...

    def sessions(self) -> Iterator[str]:
        """Every session id with at least one idempotency record, each once."""
        ...

    def lookup_request(self, session_id: str, request_id: int) -> RequestRecord | None:
        """The idempotency record of `(session_id, request_id)`, if its mutation committed."""
        ...

    def requests(
        self, *, after_seq: int = 0, until_seq: int | None = None, chunk: int = 5_000
    ) -> Iterator[RequestRecord]:
        """The idempotency records with `after_seq < seq <= until_seq`, ordered by
        `(session_id, request_id)`, read `chunk` at a time."""
        ...

    def read_take(self, limiter: str) -> Take | None:
        """The limiter's latest take (the one appended last; None if it has none), whatever
        the backend's lookups have caught up with; its checksum verified (raises `DamagedRow`
        if it fails)."""
        ...

    def takes(
        self, *, after_seq: int = 0, until_seq: int | None = None, chunk: int = 20_000
    ) -> Iterator[Take]:
        """The takes with `after_seq < seq <= until_seq` (no upper bound if None), in append
        order, read `chunk` at a time (as `scan`: memory does not grow with the journal),
        checksums verified (raises `DamagedRow` on the first that fails)."""
        ...

    def limiters(self) -> Iterator[str]:
        """Every limiter with at least one take, each once (in no particular order)."""
        ...

    def totals(self) -> Totals:
        """Row count, payload bytes, seq and time bounds and distinct streams."""
        ...

    def counts(self, by: Grouping, *, limit: int | None = None) -> list[GroupCount]:
        """Rows and payload bytes per group, most rows first (then most bytes, then name),
        the first `limit` groups (all if None)."""
        ...

    def rate(self, step_ms: int) -> dict[int, int]:
        """Rows per time bucket: `at // step_ms` -> rows decided in it (empty buckets left
        out)."""
        ...


class Journal(JournalReader, Protocol):
    """The journal of one data dir: the one writer, and a reader for the event loop's point
    reads (a stream on activation, an idempotency lookup). Reads through it belong to the
    thread that opened it; `reader()` gives another thread its own. Writes (`append`,
    `repair_tail`) come from one thread at a time; `rewrite_payloads` and the erasure
    bookkeeping are safe from any thread, beside them."""

    def reader(self) -> JournalReader:
        """A new reader of this journal, for use from one other thread; close it when done."""
        ...

    def index_tail(self) -> int:
        """Bring the journal's lookups (a stream's rows, a request's record, a limiter's latest
        take) up to date with some of what is committed, off the commit path (a backend whose
        `append` keeps them current returns 0). Returns how far it moved (0: up to date). From
        one thread at a time, beside `append`."""
        ...

    def append(self, batch: Batch) -> None:
        """Write the batch (rows, records and takes) in one transaction and make it durable
        before returning, or write nothing and raise. Raises if a row's seq or `(stream,
        version)` is taken, or a request record's `(session_id, request_id)` is: nothing of
        the batch is then written. The caller numbers the rows (consecutive seqs after
        `last_seq()`) and gives each take its seq (see `Take.seq`)."""
        ...

    def repair_tail(self, window: int = ...) -> TailRepair | None:
        """Check the last `window` rows (checksums, and seqs without a gap); if one is damaged
        or missing, set it and every row after it aside (with the idempotency records and the
        takes naming them), so the journal ends at the last good commit, and say what was set
        aside (None if the tail is sound). What is set aside is kept for an operator, never
        dropped."""
        ...

    def holds_records(self, *, ignoring_kinds: tuple[str, ...] = ()) -> bool:
        """True if any row belongs to a stream whose kind is not in `ignoring_kinds`."""
        ...

    def rewrite_payloads(
        self, stream: str, before_seq: int, rewrite: Callable[[Row], tuple[int, bytes]]
    ) -> int:
        """Replace the schema and payload of each of `stream`'s rows with seq < `before_seq` by
        `rewrite(row)` (checksums verified first: raises `DamagedRow`), in one transaction,
        with new checksums; seq, version, type and time are untouched. Returns the number of
        rows whose schema or payload changed. When it returns the change is durable and no copy of a
        replaced payload remains in the journal's files."""
        ...

    def unfinished_erasures(self, types: Sequence[str]) -> list[tuple[str, int]]:
        """`(stream, seq)` of every row of these event types not marked with
        `mark_erasure_done`, oldest first. Finding them costs appends nothing."""
        ...

    def mark_erasure_done(self, stream: str, seq: int, at: int) -> None:
        """Record (durably) that the erasure at `(stream, seq)` is complete; idempotent."""
        ...
